"""The network, torch only: k MLPs of one architecture as one module (k = 1 is one model), its checkpoints."""
