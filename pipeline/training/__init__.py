"""Scripts that train the models shipped in pipeline/models (they read ../shared/data)."""
