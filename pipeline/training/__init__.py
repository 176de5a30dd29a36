"""How the networks are trained: the one loop (every model, alone or many at once, in one process or over
several), its optimizer, processes and snapshots, the jobs a stage trains and what each trains with,
Optuna tuning, and how a stage runs its jobs in stacks."""
