"""Numbers about models: ranking and imbalanced-class metrics, reference models, paired tests."""
