"""Personal-data removal: the stage, its recognisers, scoring, scanning and column redaction."""
