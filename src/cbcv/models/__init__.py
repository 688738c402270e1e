"""cbcv.models."""
