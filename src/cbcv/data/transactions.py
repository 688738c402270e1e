"""The transaction contract and the customer-day view used by every downstream step.

A validated transaction log is a table with one row per source row that was accepted:

``customer_id`` (string), ``date`` (day, ``datetime64``), ``amount`` (float; negative for a return),
``source_row`` (1-based data-row number in the source, header excluded).

Purchase occasions are customer-days, as in the literature (Fader, Hardie & Lee 2005): all rows
of one customer on one day are one transaction whose spend is their net amount, so returns are
netted against purchases of the same day. A customer-day with only returns (every amount < 0) is
not a purchase occasion and is dropped from the customer-day view; the loader's reconciliation
counts such days.
"""

from __future__ import annotations

import duckdb
import pandas as pd

TRANSACTION_COLUMNS: tuple[str, ...] = ("customer_id", "date", "amount")

#: SQL turning a relation named ``{source}`` with the transaction contract's columns into
#: customer-days: ``customer_id, date, amount, n_rows``. Written once, used by the pandas helper
#: below and by the SQL summaries.
DAILY_SQL = """
SELECT customer_id,
       CAST(date AS DATE) AS date,
       SUM(amount) AS amount,
       COUNT(*) AS n_rows
FROM {source}
GROUP BY customer_id, CAST(date AS DATE)
HAVING MAX(amount) >= 0
"""


def daily_sql(source: str) -> str:
    """The customer-day query over the relation or table expression ``source``."""
    return DAILY_SQL.format(source=source)


def to_daily(transactions: pd.DataFrame) -> pd.DataFrame:
    """Merge a transaction log into customer-days (returns netted, return-only days dropped).

    Returns a DataFrame with ``customer_id`` (str), ``date`` (datetime64[ns], midnight),
    ``amount`` (float, net spend of the day) and ``n_rows`` (source rows merged), sorted by
    customer and date.
    """
    missing = [c for c in TRANSACTION_COLUMNS if c not in transactions.columns]
    if missing:
        raise KeyError(f"transactions lack column(s) {missing}; expected {list(TRANSACTION_COLUMNS)}")
    con = duckdb.connect()
    try:
        con.register("tx_input", transactions[list(TRANSACTION_COLUMNS)])
        out = con.execute(daily_sql("tx_input") + " ORDER BY customer_id, date").df()
    finally:
        con.close()
    out["customer_id"] = out["customer_id"].astype(str)
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["amount"] = out["amount"].astype(float)
    out["n_rows"] = out["n_rows"].astype("int64")
    return out.reset_index(drop=True)
