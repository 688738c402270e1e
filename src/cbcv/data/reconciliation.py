"""What a validation read, kept and rejected: the reconciliation of a transaction log's rows, the
same on DuckDB (:mod:`cbcv.data.load`) and Spark (:mod:`cbcv.data.spark`).

Both engines count rows into :class:`RowCounts`, run
:func:`cbcv.data.transactions.reconciliation_sql` on the accepted rows and build the
:class:`Reconciliation` with :func:`reconciliation_of`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol


@dataclass(frozen=True)
class ReturnsSummary:
    """Returns (negative amounts) among the accepted rows.

    ``amount`` is the total returned, as a positive number. ``customer_days_netted`` counts the
    customer-days on which a return was netted against a purchase of the same day;
    ``non_positive_days`` counts customer-days whose rows net to zero or less (only returns, zero
    amounts, or returns larger than the day's purchases): they are not purchase occasions and are
    dropped from the customer-day view, so ``customer_days + non_positive_days`` is the number of
    distinct (customer, day) pairs among the accepted rows.
    """

    rows: int
    amount: float
    customer_days_netted: int
    non_positive_days: int


@dataclass(frozen=True)
class Reconciliation:
    """What was read, what was kept and why the rest was rejected.

    ``zero_amount_purchases`` records the purchase rule the log was counted with (and that
    every later step applies to it: :func:`cbcv.data.transactions.daily_sql`).

    ``rows_read == rows_accepted + rows_rejected`` holds exactly, and ``rejected_by_reason``
    (every reason present, zeros included) sums to ``rows_rejected``.
    """

    source: str
    source_type: str
    sha256: str | None
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    returns: ReturnsSummary
    n_customers: int
    customer_days: int
    first_date: date | None
    last_date: date | None
    total_amount: float
    as_of: date | None
    columns: dict[str, str]
    duplicate_check: bool
    notes: tuple[str, ...] = ()
    zero_amount_purchases: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, ReturnsSummary):
                value = dataclasses.asdict(value)
            elif isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reconciliation:
        """The inverse of :meth:`to_dict`."""
        values = dict(data)
        for key in ("first_date", "last_date", "as_of"):
            if values.get(key) is not None:
                values[key] = date.fromisoformat(values[key])
        returns = dict(values["returns"])
        if "return_only_days" in returns:  # manifests written before the positive-day rule
            returns["non_positive_days"] = returns.pop("return_only_days")
        values["returns"] = ReturnsSummary(**returns)
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def log_figures(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Reconciliation` fields read from one row of
    :func:`cbcv.data.transactions.reconciliation_sql` (on DuckDB or Spark)."""
    returns = ReturnsSummary(
        rows=int(figures["return_rows"]),
        amount=float(figures["returned"]),
        customer_days_netted=int(figures["netted"]),
        non_positive_days=int(figures["all_days"]) - int(figures["customer_days"]),
    )
    return {
        "returns": returns,
        "n_customers": int(figures["n_customers"]),
        "customer_days": int(figures["customer_days"]),
        "first_date": figures["first_day"],
        "last_date": figures["last_day"],
        "total_amount": float(figures["total"]),
    }


@dataclass(frozen=True)
class RowCounts:
    """The row counts of a validation: read, accepted, rejected and rejected by reason."""

    read: int
    accepted: int
    rejected: int
    by_reason: dict[str, int]

    @classmethod
    def tally(cls, read: int, accepted: int, by_reason: dict[str, int]) -> RowCounts:
        """The counts with ``rejected`` the sum of ``by_reason``; they must add up to ``read``."""
        rejected = sum(by_reason.values())
        if accepted + rejected != read:  # pragma: no cover - an internal invariant
            raise RuntimeError(
                f"reconciliation does not add up: {accepted} + {rejected} != {read}"
            )
        return cls(read, accepted, rejected, by_reason)


class StagedSource(Protocol):
    """What a reconciliation records of a staged source (DuckDB's or Spark's)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def columns(self) -> dict[str, str]: ...


def reconciliation_of(
    staged: StagedSource,
    counts: RowCounts,
    figures: Mapping[str, Any],
    *,
    as_of: date | None,
    duplicate_check: bool,
    notes: tuple[str, ...],
    zero_amount_purchases: bool,
) -> Reconciliation:
    """The :class:`Reconciliation` of ``staged``'s rows: ``counts``, and ``figures`` (one row of
    :func:`cbcv.data.transactions.reconciliation_sql` over the accepted rows)."""
    return Reconciliation(
        source=staged.name, source_type=staged.kind, sha256=staged.sha256,
        columns=dict(staged.columns), rows_read=counts.read, rows_accepted=counts.accepted,
        rows_rejected=counts.rejected, rejected_by_reason=counts.by_reason, as_of=as_of,
        duplicate_check=duplicate_check, notes=notes,
        zero_amount_purchases=zero_amount_purchases, **log_figures(figures),
    )
