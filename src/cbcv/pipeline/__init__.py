"""cbcv.pipeline: a company's config in, its report's numbers out.

Validates the company's log into its work folder and hands the steps one seam,
:class:`~cbcv.pipeline.company_data.CompanyData` (summaries, counted summaries, spend sample,
first purchases, tracking counts, valuation units, scored customers: all SQL over Parquet);
audits it, fits the configured models (:mod:`~cbcv.pipeline.workflow`), scores every customer
and values the company (:mod:`~cbcv.pipeline.valuation`); backtests the models at past origins
(:mod:`~cbcv.pipeline.backtests`) and, for a revenue panel, compares the period-stamped purchase
models with BG/BB in discrete time (:mod:`~cbcv.pipeline.discrete_time`). One path whatever the data's size:
``engine.memory_limit`` and ``engine.threads`` cap DuckDB, ``engine.name: spark`` computes the
summaries on Spark. The notebooks and the CLI call these functions; they hold no logic of
their own.

May import: every layer below it (valuation, clv, predict, models, audit, config, data, core);
never plots, report or the CLI.
"""
