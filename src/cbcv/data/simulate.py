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
such effect.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cbcv.core.errors import ConfigError
from cbcv.core.units import unit_days

#: Customers per random-number block; chunk boundaries never change the draws.
RNG_BLOCK = 4096
#: Default customers per generated chunk (a multiple of :data:`RNG_BLOCK`).
DEFAULT_CHUNK_SIZE = 32 * RNG_BLOCK

_NS_PER_DAY = 86_400 * 10**9
_LATENT, _EVENTS, _ACQUISITION, _SPEND = range(4)


def _check_positive(obj: object) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if not (isinstance(value, int | float | np.floating | np.integer) and math.isfinite(value)
                and value > 0):
            raise ConfigError(
                f"{type(obj).__name__}.{f.name} must be a finite positive number, got {value!r}"
            )


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD population parameters: ``lambda ~ Gamma(r, alpha)`` (rate), ``p ~ Beta(a, b)``."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        _check_positive(self)


@dataclass(frozen=True)
class ParetoNBDParams:
    """Pareto/NBD population parameters: ``lambda ~ Gamma(r, alpha)``, ``mu ~ Gamma(s, beta)``."""

    r: float
    alpha: float
    s: float
    beta: float

    def __post_init__(self) -> None:
        _check_positive(self)


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-gamma spend parameters: ``nu ~ Gamma(q, gamma)``, ``z | nu ~ Gamma(p, nu)`` (rates)."""

    p: float
    q: float
    gamma: float

    def __post_init__(self) -> None:
        _check_positive(self)

    @property
    def mean_spend(self) -> float:
        """Population mean value of a transaction, ``p gamma / (q - 1)`` (infinite for q <= 1)."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1.0 else math.inf


FrequencyParams = BGNBDParams | ParetoNBDParams

#: CDNOW sample, weekly, calibration to 1997-09-30: BG/NBD maximum-likelihood estimates
#: (Fader, Hardie & Lee 2005, Marketing Science, section 4).
CDNOW_BGNBD = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
#: The same data's Pareto/NBD estimates as reported by Fader, Hardie & Lee (2005).
CDNOW_PARETO_NBD = ParetoNBDParams(r=0.55, alpha=10.58, s=0.61, beta=11.67)
#: CDNOW gamma-gamma spend estimates (Fader, Hardie & Lee 2005, JMR; Fader & Hardie 2013 note).
CDNOW_GAMMA_GAMMA = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


@dataclass(frozen=True)
class SimulatedLog:
    """A simulated transaction log with its truth.

    ``transactions``: ``customer_id`` (str), ``date`` (datetime64[ns], midnight), ``amount``
    (float), sorted by customer and date, one row per simulated purchase (same-day purchases are
    separate rows; :func:`cbcv.data.transactions.to_daily` merges them).
    ``truth``: one row per customer: ``customer_id``, ``acquisition_date``, ``T`` (time units
    observed from the first purchase instant to the end of ``end``), ``lambda``, ``p`` (BG/NBD) or
    ``mu`` (Pareto/NBD), ``dropout`` (time units from the first purchase to dropout; may exceed
    ``T``), ``alive`` (at the end of ``end``), and ``nu`` when spend is simulated.
    """

    transactions: pd.DataFrame
    truth: pd.DataFrame
    params: FrequencyParams
    spend: GammaGammaParams | None
    start: pd.Timestamp
    acquisition_end: pd.Timestamp
    end: pd.Timestamp
    time_unit: str
    seed: int


@dataclass(frozen=True)
class WrittenLog:
    """What :func:`write_parquet` wrote."""

    path: Path
    truth_path: Path | None
    n_customers: int
    n_transactions: int
    seed: int


# --------------------------------------------------------------------------------------------
# random streams


def _entropy(seed: int | None) -> int:
    """Root entropy: the seed itself, or fresh entropy drawn once for the whole simulation."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def _block_streams(entropy: int, block: int) -> list[np.random.Generator]:
    """Independent generators (latent, events, acquisition, spend) of customer block ``block``."""
    children = np.random.SeedSequence(entropy, spawn_key=(block,)).spawn(4)
    return [np.random.Generator(np.random.PCG64(c)) for c in children]


# --------------------------------------------------------------------------------------------
# model draws on arrays (one block of customers)


def _latent(params: FrequencyParams, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-customer ``lambda`` and ``p`` (BG/NBD) or ``mu`` (Pareto/NBD)."""
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    if isinstance(params, BGNBDParams):
        return {"lambda": lam, "p": rng.beta(params.a, params.b, n)}
    return {"lambda": lam, "mu": rng.gamma(params.s, 1.0 / params.beta, n)}


def _geometric(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Geometric(p) on {1, 2, ...} as float (no int64 overflow for tiny p)."""
    u = 1.0 - rng.random(p.shape)  # (0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.floor(np.log(u) / np.log1p(-p)) + 1.0
    return np.where(np.isfinite(j) & (j >= 1.0), j, 1.0)


def _bg_window(
    lam: np.ndarray, remaining: np.ndarray, length: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD purchases in a window of ``length`` for customers with ``remaining`` purchases left.

    Returns (purchases in the window, dropout offset in the window or NaN, purchases left after).
    ``remaining == 0`` means already inactive: no purchases.
    """
    n_events = rng.poisson(lam * length).astype(float)
    died = (remaining > 0) & (remaining <= n_events)
    active = remaining > 0
    count = np.where(died, remaining, np.where(active, n_events, 0.0))
    a = np.where(died, remaining, 1.0)
    b = np.where(died, n_events - remaining + 1.0, 1.0)
    offset = np.where(died, length * rng.beta(a, b), np.nan)
    left = np.where(died | ~active, 0.0, remaining - n_events)
    return count.astype(np.int64), offset, left


def _tail_dropout(lam: np.ndarray, left: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Time from now to the dropout of BG/NBD customers with ``left`` purchases to go."""
    shape = np.where(left > 0, left, 1.0)
    with np.errstate(divide="ignore", over="ignore"):
        return rng.gamma(shape) / lam


@dataclass(frozen=True)
class _Window:
    """Purchases in ``(0, T]`` per customer: ``x`` repeat purchases, all in ``(0, w]``; when
    ``last_at_w`` the last one is exactly at ``w`` (BG/NBD dropout), the others uniform."""

    x: np.ndarray
    w: np.ndarray
    last_at_w: np.ndarray
    dropout: np.ndarray
    x_holdout: np.ndarray | None


def _events(
    params: FrequencyParams,
    latent: dict[str, np.ndarray],
    T: np.ndarray,
    T_holdout: np.ndarray | None,
    rng: np.random.Generator,
) -> _Window:
    """Repeat purchases in ``(0, T]`` (and counts in ``(T, T + T_holdout]``) with dropout times."""
    lam = latent["lambda"]
    x_h = None
    if isinstance(params, BGNBDParams):
        remaining = _geometric(latent["p"], rng)
        x, offset, left = _bg_window(lam, remaining, T, rng)
        died = ~np.isnan(offset)
        w = np.where(died, offset, T)
        dropout = np.where(died, offset, np.inf)
        elapsed = T
        if T_holdout is not None:
            x_h, offset_h, left = _bg_window(lam, left, T_holdout, rng)
            died_h = ~np.isnan(offset_h)
            dropout = np.where(died_h, T + offset_h, dropout)
            elapsed = T + T_holdout
        tail = _tail_dropout(lam, left, rng)
        dropout = np.where(left > 0, elapsed + tail, dropout)
        return _Window(x, w, died, dropout, x_h)
    with np.errstate(divide="ignore", over="ignore"):
        tau = rng.exponential(size=lam.shape) / latent["mu"]
    w = np.minimum(tau, T)
    x = rng.poisson(lam * w)
    if T_holdout is not None:
        x_h = rng.poisson(lam * np.clip(tau - T, 0.0, T_holdout))
    return _Window(x, w, np.zeros(lam.shape, dtype=bool), tau, x_h)


def _recency(win: _Window, rng: np.random.Generator) -> np.ndarray:
    """``t_x``: the dropout time when the last purchase is at it, else the max of x uniforms."""
    u = rng.random(win.x.shape)
    with np.errstate(divide="ignore", over="ignore"):
        tmax = win.w * u ** (1.0 / np.maximum(win.x, 1))
    return np.where(win.last_at_w, win.w, np.where(win.x > 0, tmax, 0.0))


def _purchase_times(win: _Window, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All purchases (first at 0, then the repeat ones) as (customer index, time), sorted."""
    n = win.x.shape[0]
    free = win.x - win.last_at_w.astype(np.int64)
    cust_free = np.repeat(np.arange(n), free)
    t_free = np.repeat(win.w, free) * rng.random(cust_free.shape[0])
    fixed = np.flatnonzero(win.last_at_w)
    cust = np.concatenate([np.arange(n), cust_free, fixed])
    t = np.concatenate([np.zeros(n), t_free, win.w[fixed]])
    order = np.lexsort((t, cust))
    return cust[order], t[order]


# --------------------------------------------------------------------------------------------
# summaries


def _as_times(value: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ConfigError(f"{name} must be a number or an array of {n} values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"{name} must be finite and non-negative")
    return arr


def _check_n(n_customers: int) -> int:
    if isinstance(n_customers, bool) or not isinstance(n_customers, int | np.integer) or n_customers < 1:
        raise ConfigError(f"n_customers must be a positive integer, got {n_customers!r}")
    return int(n_customers)


def _check_params(params: Any, spend: Any) -> None:
    if not isinstance(params, BGNBDParams | ParetoNBDParams):
        raise ConfigError(
            f"params must be BGNBDParams or ParetoNBDParams, got {type(params).__name__}"
        )
    if spend is not None and not isinstance(spend, GammaGammaParams):
        raise ConfigError(f"spend must be GammaGammaParams or None, got {type(spend).__name__}")


def _customer_ids(start: int, stop: int, n_total: int) -> np.ndarray:
    """Zero-padded decimal ids, the same width for every customer of a simulation."""
    width = len(str(max(n_total - 1, 0)))
    return np.char.zfill(np.arange(start, stop).astype(str), width)


def simulate_summaries(
    params: FrequencyParams,
    n_customers: int,
    T: float | np.ndarray,
    *,
    seed: int | None = None,
    T_holdout: float | np.ndarray | None = None,
    spend: GammaGammaParams | None = None,
) -> pd.DataFrame:
    """Exact continuous-time summaries ``x, t_x, T`` of a simulated customer base, with the truth.

    Parameters
    ----------
    params
        :class:`BGNBDParams` or :class:`ParetoNBDParams`.
    n_customers
        Number of customers.
    T
        Each customer's observation length from the first purchase (time units): a number or an
        array of ``n_customers`` values.
    seed
        Root seed; the same seed gives the same customers (see the module notes on blocks).
    T_holdout
        When given (number or array), adds ``x_holdout`` (repeat purchases in
        ``(T, T + T_holdout]``) and ``T_holdout``.
    spend
        When given, adds ``nu`` and ``mean_repeat_spend`` (mean of the ``x`` repeat purchase values
        drawn from the gamma-gamma model, ``Gamma(p x, nu x)`` exactly; NaN when ``x == 0``).

    Returns
    -------
    DataFrame with ``customer_id`` (str), ``x`` (int), ``t_x``, ``T``, [``x_holdout``,
    ``T_holdout``], ``lambda``, ``p`` or ``mu``, ``dropout`` (time of dropout from the first
    purchase; for the BG/NBD the time of the last purchase), ``alive`` (at ``T``), [``nu``,
    ``mean_repeat_spend``].
    """
    _check_params(params, spend)
    n = _check_n(n_customers)
    T_arr = _as_times(T, n, "T")
    Th_arr = None if T_holdout is None else _as_times(T_holdout, n, "T_holdout")
    entropy = _entropy(seed)
    parts = []
    for block, lo in enumerate(range(0, n, RNG_BLOCK)):
        hi = min(lo + RNG_BLOCK, n)
        parts.append(
            _summary_block(
                params, spend, _block_streams(entropy, block), T_arr[lo:hi],
                None if Th_arr is None else Th_arr[lo:hi],
            )
        )
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out = pd.DataFrame({"customer_id": pd.Series(_customer_ids(0, n, n)).astype(str), **cols})
    return out


def _summary_block(
    params: FrequencyParams,
    spend: GammaGammaParams | None,
    streams: list[np.random.Generator],
    T: np.ndarray,
    T_holdout: np.ndarray | None,
) -> dict[str, np.ndarray]:
    n = T.shape[0]
    latent = _latent(params, n, streams[_LATENT])
    win = _events(params, latent, T, T_holdout, streams[_EVENTS])
    out: dict[str, np.ndarray] = {"x": win.x, "t_x": _recency(win, streams[_EVENTS]), "T": T}
    if win.x_holdout is not None and T_holdout is not None:
        out["x_holdout"] = win.x_holdout
        out["T_holdout"] = T_holdout
    out.update(latent)
    out["dropout"] = win.dropout
    out["alive"] = win.dropout > T
    if spend is not None:
        rng = streams[_SPEND]
        nu = rng.gamma(spend.q, 1.0 / spend.gamma, n)
        xs = np.maximum(win.x, 1)
        zbar = rng.gamma(spend.p * xs, 1.0 / (nu * xs))
        out["nu"] = nu
        out["mean_repeat_spend"] = np.where(win.x > 0, zbar, np.nan)
    return out


# --------------------------------------------------------------------------------------------
# calendar transaction logs


@dataclass(frozen=True)
class _Calendar:
    start: pd.Timestamp
    acquisition_end: pd.Timestamp
    end: pd.Timestamp
    days_per_unit: float
    weights: np.ndarray | None  # acquisition-day probabilities, or None for uniform

    @property
    def acquisition_days(self) -> int:
        return (self.acquisition_end - self.start).days + 1

    @property
    def total_days(self) -> int:
        return (self.end - self.start).days + 1


def _day(value: Any, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {value!r} is not a date") from None
    if ts is pd.NaT or pd.isna(ts):
        raise ConfigError(f"{name} {value!r} is not a date")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def _calendar(
    start: Any, acquisition_end: Any, end: Any, time_unit: str, acquisition: Any
) -> _Calendar:
    s, a, e = _day(start, "start"), _day(acquisition_end, "acquisition_end"), _day(end, "end")
    if not s <= a <= e:
        raise ConfigError(
            f"dates must satisfy start <= acquisition_end <= end, got {s.date()}, {a.date()}, "
            f"{e.date()}"
        )
    cal = _Calendar(s, a, e, unit_days(time_unit), None)
    if isinstance(acquisition, str):
        if acquisition != "uniform":
            raise ConfigError(
                f"acquisition must be 'uniform' or an array of day weights, got {acquisition!r}"
            )
        return cal
    w = np.asarray(acquisition, dtype=float)
    if w.shape != (cal.acquisition_days,):
        raise ConfigError(
            f"acquisition weights must have one value per day from start to acquisition_end "
            f"({cal.acquisition_days}), got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError("acquisition weights must be finite, non-negative and not all zero")
    return _Calendar(s, a, e, cal.days_per_unit, w / w.sum())


@dataclass(frozen=True)
class _Block:
    """One block of customers: purchases (customer index, day offset, amount) and truth arrays."""

    cust: np.ndarray
    day: np.ndarray
    amount: np.ndarray
    truth: dict[str, np.ndarray]


def _transaction_block(
    params: FrequencyParams,
    spend: GammaGammaParams | None,
    cal: _Calendar,
    streams: list[np.random.Generator],
    n: int,
) -> _Block:
    acq_rng = streams[_ACQUISITION]
    if cal.weights is None:
        acq_day = acq_rng.integers(0, cal.acquisition_days, n)
    else:
        acq_day = np.minimum(
            np.searchsorted(np.cumsum(cal.weights), acq_rng.random(n), side="right"),
            cal.acquisition_days - 1,
        )
    instant = acq_rng.random(n)  # first purchase at this fraction of its day
    T = (cal.total_days - acq_day - instant) / cal.days_per_unit
    latent = _latent(params, n, streams[_LATENT])
    win = _events(params, latent, T, None, streams[_EVENTS])
    cust, t = _purchase_times(win, streams[_EVENTS])
    day = acq_day[cust] + np.floor(instant[cust] + t * cal.days_per_unit).astype(np.int64)
    day = np.minimum(day, cal.total_days - 1)
    truth: dict[str, np.ndarray] = {"acquisition_day": acq_day, "T": T, **latent}
    truth["dropout"] = win.dropout
    truth["alive"] = win.dropout > T
    if spend is None:
        amount = np.ones(cust.shape[0])
    else:
        rng = streams[_SPEND]
        nu = rng.gamma(spend.q, 1.0 / spend.gamma, n)
        amount = rng.gamma(spend.p, 1.0 / nu[cust])
        truth["nu"] = nu
    return _Block(cust, day, amount, truth)


def _blocks_to_tables(
    pieces: list[tuple[int, _Block, int, int]], cal: _Calendar, n_total: int
) -> tuple[pa.Table, pa.Table]:
    """Assemble (global start, block, lo, hi) slices of blocks into transaction and truth tables."""
    cust_parts, day_parts, amount_parts, truth_parts = [], [], [], []
    for base, blk, lo, hi in pieces:
        r0, r1 = np.searchsorted(blk.cust, [lo, hi], side="left")
        cust_parts.append(blk.cust[r0:r1] + base)
        day_parts.append(blk.day[r0:r1])
        amount_parts.append(blk.amount[r0:r1])
        truth_parts.append({k: v[lo:hi] for k, v in blk.truth.items()})
    first = pieces[0][0] + pieces[0][2]
    last = pieces[-1][0] + pieces[-1][3]
    ids = pa.array(_customer_ids(first, last, n_total), type=pa.string())
    cust = np.concatenate(cust_parts)
    start_ns = cal.start.as_unit("ns").value
    dates = (np.concatenate(day_parts) * _NS_PER_DAY + start_ns).view("datetime64[ns]")
    tx = pa.table(
        {
            "customer_id": ids.take(pa.array(cust - first)),
            "date": pa.array(dates, type=pa.timestamp("ns")),
            "amount": pa.array(np.concatenate(amount_parts), type=pa.float64()),
        }
    )
    truth = {k: np.concatenate([p[k] for p in truth_parts]) for k in truth_parts[0]}
    acq = (truth.pop("acquisition_day") * _NS_PER_DAY + start_ns).view("datetime64[ns]")
    truth_table = pa.table(
        {
            "customer_id": ids,
            "acquisition_date": pa.array(acq, type=pa.timestamp("ns")),
            **{k: pa.array(v) for k, v in truth.items()},
        }
    )
    return tx, truth_table


def _iter_tables(
    params: FrequencyParams,
    n_customers: int,
    *,
    start: Any,
    acquisition_end: Any,
    end: Any,
    time_unit: str,
    spend: GammaGammaParams | None,
    acquisition: Any,
    seed: int | None,
    chunk_size: int,
) -> Iterator[tuple[pa.Table, pa.Table]]:
    _check_params(params, spend)
    n = _check_n(n_customers)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    cal = _calendar(start, acquisition_end, end, time_unit, acquisition)
    # validated eagerly (above); the generator below only draws
    return _generate_tables(params, spend, n, cal, _entropy(seed), int(chunk_size))


def _generate_tables(
    params: FrequencyParams,
    spend: GammaGammaParams | None,
    n: int,
    cal: _Calendar,
    entropy: int,
    chunk_size: int,
) -> Iterator[tuple[pa.Table, pa.Table]]:
    cache: dict[int, _Block] = {}

    def block(k: int) -> _Block:
        if k not in cache:
            cache.clear()  # chunks advance monotonically: only the boundary block is reused
            size = min(RNG_BLOCK, n - k * RNG_BLOCK)
            cache[k] = _transaction_block(params, spend, cal, _block_streams(entropy, k), size)
        return cache[k]

    for c0 in range(0, n, chunk_size):
        c1 = min(c0 + chunk_size, n)
        pieces = []
        for k in range(c0 // RNG_BLOCK, (c1 - 1) // RNG_BLOCK + 1):
            base = k * RNG_BLOCK
            pieces.append((base, block(k), max(c0, base) - base, min(c1, base + RNG_BLOCK) - base))
        yield _blocks_to_tables(pieces, cal, n)


def _tx_frame(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    df["customer_id"] = df["customer_id"].astype(str)
    df["date"] = df["date"].astype("datetime64[ns]")
    return df


def _truth_frame(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    df["customer_id"] = df["customer_id"].astype(str)
    df["acquisition_date"] = df["acquisition_date"].astype("datetime64[ns]")
    return df


def iter_simulated_transactions(
    params: FrequencyParams,
    n_customers: int,
    *,
    start: Any,
    acquisition_end: Any,
    end: Any,
    time_unit: str = "week",
    spend: GammaGammaParams | None = None,
    acquisition: Literal["uniform"] | np.ndarray = "uniform",
    seed: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield ``(transactions, truth)`` for consecutive chunks of ``chunk_size`` customers.

    The arguments are those of :func:`simulate_transactions`; the concatenated chunks equal its
    result for the same seed, whatever ``chunk_size``. Memory is bounded by one chunk (about
    ``chunk_size * (1 + mean purchases)`` rows).
    """
    tables = _iter_tables(
        params, n_customers, start=start, acquisition_end=acquisition_end, end=end,
        time_unit=time_unit, spend=spend, acquisition=acquisition, seed=seed,
        chunk_size=chunk_size,
    )
    return ((_tx_frame(tx), _truth_frame(truth)) for tx, truth in tables)


def simulate_transactions(
    params: FrequencyParams,
    n_customers: int,
    *,
    start: Any,
    acquisition_end: Any,
    end: Any,
    time_unit: str = "week",
    spend: GammaGammaParams | None = None,
    acquisition: Literal["uniform"] | np.ndarray = "uniform",
    seed: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SimulatedLog:
    """Simulate a calendar transaction log with staggered acquisition.

    Each customer's first purchase is on a day between ``start`` and ``acquisition_end``
    (inclusive), uniformly, or with probabilities proportional to ``acquisition`` (one weight per
    day of that range), at a uniform instant of that day. Later purchases follow ``params`` in
    continuous time (``time_unit``: ``day``, ``week`` or ``month``) and are recorded on their
    calendar day, up to the end of ``end``. Amounts follow ``spend`` (gamma-gamma, the first
    purchase included) or are 1.0. Purchases of one customer on one day stay separate rows here and
    merge into one transaction downstream; see the module notes for the size of that effect.

    Returns a :class:`SimulatedLog` (transactions sorted by customer and date, and the truth).
    ``seed=None`` draws fresh entropy; the seed actually used is in ``SimulatedLog.seed``.
    """
    entropy = _entropy(seed)
    chunks = list(
        _iter_tables(
            params, n_customers, start=start, acquisition_end=acquisition_end, end=end,
            time_unit=time_unit, spend=spend, acquisition=acquisition, seed=entropy,
            chunk_size=chunk_size,
        )
    )
    tx = _tx_frame(pa.concat_tables([c[0] for c in chunks]))
    truth = _truth_frame(pa.concat_tables([c[1] for c in chunks]))
    return SimulatedLog(
        transactions=tx, truth=truth, params=params, spend=spend,
        start=_day(start, "start"), acquisition_end=_day(acquisition_end, "acquisition_end"),
        end=_day(end, "end"), time_unit=time_unit, seed=entropy,
    )


def write_parquet(
    path: str | Path,
    params: FrequencyParams,
    n_customers: int,
    *,
    start: Any,
    acquisition_end: Any,
    end: Any,
    time_unit: str = "week",
    spend: GammaGammaParams | None = None,
    acquisition: Literal["uniform"] | np.ndarray = "uniform",
    seed: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    truth_path: str | Path | None = None,
    compression: str = "zstd",
) -> WrittenLog:
    """Write a simulated log to Parquet chunk by chunk, never holding it all in memory.

    The file has the transaction contract's columns (``customer_id`` string, ``date``
    timestamp[ns], ``amount`` double), one row group per chunk; ``truth_path`` also writes the
    per-customer truth. The rows equal :func:`simulate_transactions`' for the same arguments.
    """
    path = Path(path)
    tpath = None if truth_path is None else Path(truth_path)
    entropy = _entropy(seed)
    n_rows = 0
    writer: pq.ParquetWriter | None = None
    twriter: pq.ParquetWriter | None = None
    try:
        for tx, truth in _iter_tables(
            params, n_customers, start=start, acquisition_end=acquisition_end, end=end,
            time_unit=time_unit, spend=spend, acquisition=acquisition, seed=entropy,
            chunk_size=chunk_size,
        ):
            if writer is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, tx.schema, compression=compression)
                if tpath is not None:
                    tpath.parent.mkdir(parents=True, exist_ok=True)
                    twriter = pq.ParquetWriter(tpath, truth.schema, compression=compression)
            writer.write_table(tx)
            if twriter is not None:
                twriter.write_table(truth)
            n_rows += tx.num_rows
    finally:
        if writer is not None:
            writer.close()
        if twriter is not None:
            twriter.close()
    return WrittenLog(
        path=path, truth_path=tpath, n_customers=int(n_customers), n_transactions=n_rows,
        seed=entropy,
    )
