"""The data: users' table files, the synthetic source, validation, splits and the scaler."""
