"""The transaction contract and the customer-day view used by every downstream step.

A validated transaction log is a table with one row per source row that was accepted:

``customer_id`` (string), ``date`` (day, ``datetime64``), ``amount`` (float; negative for a return),
``source_row`` (1-based data-row number in the source, header excluded).

Purchase occasions are customer-days, as in the literature (Fader, Hardie & Lee 2005): all rows
of one customer on one day are one transaction whose spend is their net amount, so returns are
netted against purchases of the same day. **A purchase is a customer-day with a positive net
amount**: a day whose rows net to zero or less (only returns, zero amounts, or returns larger
than that day's purchases) is not a purchase occasion and is dropped from the customer-day view,
so it neither counts as a transaction nor as a first purchase; the loader's reconciliation counts
such days (``returns.non_positive_days``).

Some research data sets count zero-priced purchases (free items, promotions) as purchase
occasions: the CDNOW papers' 2,357 customers include 8 whose only purchases cost $0. With
``zero_amount_purchases=True`` (``data.zero_amount_purchases`` in a company config) a day whose
rows are all zero-priced and that has no return also counts, with spend 0; days netting to less
than zero, or to zero because of a return, never do.
"""

from __future__ import annotations

import duckdb
import pandas as pd

TRANSACTION_COLUMNS: tuple[str, ...] = ("customer_id", "date", "amount")

#: SQL turning a relation named ``{source}`` with the transaction contract's columns into
#: customer-days: ``customer_id, date, amount, n_rows``; ``{rule}`` is the purchase rule.
#: Written once, used by the pandas helper below, the loader's reconciliation, the audit and
#: the SQL summaries on DuckDB and Spark.
DAILY_SQL = """
SELECT customer_id,
       CAST(date AS DATE) AS date,
       SUM(amount) AS amount,
       COUNT(*) AS n_rows
FROM {source}
GROUP BY customer_id, CAST(date AS DATE)
HAVING {rule}
"""
#: The purchase rule: a positive net amount ...
POSITIVE_NET = "SUM(amount) > 0"
#: ... or, with ``zero_amount_purchases``, zero-priced rows and no return.
POSITIVE_OR_ZERO_PRICED = "SUM(amount) > 0 OR (SUM(amount) = 0 AND MIN(amount) >= 0)"


def daily_sql(source: str, zero_amount_purchases: bool = False) -> str:
    """The customer-day query over the relation or table expression ``source``."""
    rule = POSITIVE_OR_ZERO_PRICED if zero_amount_purchases else POSITIVE_NET
    return DAILY_SQL.format(source=source, rule=rule)


def reconciliation_sql(source: str, zero_amount_purchases: bool, exact_sum: str = "fsum") -> str:
    """One row of figures over the accepted rows ``source`` (DuckDB and Spark SQL alike):
    ``n_customers, first_day, last_day, total, return_rows, returned`` (as a positive amount),
    ``all_days`` (distinct customer-days), ``customer_days`` (purchases under the rule) and
    ``netted`` (purchase days with a return netted). ``exact_sum``: the dialect's sum of
    doubles (:class:`cbcv.data._sql.Dialect`)."""
    return f"""
        WITH d AS ({daily_sql(source, zero_amount_purchases)}),
        r AS (SELECT DISTINCT customer_id, CAST(date AS DATE) AS date FROM {source}
              WHERE amount < 0)
        SELECT count(DISTINCT customer_id) AS n_customers, min(date) AS first_day,
               max(date) AS last_day, coalesce({exact_sum}(amount), 0) AS total,
               count(*) FILTER (WHERE amount < 0) AS return_rows,
               coalesce(-{exact_sum}(amount) FILTER (WHERE amount < 0), 0) AS returned,
               (SELECT count(*) FROM (SELECT DISTINCT customer_id, CAST(date AS DATE)
                                      FROM {source})) AS all_days,
               (SELECT count(*) FROM d) AS customer_days,
               (SELECT count(*) FROM d JOIN r USING (customer_id, date)) AS netted
        FROM {source}
    """


def to_daily(transactions: pd.DataFrame, zero_amount_purchases: bool = False) -> pd.DataFrame:
    """Merge a transaction log into customer-days (returns netted; days netting to zero or less dropped).

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
        days = daily_sql("tx_input", zero_amount_purchases)
        out = con.execute(days + " ORDER BY customer_id, date").df()
    finally:
        con.close()
    out["customer_id"] = out["customer_id"].astype(str)
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["amount"] = out["amount"].astype(float)
    out["n_rows"] = out["n_rows"].astype("int64")
    return out.reset_index(drop=True)
