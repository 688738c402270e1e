"""The ``cbcv`` command.

Every subcommand exits 0 on success; on a user error it prints one line ``cbcv: error: ...`` on
stderr and exits 1 (2 for usage errors, from the argument parser). Progress goes to stderr.
Interrupted (Ctrl-C or SIGTERM), it prints ``cbcv: interrupted`` and exits 130 or 143, having
saved no partial result as if it were complete (:mod:`cbcv.core.interrupt`).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Annotated

import typer

from cbcv.core import interrupt
from cbcv.core.errors import CbcvError
from cbcv.core.jsonio import dumps_strict

app = typer.Typer(
    name="cbcv",
    help="Customer-based corporate valuation: audit, CLV models, valuation and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TransactionsArg = Annotated[
    str, typer.Argument(help="CSV / Parquet / DuckDB path, or a bundled data set: cdnow, cdnow-sample")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="company config YAML (column map, dates)")
]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


STRICT_HELP = "exit non-zero unless every fit's diagnostics verdict is pass (a MAP fit never passes)"


def _diagnostics_gate(command: str, diagnostics: dict, strict: bool, written: Path) -> None:
    """A verdict that is not a pass: one warning line on stderr, or with --strict the error."""
    from cbcv.models.verdict import verdict_line

    line = verdict_line(diagnostics)
    if line is None:
        return
    if strict:
        raise CbcvError(f"{line} (--strict; {written} is written)")
    _say(f"{command}: warning: {line}")


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CbcvError(f"{name}: {value!r} is not a date (use YYYY-MM-DD)") from None


@app.command()
def audit(
    transactions: TransactionsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    config: ConfigOpt = None,
    as_of: Annotated[str | None, typer.Option(help="as-of date YYYY-MM-DD; later rows are rejected")] = None,
    period: Annotated[str, typer.Option(help="calendar period of the C3 chart: month, quarter, year")] = "quarter",
    cohort_period: Annotated[
        str | None, typer.Option(help="acquisition cohorts: month, quarter or year (default: the config's, else --period)")
    ] = None,
) -> None:
    """Validate a transaction log to OUT/accepted.parquet and write the customer-base audit
    tables, reconciliation.json and rejections.csv."""
    from cbcv.core import outputs
    from cbcv.pipeline.workflow import validate_source, write_audit

    loaded = None
    if config is not None:
        from cbcv.config import load_config

        loaded = load_config(config)
    outputs.claim(out, "audit")
    _say(f"cbcv audit: validating {transactions}")
    day = _date(as_of, "--as-of")
    result = validate_source(transactions, out, loaded, as_of=day)
    rec = result.reconciliation
    _say(
        f"cbcv audit: {rec.rows_read} rows read, {rec.rows_accepted} accepted, "
        f"{rec.rows_rejected} rejected"
    )
    written = write_audit(result, out, loaded, period=period, cohort_period=cohort_period)
    interrupt.check()
    outputs.record(out, "audit")
    _say(f"cbcv audit: wrote {len(written)} files to {out}")


@app.command()
def fit(
    transactions: TransactionsArg,
    model: Annotated[str, typer.Option("--model", "-m", help="bgnbd, mbgnbd, pareto_nbd or gamma_gamma; "
                                       "sbg or bdw for subscription records (customer_id, start, end, price); "
                                       "disclosures for a table of disclosed customer metrics per period")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder for fit.json and posterior.nc")],
    calibration_end: Annotated[str | None, typer.Option(help="last day of the calibration period, YYYY-MM-DD "
                                                        "(not for disclosures: every period is fitted)")] = None,
    time_unit: Annotated[str, typer.Option(help="day, week or month; for sbg/bdw the billing period: month, "
                                           "quarter or year")] = "week",
    pooling: Annotated[str, typer.Option(help="sbg/bdw: partial, unpooled or complete pooling of the cohorts")] = "partial",
    cohort_period: Annotated[str | None, typer.Option(help="sbg/bdw: cohorts by month, quarter or year "
                                                       "(default: the config's, else the billing period)")] = None,
    market: Annotated[float | None, typer.Option(help="disclosures: the prospects the acquisition model draws "
                                                 "from (default: the config's financials.market_size)")] = None,
    period: Annotated[str, typer.Option(help="disclosures: quarter or month")] = "quarter",
    retention: Annotated[str, typer.Option(help="disclosures: sbg or bdw")] = "sbg",
    method: Annotated[str, typer.Option(help="nuts or map")] = "nuts",
    draws: Annotated[int, typer.Option(min=1)] = 1000,
    tune: Annotated[int, typer.Option(min=0)] = 1000,
    chains: Annotated[int, typer.Option(min=1)] = 4,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="random seed, 0 to 2**32 - 1")] = 42,
    covariates: Annotated[str | None, typer.Option(help="customer covariates, a CSV or Parquet file with customer_id "
                                                   "and one column per covariate (bgnbd, mbgnbd, pareto_nbd, "
                                                   "gamma_gamma)")] = None,
    covariate_columns: Annotated[str | None, typer.Option(help="the covariate columns to use, comma-separated "
                                                          "(default: all but customer_id)")] = None,
    covariate_reference: Annotated[str | None, typer.Option(help="reference levels of categorical covariates, "
                                                            "e.g. nps=passive (default: each one's most "
                                                            "common level)")] = None,
    config: ConfigOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help=STRICT_HELP)] = False,
) -> None:
    """Fit a model to the calibration period; write fit.json and posterior.nc."""
    loaded = None
    if config is not None:  # checked first: a config mistake costs no model import
        from cbcv.config import load_config

        loaded = load_config(config)
    from cbcv.models import SamplerSettings
    from cbcv.pipeline.workflow import (
        fit_data,
        fit_summary_model,
        fit_with_covariates,
        save_fit,
        summary_model,
        validate_source,
    )

    if method not in ("nuts", "map"):
        raise CbcvError(f"--method: {method!r} is not nuts or map")
    settings = SamplerSettings(method=method, draws=draws, tune=tune, chains=chains, seed=seed)  # type: ignore[arg-type]
    if model == "disclosures":
        _fit_disclosures(transactions, market, period, retention, out, loaded, strict, settings)
        return
    if calibration_end is None:
        raise CbcvError(f"--calibration-end: required for {model}")
    cal_end = _date(calibration_end, "--calibration-end")
    if model in ("sbg", "bdw"):
        _fit_subscriptions(transactions, model, pooling, cal_end, time_unit, cohort_period, out, loaded, strict,
                           settings)
        return
    summary_model(model)
    if (covariate_columns is not None or covariate_reference is not None) and covariates is None:
        raise CbcvError("--covariate-columns, --covariate-reference: give --covariates FILE too")
    reference = _pairs(covariate_reference, "--covariate-reference")
    table = None
    if covariates is not None:
        from cbcv.data.covariates import read_covariates

        columns = [c.strip() for c in covariate_columns.split(",") if c.strip()] if covariate_columns else None
        table = read_covariates(covariates, columns)
    _say(f"cbcv fit: validating {transactions}")
    with tempfile.TemporaryDirectory(prefix="cbcv-fit-") as work:
        log = validate_source(transactions, work, loaded)
        meta = {"calibration_end": cal_end.isoformat(), "time_unit": time_unit}
        summary = fit_data(meta, log, loaded=loaded).summaries()
    _say(f"cbcv fit: {len(summary):,} customers; fitting {model} by {method.upper()} ...")
    covariate_record = None
    if table is None:
        fitted = fit_summary_model(summary, model, settings)
    else:
        fitted, covariate_record = fit_with_covariates(summary, model, settings, table, reference)
    interrupt.check()  # PyMC returns the draws so far on Ctrl-C: save nothing then
    meta = {
        "source": transactions,
        "sha256": log.reconciliation.sha256,
        "calibration_end": cal_end.isoformat(),
        "time_unit": time_unit,
        "seed": seed,
        **({"covariates": covariate_record} if covariate_record is not None else {}),
    }
    save_fit(fitted, summary, out, meta)
    _say(f"cbcv fit: done in {fitted.fit_seconds:.1f} s -> {out / 'fit.json'}")
    _diagnostics_gate("cbcv fit", fitted.verdict().to_dict(), strict, out / "fit.json")


def _pairs(text: str | None, option: str) -> dict[str, str]:
    """``a=x,b=y`` as a mapping; one clear line for a malformed pair."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CbcvError(f"{option}: {item.strip()!r} is not column=level")
        out[key.strip()] = value.strip()
    return out


def _fit_disclosures(source: str, market: float | None, period: str, retention: str, out: Path, loaded: object,
                     strict: bool, settings: object) -> None:
    """``cbcv fit --model disclosures``: the disclosures model on a table of disclosed metrics."""
    from cbcv.pipeline.disclosure_valuation import fit_disclosure_file, save_disclosure_fit

    if period not in ("quarter", "month"):
        raise CbcvError(f"--period: {period!r} is not quarter or month")
    if retention not in ("sbg", "bdw"):
        raise CbcvError(f"--retention: {retention!r} is not sbg or bdw")
    if loaded is None and market is None:
        raise CbcvError("--market: required without --config (the prospects the acquisition model draws from)")
    if market is not None and not market > 0:
        raise CbcvError(f"--market: {market:g} is not a positive number of prospects")
    _say(f"cbcv fit: reading disclosures {source}")
    fitted, meta = fit_disclosure_file(source, market=market or 0.0, settings=settings, period=period,  # type: ignore[arg-type]
                                       retention=retention, loaded=loaded)  # type: ignore[arg-type]
    interrupt.check()
    path = save_disclosure_fit(fitted, out, meta)
    _say(f"cbcv fit: {meta['first_period']} to {meta['last_period']} ({fitted.setting}); done in "
         f"{float(fitted.idata.attrs['fit_seconds']):.1f} s -> {path}")  # type: ignore[union-attr]
    _diagnostics_gate("cbcv fit", fitted.verdict().to_dict(), strict, path)


def _fit_subscriptions(source: str, model: str, pooling: str, cal_end: dt.date | None, billing_period: str,
                       cohort_period: str | None, out: Path, loaded: object, strict: bool, settings: object) -> None:
    """``cbcv fit --model sbg|bdw``: the cohort retention model on subscription records."""
    from cbcv.pipeline.subscription_valuation import fit_subscription_file, save_retention_fit

    if billing_period not in ("month", "quarter", "year"):
        raise CbcvError(f"--time-unit: {billing_period!r}: for {model} give the billing period (month, quarter or year)")
    if pooling not in ("partial", "unpooled", "complete"):
        raise CbcvError(f"--pooling: {pooling!r} is not partial, unpooled or complete")
    assert cal_end is not None
    _say(f"cbcv fit: validating subscription records {source}")
    fitted, meta = fit_subscription_file(source, model=model, pooling=pooling, calibration_end=cal_end,
                                         billing_period=billing_period, cohort_period=cohort_period,
                                         settings=settings, loaded=loaded)  # type: ignore[arg-type]
    interrupt.check()
    path = save_retention_fit(fitted, out, meta)
    _say(f"cbcv fit: {fitted.idata.attrs['n_customers']:,} spells in {len(fitted.cohorts)} cohorts; "  # type: ignore[union-attr]
         f"done in {fitted.fit_seconds:.1f} s -> {path}")
    _diagnostics_gate("cbcv fit", fitted.verdict().to_dict(), strict, path)


@app.command()
def predict(
    fit_dir: Annotated[Path, typer.Argument(help="folder written by cbcv fit (posterior.nc)")],
    transactions: Annotated[str, typer.Option("--transactions", "-t", help="the transaction log (path or data set)")],
    horizon: Annotated[float, typer.Option(help="forecast window in the fit's time unit")],
    out: Annotated[Path, typer.Option("--out", "-o", help="per-customer predictions (.csv or .parquet)")],
    holdout_end: Annotated[
        str | None, typer.Option(help="compare with actual transactions up to this date: writes forecast.json")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Per-customer predictions from a fitted posterior; with --holdout-end, the holdout check."""
    from cbcv.core.safe_csv import write_csv
    from cbcv.pipeline.workflow import (
        fit_data,
        load_fit,
        predict_customers,
        validate_source,
        write_forecast,
    )

    model, meta = load_fit(fit_dir)
    loaded = None
    if config is not None:
        from cbcv.config import load_config

        loaded = load_config(config)
    _say(f"cbcv predict: {model.name} from {fit_dir}; validating {transactions}")
    with tempfile.TemporaryDirectory(prefix="cbcv-predict-") as work:
        log = validate_source(transactions, work, loaded)
        data = fit_data(meta, log, holdout_end=_date(holdout_end, "--holdout-end"), loaded=loaded)
        table, summary = predict_customers(model, data, horizon)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.to_parquet(out, index=False)
    else:
        write_csv(table, out)
    if holdout_end is not None:
        path = write_forecast(model, summary, out.parent / "forecast.json")
        _say(f"cbcv predict: holdout comparison -> {path}")
    _say(f"cbcv predict: {len(table):,} customers -> {out}")


@app.command()
def value(
    config: Annotated[Path, typer.Argument(help="company config YAML with financials")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder for valuation.json")],
    strict: Annotated[bool, typer.Option("--strict", help=STRICT_HELP)] = False,
) -> None:
    """Fit the configured models, value the company per posterior draw, write OUT/valuation.json."""
    from cbcv.config import load_config

    loaded = load_config(config)  # every input checked in a fraction of a second, before the model imports
    if loaded.config.is_subscription:
        from cbcv.pipeline.subscription_valuation import value_subscription_company as value_company
    elif loaded.config.is_disclosures:
        from cbcv.pipeline.disclosure_valuation import value_disclosure_company as value_company
    else:
        from cbcv.pipeline.valuation import value_company

    _say(f"cbcv value: {config}")
    path = value_company(config, out, progress=lambda m: _say(f"cbcv value: {m}"))
    _say(f"cbcv value: wrote {path}")
    _diagnostics_gate("cbcv value", json.loads(path.read_text(encoding="utf-8"))["diagnostics"], strict, path)
    print(dumps_strict({"valuation": str(path)}, indent=None))


HistoryOpt = Annotated[Path | None, typer.Option(
    "--history", help="history folder (default: history/ in the company's work folder, data/processed/<company>/)")]


@app.command()
def score(
    config: Annotated[Path, typer.Argument(help="company config YAML")],
    as_of: Annotated[str, typer.Option("--as-of", help="score every customer on its data up to this day, YYYY-MM-DD")],
    history: HistoryOpt = None,
    horizon: Annotated[float | None, typer.Option(
        help="expected transactions over this many time units (default: one year)")] = None,
) -> None:
    """Every customer's CLV, P(alive) and expected transactions, with intervals, at AS_OF: one
    partition of the history (Parquet, as_of=DATE/), written or replaced."""
    from cbcv.config import load_config

    loaded = load_config(config)
    day = _date(as_of, "--as-of")
    assert day is not None
    if horizon is not None and not horizon > 0:
        raise CbcvError(f"--horizon: {horizon:g} is not a positive number of time units")
    from cbcv.pipeline.value_history import history_folder, score_as_of
    from cbcv.pipeline.workflow import load_company

    result = load_company(loaded)
    folder = history if history is not None else history_folder(result)
    part = score_as_of(loaded, result, day, folder, horizon=horizon, progress=lambda m: _say(f"cbcv score: {m}"))
    _say(f"cbcv score: {part.customers:,} customers at {day} (model {part.meta['model_version']}) -> {part.path}")
    print(dumps_strict({"partition": str(part.path), "customers": part.customers,
                        "model_version": part.meta["model_version"]}, indent=None))


@app.command()
def movement(
    config: Annotated[Path, typer.Argument(help="company config YAML")],
    start: Annotated[str, typer.Option("--from", help="first date, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="second date, YYYY-MM-DD")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for movement.json and the tables")],
    by: Annotated[str | None, typer.Option(help="owner columns of the config's attributes, comma-separated "
                                           "(e.g. rep,region)")] = None,
    history: HistoryOpt = None,
) -> None:
    """The movement of customer equity from --from to --to, line by line with intervals,
    reconciling to the cent; with --by, the lines and the value created per owner."""
    from cbcv.config import load_config

    loaded = load_config(config)
    d0, d1 = _date(start, "--from"), _date(end, "--to")
    assert d0 is not None and d1 is not None
    columns = [c.strip() for c in by.split(",") if c.strip()] if by else []
    from cbcv.pipeline.equity_movement import equity_movement, write_movement
    from cbcv.pipeline.value_history import history_folder
    from cbcv.pipeline.workflow import load_company

    result = load_company(loaded)
    folder = history if history is not None else history_folder(result)
    moved = equity_movement(loaded, result, d0, d1, folder / "_models", by=columns,
                            progress=lambda m: _say(f"cbcv movement: {m}"))
    path = write_movement(moved, out)
    lines = moved.table()["mean"]
    _say(f"cbcv movement: {d0} to {d1}: customer equity {lines['opening']:,.2f} -> {lines['closing']:,.2f} "
         f"{moved.currency} -> {path}")
    print(dumps_strict({"movement": str(path)}, indent=None))


@app.command()
def report(
    config: Annotated[Path, typer.Argument(help="company config YAML, e.g. configs/cdnow.yaml")],
    out: Annotated[Path, typer.Option("--out", "-o", help="reports folder")] = Path("reports"),
    strict: Annotated[
        bool,
        typer.Option("--strict", help=STRICT_HELP),
    ] = False,
) -> None:
    """Run the notebook suite through papermill into OUT/<company>/<run-id>/."""
    from cbcv.config import load_config

    load_config(config)  # every input checked before papermill is imported
    from cbcv.report.runner import run_report

    result = run_report(config, out, strict=True if strict else None)
    print(dumps_strict({"run_dir": str(result.run_dir), "index": str(result.index)}, indent=None))


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 1; usage errors
    are reported by the argument parser with exit code 2."""
    # pip-installed PyTensor warns once that it found no BLAS; cbcv's likelihoods are
    # elementwise, so this costs nothing here and would only clutter the command's stderr.
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    interrupt.install()
    try:
        app()
    except BaseException as exc:
        # typer turns Ctrl-C (and so SIGTERM) into exit 130; DuckDB into its own exception
        if interrupt.received() is not None:
            _interrupted()
        if not isinstance(exc, CbcvError):
            raise
        _say(f"cbcv: error: {exc}")
        sys.exit(1)


def _interrupted() -> None:
    """``cbcv: interrupted`` on stderr and exit 130 (SIGINT) or 143 (SIGTERM)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    interrupt.stop_children()
    _say("cbcv: interrupted")
    sys.exit(interrupt.exit_code())


if __name__ == "__main__":
    main()
