"""What the evidence says: the claims, their statistics, the checks of what weakens them, pooling across tables."""
