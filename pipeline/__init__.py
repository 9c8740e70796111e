"""Refinery curation logic: Prefect-free, torch-free stages over columnar batches."""

__version__ = "0.1.0"
