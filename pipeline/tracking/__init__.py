"""MLflow, the one package that talks to it: the store, every tag and metric key, runs, epoch logging, saved UI
views, a model's lifecycle (log, load, register the champion), a suite's runs, and the team server's users."""
