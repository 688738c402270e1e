"""cbcv.report."""
