"""Tables as the report shows them: plain labels, money and percentages formatted, no ids."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from cbcv.core.escape import html_text


def reconciliation_frame(rec: Mapping[str, Any], currency: str = "USD") -> pd.DataFrame:
    """The loader's reconciliation (``Reconciliation.to_dict()``) as a two-column table:
    rows read = accepted + rejected, rejections by reason, returns netted."""
    rows: list[tuple[str, str]] = [
        ("source", str(rec["source"])),
        ("rows read", f"{rec['rows_read']:,}"),
        ("rows accepted", f"{rec['rows_accepted']:,}"),
        ("rows rejected", f"{rec['rows_rejected']:,}"),
    ]
    rows += [(f"  rejected: {k.replace('_', ' ')}", f"{v:,}") for k, v in rec["rejected_by_reason"].items()]
    ret = rec.get("returns") or {}
    if ret:
        rows += [
            ("return rows (netted)", f"{ret['rows']:,}"),
            ("returned amount", f"{ret['amount']:,.2f} {currency}"),
            ("customer-days with a return netted", f"{ret['customer_days_netted']:,}"),
            ("customer-days that are not purchases", f"{ret['non_positive_days']:,}"),
        ]
    rule = "a customer-day with a positive net amount"
    if rec.get("zero_amount_purchases"):
        rule += ", or with zero-amount rows only"
    rows.append(("purchase rule", rule))
    rows += [
        ("customers", f"{rec['n_customers']:,}"),
        ("purchase occasions (customer-days)", f"{rec['customer_days']:,}"),
        ("first date", str(rec["first_date"])),
        ("last date", str(rec["last_date"])),
        ("net amount", f"{rec['total_amount']:,.2f} {currency}"),
        ("rows in = accepted + rejected", "yes" if rec["rows_read"] == rec["rows_accepted"] + rec["rows_rejected"] else "NO"),
    ]
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


def _escaped_axis_names(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its index and column *names* HTML-escaped (Styler escapes labels, not names)."""
    out = table.copy(deep=False)
    out.index = out.index.set_names([None if n is None else html_text(n) for n in out.index.names])
    out.columns = out.columns.set_names([None if n is None else html_text(n) for n in out.columns.names])
    return out


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def three_significant(value: float) -> str:
    """A number to three significant digits: in fixed notation with thousands separators from
    0.01 to 100,000 (``0.0123``, ``1.00``, ``18,030``), else as a power of ten (``4.54×10⁻⁵``),
    so that values spanning orders of magnitude, such as prior intervals, read at a glance."""
    if not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    if -2 <= exponent < 5:
        return f"{value:,.{max(0, 2 - exponent)}f}"
    mantissa = value / 10.0**exponent
    if round(abs(mantissa), 2) >= 10:  # 9.996 rounds up a decade
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.2f}×10{str(exponent).translate(_SUPERSCRIPT)}"


def styled(
    table: pd.DataFrame,
    *,
    money: Iterable[str] = (),
    pct: Iterable[str] = (),
    integer: Iterable[str] = (),
    decimals: Mapping[str, int] | None = None,
    significant: Iterable[str] = (),
    hide_index: bool = True,
) -> Styler:
    """A Styler with thousands separators, money to 2 decimals and shares as percentages; every
    cell and label HTML-escaped."""
    fmt: dict[str, Any] = {}
    cols = set(table.columns)
    fmt.update({c: "{:,.2f}" for c in money if c in cols})
    fmt.update({c: "{:.1%}" for c in pct if c in cols})
    fmt.update({c: "{:,.0f}" for c in integer if c in cols})
    fmt.update({c: f"{{:,.{d}f}}" for c, d in (decimals or {}).items() if c in cols})
    fmt.update({c: three_significant for c in significant if c in cols})
    # text from configs and data (scenario names, column names) is shown as written, never as HTML
    s = _escaped_axis_names(table).style.format(fmt, na_rep="–", escape="html")
    s = s.format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    return s.hide(axis="index") if hide_index else s
