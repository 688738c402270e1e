"""Readers for the bundled research data sets of the contractual and discrete-time models.

The files live in ``data/raw`` (see ``data/README.md`` for their origin and citations) and are
read as published: CSV, UTF-8, some with a byte-order mark. Each reader validates the file and
raises a :class:`~cbcv.core.errors.DataError` naming the file, row and column of the first problem;
each returned frame carries the file's name and sha256 in ``frame.attrs`` for provenance.

* :func:`read_two_segment_retention` and :func:`read_hardie_sample_retention`: survivor series
  of Fader & Hardie (2007), as survivor tables (``cohort``, ``t``, ``alive``) ready for
  :class:`cbcv.models.sbg.ShiftedBetaGeoModel`;
* :func:`read_multi_cohort_retention`: five annual cohorts of 10,000 subscribers, also as a
  survivor table (with the calendar ``year``);
* :func:`read_donations_binary` and :func:`donation_summary` (or :func:`read_donations` for
  both): the 1995 donor cohort of Fader, Hardie & Shang (2010) as the BG/BB recency/frequency
  summary (``x``, ``t_x``, ``n``) with ``count``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cbcv.core.errors import DataError
from cbcv.data.catalog import raw_data_dir
from cbcv.data.load import file_sha256

TWO_SEGMENT_FILE = "2-segment-retention.csv"
HARDIE_SAMPLE_FILE = "hardie-sample-retention.csv"
MULTI_COHORT_FILE = "contractual-setting-multi-cohort-data.csv"
DONATIONS_FILE = "1995_cohort_binary.csv"

#: Years of the donation file's 0/1 columns (1995 is the year of every donor's first gift).
DONATION_YEARS: tuple[int, ...] = tuple(range(1995, 2007))


def _resolve(path: str | Path | None, filename: str) -> Path:
    resolved = Path(path) if path is not None else raw_data_dir() / filename
    if not resolved.is_file():
        raise DataError(f"{resolved.name}: file not found in {resolved.parent}")
    return resolved


def _read_rows(path: Path) -> list[list[str]]:
    """All CSV rows of ``path`` as text (BOM dropped, blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: cannot read the file as UTF-8 text ({exc})") from exc
    return [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]


def _whole(path: Path, row: int, column: str, cell: str) -> int:
    """A cell as a whole number >= 0 (``row`` is the file's line number, header = 1)."""
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0 or value != int(value):
        raise DataError(
            f"{path.name}: row {row}, column {column!r}: expected a whole number >= 0, got {cell!r}"
        )
    return int(value)


def _stamp(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame.attrs["source"] = path.name
    frame.attrs["sha256"] = file_sha256(path, path.name)
    return frame


def _wide_series(path: Path, header: list[str]) -> list[list[str]]:
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path.name}: the file is empty")
    got = [c.strip() for c in rows[0]]
    if got[: len(header)] != header or len(got) != len(header):
        raise DataError(
            f"{path.name}: row 1: expected the header {','.join(header)}, got {','.join(got)}"
        )
    body = rows[1:]
    if not body:
        raise DataError(f"{path.name}: no data rows below the header")
    for k, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path.name}: row {k}: expected {len(header)} fields, got {len(row)}")
    return body


def _check_non_increasing(frame: pd.DataFrame, path: Path) -> None:
    for cohort, group in frame.groupby("cohort", sort=False):
        lost = -np.diff(group["alive"].to_numpy())
        if (lost < 0).any():
            at = group["t"].to_numpy()[int(np.flatnonzero(lost < 0)[0]) + 1]
            raise DataError(f"{path.name}: column {cohort!r}: the number alive rises at t = {at}")


def read_two_segment_retention(path: str | Path | None = None) -> pd.DataFrame:
    """The "Regular" and "High-end" survivor series of Fader & Hardie (2007).

    Returns a survivor table with columns ``cohort`` ("Regular", "High-end"), ``t`` (years since
    acquisition, 0 to 12; the file's ``Year`` minus 1) and ``alive`` (of 1,000 at ``t = 0``).
    The paper estimates the sBG on ``t <= 7`` (seven years of churn) and holds out the rest.
    """
    file = _resolve(path, TWO_SEGMENT_FILE)
    header = ["Year", "Regular", "High-end"]
    body = _wide_series(file, header)
    records = []
    for k, row in enumerate(body, start=2):
        year = _whole(file, k, "Year", row[0])
        for j, cohort in enumerate(header[1:], start=1):
            records.append((cohort, year - 1, _whole(file, k, cohort, row[j])))
    frame = pd.DataFrame(records, columns=["cohort", "t", "alive"])
    frame = frame.sort_values(["cohort", "t"], key=_cohort_order(header[1:]), kind="stable")
    frame = frame.reset_index(drop=True)
    _check_series(frame, file)
    return _stamp(frame, file)


def _cohort_order(cohorts: list[str]) -> Callable[[pd.Series], pd.Series]:
    """A ``sort_values`` key that orders ``cohort`` as in the file's header."""
    order = {c: i for i, c in enumerate(cohorts)}

    def key(column: pd.Series) -> pd.Series:
        return column.map(order) if column.name == "cohort" else column

    return key


def _check_series(frame: pd.DataFrame, path: Path) -> None:
    for cohort, group in frame.groupby("cohort", sort=False):
        ts = group["t"].to_numpy()
        if not np.array_equal(ts, np.arange(len(ts))):
            raise DataError(
                f"{path.name}: column {cohort!r}: the periods must run from the first without gaps"
            )
    _check_non_increasing(frame, path)


def read_hardie_sample_retention(path: str | Path | None = None) -> pd.DataFrame:
    """The single survivor series of ``hardie-sample-retention.csv`` (the "Regular" segment of
    Fader & Hardie 2007) as a survivor table: ``cohort`` ("Regular"), ``t`` (0 to 12), ``alive``.
    """
    file = _resolve(path, HARDIE_SAMPLE_FILE)
    body = _wide_series(file, ["t", "# Cust."])
    records = [
        ("Regular", _whole(file, k, "t", row[0]), _whole(file, k, "# Cust.", row[1]))
        for k, row in enumerate(body, start=2)
    ]
    frame = pd.DataFrame(records, columns=["cohort", "t", "alive"])
    _check_series(frame, file)
    return _stamp(frame, file)


def read_multi_cohort_retention(path: str | Path | None = None) -> pd.DataFrame:
    """Five annual cohorts (2003-2007) of 10,000 subscribers and how many remain each year.

    Returns a survivor table with columns ``cohort`` ("Cohort 1" ... "Cohort 5"), ``year`` (the
    calendar year), ``t`` (years since the cohort's acquisition, from 0) and ``alive``. A
    cohort's empty cells before its first year are skipped; an empty cell after its first year
    raises a DataError.
    """
    file = _resolve(path, MULTI_COHORT_FILE)
    rows = _read_rows(file)
    if len(rows) < 2:
        raise DataError(f"{file.name}: expected a header and at least one data row")
    header = [c.strip() for c in rows[0]]
    if not header or header[0] != "Year" or len(header) < 2:
        raise DataError(f"{file.name}: row 1: expected a header 'Year,<cohort>,...', got {rows[0]}")
    records = []
    started: dict[str, int] = {}
    for k, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{file.name}: row {k}: expected {len(header)} fields, got {len(row)}")
        year = _whole(file, k, "Year", row[0])
        for j, cohort in enumerate(header[1:], start=1):
            cell = row[j].strip()
            if not cell:
                if cohort in started:
                    raise DataError(
                        f"{file.name}: row {k}, column {cohort!r}: empty after the cohort began"
                    )
                continue
            started.setdefault(cohort, year)
            records.append((cohort, year, year - started[cohort], _whole(file, k, cohort, cell)))
    frame = pd.DataFrame(records, columns=["cohort", "year", "t", "alive"])
    frame = frame.sort_values(["cohort", "t"], key=_cohort_order(header[1:]), kind="stable")
    frame = frame.reset_index(drop=True)
    _check_series(frame, file)
    return _stamp(frame, file)


def read_donations_binary(path: str | Path | None = None) -> pd.DataFrame:
    """The 1995 donor cohort, one row per donor: ``donor_id`` (text) and one 0/1 column per year
    1995 to 2006 (named ``"1995"`` ... ``"2006"``). Every donor must have given in 1995."""
    file = _resolve(path, DONATIONS_FILE)
    rows = _read_rows(file)
    if not rows:
        raise DataError(f"{file.name}: the file is empty")
    width = 1 + len(DONATION_YEARS)
    names = ["donor_id", *map(str, DONATION_YEARS)]
    for k, row in enumerate(rows, start=1):
        if len(row) != width:
            raise DataError(f"{file.name}: row {k}: expected {width} fields, got {len(row)}")
    frame = pd.DataFrame(rows, columns=names)
    frame["donor_id"] = frame["donor_id"].str.strip()
    for name in names[1:]:
        cells = frame[name].str.strip()
        bad = ~cells.isin(["0", "1"])
        if bad.any():
            k = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{file.name}: row {k + 1}, column {name!r}: expected 0 or 1, "
                f"got {rows[k][names.index(name)]!r}"
            )
        frame[name] = (cells == "1").astype(np.int8)
    first = str(DONATION_YEARS[0])
    if (frame[first] != 1).any():
        k = int(np.flatnonzero((frame[first] != 1).to_numpy())[0])
        raise DataError(
            f"{file.name}: row {k + 1}, column {first!r}: every donor's first gift is in {first}"
        )
    if frame["donor_id"].duplicated().any():
        k = int(np.flatnonzero(frame["donor_id"].duplicated().to_numpy())[0])
        raise DataError(
            f"{file.name}: row {k + 1}, column 'donor_id': duplicate id {frame['donor_id'][k]!r}"
        )
    return _stamp(frame, file)


def donation_summary(
    binary: pd.DataFrame, *, n_calibration: int = 6, aggregate: bool = True
) -> pd.DataFrame:
    """BG/BB summaries of a 0/1 incidence table (``donor_id`` then one column per period, the
    first being the period of the first transaction).

    The ``n_calibration`` periods after the first are the calibration period: ``x`` is the
    number of them with a transaction, ``t_x`` the last one (1..n, 0 when ``x = 0``) and ``n``
    equals ``n_calibration``. With ``aggregate`` (default) returns one row per distinct
    ``(x, t_x, n)`` with ``count`` (the form of Fader, Hardie & Shang 2010, Table 1); otherwise
    one row per donor with ``donor_id``, ``x``, ``t_x``, ``n``, ``x_holdout`` (transactions in
    the remaining periods) and ``n_holdout``.
    """
    periods = [c for c in binary.columns if c != "donor_id"]
    if not 1 <= n_calibration <= len(periods) - 1:
        raise DataError(
            f"donation summary: n_calibration must be between 1 and {len(periods) - 1}, "
            f"got {n_calibration}"
        )
    incidence = binary[periods].to_numpy(dtype=np.int64)
    calib = incidence[:, 1 : n_calibration + 1]
    x = calib.sum(axis=1)
    last = np.where(calib.any(axis=1), n_calibration - np.argmax(calib[:, ::-1], axis=1), 0)
    n = np.full(len(binary), n_calibration, dtype=np.int64)
    if not aggregate:
        return pd.DataFrame(
            {
                "donor_id": binary["donor_id"].to_numpy()
                if "donor_id" in binary
                else np.arange(len(binary)),
                "x": x,
                "t_x": last,
                "n": n,
                "x_holdout": incidence[:, n_calibration + 1 :].sum(axis=1),
                "n_holdout": len(periods) - 1 - n_calibration,
            }
        )
    summary = pd.DataFrame({"x": x, "t_x": last, "n": n})
    counts = summary.value_counts(sort=False).rename("count").reset_index()
    return counts.sort_values(["x", "t_x"], ascending=[False, False], kind="stable").reset_index(
        drop=True
    )


def read_donations(n_calibration: int = 6, path: str | Path | None = None) -> pd.DataFrame:
    """The 1995 donor cohort as BG/BB's aggregated (``x``, ``t_x``, ``n``, ``count``) summary,
    calibration 1996 to ``1995 + n_calibration`` (the paper: 6 opportunities, 1996-2001)."""
    binary = read_donations_binary(path)
    summary = donation_summary(binary, n_calibration=n_calibration)
    summary.attrs.update(binary.attrs)
    return summary


#: The demo subscription company's records, derived from :data:`MULTI_COHORT_FILE` by
#: :func:`multi_cohort_subscription_records` (``data/README.md``).
SUBSCRIPTION_DEMO_FILE = "subscriptions-demo.csv"
#: The demo's illustrative plans: (name, yearly price, share of subscribers).
DEMO_PLANS: tuple[tuple[str, float, float], ...] = (("standard", 120.0, 0.7), ("premium", 240.0, 0.3))


def multi_cohort_subscription_records(table: pd.DataFrame | None = None, *, seed: int = 2007) -> pd.DataFrame:
    """Subscription records (``customer_id``, ``start``, ``end``, ``price``, ``plan``) of the
    five-cohort survivor table (:func:`read_multi_cohort_retention`), one row per subscriber.

    Faithful to the table: cohort ``c`` acquired in year ``Y`` has ``alive[0]`` subscribers, of
    whom ``alive[t - 1] - alive[t]`` pay ``t`` yearly fees and leave (``end`` = start + ``t``
    years) and ``alive[last]`` are still subscribed at the end of the last year (``end`` empty:
    right-censored at 2007-12-31, after ``last`` renewals). The table counts survivors by year
    of tenure, so the starts are spread evenly over the acquisition year (subscriber ``j`` of
    ``n`` on day ``floor(j * days / n)``) and every count of the table is the count of those who
    made ``t`` renewals. Which subscriber gets which duration is a seeded permutation
    (independent of the start day). Prices are illustrative (:data:`DEMO_PLANS`: a plan drawn
    with the given shares, independently of the duration); the table has none."""
    frame = read_multi_cohort_retention() if table is None else table
    rng = np.random.default_rng(seed)
    names = np.array([p[0] for p in DEMO_PLANS])
    prices = np.array([p[1] for p in DEMO_PLANS])
    shares = np.array([p[2] for p in DEMO_PLANS])
    parts = []
    for cohort, group in frame.groupby("cohort", sort=False):
        group = group.sort_values("t")
        alive = group["alive"].to_numpy(dtype=np.int64)
        year = int(group["year"].iloc[0])
        n, last = int(alive[0]), int(group["t"].iloc[-1])
        paid = np.repeat(np.arange(1, last + 1), alive[:-1] - alive[1:])
        years = np.concatenate([paid, np.full(alive[-1], -1)])  # -1: still subscribed
        years = years[rng.permutation(n)]
        first = pd.Timestamp(year, 1, 1)
        days = (pd.Timestamp(year + 1, 1, 1) - first).days
        start = first + pd.to_timedelta((np.arange(n) * days) // n, unit="D")
        end = pd.Series([s + pd.DateOffset(years=int(y)) if y > 0 else pd.NaT
                         for s, y in zip(start, years, strict=True)], dtype="datetime64[ns]")
        plan = rng.choice(len(names), size=n, p=shares)
        label = str(cohort).replace("Cohort ", "C")
        parts.append(pd.DataFrame({
            "customer_id": [f"{label}-{j:05d}" for j in range(1, n + 1)],
            "start": start, "end": end.to_numpy(), "price": prices[plan], "plan": names[plan],
        }))
    return pd.concat(parts, ignore_index=True)


def write_subscription_demo(path: str | Path) -> Path:
    """Write :func:`multi_cohort_subscription_records` as the demo's CSV (ISO dates, an empty
    ``end`` while subscribed; spreadsheet-safe, :func:`cbcv.core.safe_csv.write_csv`)."""
    from cbcv.core.safe_csv import write_csv

    records = multi_cohort_subscription_records()
    out = records.assign(start=records["start"].dt.strftime("%Y-%m-%d"), end=records["end"].dt.strftime("%Y-%m-%d"))
    return write_csv(out, Path(path))
