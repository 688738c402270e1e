"""Per-customer predictions over posterior draws: P(alive), expected transactions, DERT, spend.

Every function takes a fitted model and the customers' summary and returns an array of shape
(draws, customers), so each prediction keeps its uncertainty. Work is done on the distinct
rows (customers sharing a summary share a prediction) and in chunks of rows whose size keeps the
working memory under ``max_bytes``; the result is expanded per customer at the end. Summaries of
draws: :func:`summarise`.

* :mod:`cbcv.predict.engine` — the draws × rows engine every model's predictions run on, and the
  registry lookup by model class;
* :mod:`cbcv.predict.transactional` — BG/NBD, MBG/NBD and Pareto/NBD (one registered family
  each; formulas and their papers there), with :mod:`cbcv.predict.dert_rate` and
  :mod:`cbcv.predict.hyp_negative` for the BG/NBD DERT;
* :mod:`cbcv.predict.spend` — gamma-gamma;
* :mod:`cbcv.predict.bgbb` — BG/BB; :mod:`cbcv.predict.contractual` — sBG and BdW.

May import: models, audit, config, data and core; never clv, valuation or above.
"""

from __future__ import annotations

from cbcv.core.chunks import TEMPS, Params, chunked
from cbcv.predict.engine import MAX_BYTES, distinct_rows, posterior_draws, run, summarise
from cbcv.predict.spend import expected_spend
from cbcv.predict.transactional import (
    BG_DERT_NODES,
    DERT_NODES,
    FAMILIES,
    FREQUENCY,
    LOG_U_RANGE,
    bg_p_alive,
    dert,
    dert_given_alive,
    dert_kernel,
    expected_given_alive,
    expected_purchases,
    expected_purchases_population,
    expm1_ratio,
    frequency_family,
    frequency_name,
    p_alive,
    p_alive_rows,
)

__all__ = [
    "BG_DERT_NODES", "DERT_NODES", "FAMILIES", "FREQUENCY", "LOG_U_RANGE", "MAX_BYTES", "TEMPS", "Params",
    "bg_p_alive", "chunked", "dert", "dert_given_alive", "dert_kernel", "distinct_rows", "expected_given_alive",
    "expected_purchases", "expected_purchases_population", "expected_spend", "expm1_ratio", "frequency_family",
    "frequency_name", "p_alive", "p_alive_rows", "posterior_draws", "run", "summarise",
]
