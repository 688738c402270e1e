"""cbcv.pipeline: a company's config in, its report's numbers out.

Loads and validates the company's data through one seam (:mod:`~cbcv.pipeline.workflow`),
audits it, fits the configured models, scores every customer and values the company
(:mod:`~cbcv.pipeline.valuation`), whatever the data's size. The notebooks and the CLI call
these functions; they hold no logic of their own.

May import: every layer below it (valuation, clv, predict, models, audit, config, data, core);
never plots, report or the CLI.
"""
