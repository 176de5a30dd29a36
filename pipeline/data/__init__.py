"""The data: users' table files, the synthetic source, column roles, validation, splits and the encoder."""
