"""BatchNorm versus baseline on imbalanced tabular data: an MLflow-tracked DVC pipeline."""
