"""cbcv.data."""
