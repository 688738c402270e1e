"""Every JSON cbcv writes is strict JSON; every CSV of user text is spreadsheet-safe (issue 13,
items 5 and 6)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cbcv.core.cache import atomic_write_json, content_key
from cbcv.core.jsonio import NON_FINITE_KEY, dumps_strict
from cbcv.core.safe_csv import safe_frame, spreadsheet_safe, write_csv

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cbcv"


def strict_loads(text: str) -> Any:
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity``."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_strict_parser_refuses_what_plain_json_dumps_writes() -> None:
    with pytest.raises(ValueError, match="Infinity"):
        strict_loads(json.dumps({"x": math.inf}))


# -- the writer -----------------------------------------------------------------------------------
@dataclasses.dataclass
class _Record:
    total: float
    day: dt.date


def test_dumps_strict_writes_non_finite_numbers_as_null_and_converts_numpy() -> None:
    value = {
        "inf": math.inf, "ninf": -math.inf, "nan": math.nan,
        "np": [np.float64("nan"), np.float32(np.inf), np.int64(7), np.bool_(True), np.float64(2.5)],
        "array": np.array([[1.0, np.nan], [np.inf, 4.0]]),
        "scalar_array": np.array(np.inf),
        "pandas": [pd.NA, pd.NaT, pd.Timestamp("2020-01-02 03:04:05"), np.datetime64("NaT")],
        "series": pd.Series([1.5, np.nan]),
        "dataclass": _Record(-math.inf, dt.date(1997, 1, 1)),
        "nested": {"deep": ({"x": math.nan},)},
        "when": dt.datetime(2020, 1, 2, 3, 4),
        "path": Path("a/b.csv"),
        np.int64(3): "numpy key",
    }
    out = strict_loads(dumps_strict(value, note=True))
    assert out["inf"] is out["ninf"] is out["nan"] is None
    assert out["np"] == [None, None, 7, True, 2.5]
    assert out["array"] == [[1.0, None], [None, 4.0]]
    assert out["scalar_array"] is None
    assert out["pandas"] == [None, None, "2020-01-02T03:04:05", None]
    assert out["series"] == [1.5, None]
    assert out["dataclass"] == {"total": None, "day": "1997-01-01"}
    assert out["nested"] == {"deep": [{"x": None}]}
    assert out["when"] == "2020-01-02T03:04:00" and out["path"] == str(Path("a/b.csv")) and out["3"] == "numpy key"
    assert set(out[NON_FINITE_KEY]) == {
        "inf", "ninf", "nan", "np[0]", "np[1]", "array[0][1]", "array[1][0]", "scalar_array",
        "series[1]", "dataclass.total", "nested.deep[0].x",
    }


def test_dumps_strict_adds_no_note_when_every_number_is_finite() -> None:
    assert strict_loads(dumps_strict({"a": 1.0, "b": [np.float64(2.0)]}, note=True)) == {"a": 1.0, "b": [2.0]}


def test_atomic_write_json_and_content_key_accept_non_finite_values(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "r.json", {"total": np.float64(np.inf), "n": np.int64(2)})
    assert strict_loads(path.read_text(encoding="utf-8")) == {"total": None, "n": 2, NON_FINITE_KEY: ["total"]}
    assert not list(tmp_path.glob(".*tmp*"))  # written under a temporary name and renamed
    assert content_key({"x": math.nan}) == content_key({"x": None})  # a key, never a crash


# -- the pipeline ---------------------------------------------------------------------------------
def _overflow_csv(tmp_path: Path) -> Path:
    path = tmp_path / "overflow.csv"
    path.write_text("customer_id,date,amount\nA,2020-01-01,1.5e308\nA,2020-01-02,1.5e308\nB,2020-01-03,5\n")
    return path


def test_reconciliation_of_an_overflowing_total_is_strict_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Amounts within the (raised) cap whose sum overflows to infinity: the real loader and
    writer, in memory and out of core."""
    from cbcv.data import rules
    from cbcv.pipeline.workflow import load_transactions_for, validate_source, write_load_outputs

    monkeypatch.setattr(rules, "MAX_ABS_AMOUNT", 1.7e308)
    source = _overflow_csv(tmp_path)
    result = load_transactions_for(str(source))
    assert math.isinf(result.reconciliation.total_amount)  # the condition this guards against
    rec, _ = write_load_outputs(result, tmp_path / "mem")
    out = strict_loads(rec.read_text(encoding="utf-8"))
    assert out["total_amount"] is None and out[NON_FINITE_KEY] == ["total_amount"]
    assert out["rows_read"] == 3 == out["rows_accepted"] + out["rows_rejected"]

    validated = validate_source(str(source), tmp_path / "ooc", None)
    rec, _ = write_load_outputs(validated, tmp_path / "ooc")
    assert strict_loads(rec.read_text(encoding="utf-8"))["total_amount"] is None
    for written in (tmp_path / "ooc").rglob("*.json"):
        strict_loads(written.read_text(encoding="utf-8"))


def test_write_load_outputs_with_non_finite_figures(tmp_path: Path) -> None:
    from cbcv.pipeline.workflow import load_transactions_for, write_load_outputs

    source = tmp_path / "t.csv"
    source.write_text("customer_id,date,amount\nA,2020-01-01,5\nA,2020-01-02,-3\n")
    result = load_transactions_for(str(source))
    bad = dataclasses.replace(
        result.reconciliation, total_amount=np.float64(-np.inf),
        returns=dataclasses.replace(result.reconciliation.returns, amount=math.nan),
    )
    rec, _ = write_load_outputs(dataclasses.replace(result, reconciliation=bad), tmp_path / "out")
    out = strict_loads(rec.read_text(encoding="utf-8"))
    assert out["total_amount"] is None and out["returns"]["amount"] is None
    assert out[NON_FINITE_KEY] == ["returns.amount", "total_amount"]


def test_no_json_writer_bypasses_the_strict_one() -> None:
    """Only :mod:`cbcv.core.jsonio` calls ``json.dump``/``json.dumps``; nothing asks for NaN, writes
    ``to_json``, or writes a CSV outside :mod:`cbcv.core.safe_csv`."""
    patterns = {
        "json.dump": re.compile(r"\bjson\.dumps?\s*\("),
        "bare dump": re.compile(r"from\s+json\s+import[^\n]*\bdumps?\b"),
        "to_json": re.compile(r"\.to_json\s*\("),
        "allow_nan": re.compile(r"allow_nan\s*=\s*True"),
        "to_csv": re.compile(r"\.to_csv\s*\("),
        "csv writer": re.compile(r"\bcsv\.(?:writer|DictWriter)\s*\("),
    }
    allowed = {"json.dump": {"jsonio.py"}, "to_csv": {"safe_csv.py"}}
    offenders = [
        f"{path.relative_to(SRC)}: {name}"
        for path in sorted(SRC.rglob("*.py"))
        for name, pattern in patterns.items()
        if path.name not in allowed.get(name, set()) and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# -- spreadsheet-safe CSV -------------------------------------------------------------------------
DANGEROUS = [
    "=1+1", "+cmd", "-1+2", "-2+3*cmd|' /C calc'!A0", "@SUM(A1:A2)", "\t=1", "\r=1", "=HYPERLINK(\"x\")",
    " =1+1", "\n=1", "＝1+1", "-", "+", "@", "-1,5", "-1_234.50",
]
HARMLESS = ["-40", "+3.5", "-1.2e3", "12", ".5", "abc", "1+2", "1997-01-01", "x=1", "", "'=already"]


@pytest.mark.parametrize("text", DANGEROUS)
def test_formula_text_is_prefixed_with_a_quote(text: str) -> None:
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize("text", HARMLESS)
def test_plain_numbers_and_harmless_text_are_unchanged(text: str) -> None:
    assert spreadsheet_safe(text) == text


def test_safe_frame_changes_text_cells_and_names_only() -> None:
    frame = pd.DataFrame({"=id": ["=1", "ok", None], "v": [-1.5, 2.0, np.nan],
                          "s": pd.array(["@x", pd.NA, "-7"], dtype="string"),
                          "c": pd.Categorical(["+a", "b", "+a"])})
    out = safe_frame(frame)
    assert list(out.columns) == ["'=id", "v", "s", "c"]
    assert out["'=id"].tolist()[:2] == ["'=1", "ok"] and pd.isna(out["'=id"].iloc[2])
    assert out["v"].equals(frame["v"])
    assert out["s"].tolist()[0] == "'@x" and pd.isna(out["s"].iloc[1]) and out["s"].iloc[2] == "-7"
    assert out["c"].tolist() == ["'+a", "b", "'+a"]
    assert frame["=id"].iloc[0] == "=1"  # the caller's frame is left alone


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_write_csv_round_trips_through_the_csv_module(tmp_path: Path) -> None:
    frame = pd.DataFrame({"customer_id": [*DANGEROUS, *HARMLESS], "n": range(len(DANGEROUS) + len(HARMLESS))})
    rows = _read_rows(write_csv(frame, tmp_path / "t.csv"))
    assert [r["customer_id"] for r in rows] == ["'" + t for t in DANGEROUS] + HARMLESS
    assert [int(r["n"]) for r in rows] == list(range(len(rows)))


HOSTILE_AMOUNTS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3*cmd|' /C calc'!A0", "@SUM(A1:A9)", "\t=1", "abc"]
HOSTILE_DATES = ["=NOW()", "-40", "+3.5", "@x"]


def _hostile_csv(tmp_path: Path) -> Path:
    lines = ["customer_id,date,amount"]
    lines += [f'C{i},2020-01-0{i + 1},"{raw}"' for i, raw in enumerate(HOSTILE_AMOUNTS)]
    lines += [f"D{i},{raw},5" for i, raw in enumerate(HOSTILE_DATES)]
    lines += ["=cmd|x,2020-01-01,5", "ok,2020-01-02,-40"]
    path = tmp_path / "hostile.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _expected_raw_values() -> dict[str, str]:
    return {raw: spreadsheet_safe(raw) for raw in HOSTILE_AMOUNTS + HOSTILE_DATES}


def _check_rejections(rows: list[dict[str, str]]) -> None:
    got = {r["raw_value"] for r in rows}
    expected = _expected_raw_values()
    assert got == set(expected.values())
    assert {"'=1+1", "'+cmd|' /C calc'!A0", "'-2+3*cmd|' /C calc'!A0", "'@SUM(A1:A9)", "'\t=1",
            "'=NOW()", "'@x"} <= got
    assert {"abc", "-40", "+3.5"} <= got  # harmless text and plain numbers as written
    assert [v for r in rows for v in r.values() if spreadsheet_safe(v) != v] == []  # every cell safe


def test_write_load_outputs_neutralises_formula_raw_values(tmp_path: Path) -> None:
    from cbcv.pipeline.workflow import load_transactions_for, write_load_outputs

    result = load_transactions_for(str(_hostile_csv(tmp_path)))
    assert "=cmd|x" in set(result.transactions["customer_id"])  # data is kept as written
    _, rej = write_load_outputs(result, tmp_path / "out")
    _check_rejections(_read_rows(rej))


def test_cli_audit_neutralises_formula_raw_values(tmp_path: Path) -> None:
    source = _hostile_csv(tmp_path)
    res = subprocess.run([sys.executable, "-m", "cbcv.cli", "audit", str(source), "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    _check_rejections(_read_rows(out / "rejections.csv"))
    rec = strict_loads((out / "reconciliation.json").read_text(encoding="utf-8"))
    assert rec["rows_read"] == rec["rows_accepted"] + rec["rows_rejected"] == len(HOSTILE_AMOUNTS + HOSTILE_DATES) + 2
    for written in out.rglob("*.csv"):  # no cell of any table the audit wrote starts a formula
        for row in _read_rows(written):
            assert all(spreadsheet_safe(v) == v for v in row.values()), (written, row)
