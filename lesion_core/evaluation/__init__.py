"""Scoring a trained run beyond plain metrics: one module per view (explanations, calibration,
operating points, intervals, comparison, robustness)."""
