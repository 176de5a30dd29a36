"""What the project is: its params (config, loading), its paths (layout), its variants, where a result came from."""
