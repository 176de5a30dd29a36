"""End-to-end runs of whole commands in copies of the repository."""
