"""Evaluation on the paper's benchmarks (issue 29, being built): `metrics.py` is the metric
code every evaluation reports through, numpy only."""
