"""CSV input files: every physical line is accounted for, and a file that is not UTF-8 CSV text
is refused with one line naming the file and what it is (:mod:`cbcv.data.csv_stage`).

Rule: one record per physical line. A line with an odd number of ``"`` (an unterminated quote,
a quoted line break) or a lone carriage return is rejected as ``malformed_row`` with its line
number; reading resumes on the next line.
"""

from __future__ import annotations

import gzip
import io
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from cbcv.core.errors import DataError
from cbcv.data.load import load_transactions, validate_to_parquet

ROOT = Path(__file__).resolve().parents[1]
HEADER = "customer_id,date,amount,note"


def lines_to_file(tmp_path: Path, lines: list[str], *, gz: bool = False, eol: str = "\n") -> Path:
    data = (eol.join(lines) + eol).encode("utf-8")
    path = tmp_path / ("orders.csv.gz" if gz else "orders.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def read_both(path: Path, tmp_path: Path) -> list[tuple[pd.DataFrame | None, pd.DataFrame, object]]:
    """(accepted rows, rejections, reconciliation) from the in-memory and out-of-core paths."""
    mem = load_transactions(path, reject_duplicates=False)
    out = validate_to_parquet(path, tmp_path / "accepted.parquet", reject_duplicates=False)
    accepted = pd.read_parquet(out.accepted)
    return [
        (mem.transactions, mem.rejections, mem.reconciliation),
        (accepted, out.rejections, out.reconciliation),
    ]


def assert_every_line_accounted(path_lines: list[str], accepted, rejections, rec) -> None:
    """rows_read + blank lines + header == physical lines, and the counts reconcile."""
    blank = sum(1 for line in path_lines if not line.strip("\r"))
    assert rec.rows_read + blank + 1 == len(path_lines)
    assert rec.rows_accepted + rec.rows_rejected == rec.rows_read
    assert rec.rows_accepted == len(accepted)
    assert int(rejections["primary"].sum()) == rec.rows_rejected


def primary_lines(rejections: pd.DataFrame) -> list[list[object]]:
    """[source_row, line, reason] of each rejected row."""
    return rejections[rejections["primary"]][["source_row", "line", "reason"]].values.tolist()


def odd_quote_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines, start=1) if i > 1 and line.count('"') % 2]


def row(i: int, note: str = "ok") -> str:
    return f"c{i},2020-01-{1 + i % 28:02d},{i}.50,{note}"


# --------------------------------------------------------------------------- unbalanced quotes

UNBALANCED = {
    "early": [HEADER, row(1, '"unterminated'), *(row(i) for i in range(2, 8))],
    "middle": [HEADER, *(row(i) for i in range(1, 5)), row(5, '"oops'), *(row(i) for i in range(6, 9))],
    "last": [HEADER, *(row(i) for i in range(1, 6)), row(6, '"no end')],
    "several": [
        HEADER, row(1), row(2, '"a'), row(3), "", row(4, 'b"'), row(5), row(6, '"c"d"'), row(7),
    ],
    "in_id": [HEADER, row(1), '"c2,2020-01-02,2,ok', row(3)],
    "in_date": [HEADER, row(1), 'c2,"2020-01-02,2,ok', row(3)],
    "in_amount": [HEADER, row(1), 'c2,2020-01-02,"2,ok', row(3)],
    "quoted_line_break": [HEADER, row(1), 'c2,2020-01-02,2,"two', 'lines"', row(3)],
    "hundred": [HEADER, row(1), row(2, '"free text'), *(row(i) for i in range(3, 101))],
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", list(UNBALANCED))
def test_unbalanced_quote_rejects_its_line_and_reading_resumes(
    tmp_path: Path, case: str, gz: bool
) -> None:
    lines = UNBALANCED[case]
    path = lines_to_file(tmp_path, lines, gz=gz)
    bad = odd_quote_lines(lines)
    data_lines = [i for i, line in enumerate(lines, start=1) if i > 1 and line]
    for accepted, rejections, rec in read_both(path, tmp_path):
        assert_every_line_accounted(lines, accepted, rejections, rec)
        assert rec.rejected_by_reason["malformed_row"] == len(bad)
        assert rec.rows_accepted == len(data_lines) - len(bad)
        malformed = rejections[rejections["reason"] == "malformed_row"]
        assert malformed["line"].tolist() == bad
        assert malformed["source_row"].tolist() == [data_lines.index(i) + 1 for i in bad]
        assert malformed["raw_value"].tolist() == [lines[i - 1] for i in bad]
        assert all(d.startswith("unbalanced quote") for d in malformed["detail"])
        # the accepted rows are exactly the good lines, numbered by record
        good = [i for i in data_lines if i not in bad]
        assert accepted["customer_id"].tolist() == [lines[i - 1].split(",")[0] for i in good]
        assert accepted["source_row"].tolist() == [data_lines.index(i) + 1 for i in good]


def test_field_rejections_after_a_bad_line_keep_their_line_numbers(tmp_path: Path) -> None:
    lines = [HEADER, row(1, '"x'), "", "c2,2020-01-02,abc,ok", 'c3,"2020-02-30",3,"q"', row(4)]
    path = lines_to_file(tmp_path, lines)
    for _, rejections, rec in read_both(path, tmp_path):
        assert primary_lines(rejections) == [
            [1, 2, "malformed_row"],
            [2, 4, "non_numeric_amount"],
            [3, 5, "unparseable_date"],
        ]
        assert rec.rows_read == 4


def test_random_files_account_for_every_line(tmp_path: Path) -> None:
    rng = random.Random(13)
    for trial in range(12):
        lines = [HEADER]
        for i in range(1, 150):
            r = rng.random()
            if r < 0.05:
                lines.append("")
            elif r < 0.15:
                cut = rng.randrange(len(row(i)))
                lines.append(row(i)[:cut] + '"' + row(i)[cut:])
            else:
                lines.append(row(i, rng.choice(["ok", '"a, b"', '"say ""hi"""'])))
        folder = tmp_path / str(trial)
        folder.mkdir()
        eol = "\r\n" if trial % 2 else "\n"
        path = lines_to_file(folder, lines, gz=trial % 3 == 0, eol=eol)
        bad = odd_quote_lines(lines)
        for accepted, rejections, rec in read_both(path, folder):
            assert_every_line_accounted(lines, accepted, rejections, rec)
            malformed = rejections[rejections["reason"] == "malformed_row"]
            assert set(bad) <= set(malformed["line"])
            # every accepted row is a line that the rule let through, at its own line's ordinal
            data_lines = [i for i, line in enumerate(lines, start=1) if i > 1 and line]
            ids = [lines[data_lines[k - 1] - 1].split(",")[0] for k in accepted["source_row"]]
            assert accepted["customer_id"].tolist() == ids


# --------------------------------------------------------------------------- line endings


def test_lone_carriage_return_inside_a_line_is_malformed(tmp_path: Path) -> None:
    lines = [HEADER, row(1), "c2,2020-01-02,2,a\rb", row(3)]
    path = lines_to_file(tmp_path, lines)
    for accepted, rejections, rec in read_both(path, tmp_path):
        assert accepted["customer_id"].tolist() == ["c1", "c3"]
        assert rejections[["line", "reason"]].values.tolist() == [[3, "malformed_row"]]
        assert "carriage return" in rejections["detail"].iloc[0]
        assert rec.rows_read == 3


def test_mixed_line_endings_and_leading_blank_lines(tmp_path: Path) -> None:
    data = (
        b"\n\r\n" + HEADER.encode() + b"\r\n"  # lines 1-2 blank, header on line 3
        + b"c1,2020-01-01,1,ok\n"  # line 4, row 1
        + b"\r\n"  # line 5: blank
        + b"c2,2020-01-02,2,ok,extra\r\n"  # line 6, row 2: a field too many
        + b'c3,2020-01-03,3,"x\n'  # line 7, row 3: unbalanced quote
        + b"c4,2020-01-04,x,ok"  # line 8, row 4: bad amount, no final newline
    )
    for gz in (False, True):
        path = tmp_path / ("m.csv.gz" if gz else "m.csv")
        path.write_bytes(gzip.compress(data) if gz else data)
        for accepted, rejections, rec in read_both(path, tmp_path):
            assert accepted["source_row"].tolist() == [1]
            assert primary_lines(rejections) == [
                [2, 6, "malformed_row"],
                [3, 7, "malformed_row"],
                [4, 8, "non_numeric_amount"],
            ]
            assert rec.rows_read == 4


@pytest.mark.parametrize(
    "data",
    [
        b"customer_id,date,amount\rc1,2020-01-01,1\rc2,2020-01-02,2\r",
        b"customer_id,date,amount\rc1,2020-01-01,1\rc2,2020-01-02,2",
        b"customer_id,date,amount\rc1,2020-01-01,1\rc2,2020-01-02,2\n",
        b"\xef\xbb\xbfcustomer_id,date,amount\rc1,2020-01-01,1\r",
    ],
    ids=["cr", "cr-no-final", "cr-then-lf", "bom-cr"],
)
def test_cr_only_line_endings_are_one_line(tmp_path: Path, data: bytes) -> None:
    assert_refused(tmp_path, "mac.csv", data, "CR-only")


# --------------------------------------------------------------------------- encodings and kinds


def assert_refused(tmp_path: Path, name: str, data: bytes, *phrases: str) -> str:
    """Both paths (plain and, for CSV text, gzip) refuse the file with one line naming it."""
    variants = [(name, data)]
    if not data.startswith((b"PK", b"\xd0\xcf", b"\x1f\x8b")):
        variants.append((name + ".gz", gzip.compress(data)))
    message = ""
    for fname, content in variants:
        path = tmp_path / fname
        path.write_bytes(content)
        for call in (
            lambda p=path: load_transactions(p),
            lambda p=path: validate_to_parquet(p, tmp_path / "a.parquet"),
        ):
            with pytest.raises(DataError) as exc:
                call()
            message = str(exc.value)
            assert "\n" not in message and message.startswith(f"{fname}: ")
            for phrase in phrases:
                assert phrase in message, message
    return message


TEXT = "customer_id,date,amount,note\nc1,2020-01-01,1,café\nc2,2020-01-02,2,£5\n"


@pytest.mark.parametrize(
    ("encoding", "bom", "shown"),
    [
        ("utf-16-le", b"\xff\xfe", "UTF-16 LE"),
        ("utf-16-be", b"\xfe\xff", "UTF-16 BE"),
        ("utf-16-le", b"", "UTF-16 LE"),
        ("utf-16-be", b"", "UTF-16 BE"),
        ("utf-32-le", b"\xff\xfe\x00\x00", "UTF-32 LE"),
        ("utf-32-be", b"\x00\x00\xfe\xff", "UTF-32 BE"),
        ("utf-32-le", b"", "UTF-32 LE"),
        ("utf-32-be", b"", "UTF-32 BE"),
    ],
)
def test_utf16_and_utf32_name_the_encoding(
    tmp_path: Path, encoding: str, bom: bytes, shown: str
) -> None:
    message = assert_refused(tmp_path, "wide.csv", bom + TEXT.encode(encoding), shown, "UTF-8")
    assert ("a byte-order mark" if bom else "no byte-order mark") in message


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
@pytest.mark.parametrize(
    ("text", "line", "byte"),
    [
        (TEXT, 2, "0xE9"),
        ("customer_id,date,amount,café\nc1,2020-01-01,1,x\n", 1, "0xE9"),
        ("customer_id,date,amount,note\nc1,2020-01-01,1,x\nc2,2020-01-02,2,£5\n", 3, "0xA3"),
    ],
    ids=["data-row", "header", "pound"],
)
def test_not_utf8_names_the_line_and_byte(
    tmp_path: Path, encoding: str, text: str, line: int, byte: str
) -> None:
    assert_refused(
        tmp_path, "legacy.csv", text.encode(encoding), "not UTF-8", f"line {line}", byte, "Latin-1"
    )


def test_not_utf8_far_into_a_large_file(tmp_path: Path) -> None:
    body = "".join(f"c{i},2020-01-01,{i},ok\n" for i in range(1, 60_000))
    data = (HEADER + "\n" + body + "c0,2020-01-01,1,caf\xe9\n").encode("latin-1")
    assert_refused(tmp_path, "late.csv", data, "not UTF-8", "line 60001", "0xE9")


def test_utf8_bom_and_non_ascii_text_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "customer_id,date,amount,café\nc1,2020-01-01,1,£\n".encode())
    result = load_transactions(path)
    assert result.reconciliation.rows_accepted == 1


def xlsx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as book:
        book.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        book.writestr("xl/workbook.xml", "<workbook/>")
        book.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return buffer.getvalue()


def other_zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("orders.csv", TEXT)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "phrases"),
    [
        (xlsx_bytes(), ("Excel workbook (.xlsx)", "CSV UTF-8")),
        (other_zip_bytes(), ("zip archive", "CSV UTF-8")),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), ("Excel 97-2003 workbook (.xls)",)),
        (gzip.compress(TEXT.encode()), ("gzip", ".csv.gz")),
        (b"cust\x00omer_id,date,amount\nc1,2020-01-01,1\n", ("binary data",)),
        (bytes(range(256)) * 8, ("binary data",)),
    ],
    ids=["xlsx", "zip", "xls", "gzip", "nul-in-header", "binary"],
)
def test_other_file_kinds_are_named(tmp_path: Path, data: bytes, phrases: tuple[str, ...]) -> None:
    assert_refused(tmp_path, "book.csv", data, *phrases)


# --------------------------------------------------------------------------- the header


@pytest.mark.parametrize(
    ("header", "phrase"),
    [
        ('customer_id,date,amount,"note', "unbalanced quote"),
        ("customer_id,date,amount," + "n" * 200_000, "header"),
        ('customer_id,date,amount,"' + "n" * 200_000 + '"', "header"),
    ],
    ids=["unbalanced", "long-name", "long-quoted-name"],
)
def test_bad_header_is_one_line_never_csv_error(tmp_path: Path, header: str, phrase: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(header + "\nc1,2020-01-01,1,x\n")
    with pytest.raises(DataError) as exc:
        load_transactions(path)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("h.csv: ")
    assert phrase in str(exc.value)


# --------------------------------------------------------------------------- the CLI


def cbcv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cbcv.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_cli_audit_rejects_the_bad_line_and_refuses_other_encodings(tmp_path: Path) -> None:
    src = tmp_path / "orders.csv"
    src.write_text(
        "customer_id,date,amount,note\nc1,2020-01-01,1,ok\nc2,2020-01-02,2,\"x\n"
        "c3,2020-01-03,3,ok\nc1,2020-02-01,4,ok\n"
    )
    res = cbcv("audit", str(src), "--out", str(tmp_path / "o1"))
    assert res.returncode == 0, res.stderr
    rejected = pd.read_csv(tmp_path / "o1" / "rejections.csv")
    assert rejected["line"].tolist() == [3] and rejected["reason"].tolist() == ["malformed_row"]
    for name, data in [
        ("u16.csv", b"\xff\xfe" + TEXT.encode("utf-16-le")),
        ("lat1.csv", TEXT.encode("latin-1")),
        ("book.csv", xlsx_bytes()),
        ("mac.csv", TEXT.replace("\n", "\r").encode()),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        res = cbcv("audit", str(path), "--out", str(tmp_path / f"o-{name}"))
        assert res.returncode != 0
        err = [line for line in res.stderr.strip().splitlines() if "error" in line.lower()]
        assert len(err) == 1 and err[0].startswith("cbcv: error:") and name in err[0], res.stderr
        assert res.stderr.strip().splitlines()[-1] == err[0]
        assert "Traceback" not in res.stderr and "_csv.Error" not in res.stderr
