"""The register reader on anything: random rows, Unicode, quoting, encodings and raw bytes.

Whatever the file holds, reading and checking it ends in an :class:`InputError` naming the
file, or in valid rows and rejects that together are every row read — never a traceback.
Rejects name a line inside the file, in order, and ``rejects.csv`` is one record per line
with no cell a spreadsheet would run as a formula. The line scan agrees with Arrow's
reader on where every record starts.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panen.datasets.csvlines import RecordLines
from panen.datasets.policies import read_policies
from panen.datasets.tables import TableOptions
from panen.engine.errors import InputError
from panen.engine.infra.arrowcols import TextFormat
from panen.engine.infra.atomic import write_table_atomic
from panen.engine.settlement.policies import ProductRules, validate_policies

HEADER = ["policy_id", "farmer_id", "district_id", "product_id", "area_ha", "sowing_date", "group_id", "catatan"]
PRODUCTS = {"yield": ProductRules(6_000_000), "rain": ProductRules(6_000_000, anchor="sowing_date")}
TRICKY = ["P1", "P1 ", "P\u200b1", "\ufeffP1", "Ｐ１", "=1+2", "+62812", "-", "@x", "3201", "3201 ", "yield", "rain",
          "1,5", "1.5", "1.000,5", "0", "-1", "2023-11-01", "01/11/2023", '"', '""', "\n", "\r\n", "\r", ",", ";",
          "\t", "\x00", "\u202e", "\u2028", "nan", "inf", " ", ""]
cell = st.one_of(st.text(max_size=8), st.sampled_from(TRICKY))
record = st.lists(cell, min_size=len(HEADER) - 2, max_size=len(HEADER) + 1)
FORMULA = re.compile(r"^[=+\-@\t\r＝＋－＠]")
NUMBER = re.compile(r"^[+-][0-9]+([.,][0-9]+)?$")


def _csv(rows: list[list[str]], sep: str, quote_all: bool, end: str) -> str:
    out = [sep.join(HEADER)]
    for r in rows:
        cells = []
        for c in r:
            if quote_all or any(ch in c for ch in (sep, '"', "\n", "\r")):
                c = '"' + c.replace('"', '""') + '"'
            cells.append(c)
        out.append(sep.join(cells))
    return end.join(out) + end


def _check(data: bytes, options: TableOptions) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "policies.csv"
        path.write_bytes(data)
        try:
            register = read_policies(path, options)
        except InputError as e:
            assert e.problems and all(p.file == path for p in e.problems)
            return
        valid, rejects = validate_policies(register, products=PRODUCTS)
        assert len(valid) + len(rejects) == register.n_rows  # every row is valid or rejected
        assert valid["policy_id"].is_unique
        for col in ("policy_id", "farmer_id"):  # what is carried is normalised and safe
            assert not valid[col].str.contains(r"[\x00-\x1f\u200b\ufeff]", regex=True).any()
            assert not any(FORMULA.match(v) and not NUMBER.match(v) for v in valid[col])
        n_lines = len(re.findall(rb"\r\n|\r|\n", data)) + 1
        if register.n_rows:  # the line scan finds every record Arrow read, in order
            every = register.lines(range(register.n_rows))
            assert (every[1:] > every[:-1]).all() and every[0] >= 2 and every[-1] <= n_lines
        if len(rejects):
            assert rejects["line"].notna().all() and rejects["line"].is_monotonic_increasing
            write_table_atomic(rejects, Path(d) / "rejects.csv")
            text = (Path(d) / "rejects.csv").read_bytes()
            assert text.count(b"\n") == len(rejects) + 1 and b"\r" not in text  # one record per line
            back = pcsv.read_csv(Path(d) / "rejects.csv", convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in rejects.columns}, strings_can_be_null=False))
            assert back.num_rows == len(rejects)
            for column in back.columns:
                for v in column.to_pylist():
                    assert not (v and FORMULA.match(v) and not NUMBER.match(v)), v


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(record, max_size=8), sep=st.sampled_from([",", ";", "\t"]), quote_all=st.booleans(),
       end=st.sampled_from(["\n", "\r\n"]), encoding=st.sampled_from(["utf-8", "cp1252"]),
       decimal=st.sampled_from([".", ","]), tail=st.binary(max_size=12))
def test_random_registers_are_read_or_refused_never_crash(rows, sep, quote_all, end, encoding, decimal, tail):
    data = _csv(rows, sep, quote_all, end).encode(encoding, errors="replace") + tail
    _check(data, TableOptions(separator=sep, encoding=encoding, text=TextFormat(decimal=decimal,
                                                                             date_format="%d/%m/%Y")))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=300), sep=st.sampled_from([",", ";"]),
       encoding=st.sampled_from(["utf-8", "cp1252", "latin-1"]))
def test_random_bytes_after_a_header_never_crash(body, sep, encoding):
    _check(sep.join(HEADER).encode() + b"\n" + body, TableOptions(separator=sep, encoding=encoding))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=200))
def test_any_bytes_at_all_never_crash(body):
    _check(body, TableOptions())


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.lists(st.sampled_from(["a", "", '"x\ny"', '"p""q"', '"r,s"', '"\r\n"']), min_size=2,
                              max_size=2).filter(lambda r: r != ["", ""]), max_size=10),
       blank=st.lists(st.booleans(), max_size=10), end=st.sampled_from(["\n", "\r\n", "\r"]))
def test_the_line_of_every_record_is_where_it_starts(rows, blank, end):
    """Lines as a text editor counts them: the header is line 1, blank lines count, a quoted
    line break moves the next record down."""
    text, starts = "h1,h2" + end, []
    for i, r in enumerate(rows):
        if i < len(blank) and blank[i]:
            text += end
        starts.append(len(re.findall(r"\r\n|\r|\n", text)) + 1)
        text += ",".join(r) + end
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.csv"
        path.write_text(text, newline="")
        table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(newlines_in_values=True),
                              convert_options=pcsv.ConvertOptions(column_types={"h1": pa.string(),
                                                                                "h2": pa.string()}))
        assert table.num_rows == len(rows)
        assert RecordLines.of(path, ",")(range(len(rows))).tolist() == starts


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(st.sampled_from(["a", "bb", "", '"x\ny"', '"p""q"', '"r,s"', '"\r\n"', 'c"d']),
                              min_size=1, max_size=3), max_size=12),
       ends=st.lists(st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\r\n\r\n"]), min_size=12, max_size=12),
       block=st.integers(1, 16))
def test_the_line_scan_is_the_same_in_blocks_of_any_size(rows, ends, block):
    """Lines are found the same however the file is cut into blocks (the numpy path for blocks
    without quotes and the kernel hand their state over) and with or without field counts."""
    import panen.datasets.csvlines as csvlines

    text = "h" + ends[0] + "".join(",".join(r) + ends[i % len(ends)] for i, r in enumerate(rows))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.csv"
        path.write_text(text, newline="")
        whole = csvlines.scan_records(path, ",")
        saved = csvlines._BLOCK
        try:
            csvlines._BLOCK = block
            cut = csvlines.scan_records(path, ",", lines_only=True)
            cut_full = csvlines.scan_records(path, ",")
        finally:
            csvlines._BLOCK = saved
        assert cut.lines.tolist() == whole.lines.tolist() == cut_full.lines.tolist()
        assert cut_full.fields.tolist() == whole.fields.tolist()
