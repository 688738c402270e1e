"""cbcv.clv: residual customer lifetime value of the existing customers, per posterior draw.

One scoring engine (:mod:`cbcv.clv.scoring`: DuckDB over the customers' summaries, a registered
DataFrame or Arrow table or a Parquet file, draws × customers in bounded memory) and one set of
per-draw tables (:class:`~cbcv.clv.tables.CLVTables`: totals, groups, value deciles,
top-customer shares, P(alive) histogram, Lorenz curve). The modules:

* :mod:`~cbcv.clv.pairing`: the paired posterior draws of the purchase and spend models
  (:class:`ScoringDraws`), :func:`n_model_draws`, :func:`dert_draws`;
* :mod:`~cbcv.clv.keys`: the per-key predictions over the distinct summaries ``(x, t_x, T)``;
* :mod:`~cbcv.clv.scoring`: the engine (:func:`~cbcv.clv.scoring.score_base`) and
  :func:`~cbcv.clv.scoring.score_customers`, any size, customers to a Parquet file
  (:class:`~cbcv.clv.scoring.ScoredBase`);
* :mod:`~cbcv.clv.customers`: :func:`customer_clv`, the same engine with the customers kept in
  memory (:class:`CustomerCLV`);
* :mod:`~cbcv.clv.tables`: :class:`CLVTables`, shared by both results;
* :mod:`~cbcv.clv.spark`: the engine's first pass on Spark (:func:`~cbcv.clv.spark.score_spark`);
* :mod:`~cbcv.clv.scored_store`: a scored base kept between notebooks, without pickle.

May import: :mod:`cbcv.predict`, :mod:`cbcv.models`, :mod:`cbcv.data`, :mod:`cbcv.core` — never
valuation, pipeline, plots or report.
"""

from cbcv.clv.customers import KEEP_CELLS, CustomerCLV, customer_clv
from cbcv.clv.pairing import ScoringDraws, dert_draws, n_model_draws
from cbcv.clv.scoring import ScoredBase, score_customers
from cbcv.clv.tables import P_ALIVE_BINS, CLVTables, log_bins, lorenz_frame

__all__ = [
    "KEEP_CELLS", "P_ALIVE_BINS", "CLVTables", "CustomerCLV", "ScoredBase", "ScoringDraws", "customer_clv",
    "dert_draws", "log_bins", "lorenz_frame", "n_model_draws", "score_customers",
]
