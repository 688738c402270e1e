"""cbcv.plots: figures, data in and a matplotlib Figure out (audit, models, CLV, valuation, backtests), with
one house style (:mod:`~cbcv.plots.style`); every label drawn from data is escaped for
matplotlib's mathtext (:func:`cbcv.core.escape.plot_text`).

May import: valuation, clv, predict, models, audit, config, data and core; never pipeline,
report or the CLI (the report imports plots, not the other way round).
"""
