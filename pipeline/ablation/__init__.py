"""Ablation analysis: held-out data, statistics, analysis and the ablation report."""
