"""cbcv.audit."""
