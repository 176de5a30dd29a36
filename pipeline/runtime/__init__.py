"""How a command runs: one-line errors and exit codes, signals, outputs written all or nothing, processes."""
