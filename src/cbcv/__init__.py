"""cbcv: customer-based corporate valuation.

From a transaction log to a customer-base audit, Bayesian customer-lifetime-value models and a
bottom-up valuation of the company. See the README for the two commands that run everything.
"""

from __future__ import annotations

__version__ = "0.1.0"
