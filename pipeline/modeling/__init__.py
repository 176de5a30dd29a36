"""The MLP and its training loop, in torch alone (recipe maps params to their configs)."""
