"""cbcv.valuation: from customer value to the value of the company.

* :mod:`~cbcv.valuation.holdout`: validation on the holdout period (tracking, totals by
  frequency, posterior predictive checks, model comparison);
* :mod:`~cbcv.valuation.acquisition`: acquisition histories and the market size of future
  customers;
* :mod:`~cbcv.valuation.inputs`: the financial inputs drawn per posterior draw;
* :mod:`~cbcv.valuation.equity`: future customers' equity, revenue by layer, terminal value;
* :mod:`~cbcv.valuation.drivers`: what moves the value (retention shocks, revenue forecast,
  unit economics of a new customer);
* :mod:`~cbcv.valuation.bridge`: customer equity less costs to operating value, equity value
  and value per share, with its posterior;
* :mod:`~cbcv.valuation.sensitivity`: tornado, elasticities, scenarios;
* :mod:`~cbcv.valuation.backtest`: forecasts at past origins against the actuals, beside the
  naive baselines (MAPE by horizon), and the acquisition backtest;
* :mod:`~cbcv.valuation.benchmarks`: the GLS (2004) benchmark; :mod:`~cbcv.valuation.truth`:
  coverage of the valuation on companies simulated with known value.

May import: clv, predict, models, audit, config, data and core; never pipeline, plots, report
or the CLI.
"""
