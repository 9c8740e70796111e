"""Deduplication: MinHash near-duplicate and exact dedup, repeated lines and substrings."""
