"""Loading and validation: each bad-row class, each user error, the reconciliation arithmetic and
the netting of returns. Every expected value below is worked out by hand from the tiny inputs."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from cbcv.core.errors import CbcvError, ConfigError, DataError
from cbcv.data.load import REJECTION_COLUMNS, REJECTION_REASONS, load_transactions
from cbcv.data.transactions import to_daily


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def primary(result) -> dict[int, str]:
    """source_row -> the reason the row is counted under."""
    rej = result.rejections
    rows = rej[rej["primary"]]
    return dict(zip(rows["source_row"].astype(int), rows["reason"], strict=True))


def assert_reconciles(result) -> None:
    rec = result.reconciliation
    assert rec.rows_read == rec.rows_accepted + rec.rows_rejected
    assert rec.rows_accepted == len(result.transactions)
    assert sum(rec.rejected_by_reason.values()) == rec.rows_rejected
    assert int(result.rejections["primary"].sum()) == rec.rows_rejected
    assert set(rec.rejected_by_reason) == set(REJECTION_REASONS)


# Data rows (1-based, header excluded) and their file lines; line 9 is blank and not a row.
MIXED = (
    "id,date,amount,channel\n"  # line 1
    "A,2020-01-01,10.00,web\n"  # row 1, line 2: accepted
    ",2020-01-02,5,web\n"  # row 2, line 3: missing id
    "B,2020-02-30,5,web\n"  # row 3, line 4: no 30 February
    "C,2020-01-05,abc,web\n"  # row 4, line 5: amount not a number
    "D,2021-01-01,4,web\n"  # row 5, line 6: after as-of 2020-12-31
    "A,2020-01-01,10.00,web\n"  # row 6, line 7: duplicate of row 1
    "A,2020-01-01,10.00,shop\n"  # row 7, line 8: differs in an unmapped field: accepted
    "\n"  # line 9: blank
    "E,2020-01-07,-3,web\n"  # row 8, line 10: a return, accepted
    "G,2020-01-08,1,web,extra\n"  # row 9, line 11: too many fields
    "   ,x,,web\n"  # row 10, line 12: id, date and amount all bad
    "H,2020-12-31,1e1,web\n"  # row 11, line 13: on the as-of day, accepted
)


@pytest.fixture
def mixed(tmp_path: Path):
    path = write(tmp_path, "orders.csv", MIXED)
    return load_transactions(path, columns={"customer_id": "id"}, as_of="2020-12-31")


def test_each_bad_row_class_is_rejected_with_its_reason(mixed) -> None:
    assert primary(mixed) == {
        2: "missing_customer_id",
        3: "unparseable_date",
        4: "non_numeric_amount",
        5: "date_after_as_of",
        6: "duplicate_row",
        9: "malformed_row",
        10: "missing_customer_id",
    }
    tx = mixed.transactions
    assert tx["source_row"].tolist() == [1, 7, 8, 11]
    assert tx["customer_id"].tolist() == ["A", "A", "E", "H"]
    assert tx["amount"].tolist() == [10.0, 10.0, -3.0, 10.0]
    assert tx["date"].tolist() == [
        pd.Timestamp(d) for d in ("2020-01-01", "2020-01-01", "2020-01-07", "2020-12-31")
    ]
    assert str(tx["date"].dtype) == "datetime64[ns]"
    assert tx["source_row"].dtype == np.int64


def test_reconciliation_adds_up(mixed) -> None:
    rec = mixed.reconciliation
    assert (rec.rows_read, rec.rows_accepted, rec.rows_rejected) == (11, 4, 7)
    assert rec.rejected_by_reason == {
        "malformed_row": 1,
        "missing_customer_id": 2,
        "unparseable_date": 1,
        "date_out_of_range": 0,
        "date_before_earliest": 0,
        "date_after_as_of": 1,
        "non_numeric_amount": 1,
        "amount_out_of_range": 0,
        "duplicate_row": 1,
    }
    assert_reconciles(mixed)
    assert rec.n_customers == 3
    assert (rec.first_date, rec.last_date) == (date(2020, 1, 1), date(2020, 12, 31))
    assert rec.total_amount == pytest.approx(27.0)
    assert rec.as_of == date(2020, 12, 31)
    assert rec.source == "orders.csv" and rec.source_type == "csv"


def test_row_with_several_problems_is_counted_once_and_lists_each_column(mixed) -> None:
    rej = mixed.rejections
    row10 = rej[rej["source_row"] == 10]
    assert row10["reason"].tolist() == [
        "missing_customer_id",
        "unparseable_date",
        "non_numeric_amount",
    ]
    assert row10["column"].tolist() == ["id", "date", "amount"]
    assert row10["primary"].tolist() == [True, False, False]
    assert row10["raw_value"].tolist() == ["   ", "x", None]


def test_rejections_give_raw_values_file_lines_and_details(mixed) -> None:
    rej = mixed.rejections.set_index("source_row")
    assert list(mixed.rejections.columns) == list(REJECTION_COLUMNS)
    assert rej.loc[3, "raw_value"] == "2020-02-30" and rej.loc[3, "column"] == "date"
    assert rej.loc[4, "raw_value"] == "abc"
    assert rej.loc[5, "detail"] == "after as-of date 2020-12-31"
    assert rej.loc[6, "column"] == "*" and rej.loc[6, "detail"] == "same fields as source row 1"
    assert rej.loc[9, "raw_value"] == "G,2020-01-08,1,web,extra"
    assert "too many columns" in rej.loc[9, "detail"]
    # header is line 1; a blank line (9) sits between rows 7 and 8
    lines = mixed.rejections.drop_duplicates("source_row").set_index("source_row")["line"]
    assert lines.to_dict() == {2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 9: 11, 10: 12}


def test_reconciliation_to_dict_is_json_ready(mixed) -> None:
    data = json.loads(json.dumps(mixed.reconciliation.to_dict()))
    assert data["rows_read"] == 11
    assert data["first_date"] == "2020-01-01" and data["as_of"] == "2020-12-31"
    assert data["rejected_by_reason"]["duplicate_row"] == 1
    assert data["returns"] == {
        "rows": 1,
        "amount": 3.0,
        "customer_days_netted": 0,
        "non_positive_days": 1,
    }
    assert len(data["sha256"]) == 64


def test_sha256_is_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "customer_id,date,amount\nA,2020-01-01,1\n")
    rec = load_transactions(path).reconciliation
    assert rec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_returns_are_netted_per_customer_day_and_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.csv",
        "customer_id,date,amount\n"
        "A,2020-01-01,30\n"
        "A,2020-01-01,-10\n"  # netted against the purchase: A's day is worth 20
        "A,2020-01-03,-5\n"  # return-only day: not a purchase occasion
        "B,2020-01-02,8\n"
        "B,2020-01-02,-8\n"  # nets to zero: not a purchase (a purchase nets to more than 0)
        "C,2020-01-04,-2\n"  # C never buys
        "C,2020-01-04,-1\n",
    )
    result = load_transactions(path)
    returns = result.reconciliation.returns
    assert returns.rows == 5
    assert returns.amount == pytest.approx(26.0)
    assert returns.customer_days_netted == 1  # A on 01-01
    assert returns.non_positive_days == 3  # A on 01-03, B on 01-02, C on 01-04
    assert result.reconciliation.customer_days == 1
    assert result.reconciliation.rows_rejected == 0
    daily = to_daily(result.transactions)
    assert daily[["customer_id", "amount"]].values.tolist() == [["A", 20.0]]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2020-03-04", "2020-03-04"),
        ("20200304", "2020-03-04"),
        ("2020-03-04 23:59:59", "2020-03-04"),
        ("2020-03-04T23:59:59.123", "2020-03-04"),
        ("2020-03-04T23:30:00+05:00", "2020-03-04"),  # the calendar date as written
        ("2020-03-04T01:00:00Z", "2020-03-04"),
        (" 2020-03-04 ", "2020-03-04"),
        ("2020-02-29", "2020-02-29"),
        ("2019-02-29", None),
        ("20190229", None),
        ("2020-3-4", None),
        ("04/03/2020", None),
        ("2020-03-04 25:00:00", None),
        ("", None),
    ],
)
def test_default_date_parsing(tmp_path: Path, raw: str, expected: str | None) -> None:
    path = write(tmp_path, "d.csv", f'customer_id,date,amount\nA,"{raw}",1\n')
    result = load_transactions(path)
    if expected is None:
        assert primary(result) == {1: "unparseable_date"}
    else:
        assert result.transactions["date"].tolist() == [pd.Timestamp(expected)]


def test_date_format_replaces_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "customer_id,date,amount\nA,04/03/2020,1\nB,2020-03-04,1\n")
    result = load_transactions(path, date_format="%d/%m/%Y")
    assert result.transactions["date"].tolist() == [pd.Timestamp("2020-03-04")]
    assert primary(result) == {2: "unparseable_date"}


@pytest.mark.parametrize(
    ("raw", "value"),
    [("12.50", 12.5), ("-3", -3.0), ("1e3", 1000.0), (" 7 ", 7.0), ("0", 0.0), ("+4.5", 4.5)],
)
def test_numeric_amounts_are_accepted(tmp_path: Path, raw: str, value: float) -> None:
    path = write(tmp_path, "a.csv", f'customer_id,date,amount\nA,2020-01-01,"{raw}"\n')
    assert load_transactions(path).transactions["amount"].tolist() == [value]


@pytest.mark.parametrize("raw", ["", "$5", "1,000", "12,50", "nan", "inf", "ten"])
def test_non_numeric_amounts_are_rejected(tmp_path: Path, raw: str) -> None:
    path = write(tmp_path, "a.csv", f'customer_id,date,amount\nA,2020-01-01,"{raw}"\n')
    result = load_transactions(path)
    assert primary(result) == {1: "non_numeric_amount"}
    assert result.reconciliation.rows_accepted == 0


def test_duplicates_can_be_kept(tmp_path: Path) -> None:
    text = "customer_id,date,amount\nA,2020-01-01,5\nA,2020-01-01,5\nA,2020-01-01,5\n"
    path = write(tmp_path, "dup.csv", text)
    strict = load_transactions(path)
    assert primary(strict) == {2: "duplicate_row", 3: "duplicate_row"}
    kept = load_transactions(path, reject_duplicates=False)
    assert kept.reconciliation.rows_accepted == 3
    assert kept.reconciliation.duplicate_check is False


def test_duplicate_of_a_rejected_row_keeps_the_field_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.csv", "customer_id,date,amount\nA,2020-01-01,x\nA,2020-01-01,x\n")
    assert primary(load_transactions(path)) == {1: "non_numeric_amount", 2: "non_numeric_amount"}


def test_malformed_rows_shift_the_numbering_of_later_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.csv",
        "customer_id,date,amount\n"
        "A,2020-01-01,1\n"  # row 1, line 2
        "B,2020-01-01\n"  # row 2, line 3: a field short
        "\n"  # line 4: blank
        "C,2020-01-01,1,9\n"  # row 3, line 5: a field too many
        "D,2020-01-01,4\n",  # row 4, line 6
    )
    result = load_transactions(path)
    assert primary(result) == {2: "malformed_row", 3: "malformed_row"}
    assert result.transactions["source_row"].tolist() == [1, 4]
    assert result.transactions["customer_id"].tolist() == ["A", "D"]
    assert result.rejections["line"].tolist() == [3, 5]
    assert result.rejections["detail"].tolist() == ["missing columns", "too many columns"]
    assert_reconciles(result)


def test_unterminated_quote_rejects_only_its_own_line(tmp_path: Path) -> None:
    # One record per physical line: a line with an odd number of quotes cannot be a complete
    # record, so it is rejected with its line number and reading resumes on the next line (it
    # used to swallow the rest of the file).
    path = write(
        tmp_path,
        "u.csv",
        'customer_id,date,amount\nA,2020-01-01,1\nB,2020-01-02,2\n"C,2020-01-03,3\nD,2020-01-04,4\n',
    )
    result = load_transactions(path)
    assert result.transactions["customer_id"].tolist() == ["A", "B", "D"]
    assert result.transactions["source_row"].tolist() == [1, 2, 4]
    assert primary(result) == {3: "malformed_row"}
    assert result.rejections["raw_value"].iloc[0] == '"C,2020-01-03,3'
    assert result.rejections["line"].tolist() == [4]
    assert result.rejections["detail"].iloc[0].startswith("unbalanced quote")
    assert_reconciles(result)


def test_crlf_bom_and_gzip(tmp_path: Path) -> None:
    text = "\ufeffCustomer,Day,Value\r\nA,2020-01-01,1\r\n\r\nB,2020-01-02,x\r\n"
    plain = write(tmp_path, "w.csv", text)
    packed = tmp_path / "w.csv.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    columns = {"customer_id": "Customer", "date": "Day", "amount": "Value"}
    for path in (plain, packed):
        result = load_transactions(path, columns=columns)
        assert result.transactions["customer_id"].tolist() == ["A"]
        assert primary(result) == {2: "non_numeric_amount"}
        assert result.rejections["line"].tolist() == [4]
        assert result.reconciliation.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_delimiter_is_taken_from_the_header(tmp_path: Path) -> None:
    for delim in (";", "\t", "|"):
        path = write(
            tmp_path,
            "d.txt",
            f"customer_id{delim}date{delim}amount\nA{delim}2020-01-01{delim}1,5\n",
        )
        result = load_transactions(path)
        assert primary(result) == {1: "non_numeric_amount"}  # a decimal comma is not a number
        assert result.rejections["raw_value"].tolist() == ["1,5"]


def test_quoted_line_breaks_are_two_malformed_lines(tmp_path: Path) -> None:
    # One record per physical line: a quoted line break splits a record into two lines with an
    # odd number of quotes each; both are rejected and every other line keeps its line number.
    path = write(
        tmp_path, "q.csv", 'customer_id,date,amount,note\nA,2020-01-01,1,"two\nlines"\nB,x,1,n\n'
    )
    result = load_transactions(path)
    assert primary(result) == {1: "malformed_row", 2: "malformed_row", 3: "unparseable_date"}
    assert result.rejections["line"].tolist() == [2, 3, 4]
    assert result.reconciliation.rows_read == 3
    assert_reconciles(result)


def test_column_names_match_case_insensitively(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "Customer_ID,DATE, Amount \nA,2020-01-01,1\n")
    result = load_transactions(path)
    assert result.reconciliation.columns == {
        "customer_id": "Customer_ID",
        "date": "DATE",
        "amount": "Amount",
    }
    assert result.transactions["amount"].tolist() == [1.0]


def test_parquet_source_with_typed_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "cust": ["a", None, "c", "a"],
            "ts": pd.to_datetime(
                ["2020-01-01 10:00", "2020-01-02 00:00", "2020-01-03 00:00", "2020-01-01 10:00"]
            ),
            "value": [1.5, 2.0, np.nan, 1.5],
        }
    )
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    result = load_transactions(
        path, columns={"customer_id": "cust", "date": "ts", "amount": "value"}
    )
    assert primary(result) == {
        2: "missing_customer_id",
        3: "non_numeric_amount",
        4: "duplicate_row",
    }
    assert result.transactions["date"].tolist() == [pd.Timestamp("2020-01-01")]
    assert result.reconciliation.source_type == "parquet"
    assert result.rejections["line"].isna().all()
    assert_reconciles(result)


def test_duckdb_table_source(tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA sales")
    con.execute(
        "CREATE TABLE sales.orders AS SELECT * FROM (VALUES (7, DATE '2020-01-01', 3.5), "
        "(8, DATE '2020-01-02', -1.0)) t(customer_id, date, amount)"
    )
    con.execute("CREATE TABLE notes AS SELECT 1 AS x")
    con.close()
    for table in ("orders", "sales.orders", "SALES.Orders"):
        result = load_transactions(path, table=table)
        assert result.transactions["customer_id"].tolist() == ["7", "8"]
        assert result.transactions["amount"].tolist() == [3.5, -1.0]
        assert result.reconciliation.source_type == "duckdb"
    with pytest.raises(
        DataError,
        match=r"shop\.duckdb: table 'missing' not found; tables found: notes, sales\.orders",
    ):
        load_transactions(path, table="missing")
    with pytest.raises(DataError, match="pass table="):
        load_transactions(path)


def test_dataframe_source(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"customer_id": [1, 2], "date": ["2020-01-01", "2020-01-02"], "amount": [1, 2]}
    )
    result = load_transactions(frame, source_name="crm export")
    assert result.transactions["customer_id"].tolist() == ["1", "2"]
    assert result.reconciliation.source == "crm export"
    assert result.reconciliation.sha256 is None


# ----------------------------------------------------------------------------- errors


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_transactions(tmp_path / "nope.csv")
    assert one_line(exc).startswith("nope.csv: file not found")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"folder\.csv: not a file"):
        load_transactions(folder)


@pytest.mark.parametrize(
    "text", ["", "\n\n", "customer_id,date,amount\n", "customer_id,date,amount\n\n"]
)
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path, "empty.csv", text))
    assert "empty.csv: empty file" in one_line(exc)


def test_empty_dataframe() -> None:
    with pytest.raises(DataError, match="no data rows"):
        load_transactions(pd.DataFrame({"customer_id": [], "date": [], "amount": []}))


def test_missing_column_names_key_expected_and_found(tmp_path: Path) -> None:
    path = write(tmp_path, "orders.csv", "id,date,value\nA,2020-01-01,1\n")
    with pytest.raises(DataError) as exc:
        load_transactions(path, columns={"customer_id": "id", "amount": "Amount"})
    assert one_line(exc) == (
        "orders.csv: required column 'Amount' (columns.amount) not found; "
        "columns found: 'id', 'date', 'value'"
    )


@pytest.mark.parametrize(("actual", "shown"), [(";", "';'"), ("\t", "'\\t'"), ("|", "'|'")])
def test_wrong_delimiter_is_named(tmp_path: Path, actual: str, shown: str) -> None:
    path = write(
        tmp_path,
        "orders.csv",
        f"customer_id{actual}date{actual}amount\nA{actual}2020-01-01{actual}1\n",
    )
    with pytest.raises(DataError) as exc:
        load_transactions(path, delimiter=",")
    message = one_line(exc)
    assert message.startswith("orders.csv: the header parses into one column")
    assert f"looks {shown}-delimited: pass delimiter={shown}" in message


def test_unsupported_file_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"book\.xlsx: unsupported file type '\.xlsx'"):
        load_transactions(write(tmp_path, "book.xlsx", "x"))


def test_not_a_duckdb_database(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path, "fake.db", "not a database"), table="t")
    assert one_line(exc).startswith("fake.db: not a readable DuckDB database")


def test_corrupt_parquet(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bad\.parquet: cannot read parquet source"):
        load_transactions(write(tmp_path, "bad.parquet", "not parquet"))


def test_table_only_for_duckdb(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "customer_id,date,amount\nA,2020-01-01,1\n")
    with pytest.raises(DataError, match="table= applies only to DuckDB"):
        load_transactions(path, table="orders")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"as_of": "yesterday"}, "as_of: 'yesterday' is not a date"),
        ({"date_format": "%Q"}, "date_format '%Q' is not a strptime format"),
        ({"columns": {"customer": "id"}}, "columns: unknown key"),
        ({"delimiter": ",,"}, "delimiter must be one character"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, pattern: str) -> None:
    path = write(tmp_path, "t.csv", "customer_id,date,amount\nA,2020-01-01,1\n")
    with pytest.raises(ConfigError, match=pattern):
        load_transactions(path, **kwargs)


def test_user_errors_are_cbcv_errors(tmp_path: Path) -> None:
    assert issubclass(DataError, CbcvError) and issubclass(ConfigError, CbcvError)
    with pytest.raises(CbcvError):
        load_transactions(tmp_path / "missing.parquet")
