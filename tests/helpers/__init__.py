"""What tests call: shrunk params, the stages in-process, copies of the repository."""
