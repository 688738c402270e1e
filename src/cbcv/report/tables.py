"""Tables as the report shows them: plain labels, money and percentages formatted, no ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler


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
            ("return-only customer-days (not purchases)", f"{ret['return_only_days']:,}"),
        ]
    rows += [
        ("customers", f"{rec['n_customers']:,}"),
        ("purchase occasions (customer-days)", f"{rec['customer_days']:,}"),
        ("first date", str(rec["first_date"])),
        ("last date", str(rec["last_date"])),
        ("net amount", f"{rec['total_amount']:,.2f} {currency}"),
        ("rows in = accepted + rejected", "yes" if rec["rows_read"] == rec["rows_accepted"] + rec["rows_rejected"] else "NO"),
    ]
    return pd.DataFrame(rows, columns=["item", "value"]).set_index("item")


def styled(
    table: pd.DataFrame,
    *,
    money: Iterable[str] = (),
    pct: Iterable[str] = (),
    integer: Iterable[str] = (),
    decimals: Mapping[str, int] | None = None,
    hide_index: bool = True,
) -> Styler:
    """A Styler with thousands separators, money to 2 decimals and shares as percentages."""
    fmt: dict[str, str] = {}
    cols = set(table.columns)
    fmt.update({c: "{:,.2f}" for c in money if c in cols})
    fmt.update({c: "{:.1%}" for c in pct if c in cols})
    fmt.update({c: "{:,.0f}" for c in integer if c in cols})
    fmt.update({c: f"{{:,.{d}f}}" for c, d in (decimals or {}).items() if c in cols})
    s = table.style.format(fmt, na_rep="–")
    return s.hide(axis="index") if hide_index else s
