"""Simulated customer bases with known parameters, for parameter-recovery tests and benchmarks.

Two outputs, both drawn exactly from the models' generative stories:

* :func:`simulate_summaries` gives per-customer sufficient statistics ``x, t_x, T`` in continuous
  time (and optionally a holdout count), with each customer's latent truth.
* :func:`simulate_transactions` / :func:`iter_simulated_transactions` / :func:`write_parquet` give a
  calendar transaction log in the transaction contract (``customer_id``, ``date``, ``amount``) with
  staggered acquisition, for the whole pipeline (load → summaries → fit → value) and for
  benchmarks of up to 10M customers / 100M transactions, generated in bounded-memory chunks.

Models
------
BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way", Marketing Science 24(2),
section 2, assumptions i-v): while active, a customer buys at the times of a Poisson process with
rate ``lambda ~ Gamma(r, alpha)`` (shape ``r``, rate ``alpha``); right after each *repeat* purchase
the customer drops out with probability ``p ~ Beta(a, b)``. The number of repeat purchases up to
and including the one after which the customer drops out is therefore ``J ~ Geometric(p)`` on
``{1, 2, ...}``, the dropout time is the time of the ``J``-th repeat purchase, and a customer with
no repeat purchase is alive.

Pareto/NBD (Schmittlein, Morrison & Colombo 1987, Management Science 33(1); Fader & Hardie 2005
note "A Note on Deriving the Pareto/NBD Model and Related Expressions"): Poisson purchases with
rate ``lambda ~ Gamma(r, alpha)`` during an exponential lifetime with rate ``mu ~ Gamma(s, beta)``.

Gamma-gamma spend (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for Customer Base
Analysis", J. Marketing Research 42(4); Fader & Hardie 2013 note "The Gamma-Gamma Model of Monetary
Value"): per customer ``nu ~ Gamma(q, gamma)`` (rate ``gamma``); every transaction value is
``z ~ Gamma(p, nu)`` (rate ``nu``), mean ``p / nu``; the population mean is ``p gamma / (q - 1)``.

How the draws are made (exact, vectorised, no time stepping)
------------------------------------------------------------
Given ``N ~ Poisson(lambda L)`` events in a window of length ``L``, their times are the order
statistics of ``N`` uniforms on ``(0, L]``. For the BG/NBD, the customer's remaining purchases
before dropout ``J`` cut the window: if ``J <= N`` the customer makes ``J`` purchases and drops out
at the ``J``-th, whose time is ``L * Beta(J, N - J + 1)`` (the ``J``-th order statistic) and the
earlier ``J - 1`` are uniform before it; otherwise all ``N`` purchases happen and ``J - N`` remain
for the next window (the process is memoryless). A customer alive at the end of the last window
drops out ``Gamma(J, lambda)`` later. For the Pareto/NBD the lifetime ``tau ~ Exp(mu)`` is drawn
first and the purchases are ``Poisson(lambda * min(tau, L))``. The summaries use the same law
directly: ``t_x`` is the largest of ``x`` uniforms (``w * U ** (1 / x)``) or the dropout time.

Randomness and chunks
---------------------
Customers are generated in fixed blocks of :data:`RNG_BLOCK` customers. Block ``k`` draws from
``SeedSequence(seed, spawn_key=(k,))`` (the ``k``-th child of ``SeedSequence(seed).spawn``), split
into independent streams for latent parameters, purchase events, acquisition dates and spend. So a
seed gives the same customers whatever ``chunk_size`` is used, and the latent ``lambda`` and
``p`` / ``mu`` (and ``nu``) of customer ``i`` are the same in :func:`simulate_summaries` and
:func:`simulate_transactions` for the same model and seed.

Calendar days and same-day merges
---------------------------------
In a calendar log the first purchase happens at a uniform instant of the acquisition day and a
purchase ``t`` time units later falls on day ``floor(offset + t * days_per_unit)`` after it (so
measured in whole days the inter-purchase times are unbiased). Downstream, purchases by one
customer on the same calendar day are merged into one transaction (the literature's convention,
see :func:`cbcv.data.transactions.to_daily`), so the summarised ``x`` is slightly lower than the
continuous-time count. For a customer buying at rate ``lambda`` per time unit of ``d`` days, a
purchase shares its day with an earlier one with probability ``1 - (1 - e^-m) / m ≈ m / 2``,
``m = lambda / d``; weighted by purchases over a Gamma(r, alpha) population (and a lifetime that
does not depend on ``lambda``, as in the Pareto/NBD) the share of repeat purchases lost is about
``(r + 1) / (2 d alpha)``: 2.0 % for the CDNOW BG/NBD estimates below in weeks (d = 7), 1.0 %
for the CDNOW Pareto/NBD estimates. Measured on 200,000 simulated CDNOW-like customers (weekly,
acquired over 13 weeks, observed 78 weeks), merging removes 1.4 % (BG/NBD: its faster buyers drop
out sooner, so fewer of their purchases are at risk) and 1.2 % (Pareto/NBD: repeat purchases on
the acquisition day always merge with the first one) of the repeat purchases. Simulate in weeks
with moderate rates (mean ``r / alpha`` well below one purchase per day) to keep the effect
small, and compare fits with the truth with that bias in mind; :func:`simulate_summaries` has no

Modules
-------
:mod:`~cbcv.data.simulate.params` (parameter sets, CDNOW estimates), :mod:`~cbcv.data.simulate.draws`
(the exact draws on arrays, random blocks), :mod:`~cbcv.data.simulate.summaries` and
:mod:`~cbcv.data.simulate.logs` (calendar logs, :class:`LogSpec`), :mod:`~cbcv.data.simulate.acquisitions`
(new customers of a finite market with seasonality, and the acquisition days of a log that
follows them).
"""

from cbcv.data.simulate.draws import RNG_BLOCK
from cbcv.data.simulate.logs import (
    DEFAULT_CHUNK_SIZE,
    LogSpec,
    SimulatedLog,
    WrittenLog,
    iter_simulated_transactions,
    simulate_transactions,
    write_parquet,
)
from cbcv.data.simulate.params import (
    CDNOW_BGNBD,
    CDNOW_GAMMA_GAMMA,
    CDNOW_PARETO_NBD,
    BGNBDParams,
    FrequencyParams,
    GammaGammaParams,
    ParetoNBDParams,
)
from cbcv.data.simulate.summaries import simulate_summaries

__all__ = [
    "CDNOW_BGNBD",
    "CDNOW_GAMMA_GAMMA",
    "CDNOW_PARETO_NBD",
    "DEFAULT_CHUNK_SIZE",
    "RNG_BLOCK",
    "BGNBDParams",
    "FrequencyParams",
    "GammaGammaParams",
    "LogSpec",
    "ParetoNBDParams",
    "SimulatedLog",
    "WrittenLog",
    "iter_simulated_transactions",
    "simulate_summaries",
    "simulate_transactions",
    "write_parquet",
]
