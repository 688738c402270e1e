"""Fit speed and memory: cbcv against PyMC-Marketing on the same data, priors and sampler settings.

For each data set (the CDNOW sample and simulated bases of 100k and 1M customers), each model
(BG/NBD, Pareto/NBD) and each tool (cbcv, PyMC-Marketing) one NUTS fit runs in its own
subprocess, so that its memory is measured alone and a slow fit can be stopped. Measured per fit:

* ``fit_s``: wall time of model construction + ``fit`` as a user sees it (data preparation,
  graph compilation, tuning and sampling); ``sampling_s``: PyMC's own ``sampling_time`` (tuning
  + draws only); the difference is mostly compilation;
* ``peak_rss_mb``: the peak of the summed resident memory of the fit process and every process
  it started (PyMC's chain workers), sampled every 50 ms; ``maxrss_mb``: the fit process's own
  exact peak (``getrusage``);
* the posterior mean, sd and Monte Carlo standard error of each parameter, r_hat, bulk ESS,
  divergences and the mean number of leapfrog steps per draw.

Both tools get the same customers (one Parquet file read by both children), the same priors
(PyMC-Marketing 0.19.2's defaults where it has them on the same parameters; see :data:`PRIORS`)
and the same ``pm.sample`` arguments (draws, tune, chains, cores, seed, target_accept); each uses
its own NUTS initialisation unless ``peer_init`` says otherwise (cbcv: a dense mass matrix).

Run through ``benchmarks/run.py`` (``make bench``); this module has no command line of its own
beyond the ``child`` / ``child-clv`` entry points that the harness starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MODELS: tuple[str, ...] = ("bgnbd", "pareto_nbd")
TOOLS: tuple[str, ...] = ("cbcv", "pymc-marketing")
DATASETS: tuple[str, ...] = ("cdnow", "100k", "1m")
MODEL_LABELS = {"bgnbd": "BG/NBD", "pareto_nbd": "Pareto/NBD"}
PARAMS: dict[str, tuple[str, ...]] = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "pareto_nbd": ("r", "alpha", "s", "beta"),
}
SIMULATED_SIZES = {"100k": 100_000, "1m": 1_000_000}

#: CDNOW sample, weekly, calibration to 1997-09-30 (Fader, Hardie & Lee 2005).
CDNOW_CALIBRATION_END = "1997-09-30"
#: Days from CDNOW's first acquisition day (1997-01-01) to its calibration end.
CALIBRATION_DAYS = 272
#: Simulated customers are acquired uniformly over 13 weeks, as CDNOW's were over ~12.
ACQUISITION_DAYS = 91
DAYS_PER_WEEK = 7.0

#: Priors given to *both* tools, as (PyMC distribution, keyword arguments). r, alpha, s, beta:
#: PyMC-Marketing 0.19.2's defaults (``default_model_config``). a, b: PyMC-Marketing's BG/NBD
#: default puts priors on (phi_dropout, kappa_dropout) instead; its model_config also takes
#: ``a`` and ``b`` directly, which both tools get here (cbcv's default scales for them).
PRIORS: dict[str, dict[str, tuple[str, dict[str, float]]]] = {
    "bgnbd": {
        "r": ("Weibull", {"alpha": 2.0, "beta": 1.0}),
        "alpha": ("Weibull", {"alpha": 2.0, "beta": 10.0}),
        "a": ("HalfNormal", {"sigma": 10.0}),
        "b": ("HalfNormal", {"sigma": 50.0}),
    },
    "pareto_nbd": {
        "r": ("Weibull", {"alpha": 2.0, "beta": 1.0}),
        "alpha": ("Weibull", {"alpha": 2.0, "beta": 10.0}),
        "s": ("Weibull", {"alpha": 2.0, "beta": 1.0}),
        "beta": ("Weibull", {"alpha": 2.0, "beta": 10.0}),
    },
}

#: |difference of means| / combined MC standard error above which two posteriors disagree.
AGREEMENT_Z = 3.0
#: Seconds allowed to the gradient-only measurement of a tool whose fit timed out.
GRAD_TIMEOUT_S = 900.0
#: How often the memory probe samples the process tree.
RSS_INTERVAL_S = 0.05


# -- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchSettings:
    """Sampler settings shared by both tools (``pm.sample`` arguments)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    cores: int = 2
    seed: int = 2024
    target_accept: float = 0.9
    #: NUTS initialisation for PyMC-Marketing: "default" (PyMC's, a diagonal mass matrix) or
    #: "same" (cbcv's, ``SamplerSettings.init``).
    peer_init: str = "default"


FULL = BenchSettings()
QUICK = BenchSettings(draws=300, tune=300, chains=2)


# -- data ----------------------------------------------------------------------------------------
def cdnow_summary() -> pd.DataFrame:
    """CDNOW sample, weekly, calibration to 1997-09-30: customer_id, x, t_x, T (2,357 rows)."""
    from cbcv.data.datasets import load_dataset
    from cbcv.data.summary import customer_summary

    tx = load_dataset("cdnow-sample").transactions
    summary = customer_summary(
        tx, calibration_end=CDNOW_CALIBRATION_END, time_unit="week", zero_amount_purchases=True
    )
    return _rft(summary)


def simulated_summary(model: str, n_customers: int, seed: int) -> pd.DataFrame:
    """A CDNOW-like base of ``n_customers`` simulated from ``model`` at CDNOW's estimates.

    Customers are acquired on a uniform day of a 13-week window and observed to a common
    calibration end 272 days after the window opens, so ``T`` takes 91 values in weeks, as in a
    real weekly summary. :func:`cbcv.data.simulate.simulate_summaries` gives continuous purchase
    times; the last one is recorded at day resolution as a transaction log would: the first
    purchase happens at a uniform instant ``u`` of its day and a purchase ``t`` weeks later falls
    on day ``floor(u + 7 t)`` (the simulator's own calendar convention). So ``t_x`` and ``T`` are
    whole days / 7, and customers with equal (x, t_x, T) can share one likelihood term.
    """
    from cbcv.data.simulate import CDNOW_BGNBD, CDNOW_PARETO_NBD, simulate_summaries

    params = {"bgnbd": CDNOW_BGNBD, "pareto_nbd": CDNOW_PARETO_NBD}[model]
    rng = np.random.default_rng([seed, 7])
    first_day = rng.integers(0, ACQUISITION_DAYS, n_customers)
    T_days = CALIBRATION_DAYS - first_day
    sim = simulate_summaries(params, n_customers, T_days / DAYS_PER_WEEK, seed=seed)
    u = rng.random(n_customers)
    x = sim["x"].to_numpy()
    t_x_days = np.where(x > 0, np.floor(u + DAYS_PER_WEEK * sim["t_x"].to_numpy()), 0.0)
    t_x_days = np.minimum(t_x_days, T_days)
    return pd.DataFrame(
        {
            "customer_id": sim["customer_id"].astype(str),
            "x": x.astype(np.int64),
            "t_x": t_x_days / DAYS_PER_WEEK,
            "T": T_days / DAYS_PER_WEEK,
        }
    )


def load_data(dataset: str, model: str, seed: int) -> pd.DataFrame:
    """The customers of ``dataset`` for fitting ``model``: customer_id, x, t_x, T.

    Simulated sets are drawn from the model being fitted (so both tools fit a well-specified
    model); CDNOW is the same for both models.
    """
    if dataset == "cdnow":
        return cdnow_summary()
    if dataset in SIMULATED_SIZES:
        return simulated_summary(model, SIMULATED_SIZES[dataset], seed)
    raise ValueError(f"unknown data set {dataset!r}; choose from {DATASETS}")


def _rft(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "x": frame["x"].to_numpy(dtype=np.int64),
            "t_x": frame["t_x"].to_numpy(dtype=np.float64),
            "T": frame["T"].to_numpy(dtype=np.float64),
        }
    )


def n_distinct(frame: pd.DataFrame) -> int:
    """Number of distinct (x, t_x, T): the size of cbcv's exactly compressed likelihood."""
    return int(len(frame[["x", "t_x", "T"]].drop_duplicates()))


def cbcv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The input cbcv's models read (the summary's own column names)."""
    return _rft(frame)


def peer_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The same customers in PyMC-Marketing's column names (frequency, recency, T)."""
    rft = _rft(frame)
    return pd.DataFrame(
        {
            "customer_id": rft["customer_id"],
            "frequency": rft["x"].astype(np.float64),
            "recency": rft["t_x"],
            "T": rft["T"],
        }
    )


def write_data(frame: pd.DataFrame, path: Path) -> Path:
    """Write the customers once; both tools' children read this one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _rft(frame).to_parquet(path, index=False)
    return path


def read_data(path: Path) -> pd.DataFrame:
    return _rft(pd.read_parquet(path))


# -- priors --------------------------------------------------------------------------------------
def cbcv_priors(model: str) -> dict[str, Any]:
    """:data:`PRIORS` as cbcv ``Prior`` objects."""
    from cbcv.models.base import Prior

    return {name: Prior(dist, dict(kw)) for name, (dist, kw) in PRIORS[model].items()}


def peer_model_config(model: str) -> dict[str, Any]:
    """:data:`PRIORS` as a PyMC-Marketing ``model_config`` (pymc_extras ``Prior`` objects)."""
    from pymc_extras.prior import Prior

    return {name: Prior(dist, **kw) for name, (dist, kw) in PRIORS[model].items()}


# -- one fit (runs in a child process) -----------------------------------------------------------
def _posterior_table(idata: Any, params: Sequence[str]) -> dict[str, dict[str, float]]:
    import arviz as az

    s = az.summary(idata, var_names=list(params), kind="all", round_to="none")  # unrounded: MC errors are ~1e-4
    cols = ("mean", "sd", "mcse_mean", "r_hat", "ess_bulk")
    return {p: {c: float(s.loc[p, c]) for c in cols} for p in params}


def _sampler_stats(idata: Any) -> dict[str, float]:
    stats = idata.sample_stats
    out = {"divergences": int(stats["diverging"].sum()) if "diverging" in stats else 0}
    if "n_steps" in stats:
        out["mean_n_steps"] = float(stats["n_steps"].mean())
    out["sampling_s"] = float(idata.posterior.attrs.get("sampling_time", float("nan")))
    return out


def fit_cbcv(
    model: str, frame: pd.DataFrame, settings: BenchSettings, keep: bool = False
) -> tuple[Any, ...]:
    """Fit with cbcv; returns (InferenceData, seconds from model construction to posterior)
    and, with ``keep``, the fitted model object too."""
    from cbcv.models.base import SamplerSettings
    from cbcv.models.bgnbd import BetaGeoModel
    from cbcv.models.pareto_nbd import ParetoNBDModel

    cls = {"bgnbd": BetaGeoModel, "pareto_nbd": ParetoNBDModel}[model]
    sampler = SamplerSettings(
        method="nuts",
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=settings.cores,
        seed=settings.seed,
        target_accept=settings.target_accept,
    )
    data = cbcv_frame(frame)
    start = time.perf_counter()
    m = cls(priors=cbcv_priors(model))
    idata = m.fit(data, sampler)
    seconds = time.perf_counter() - start
    return (idata, seconds, m) if keep else (idata, seconds)


def fit_peer(
    model: str, frame: pd.DataFrame, settings: BenchSettings, keep: bool = False
) -> tuple[Any, ...]:
    """Fit with PyMC-Marketing's model of the same name and the same priors and settings
    (returns as :func:`fit_cbcv`)."""
    from pymc_marketing.clv import BetaGeoModel, ParetoNBDModel

    cls = {"bgnbd": BetaGeoModel, "pareto_nbd": ParetoNBDModel}[model]
    extra: dict[str, Any] = {}
    if settings.peer_init == "same":
        from cbcv.models.base import SamplerSettings

        extra["init"] = SamplerSettings().init
    data = peer_frame(frame)
    start = time.perf_counter()
    m = cls(model_config=peer_model_config(model))
    idata = m.fit(
        data=data,
        method="mcmc",
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        cores=settings.cores,
        random_seed=settings.seed,
        target_accept=settings.target_accept,
        progressbar=False,
        compute_convergence_checks=False,
        **extra,
    )
    seconds = time.perf_counter() - start
    return (idata, seconds, m) if keep else (idata, seconds)


def versions() -> dict[str, str]:
    """Versions of the packages that decide the timings."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("cbcv", "pymc", "pytensor", "numpy", "arviz", "pymc-marketing"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _maxrss_bytes(who: int) -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes)
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(who).ru_maxrss) * scale


def _peer_mode(model: str) -> Any:
    """The compilation mode PyMC-Marketing's Pareto/NBD ``fit(method="mcmc")`` samples under."""
    from pytensor.compile.mode import Mode, get_default_mode

    mode = get_default_mode()
    if model != "pareto_nbd":
        return mode
    opt = mode.provided_optimizer.including("local_reduce_max_num_iters_hyp2f1_grad")
    return Mode(linker=mode.linker, optimizer=opt)


def gradient_cost(
    pm_model: Any, means: Mapping[str, float], min_seconds: float = 1.0, max_calls: int = 2000
) -> dict[str, float]:
    """CPU and wall milliseconds of one joint log-density + gradient evaluation (what NUTS calls
    at every leapfrog step) at the posterior means; CPU time is robust to a busy machine."""
    from pymc.blocking import DictToArrayBijection

    point = pm_model.initial_point()
    for name in point:
        base = name.removesuffix("_log__")
        if name.endswith("_log__") and base in means:
            point[name] = np.log(means[base])
    with pm_model:
        fn = pm_model.logp_dlogp_function(ravel_inputs=True, initial_point=point)
    fn.set_extra_values({})
    x = DictToArrayBijection.map({v.name: point[v.name] for v in fn._grad_vars})
    for _ in range(3):
        fn(x)
    calls, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while calls < max_calls and time.process_time() - cpu0 < min_seconds:
        fn(x)
        calls += 1
    return {
        "grad_cpu_ms": 1e3 * (time.process_time() - cpu0) / calls,
        "grad_wall_ms": 1e3 * (time.perf_counter() - wall0) / calls,
    }


def child_fit(tool: str, model: str, data_path: Path, settings: BenchSettings, out: Path) -> None:
    """Entry point of one fit's subprocess: fit, then write the measurements as JSON."""
    import pytensor

    frame = read_data(data_path)
    # when the fit is stopped by the timeout, the parent knows from this how long it had run
    out.with_suffix(".started").write_text(repr(time.time()))
    if tool == "cbcv":
        idata, seconds, fitted = fit_cbcv(model, frame, settings, keep=True)
    else:
        idata, seconds, fitted = fit_peer(model, frame, settings, keep=True)
    result: dict[str, Any] = {
        "fit_s": seconds,
        **_sampler_stats(idata),
        "posterior": _posterior_table(idata, PARAMS[model]),
        "maxrss_bytes": _maxrss_bytes(resource.RUSAGE_SELF),
        "maxrss_children_bytes": _maxrss_bytes(resource.RUSAGE_CHILDREN),
        "versions": versions(),
    }
    if tool == "cbcv":
        result["n_distinct_fitted"] = int(idata.attrs.get("n_distinct", -1))
        # kept for the CLV-at-scale check, which reuses cbcv's posterior
        idata.to_netcdf(str(out.with_suffix(".nc")))
    if settings.draws >= 10:  # not for warm-up fits
        means = {p: v["mean"] for p, v in result["posterior"].items()}
        if tool == "cbcv":
            pm_model = fitted.build_model(fitted.arrays)
            result.update(gradient_cost(pm_model, means))
        else:
            with pytensor.config.change_flags(mode=_peer_mode(model)):
                result.update(gradient_cost(fitted.model, means))
    out.write_text(json.dumps(result, indent=1))


def child_grad(tool: str, model: str, data_path: Path, out: Path) -> None:
    """Entry point of a gradient-only subprocess, for a fit that timed out: build the tool's
    model on the same data and time one log-density + gradient evaluation at the data's
    generating (CDNOW published) parameters; write the timings as JSON."""
    import dataclasses

    import pytensor

    from cbcv.data.simulate import CDNOW_BGNBD, CDNOW_PARETO_NBD

    frame = read_data(data_path)
    means = dataclasses.asdict({"bgnbd": CDNOW_BGNBD, "pareto_nbd": CDNOW_PARETO_NBD}[model])
    if tool == "cbcv":
        from cbcv.models.bgnbd import BetaGeoModel
        from cbcv.models.pareto_nbd import ParetoNBDModel

        m = {"bgnbd": BetaGeoModel, "pareto_nbd": ParetoNBDModel}[model](priors=cbcv_priors(model))
        m._reparametrise = model == "pareto_nbd"  # the model NUTS samples
        result = gradient_cost(m.build_model(m.prepare(cbcv_frame(frame))[0]), means)
    else:
        from pymc_marketing.clv import BetaGeoModel as PeerBG
        from pymc_marketing.clv import ParetoNBDModel as PeerPareto

        peer = {"bgnbd": PeerBG, "pareto_nbd": PeerPareto}[model](
            data=peer_frame(frame), model_config=peer_model_config(model)
        )
        peer.build_model()
        with pytensor.config.change_flags(mode=_peer_mode(model)):
            result = gradient_cost(peer.model, means, min_seconds=3.0, max_calls=100)
    out.write_text(json.dumps(result))


# -- CLV at scale (runs in a child process) ------------------------------------------------------
def clv_summary(
    model: Any,
    frame: pd.DataFrame,
    horizon: float,
    chunk_elements: int = 16_000_000,
) -> dict[str, Any]:
    """P(alive) and expected purchases in the next ``horizon`` units for every customer, over
    every posterior draw, in bounded memory.

    The (draws × customers) matrices are never held: customers are compressed to distinct
    (x, t_x, T), :mod:`cbcv.predict` is called on chunks of distinct rows holding at most
    ``chunk_elements`` draws × rows, and each chunk is reduced at once to per-row posterior means
    and 5%/95% quantiles and to per-draw totals over customers (rows weighted by how many
    customers share them). Returns the totals' posterior mean/sd and per-customer means.
    """
    from cbcv import predict
    from cbcv.models.base import compress

    distinct, inverse = compress(frame, ("x", "t_x", "T"))
    weight = distinct["weight"].to_numpy()
    n_draws = int(np.prod([model.idata.posterior.sizes[d] for d in ("chain", "draw")]))
    step = max(1, chunk_elements // n_draws)
    keys = ("p_alive", "expected")
    means = {k: np.empty(len(distinct)) for k in keys}
    lows = {k: np.empty(len(distinct)) for k in keys}
    highs = {k: np.empty(len(distinct)) for k in keys}
    totals = {k: np.zeros(n_draws) for k in keys}
    for lo in range(0, len(distinct), step):
        rows = distinct.iloc[lo : lo + step]
        values = {
            "p_alive": predict.p_alive(model, rows),
            "expected": predict.expected_purchases(model, horizon, rows),
        }
        for k, v in values.items():
            means[k][lo : lo + step] = v.mean(axis=0)
            q = np.quantile(v, [0.05, 0.95], axis=0)
            lows[k][lo : lo + step], highs[k][lo : lo + step] = q[0], q[1]
            totals[k] += v @ weight[lo : lo + step]
            del v
    per_customer = {k: means[k][inverse] for k in keys}
    return {
        "n_customers": int(len(frame)),
        "n_distinct": int(len(distinct)),
        "n_draws": n_draws,
        "chunk_rows": int(step),
        "expected_total_mean": float(totals["expected"].mean()),
        "expected_total_sd": float(totals["expected"].std()),
        "alive_total_mean": float(totals["p_alive"].mean()),
        "mean_p_alive": float(per_customer["p_alive"].mean()),
        "mean_expected": float(per_customer["expected"].mean()),
        "interval_width_expected": float(np.mean(highs["expected"] - lows["expected"])),
    }


def child_clv(model: str, data_path: Path, posterior: Path, horizon: float, out: Path) -> None:
    """Entry point of the CLV-at-scale subprocess."""
    import arviz as az

    from cbcv.models.bgnbd import BetaGeoModel
    from cbcv.models.pareto_nbd import ParetoNBDModel

    frame = read_data(data_path)
    m = {"bgnbd": BetaGeoModel, "pareto_nbd": ParetoNBDModel}[model]()
    m.idata = az.from_netcdf(str(posterior))
    m.idata.posterior.load()
    start = time.perf_counter()
    result = clv_summary(m, frame, horizon)
    result["seconds"] = time.perf_counter() - start
    result["maxrss_bytes"] = _maxrss_bytes(resource.RUSAGE_SELF)
    # what one unchunked call (draws × customers float64 output) would have to allocate
    result["unchunked_output_bytes"] = int(result["n_draws"] * result["n_customers"] * 8)
    out.write_text(json.dumps(result, indent=1))


# -- the memory probe and the subprocess runner --------------------------------------------------
class PeakRSS:
    """Peak of the summed resident set size of a process and all its descendants.

    A background thread samples the tree every ``interval`` seconds with psutil (a dependency of
    ipykernel, so present wherever cbcv is). A spike shorter than ``interval`` can be missed; the
    fit process's exact peak comes from ``getrusage`` in the child. Use as a context manager.
    """

    def __init__(self, pid: int, interval: float = RSS_INTERVAL_S) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class ChildRun:
    """How a child process ended."""

    status: str  # "ok", "timeout" or "error"
    seconds: float
    peak_rss_bytes: int
    #: user + system CPU seconds of the process and its reaped descendants
    cpu_s: float
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(
    cmd: Sequence[str], out: Path, timeout: float, env: Mapping[str, str] | None = None
) -> ChildRun:
    """Run ``cmd`` (which writes its JSON result to ``out``) in its own process group, measuring
    the peak memory of its process tree and its CPU time; kill the group after ``timeout``
    seconds. ``env``: variables added to the environment."""
    out.unlink(missing_ok=True)
    start, cpu0 = time.perf_counter(), _children_cpu()
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    with PeakRSS(proc.pid) as probe:
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=5)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    log = b"".join(output).decode(errors="replace")
    if timed_out:
        return ChildRun(
            "timeout", seconds, probe.peak_bytes, cpu, error=f"timed out > {timeout:.0f} s"
        )
    if proc.returncode != 0 or not out.exists():
        tail = " | ".join(log.strip().splitlines()[-3:])
        return ChildRun(
            "error", seconds, probe.peak_bytes, cpu, error=f"exit {proc.returncode}: {tail}"
        )
    return ChildRun("ok", seconds, probe.peak_bytes, cpu, json.loads(out.read_text()))


def child_command(
    tool: str, model: str, data_path: Path, settings: BenchSettings, out: Path
) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "child",
        "--tool",
        tool,
        "--model",
        model,
        "--data",
        str(data_path),
        "--settings",
        json.dumps(asdict(settings)),
        "--out",
        str(out),
    ]


# -- the benchmark -------------------------------------------------------------------------------
@dataclass
class Row:
    """One (data set, model, tool) measurement."""

    dataset: str
    model: str
    tool: str
    n_customers: int
    n_distinct: int
    status: str
    fit_s: float | None = None
    #: a timed-out fit had run at least this long when it was stopped
    fit_lower_s: float | None = None
    sampling_s: float | None = None
    process_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    maxrss_mb: float | None = None
    divergences: int | None = None
    mean_n_steps: float | None = None
    grad_cpu_ms: float | None = None
    grad_wall_ms: float | None = None
    posterior: dict[str, dict[str, float]] = field(default_factory=dict)
    load_before: float | None = None
    load_after: float | None = None
    error: str = ""


def _mb(n: float | None) -> float | None:
    return None if n is None else n / 2**20


def measure(
    dataset: str,
    model: str,
    tool: str,
    data_path: Path,
    settings: BenchSettings,
    timeout: float,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    counts: tuple[int, int] = (0, 0),
) -> Row:
    """Run one fit in a subprocess and collect its row (``counts``: customers, distinct rows)."""
    out = workdir / f"{dataset}-{model}-{tool}.json"
    load_before = os.getloadavg()[0]
    run = run_child(child_command(tool, model, data_path, settings, out), out, timeout, env)
    row = Row(
        dataset=dataset,
        model=model,
        tool=tool,
        n_customers=counts[0],
        n_distinct=counts[1],
        status=run.status,
        process_s=run.seconds,
        cpu_s=run.cpu_s,
        peak_rss_mb=_mb(run.peak_rss_bytes),
        load_before=load_before,
        load_after=os.getloadavg()[0],
        error=run.error,
    )
    started = out.with_suffix(".started")
    if run.status == "timeout" and started.exists():
        row.fit_lower_s = time.time() - float(started.read_text())
    if run.status == "timeout":
        # the fit's time is only a lower bound: measure what every leapfrog step costs instead
        grad_out = out.with_suffix(".grad.json")
        cmd = [sys.executable, str(Path(__file__).resolve()), "child-grad", "--tool", tool,
               "--model", model, "--data", str(data_path), "--out", str(grad_out)]
        grad = run_child(cmd, grad_out, GRAD_TIMEOUT_S, env)
        if grad.status == "ok":
            row.grad_cpu_ms = grad.result.get("grad_cpu_ms")
            row.grad_wall_ms = grad.result.get("grad_wall_ms")
    if run.status == "ok":
        r = run.result
        row.fit_s = r["fit_s"]
        row.sampling_s = r.get("sampling_s")
        row.maxrss_mb = _mb(r.get("maxrss_bytes"))
        row.divergences = r.get("divergences")
        row.mean_n_steps = r.get("mean_n_steps")
        row.grad_cpu_ms = r.get("grad_cpu_ms")
        row.grad_wall_ms = r.get("grad_wall_ms")
        row.posterior = r["posterior"]
    return row


def agreement_z(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """|mean_a − mean_b| in units of the combined MC standard error sqrt(mcse_a² + mcse_b²)."""
    se = math.hypot(a["mcse_mean"], b["mcse_mean"])
    diff = abs(a["mean"] - b["mean"])
    if se == 0:
        return 0.0 if diff == 0 else math.inf
    return diff / se


def speed_ratio(peer: Row | None, ours: Row | None) -> str:
    """Peer fit time / cbcv fit time as text: "12.3×"; "> 45×" when the peer timed out (how
    long its fit had run when stopped, over cbcv's time); "n/a" when either is missing."""
    if ours is None or ours.fit_s is None or peer is None:
        return "n/a"
    if peer.status == "timeout":
        lower = peer.fit_lower_s if peer.fit_lower_s is not None else peer.process_s
        return "n/a" if lower is None else f"> {lower / ours.fit_s:.0f}×"
    if peer.fit_s is None:
        return "n/a"
    return f"{peer.fit_s / ours.fit_s:.1f}×"


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def format_table(rows: Sequence[Row]) -> str:
    """The timing/memory table, one line per fit, then the posterior means side by side."""
    head = (
        f"{'data':<6} {'model':<10} {'customers':>9} {'distinct':>8} {'tool':<14} {'fit s':>8} "
        f"{'sample s':>8} {'cpu s':>7} {'grad ms':>8} {'steps':>6} {'div':>4} {'peak MB':>8} "
        f"{'peer/cbcv':>10}"
    )
    lines = [head, "-" * len(head)]
    index = {(r.dataset, r.model, r.tool): r for r in rows}
    for r in rows:
        ratio = ""
        if r.tool == "pymc-marketing":
            ratio = speed_ratio(r, index.get((r.dataset, r.model, "cbcv")))
        fit = _fmt(r.fit_s, ".1f") if r.status == "ok" else r.status
        lines.append(
            f"{r.dataset:<6} {MODEL_LABELS[r.model]:<10} {r.n_customers:>9,} {r.n_distinct:>8,} "
            f"{r.tool:<14} {fit:>8} {_fmt(r.sampling_s, '.1f'):>8} {_fmt(r.cpu_s, '.0f'):>7} "
            f"{_fmt(r.grad_cpu_ms, '.3g'):>8} {_fmt(r.mean_n_steps, '.1f'):>6} "
            f"{'—' if r.divergences is None else r.divergences:>4} "
            f"{_fmt(r.peak_rss_mb, '.0f'):>8} {ratio:>10}"
        )
    lines.append("")
    lines.append(format_posteriors(rows))
    return "\n".join(lines)


def format_posteriors(rows: Sequence[Row]) -> str:
    """Posterior mean ± MC standard error of each parameter for both tools, and their z."""
    index = {(r.dataset, r.model, r.tool): r for r in rows}
    lines = [
        f"{'data':<6} {'model':<10} {'param':<6} {'cbcv mean ± mcse':>20} "
        f"{'pymc-marketing mean ± mcse':>28} {'z':>6}"
    ]
    for dataset, model in dict.fromkeys((r.dataset, r.model) for r in rows):
        ours, peer = (
            index.get((dataset, model, "cbcv")),
            index.get((dataset, model, "pymc-marketing")),
        )
        for p in PARAMS[model]:
            a = ours.posterior.get(p) if ours else None
            b = peer.posterior.get(p) if peer else None
            z = _fmt(agreement_z(a, b), ".2f") if a and b else ""
            lines.append(
                f"{dataset:<6} {MODEL_LABELS[model]:<10} {p:<6} {_pm(a):>20} {_pm(b):>28} {z:>6}"
            )
    return "\n".join(lines)


def _pm(s: Mapping[str, float] | None) -> str:
    if not s:
        return "—"
    return f"{s['mean']:.4g} ± {s['mcse_mean']:.2g}"


#: Warm-up fits: tiny, on a small simulated base, to fill the compile cache before timing.
WARMUP = BenchSettings(draws=5, tune=5, chains=1, cores=1)
WARMUP_CUSTOMERS = 2_000


def warm_up(
    models: Sequence[str],
    tools: Sequence[str],
    workdir: Path,
    env: Mapping[str, str] | None = None,
    log: Any = print,
) -> list[dict[str, Any]]:
    """One tiny fit per (tool, model), untimed in the table: fills the (fresh) PyTensor compile
    cache with everything that does not depend on the data, as a user's earlier session would.
    Its wall time is the cold-start cost."""
    out = []
    for model in models:
        path = write_data(
            simulated_summary(model, WARMUP_CUSTOMERS, 1), workdir / f"warmup-{model}.parquet"
        )
        for tool in tools:
            result = workdir / f"warmup-{model}-{tool}.json"
            run = run_child(child_command(tool, model, path, WARMUP, result), result, 1800.0, env)
            out.append(
                {
                    "model": model,
                    "tool": tool,
                    "status": run.status,
                    "seconds": run.seconds,
                    "error": run.error,
                }
            )
            log(
                f"  warm-up {tool} {MODEL_LABELS[model]}: {run.status} {run.seconds:.1f} s {run.error}"
            )
    return out


def run_benchmark(
    datasets: Sequence[str],
    models: Sequence[str],
    tools: Sequence[str],
    settings: BenchSettings,
    peer_timeout: float,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    fit_timeout: float = 7200.0,
    log: Any = print,
) -> list[Row]:
    """Every (data set, model, tool) fit, in that order. PyMC-Marketing is skipped at a size
    where it already timed out on a smaller one for the same model."""
    rows: list[Row] = []
    peer_timed_out: set[str] = set()
    for dataset in datasets:
        for model in models:
            frame = load_data(dataset, model, settings.seed)
            path = write_data(frame, workdir / f"{dataset}-{model}.parquet")
            counts = (len(frame), n_distinct(frame))
            log(
                f"[{dataset} {MODEL_LABELS[model]}] {counts[0]:,} customers, {counts[1]:,} distinct (x, t_x, T)"
            )
            for tool in tools:
                if tool == "pymc-marketing" and model in peer_timed_out:
                    rows.append(
                        Row(
                            dataset,
                            model,
                            tool,
                            *counts,
                            "skipped",
                            error="timed out on a smaller data set",
                        )
                    )
                    log(f"  {tool}: skipped (timed out on a smaller data set)")
                    continue
                timeout = peer_timeout if tool == "pymc-marketing" else fit_timeout
                row = measure(dataset, model, tool, path, settings, timeout, workdir, env, counts)
                if row.status == "timeout" and tool == "pymc-marketing":
                    peer_timed_out.add(model)
                rows.append(row)
                log(
                    f"  {tool}: {row.status} fit {_fmt(row.fit_s, '.1f')} s (sampling "
                    f"{_fmt(row.sampling_s, '.1f')} s, cpu {_fmt(row.cpu_s, '.0f')} s), grad "
                    f"{_fmt(row.grad_cpu_ms, '.3g')} ms, peak {_fmt(row.peak_rss_mb, '.0f')} MB, "
                    f"load {row.load_before:.2f}→{row.load_after:.2f} {row.error}"
                )
    return rows


def run_clv(
    model: str,
    data_path: Path,
    posterior: Path,
    horizon: float,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 7200.0,
) -> dict[str, Any]:
    """The CLV-at-scale check in a subprocess; its peak memory and timings."""
    out = workdir / f"clv-{model}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "child-clv",
        "--model",
        model,
        "--data",
        str(data_path),
        "--posterior",
        str(posterior),
        "--horizon",
        str(horizon),
        "--out",
        str(out),
    ]
    load_before = os.getloadavg()[0]
    run = run_child(cmd, out, timeout, env)
    return {
        "status": run.status,
        "error": run.error,
        "process_s": run.seconds,
        "cpu_s": run.cpu_s,
        "peak_rss_mb": _mb(run.peak_rss_bytes),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        **run.result,
    }


def save_results(payload: Mapping[str, Any], results_dir: Path) -> Path:
    """Write ``fit_speed-<timestamp>.json`` under ``results_dir``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"fit_speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


# -- child entry points --------------------------------------------------------------------------
def _child_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="fit_speed.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("child")
    c.add_argument("--tool", choices=TOOLS, required=True)
    c.add_argument("--model", choices=MODELS, required=True)
    c.add_argument("--data", type=Path, required=True)
    c.add_argument("--settings", required=True)
    c.add_argument("--out", type=Path, required=True)
    g = sub.add_parser("child-grad")
    g.add_argument("--tool", choices=TOOLS, required=True)
    g.add_argument("--model", choices=MODELS, required=True)
    g.add_argument("--data", type=Path, required=True)
    g.add_argument("--out", type=Path, required=True)
    v = sub.add_parser("child-clv")
    v.add_argument("--model", choices=MODELS, required=True)
    v.add_argument("--data", type=Path, required=True)
    v.add_argument("--posterior", type=Path, required=True)
    v.add_argument("--horizon", type=float, required=True)
    v.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cmd == "child":
        settings = BenchSettings(**json.loads(args.settings))
        child_fit(args.tool, args.model, args.data, settings, args.out)
    elif args.cmd == "child-grad":
        child_grad(args.tool, args.model, args.data, args.out)
    else:
        child_clv(args.model, args.data, args.posterior, args.horizon, args.out)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
