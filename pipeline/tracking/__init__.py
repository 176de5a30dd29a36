"""MLflow: the store, tag and metric keys, runs, epoch logging, UI views and the registry."""
