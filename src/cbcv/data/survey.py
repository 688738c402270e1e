"""Survey answers (Net Promoter Score) as a customer covariate.

A survey file has one row per answer: ``customer_id``, ``date``, ``score`` (a whole number 0–10)
and optionally ``touchpoint`` (at purchase, after a service call, ...). :func:`nps_groups` checks
every row in DuckDB (a missing id, an unparseable date or a score that is not a whole number from
0 to 10 is one line naming the file, the row and the column), keeps each customer's latest answer
on or before the calibration end (ties: the later row) and maps its score to the customer's group:
``promoter`` (9–10), ``passive`` (7–8), ``detractor`` (0–6). Customers who never answered by then
are ``not surveyed`` (:func:`survey_covariate`). The counts reconcile: every answer is used,
superseded by a later one, or after the calibration end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cbcv.core.errors import DataError
from cbcv.data._sql import ident, literal, scratch_connection
from cbcv.data.covariates import CovariateTable
from cbcv.data.load import stage_table
from cbcv.data.staged import ROW

#: The covariate's levels, the reference first.
NPS_LEVELS: tuple[str, ...] = ("passive", "promoter", "detractor", "not surveyed")
#: The default covariate column name.
NPS_COLUMN = "nps"


@dataclass(frozen=True)
class SurveyGroups:
    """Each answering customer's group, and what became of every answer."""

    groups: pd.DataFrame  # customer_id, score, date, touchpoint, group
    source: str
    sha256: str | None
    answers: int
    used: int
    superseded: int
    after_calibration: int

    def counts(self) -> dict[str, int]:
        return {"answers": self.answers, "used": self.used, "superseded": self.superseded,
                "after_calibration_end": self.after_calibration}


def nps_groups(source: Any, calibration_end: dt.date, *, columns: dict[str, str] | None = None,
               source_name: str | None = None) -> SurveyGroups:
    """The survey ``source`` (CSV, Parquet or a DataFrame; ``columns`` maps ``customer_id``,
    ``date``, ``score``, ``touchpoint`` to its column names) read as the module docstring says."""
    names = {"customer_id": "customer_id", "date": "date", "score": "score", **(columns or {})}
    with scratch_connection() as con:
        staged = stage_table(con, source, {k: names[k] for k in ("customer_id", "date", "score")}, source_name)
        name = staged.name
        staged.refuse_malformed()
        cols = staged.columns
        touch = names.get("touchpoint", "touchpoint")
        touch_sql = f"nullif(trim({ident(touch)}), '')" if touch in staged.all_columns else "NULL"
        con.execute(f"""
            CREATE TEMP TABLE answers AS SELECT {ROW} AS row_no,
                nullif(trim({ident(cols['customer_id'])}), '') AS customer_id,
                nullif(trim({ident(cols['date'])}), '') AS date_text,
                try_cast(nullif(trim({ident(cols['date'])}), '') AS DATE) AS date,
                nullif(trim({ident(cols['score'])}), '') AS score_text,
                try_cast(nullif(trim({ident(cols['score'])}), '') AS DOUBLE) AS score,
                {touch_sql} AS touchpoint
            FROM rows""")
        checks = (
            ("customer_id IS NULL", cols["customer_id"], "missing customer id"),
            ("date IS NULL", cols["date"], "not a date (YYYY-MM-DD)"),
            ("score IS NULL OR score <> round(score) OR score < 0 OR score > 10", cols["score"],
             "not a whole number from 0 to 10"),
        )
        for where, column, why in checks:
            bad = con.execute(f"SELECT row_no, coalesce(score_text, date_text, '') FROM answers WHERE {where} "
                          "ORDER BY row_no LIMIT 1").fetchone()
            if bad:
                raise DataError(f"{name}: row {bad[0]} column {column!r}: {why}")
        cut = literal(calibration_end.isoformat())
        latest = con.execute(f"""
            SELECT customer_id, arg_max(score, (date, row_no)) AS score, max(date) AS date,
                   arg_max(touchpoint, (date, row_no)) AS touchpoint, count(*) AS n
            FROM answers WHERE date <= DATE {cut} GROUP BY customer_id ORDER BY customer_id""").df()
        total, late = con.execute(f"SELECT count(*), count(*) FILTER (WHERE date > DATE {cut}) FROM answers").fetchone()
    latest["score"] = latest["score"].astype(int)
    latest["group"] = pd.cut(latest["score"], [-1, 6, 8, 10], labels=["detractor", "passive", "promoter"]).astype(str)
    used = len(latest)
    superseded = int(latest.pop("n").sum()) - used
    return SurveyGroups(latest, name, staged.sha256, int(total), used, superseded, int(late))


def survey_covariate(customers: pd.Series, survey: SurveyGroups, column: str = NPS_COLUMN) -> CovariateTable:
    """A covariate table of every customer in ``customers`` (ids): the survey group, or
    ``not surveyed`` for those without an answer by the calibration end."""
    ids = customers.astype(str).drop_duplicates()
    by_id = survey.groups.set_index(survey.groups["customer_id"].astype(str))["group"]
    frame = pd.DataFrame({"customer_id": ids.to_numpy(),
                          column: by_id.reindex(ids.to_numpy()).fillna(NPS_LEVELS[-1]).to_numpy()})
    return CovariateTable(frame, survey.source, survey.sha256, len(frame))
