"""cbcv.valuation."""
