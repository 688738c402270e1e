"""cbcv.plots."""
