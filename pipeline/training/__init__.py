"""Training jobs: which models a stage trains, how each is tracked and written, alone or in stacks."""
