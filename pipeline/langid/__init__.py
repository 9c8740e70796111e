"""Language identification: the stage and its linear model."""
