"""The movement of customer equity between two dates, line by line and by owner.

``CE(t; M)`` is the residual customer equity at ``t`` (every customer acquired by ``t``, scored on
its history to ``t`` and discounted to ``t``) under the models ``M``; ``M0`` and ``M1`` are the
fits on the data to ``t0`` and to ``t1`` (:func:`cbcv.pipeline.dated_fits.fits_at`). Per
posterior draw ``d`` (draw ``d`` of ``M0``, of ``M1`` and of the margin and discount rate)::

    CE(t1; M1) = CE(t0; M0)                                   opening customer equity
               + new customers' value                        CE(t1; M0 | acquired in (t0, t1]) + their margin in the window
               + retained customers' behaviour               purchases made and lapses: the rest, below
               - value realised                              margin on every purchase in (t0, t1]
               + time                                        CE(t0; M0) × (exp(δ Δ) − 1), the discount unwinding
               + model and assumption changes                CE(t1; M1) − CE(t1; M0), the refit

where the behaviour line is ``CE(t1; M0 | customers of t0) − CE(t0; M0) − time + their margin in
the window``: what the retained customers' purchases and silences since ``t0`` did to their
value, beyond what the model expected and what the passage of time gives. So the lines add up
exactly in every draw, and so in the posterior means. The intervals are each line's own, over
the same draws (the draws of the two fits pair by index: the model-change interval holds both
posteriors' uncertainty).

By owner (a column of the config's ``attributes``: sales rep, region, channel), each line is the
sum over the owner's customers, and the owners add up to the total. **Value created** by an
owner is new customers' value plus retained customers' behaviour: what the book gained beyond
the time value of the opening equity, with the cash margin counted as earned; per month, divided
by the months between the dates. Its interval says when a small book's figure is noise.

Cents: every figure is rounded to the cent so that the lines still reconcile exactly: the total
lines are rounded, the owners' shares of each line are apportioned by largest remainder so that
they add up to the total's cents, and the behaviour line, defined as the rest, is the rest in
cents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cbcv.clv.scoring import ScoredBase
from cbcv.config import LoadedConfig
from cbcv.core.cache import atomic_write_json
from cbcv.core.discount import continuous_rate
from cbcv.core.draws import interval_bounds, per_draw
from cbcv.core.errors import ConfigError
from cbcv.core.safe_csv import write_csv
from cbcv.core.units import unit_days
from cbcv.data._sql import ident, literal, scratch_connection
from cbcv.pipeline.company_data import CompanyData
from cbcv.pipeline.customer_covariates import owner_table
from cbcv.pipeline.dated_fits import DatedFits, fits_at
from cbcv.pipeline.valuation import clv_inputs

#: The lines of the movement, in order (``opening`` and ``closing`` the two customer equities).
LINES = ("opening", "new_customers", "retained_behaviour", "value_realised", "time", "model_change", "closing")
LINE_LABELS = {
    "opening": "customer equity at the start", "new_customers": "new customers' value",
    "retained_behaviour": "retained customers' behaviour (purchases made, lapses)",
    "value_realised": "value realised (margin on purchases in the window)",
    "time": "time (the discount unwinding)", "model_change": "model and assumption changes (the refit)",
    "closing": "customer equity at the end",
}
#: How each line enters the closing equity.
SIGN = {"opening": 1, "new_customers": 1, "retained_behaviour": 1, "value_realised": -1, "time": 1,
        "model_change": 1}
#: Posterior draws of the movement (the fits' draws when they have fewer).
MOVEMENT_DRAWS = 1000
#: A customer without a row in the attributes file.
NO_OWNER = "(no owner)"
#: Days per month for "value created per month".
MONTH_DAYS = 365.25 / 12


@dataclass(frozen=True)
class Movement:
    """The movement of customer equity from ``start`` to ``end``: ``draws`` each line per draw
    (:data:`LINES`), ``by`` per owner column the lines per draw of each owner
    (``{column: {line: DataFrame (draws × owners)}}``), and the counts behind them."""

    start: dt.date
    end: dt.date
    draws: dict[str, np.ndarray]
    by: dict[str, dict[str, pd.DataFrame]]
    counts: dict[str, int]
    versions: tuple[str, str]
    interval: float = 0.9
    currency: str = "USD"
    note: str = ""
    customers_by: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def months(self) -> float:
        return (self.end - self.start).days / MONTH_DAYS

    def table(self) -> pd.DataFrame:
        """One row per line: the mean in cents as a number of currency units (exact to the
        cent: the lines reconcile), and the interval."""
        cents = _line_cents({k: float(np.mean(v)) for k, v in self.draws.items()})
        lo, hi = interval_bounds(self.interval)
        rows = []
        for line in LINES:
            d = self.draws[line]
            rows.append({"line": line, "label": LINE_LABELS[line], "sign": SIGN.get(line, 0),
                         "mean": cents[line] / 100, "low": float(np.quantile(d, lo)), "high": float(np.quantile(d, hi))})
        return pd.DataFrame(rows).set_index("line")

    def by_owner(self, column: str) -> pd.DataFrame:
        """The lines by owner of ``column`` (means in cents, apportioned so that the owners add
        up to :meth:`table`), with value created in total and per month and its interval."""
        if column not in self.by:
            raise ConfigError(f"movement: no owner column {column!r} (attributes.owners: {', '.join(self.by) or 'none'})")
        lines = self.by[column]
        total = _line_cents({k: float(np.mean(v)) for k, v in self.draws.items()})
        owners = list(lines["opening"].columns)
        cents: dict[str, np.ndarray] = {}
        for line in LINES:
            if line == "retained_behaviour":
                continue
            cents[line] = _apportion(total[line], lines[line].mean(axis=0).to_numpy())
        cents["retained_behaviour"] = _rest(cents)
        lo, hi = interval_bounds(self.interval)
        created = lines["new_customers"] + lines["retained_behaviour"]
        out = pd.DataFrame({line: cents[line] / 100 for line in LINES}, index=pd.Index(owners, name=column))
        out["value_created"] = (cents["new_customers"] + cents["retained_behaviour"]) / 100
        out["value_created_low"] = created.quantile(lo).to_numpy()
        out["value_created_high"] = created.quantile(hi).to_numpy()
        per_month = created / self.months
        out["created_per_month"] = out["value_created"] / self.months
        out["created_per_month_low"] = per_month.quantile(lo).to_numpy()
        out["created_per_month_high"] = per_month.quantile(hi).to_numpy()
        if column in self.customers_by:
            out = out.join(self.customers_by[column])
        return out

    def to_json_dict(self) -> dict[str, Any]:
        table = self.table()
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(), "currency": self.currency,
            "interval": self.interval, "months": self.months, "model_versions": list(self.versions),
            "counts": self.counts, "note": self.note,
            "lines": {k: {"label": r["label"], "mean": r["mean"], "low": r["low"], "high": r["high"]}
                      for k, r in table.iterrows()},
            "reconciles_to_the_cent": bool(reconciles(table)),
            "by": {c: {str(o): row.to_dict() for o, row in self.by_owner(c).iterrows()} for c in self.by},
        }


def reconciles(table: pd.DataFrame) -> bool:
    """Whether the closing equity equals the opening plus the signed lines, to the cent."""
    cents = (table["mean"] * 100).round().astype(np.int64)
    return int(cents["closing"]) == int(sum(SIGN[k] * cents[k] for k in SIGN))


def _line_cents(means: dict[str, float]) -> dict[str, int]:
    """The lines' means in whole cents, the behaviour line the rest (module docstring)."""
    cents = {k: int(round(v * 100)) for k, v in means.items()}
    cents["retained_behaviour"] = _rest(cents)
    return cents


def _rest(cents: dict[str, Any]) -> Any:
    """The behaviour line in cents: the closing equity less every other signed line."""
    return cents["closing"] - sum(SIGN[k] * cents[k] for k in SIGN if k != "retained_behaviour")


def _apportion(total: int, parts: np.ndarray) -> np.ndarray:
    """Whole cents per part that add up to ``total`` (largest remainder on ``parts``, in
    currency units, scaled to the total)."""
    raw = np.asarray(parts, dtype=float) * 100
    gap = total - raw.sum()
    raw = raw + gap / max(len(raw), 1)  # float error and the total's rounding, spread evenly
    floor = np.floor(raw).astype(np.int64)
    rest = int(total - floor.sum())
    order = np.argsort(-(raw - floor), kind="stable")
    floor[order[:rest]] += 1
    return floor


def equity_movement(
    loaded: LoadedConfig, result: CompanyData, start: dt.date, end: dt.date, store: str | Path, *,
    by: list[str] | None = None, interval: float = 0.9, work: str | Path | None = None, progress: Any = None,
) -> Movement:
    """The movement of customer equity from ``start`` to ``end`` (module docstring), by each
    owner column of ``by`` (the config's ``attributes.owners``); fits kept under ``store``."""
    if end <= start:
        raise ConfigError(f"movement: the end {end} must be after the start {start}")
    owners = owner_table(loaded)
    by = list(by or [])
    have = list(owners.columns) if owners is not None else []
    if unknown := [b for b in by if b not in have]:
        raise ConfigError(f"{loaded.path}: movement by {unknown[0]!r}: not a column of attributes.owners "
                          f"({', '.join(have) or 'no attributes: in the config'})")
    f0 = fits_at(loaded, result, start, store, progress)
    f1 = fits_at(loaded, result, end, store, progress)
    n = min(f0.n_draws, f1.n_draws, MOVEMENT_DRAWS)
    margin, rate, note = clv_inputs(loaded, n)
    margin, rate = per_draw(margin, n, "margin"), per_draw(rate, n, "discount_rate")
    unit = loaded.config.time_unit
    folder = Path(work) if work is not None else f1.data.folder / f"movement_from_{start.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    cols = [*by]
    base0 = _input(f0, owners, by, start, folder / "start.parquet")
    base1 = _input(f1, owners, by, start, folder / "end.parquet")
    status_cols = ["status", *[f"{c}__status" for c in cols]]

    def score(fits: DatedFits, path: Path, name: str, group_by: list[str]) -> ScoredBase:
        if progress:
            progress(f"movement: {name} ...")
        return fits.score_file(path, folder / f"{name}.parquet", margin=margin, rate=rate, n=n, group_by=group_by)

    opening = score(f0, base0, "opening", cols)
    closing = score(f1, base1, "closing", cols)
    bridge = score(f0, base1, "end_at_start_models", status_cols)
    revenue = _window_revenue(result, base1, start, end, cols)
    delta = continuous_rate(rate, unit) * (end - start).days / unit_days(unit)
    growth = np.expm1(delta)

    def lines(ce0: np.ndarray, old: np.ndarray, new: np.ndarray, rev_old: float, rev_new: float,
              ce1: np.ndarray, ce1_m0: np.ndarray) -> dict[str, np.ndarray]:
        time_ = ce0 * growth
        realised_old, realised_new = margin * rev_old, margin * rev_new
        return {"opening": ce0, "new_customers": new + realised_new,
                "retained_behaviour": old - ce0 - time_ + realised_old, "value_realised": realised_old + realised_new,
                "time": time_, "model_change": ce1 - ce1_m0, "closing": ce1}

    status = bridge.group_draws["status"]
    total = lines(opening.total, _col(status, "retained", n), _col(status, "new", n),
                  revenue["total"].get("retained", 0.0), revenue["total"].get("new", 0.0), closing.total, bridge.total)
    by_lines: dict[str, dict[str, pd.DataFrame]] = {}
    customers_by: dict[str, pd.DataFrame] = {}
    for c in cols:
        labels = sorted(set(closing.group_draws[c].columns) | set(opening.group_draws[c].columns))
        g0 = opening.group_draws[c].reindex(columns=labels, fill_value=0.0)
        g1 = closing.group_draws[c].reindex(columns=labels, fill_value=0.0)
        gs = bridge.group_draws[f"{c}__status"]
        per: dict[str, dict[str, np.ndarray]] = {}
        for o in labels:
            per[o] = lines(g0[o].to_numpy(), _col(gs, f"{o}\x1fretained", n), _col(gs, f"{o}\x1fnew", n),
                           revenue[c].get((o, "retained"), 0.0), revenue[c].get((o, "new"), 0.0), g1[o].to_numpy(),
                           _col(gs, f"{o}\x1fretained", n) + _col(gs, f"{o}\x1fnew", n))
        by_lines[c] = {line: pd.DataFrame({o: per[o][line] for o in labels}) for line in LINES}
        customers_by[c] = pd.DataFrame({
            "customers_start": opening.group_counts[c].reindex(labels, fill_value=0).astype(int),
            "customers_end": closing.group_counts[c].reindex(labels, fill_value=0).astype(int),
        })
    counts = {"customers_start": int(opening.n_customers), "customers_end": int(closing.n_customers),
              "new_customers": int(bridge.group_counts["status"].get("new", 0)),
              "retained_customers": int(bridge.group_counts["status"].get("retained", 0)), "n_draws": n}
    cfg = loaded.config
    return Movement(start, end, total, by_lines, counts, (f0.version, f1.version), interval,
                    cfg.company.currency, note, customers_by)


def _col(frame: pd.DataFrame, label: str, n: int) -> np.ndarray:
    """A group's per-draw totals (zeros when the group has no customer)."""
    return frame[label].to_numpy() if label in frame.columns else np.zeros(n)


def _input(fits: DatedFits, owners: Any, by: list[str], start: dt.date, out: Path) -> Path:
    """The customers of ``fits``' data (with their covariates when the models use them), each
    with ``status`` (``retained``: acquired on or before ``start``; ``new``: after) and its owner
    in each ``by`` column, and ``<owner>__status`` (owner and status), in DuckDB."""
    data = fits.data
    src = data.covariate_summary_file if data.covariates is not None else data.summary_file
    with scratch_connection(memory_limit=data.engine.memory_limit, threads=data.engine.threads) as con:
        if by:
            con.register("owners", owners.frame)
        con.execute(_input_sql(src, by, literal(start.isoformat()), out))
    return out


def _input_sql(src: Path, by: list[str], day: str, out: Path) -> str:
    """The COPY statement of :func:`_input` (``day``: the start date as an SQL literal)."""
    owner_cols = "".join(
        f", coalesce(o.{ident(c)}, {literal(NO_OWNER)}) AS {ident(c)}, coalesce(o.{ident(c)}, {literal(NO_OWNER)}) "
        f"|| chr(31) || status AS {ident(c + '__status')}" for c in by
    )
    join = "LEFT JOIN owners o ON CAST(s.customer_id AS VARCHAR) = o.customer_id" if by else ""
    return (
        f"COPY (SELECT s.*{owner_cols} FROM (SELECT *, CASE WHEN CAST(first_purchase AS DATE) <= DATE {day} "
        f"THEN 'retained' ELSE 'new' END AS status FROM read_parquet({literal(str(src))})) s {join} "
        f"ORDER BY s.customer_id) TO {literal(str(out))} (FORMAT parquet, COMPRESSION zstd)"
    )


def _window_revenue(result: CompanyData, customers: Path, start: dt.date, end: dt.date,
                    by: list[str]) -> dict[str, dict[Any, float]]:
    """Revenue of the purchases in ``(start, end]`` by status, and by (owner, status) for each
    ``by`` column, counted in DuckDB over the validated log."""
    out: dict[str, dict[Any, float]] = {}
    with scratch_connection(memory_limit=result.engine.memory_limit, threads=result.engine.threads) as con:
        con.execute(
            f"""CREATE TEMP TABLE window_ AS SELECT c.*, t.amount FROM read_parquet({literal(str(result.accepted))}) t
                JOIN read_parquet({literal(str(customers))}) c ON t.customer_id = CAST(c.customer_id AS VARCHAR)
                WHERE CAST(t.date AS DATE) > DATE {literal(start.isoformat())}
                  AND CAST(t.date AS DATE) <= DATE {literal(end.isoformat())}"""
        )
        out["total"] = {s: float(v) for s, v in con.execute(
            "SELECT status, coalesce(sum(amount), 0) FROM window_ GROUP BY 1").fetchall()}
        for c in by:
            out[c] = {(o, s): float(v) for o, s, v in con.execute(
                f"SELECT {ident(c)}, status, coalesce(sum(amount), 0) FROM window_ GROUP BY 1, 2").fetchall()}
    return out


def write_movement(moved: Movement, out: str | Path) -> Path:
    """``movement.json`` (strict JSON), ``movement.csv`` and ``movement_by_<owner>.csv`` in
    ``out`` (aggregates only: no customer-level row); ``movement.json`` is written last."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(moved.table().reset_index(), folder / "movement.csv")
    for column in moved.by:
        write_csv(moved.by_owner(column).reset_index(), folder / f"movement_by_{column}.csv")
    return atomic_write_json(folder / "movement.json", moved.to_json_dict())
