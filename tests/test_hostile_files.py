"""Messy and hostile input files never move money silently; an insurer's own export reads as it is.

Every end-to-end case runs ``panen run`` on the small synthetic region (as
``tests/test_pipeline.py``) with a register written byte for byte, and asserts the exit
code, the file / line / column named, and that every row read is accounted for:
``rows in = settled + rejected + withheld``. The register reader's fuzz test is
``tests/properties/test_register_reader_properties.py``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panen.datasets.assessments import read_assessments
from panen.datasets.policies import read_policies
from panen.datasets.tables import TableOptions
from panen.datasets.yields import read_yields
from panen.engine.api import PolicyRegister
from panen.engine.cli import main
from panen.engine.errors import InputError
from panen.engine.infra.arrowcols import TextFormat
from panen.engine.infra.atomic import write_table_atomic
from panen.engine.infra.safetext import csv_safe_text, normalise_keys
from panen.engine.settlement.policies import ProductRules, validate_policies
from panen.datasets.synthetic import generate_demo_region

from test_pipeline import config

H = "policy_id,farmer_id,district_id,product_id,area_ha"
D = "3201"  # a district of the synthetic region (its yields table knows it)


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    generate_demo_region(d / "data", n_districts=8, n_farmers=200)
    assert D in set(pd.read_csv(d / "data" / "yields.csv", dtype=str)["district_id"])
    return d


def row(policy: str, farmer: str = "F1", district: str = D, product: str = "yield", area: str = "1", *extra: str,
        sep: str = ",") -> str:
    return sep.join([policy, farmer, district, product, area, *extra])


def lines(*rows: str, header: str = H, end: str = "\n") -> bytes:
    return (end.join([header, *rows]) + end).encode()


@dataclass
class Case:
    """One register file and what ``panen run`` must make of it."""

    data: bytes
    rows: int = 0                                   # data records in the file
    rejects: list[tuple[str, int, str]] = field(default_factory=list)   # (reason, line, column)
    error: tuple[int, str | None, str] | None = None   # exit 2: (line, column, text in the message)
    options: dict = field(default_factory=dict)     # the policies section's reading options
    name: str = "policies.csv"


CASES = {
    # ---- one key, however it is typed: every copy of a duplicate is rejected
    "trailing space duplicate": Case(lines(row("P1"), row("P1 ", "F2"), row("P2")), rows=3,
                                     rejects=[("duplicate_policy_id", 2, "policy_id"),
                                              ("duplicate_policy_id", 3, "policy_id")]),
    "zero-width space duplicate": Case(lines(row("P2"), row("P1"), row("P\u200b1", "F2")), rows=3,
                                       rejects=[("duplicate_policy_id", 3, "policy_id"),
                                                ("duplicate_policy_id", 4, "policy_id")]),
    "BOM inside an id duplicate": Case(lines(row("\ufeffP1"), row("P1", "F2")), rows=2,
                                       rejects=[("duplicate_policy_id", 2, "policy_id"),
                                                ("duplicate_policy_id", 3, "policy_id")]),
    "full-width (NFKC) duplicate": Case(lines(row("Ｐ１"), row("P1", "F2")), rows=2,
                                        rejects=[("duplicate_policy_id", 2, "policy_id"),
                                                 ("duplicate_policy_id", 3, "policy_id")]),
    "no-break space duplicate": Case(lines(row("P1\u00a0"), row("P1", "F2"), row("P3")), rows=3,
                                     rejects=[("duplicate_policy_id", 2, "policy_id"),
                                              ("duplicate_policy_id", 3, "policy_id")]),
    "leading tab duplicate": Case(lines(row("\tP1"), row("P1", "F2")), rows=2,
                                  rejects=[("duplicate_policy_id", 2, "policy_id"),
                                           ("duplicate_policy_id", 3, "policy_id")]),
    "only invisible characters is empty": Case(lines(row(" \u200b "), row("P1")), rows=2,
                                               rejects=[("missing_value", 2, "policy_id")]),
    "district code with a trailing space": Case(lines(row("P1", district=D + " "), row("P2", district=D)), rows=2),
    "district code with a zero-width space": Case(lines(row("P1", district=D + "\u200b")), rows=1),
    # ---- characters no key may hold
    "NUL in a policy id": Case(lines(row("P1"), row("P\x002")), rows=2, rejects=[("bad_key", 3, "policy_id")]),
    "bell in a farmer id": Case(lines(row("P1", "F\x071")), rows=1, rejects=[("bad_key", 2, "farmer_id")]),
    "bidi override in a policy id": Case(lines(row("P\u202e1"), row("P2")), rows=2,
                                         rejects=[("bad_key", 2, "policy_id")]),
    "line separator in a group id": Case(lines(row("P1", "F1", D, "yield", "1", "G\u20281"), row("P2", "F2", D,
                                               "yield", "1", "G1"), header=H + ",group_id"), rows=2,
                                         rejects=[("bad_key", 2, "group_id")]),
    "quoted line break in a policy id": Case(lines(row("P1"), row('"P\n9"'), row("P1 ", "F2")), rows=3,
                                             rejects=[("duplicate_policy_id", 2, "policy_id"),
                                                      ("bad_key", 3, "policy_id"),
                                                      ("duplicate_policy_id", 5, "policy_id")]),
    # ---- spreadsheet formulas
    "formula policy id": Case(lines(row("=1+2"), row("P2")), rows=2, rejects=[("unsafe_text", 2, "policy_id")]),
    "formula farmer id": Case(lines(row("P1", '"@SUM(A1:A9)"')), rows=1, rejects=[("unsafe_text", 2, "farmer_id")]),
    "minus expression; a plain negative number is fine": Case(lines(row("-2+3"), row("P2", "-5")), rows=2,
                                                             rejects=[("unsafe_text", 2, "policy_id")]),
    "phone number farmer id is a plain number": Case(lines(row("P1", "+6281234567890")), rows=1),
    "full-width equals": Case(lines(row("P1"), row("＝1+2", "F2")), rows=2, rejects=[("unsafe_text", 3, "policy_id")]),
    "DDE payload in a group id": Case(lines(row("P1", "F1", D, "yield", "1", "\"=cmd|' /C calc'!A0\""),
                                            header=H + ",group_id"), rows=1, rejects=[("unsafe_text", 2, "group_id")]),
    "formula in a district code": Case(lines(row("P1", "F1", '"=HYPERLINK(""http://x"",""y"")"')), rows=1,
                                       rejects=[("unsafe_text", 2, "district_id")]),
    # ---- the insurer's own export
    "semicolons without saying so": Case(lines(row("P1", sep=";"), header=H.replace(",", ";")),
                                         error=(1, "policy_id", "separator")),
    "semicolons and decimal commas, said": Case(lines(row("P1", area="0,5", sep=";"), row("P2", area="1,25", sep=";"),
                                                      header=H.replace(",", ";")), rows=2,
                                                options={"separator": ";", "decimal": ","}),
    "a dot in a decimal-comma file": Case(lines(row("P1", area="1.5", sep=";"), row("P2", area="1,5", sep=";"),
                                                header=H.replace(",", ";")), rows=2,
                                          options={"separator": ";", "decimal": ","},
                                          rejects=[("bad_number", 2, "area_ha")]),
    "thousands separators in groups of three": Case(lines(row("P1", "F1", D, "yield", "1", "3.000.000", sep=";"),
                                                          row("P2", "F2", D, "yield", "1", "3.000.00", sep=";"),
                                                          header=(H + ",sum_insured").replace(",", ";")), rows=2,
                                                    options={"separator": ";", "decimal": ",", "thousands": "."},
                                                    rejects=[("bad_number", 3, "sum_insured")]),
    "Indonesian headers mapped": Case(lines("P1;NIK1;3201;yield;0,5;Siti", "P2;NIK2;3201;yield;nol;Budi",
                                            header="no_polis;nik_petani;kode_kabupaten;kode_produk;luas_lahan_ha;"
                                                   "nama_petani"), rows=2,
                                      options={"separator": ";", "decimal": ",",
                                               "columns": {"no_polis": "policy_id", "nik_petani": "farmer_id",
                                                           "kode_kabupaten": "district_id",
                                                           "kode_produk": "product_id",
                                                           "luas_lahan_ha": "area_ha"}},
                                      rejects=[("bad_number", 3, "luas_lahan_ha")]),
    "a mapped header that is not there": Case(lines(row("P1")), options={"columns": {"luas_lahan": "area_ha"}},
                                              error=(1, "luas_lahan", "no column 'luas_lahan'")),
    "a sowing date no product uses is not read": Case(lines(row("P1", "F1", D, "yield", "1", "31/31/2024"),
                                                            row("P2", "F2", D, "yield", "1", "kemarin"),
                                                            header=H + ",sowing_date"), rows=2),
    # ---- encodings
    "cp1252 export, said": Case(H.encode() + b",nama_petani\nP1,F1,3201,yield,1,D\xe9d\xe9\nP1,F2,3201,yield,1,Ani\n",
                                rows=2, options={"encoding": "cp1252"},
                                rejects=[("duplicate_policy_id", 2, "policy_id"),
                                         ("duplicate_policy_id", 3, "policy_id")]),
    "cp1252 export, not said": Case(H.encode() + b",nama_petani\nP1,F1,3201,yield,1,Ani\nP2,F2,3201,yield,1,D\xe9d\xe9\n",
                                    error=(3, "nama_petani", "0xe9")),
    "latin-1 export, said": Case(H.encode() + b",nama_petani\nP1,F1,3201,yield,1,Mu\xf1oz\n", rows=1,
                                 options={"encoding": "latin-1"}),
    "a byte that is not UTF-8 in an id": Case(lines(row("P1"), row("P2")) + b"P\xff3,F3,3201,yield,1\n",
                                              error=(4, "policy_id", "0xff")),
    "a byte cp1252 does not define": Case(H.encode() + b",catatan\nP1,F1,3201,yield,1,ok\nP2,F2,3201,yield,1,x\x81\n",
                                          options={"encoding": "cp1252"}, error=(3, "catatan", "0x81")),
    "UTF-8 BOM before the header": Case(b"\xef\xbb\xbf" + lines(row("P1"), row("P1 ")), rows=2,
                                        rejects=[("duplicate_policy_id", 2, "policy_id"),
                                                 ("duplicate_policy_id", 3, "policy_id")]),
    "zero-width space in a header name": Case(lines(row("P1"), header=H.replace("area_ha", "area_ha\u200b")), rows=1),
    # ---- the line a person sees
    "blank lines count": Case(lines(row("P1"), "", "", row("P2"), "", row("P1 ", "F2")), rows=3,
                              rejects=[("duplicate_policy_id", 2, "policy_id"),
                                       ("duplicate_policy_id", 7, "policy_id")]),
    "CRLF and blank lines": Case(lines(row("P2"), "", row("P1"), row("P1", "F2"), end="\r\n"), rows=3,
                                 rejects=[("duplicate_policy_id", 4, "policy_id"),
                                          ("duplicate_policy_id", 5, "policy_id")]),
    "a note over two lines": Case(lines(row("P1", "F1", D, "yield", "1", '"baris satu\nbaris dua"'),
                                        row("P2", "F2", D, "yield", "0", "-"), header=H + ",catatan"), rows=2,
                                  rejects=[("multiline_value", 2, "catatan"), ("non_positive_area", 4, "area_ha")]),
    "an unclosed quote swallows the rows below": Case(lines(row("P1", "F1", D, "yield", "1", "ok"),
                                                            row("P2", "F2", D, "yield", "1", '"lupa'),
                                                            row("P3", "F3", D, "yield", "1", "x"),
                                                            header=H + ",catatan"), rows=2,
                                                      rejects=[("multiline_value", 3, "catatan")]),
    "a record with too many fields": Case(lines(row("P1"), "", row("P2", "F2", D, "yield", "1", "extra")),
                                          error=(4, None, "6 fields, the header 5")),
    "an empty file": Case(b"", error=(1, None, "empty")),
    "a column name over the csv module's 128 KiB field limit": Case(
        lines(row("P1"), header=H + "," + "x" * 200_000), error=(1, None, "longer than 128 KiB")),
    "a column name of 2,000 characters": Case(lines(row("P1"), header=H + "," + "x" * 2000),
                                               error=(1, "column 6", "at most 1024")),
    "a header line of 2 MiB without a line end": Case((H + "," + "y," * (1 << 20)).encode(),
                                                      error=(1, None, "longer than 1024 KiB")),
    "a gzip-compressed register": Case(gzip.compress(lines(row("P1"), "", row("P1 ", "F2")), mtime=0), rows=2,
                                       name="policies.csv.gz",
                                       rejects=[("duplicate_policy_id", 2, "policy_id"),
                                                ("duplicate_policy_id", 4, "policy_id")]),
}


def _run(region: Path, folder: Path, case: Case, capsys) -> tuple[int, Path, Path, str]:
    path = folder / case.name
    path.write_bytes(case.data)

    def edit(cfg):
        cfg["inputs"]["policies"] = {"path": str(path), **case.options}
        cfg["output"]["payments_by"] = "farmer"

    cfg = config(region, folder, keep_inputs=("policies", "yields"), products=("yield",), adjuster=False, edit=edit)
    out = folder / "out"
    capsys.readouterr()
    code = main(["run", str(cfg), "--out", str(out), "--quiet", "--allow-empty"])  # a case may reject every row: the rejects are what it checks
    return code, path, out, capsys.readouterr().err


def _accounted(out: Path, rows: int) -> pd.DataFrame:
    """rows in = settled + rejected + withheld; returns the rejects."""
    led = pq.read_table(out / "payouts.parquet").to_pandas()
    rejects = pd.read_csv(out / "rejects.csv", dtype=str, keep_default_na=False)
    status = led["status"].astype(str)
    withheld = int((status == "withheld_missing_data").sum())
    settled = len(led) - withheld  # paid, no payout, declined, not assessed: decided either way
    assert settled + len(rejects) + withheld == rows == len(led) + len(rejects)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["policies_read"] == rows
    return rejects


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_hostile_register(region, tmp_path, capsys, case):
    code, path, out, err = _run(region, tmp_path, case, capsys)
    if case.error is not None:
        line, column, text = case.error
        assert code == 2, err
        assert f"{path}, line {line}" in err and text in err, err
        if column is not None:
            assert f"column '{column}'" in err, err
        assert not out.exists()  # nothing half-written
        return
    assert code == 0, err
    rejects = _accounted(out, case.rows)
    got = [(r.reason, int(r.line), r.column) for r in rejects.itertuples()]
    assert got == case.rejects
    assert (rejects["file"] == str(path)).all()


def test_keys_are_carried_normalised_into_the_ledger_and_payments(region, tmp_path, capsys):
    data = lines(row("P1 ", "F1\u200b", D + " "), row("P2", "F1", D), row("P3", "+6281234567890", D))
    code, _, out, err = _run(region, tmp_path, Case(data), capsys)
    assert code == 0, err
    led = pq.read_table(out / "payouts.parquet").to_pandas()
    assert sorted(led["policy_id"]) == ["P1", "P2", "P3"]
    assert set(led["district_id"].astype(str)) == {D}
    assert sorted(led["farmer_id"]) == ["+6281234567890", "F1", "F1"]  # one farmer, however typed
    csv = pd.read_csv(out / "payouts.csv", dtype=str)
    for col in ("policy_id", "farmer_id", "district_id"):  # the CSV carries the Parquet's ids
        assert sorted(csv[col]) == sorted(led[col].astype(str))


def test_hostile_free_text_is_written_safely(region, tmp_path, capsys):
    hostile = '"=HYPERLINK(""http://evil"",""klik"")"'
    data = lines(row("P1", "F1", D, "yield", "0", hostile), row("P2", "F2", D, "yield", "1", "aman"),
                 row("<script>alert(1)</script>", "F3", D, "yield", "1", "x"), header=H + ",catatan")
    code, _, out, err = _run(region, tmp_path, Case(data), capsys)
    assert code == 0, err
    _accounted(out, 3)
    assert "<script>alert" not in (out / "report.html").read_text()  # the report escapes what it shows
    text = (out / "rejects.csv").read_text()
    assert "\"'=HYPERLINK" in text and ",\"=HYPERLINK" not in text
    for line in text.splitlines()[1:]:
        for cell in line.split('","'):
            assert not cell.strip('"').startswith(("=", "+", "@")), cell


def test_an_indonesian_export_settles_the_same_money_as_the_clean_files(region, tmp_path, capsys):
    """Policies, assessments and yields as an insurer's spreadsheet writes them: ';', decimal
    commas, dd/mm/yyyy, cp1252, its own headers, codes with trailing spaces — same money."""
    data = region / "data"
    pol = pd.read_csv(data / "policies.csv", dtype=str)
    pol = pol[pol["product_id"].isin(["yield", "autp"])]
    clean = tmp_path / "clean"
    clean.mkdir()
    pol.to_csv(clean / "policies.csv", index=False)

    def clean_edit(cfg):
        cfg["inputs"]["policies"]["path"] = str(clean / "policies.csv")

    keep = ("policies", "yields", "assessments")
    cfg = config(region, clean, keep_inputs=keep, products=("yield",), edit=clean_edit)
    assert main(["run", str(cfg), "--out", str(clean / "out"), "--quiet"]) == 0

    ind = tmp_path / "ind"
    ind.mkdir()
    p = pol.rename(columns={"policy_id": "no_polis", "farmer_id": "nik_petani", "district_id": "kode_kabupaten",
                            "product_id": "kode_produk", "area_ha": "luas_lahan_ha", "sowing_date": "tanggal_tanam",
                            "group_id": "kelompok_tani"})
    p["luas_lahan_ha"] = p["luas_lahan_ha"].str.replace(".", ",", regex=False)
    p["tanggal_tanam"] = pd.to_datetime(p["tanggal_tanam"]).dt.strftime("%d/%m/%Y")
    p["kode_kabupaten"] = p["kode_kabupaten"] + " "  # "3271 "
    p.insert(1, "nama_petani", "Pak Dédé")
    p.to_csv(ind / "polis.csv", sep=";", index=False, encoding="cp1252")
    a = pd.read_csv(data / "assessments.csv", dtype=str)
    for c in ("plot_area_ha", "damage_intensity_pct", "damaged_area_pct"):
        a[c] = a[c].str.replace(".", ",", regex=False)
    for c in ("event_date", "notice_date"):
        a[c] = pd.to_datetime(a[c]).dt.strftime("%d/%m/%Y")
    a = a.rename(columns={"policy_id": "no_polis", "plot_id": "kode_petak", "peril": "jenis_opt"})
    a.to_csv(ind / "laporan_kerusakan.csv", sep=";", index=False, encoding="cp1252")
    y = pd.read_csv(data / "yields.csv", dtype=str).rename(columns={"district_id": "kode_kabupaten",
                                                                     "year": "tahun",
                                                                     "yield_ku_ha": "produktivitas_ku_ha"})
    y["produktivitas_ku_ha"] = y["produktivitas_ku_ha"].str.replace(".", ",", regex=False)
    y.to_csv(ind / "produktivitas.csv", sep=";", index=False)
    export = {"separator": ";", "decimal": ",", "date_format": "%d/%m/%Y", "encoding": "cp1252"}

    def ind_edit(cfg):
        cfg["inputs"]["policies"] = {"path": str(ind / "polis.csv"), **export, "columns": {
            "no_polis": "policy_id", "nik_petani": "farmer_id", "kode_kabupaten": "district_id",
            "kode_produk": "product_id", "luas_lahan_ha": "area_ha", "tanggal_tanam": "sowing_date",
            "kelompok_tani": "group_id"}}
        cfg["inputs"]["assessments"] = {"path": str(ind / "laporan_kerusakan.csv"), **export, "columns": {
            "no_polis": "policy_id", "kode_petak": "plot_id", "jenis_opt": "peril"}}
        cfg["inputs"]["yields"] = {"path": str(ind / "produktivitas.csv"), "separator": ";", "decimal": ",",
                                   "units": "ku/ha", "yield_column": "produktivitas_ku_ha",
                                   "columns": {"kode_kabupaten": "district_id", "tahun": "year"}}

    cfg = config(region, ind, keep_inputs=keep, products=("yield",), edit=ind_edit)
    assert main(["validate", str(cfg)]) == 0
    assert main(["run", str(cfg), "--out", str(ind / "out"), "--quiet"]) == 0, capsys.readouterr().err
    money = ["policy_id", "farmer_id", "district_id", "product_id", "sum_insured", "gross_payout", "net_payout",
             "status"]
    before = pq.read_table(clean / "out" / "payouts.parquet").to_pandas()[money].astype(str)
    after = pq.read_table(ind / "out" / "payouts.parquet").to_pandas()[money].astype(str)
    pd.testing.assert_frame_equal(before.sort_values("policy_id").reset_index(drop=True),
                                  after.sort_values("policy_id").reset_index(drop=True))
    assert (pd.to_numeric(before["net_payout"]) > 0).any()
    assert (clean / "out" / "payments.csv").read_bytes() == (ind / "out" / "payments.csv").read_bytes()
    rows = len(pol)
    _accounted(ind / "out", rows)


def test_assessment_keys_are_normalised_and_located(tmp_path):
    head = ("policy_id,plot_id,peril,plot_area_ha,damage_intensity_pct,damaged_area_pct,crop_age_days,"
            "planting_method,event_date,notice_date\n")
    good = "banjir,0.5,80,80,40,tanam pindah,2024-01-10,2024-01-12\n"
    f = tmp_path / "a.csv"
    f.write_text(head + "P1 ,A," + good + "\n" + "P2,B\x00," + good + "=P3,C," + good + "P1,A\u200b," + good)
    valid, rejects = read_assessments(f)
    assert len(valid) + len(rejects) == 4
    assert [(r.reason, r.line, r.column) for r in rejects.itertuples()] == [
        ("duplicate_assessment", 2, "peril"), ("bad_key", 4, "plot_id"), ("unsafe_text", 5, "policy_id"),
        ("duplicate_assessment", 6, "peril")]


def test_assessments_with_a_date_format_and_mapped_headers(tmp_path):
    head = ("no_polis;kode_petak;jenis_opt;luas_petak_ha;damage_intensity_pct;damaged_area_pct;crop_age_days;"
            "planting_method;event_date;notice_date\n")
    f = tmp_path / "a.csv"
    f.write_text(head + "P1;A;banjir;0,5;80;80;40;tanam pindah;10/01/2024;12/1/2024\n"
                      "P2;B;banjir;0,5;80;80;40;tanam pindah;30/02/2024;12/01/2024\n")
    options = TableOptions(separator=";", columns={"no_polis": "policy_id", "kode_petak": "plot_id",
                                                   "jenis_opt": "peril", "luas_petak_ha": "plot_area_ha"},
                           text=TextFormat(decimal=",", date_format="%d/%m/%Y"))
    valid, rejects = read_assessments(f, options=options)
    assert valid["plot_area_ha"].tolist() == [0.5]
    assert valid["event_date"].tolist() == [pd.Timestamp("2024-01-10")]
    assert valid["notice_date"].tolist() == [pd.Timestamp("2024-01-12")]
    assert [(r.reason, r.line, r.column) for r in rejects.itertuples()] == [("bad_date", 3, "event_date")]
    assert "a date written %d/%m/%Y" in rejects["message"].iloc[0]


def test_yield_district_codes_are_normalised_and_a_formula_one_is_located(tmp_path):
    f = tmp_path / "y.csv"
    f.write_text("kode;tahun;hasil\n3201 ;2020;52,5\n\n3202\u200b;2020;50\n")
    df = read_yields(f, units="ku/ha", options=TableOptions(separator=";", text=TextFormat(decimal=","),
                                                            columns={"kode": "district_id", "tahun": "year",
                                                                     "hasil": "yield"}))
    assert df["district_id"].tolist() == ["3201", "3202"] and df["yield"].tolist() == [5.25, 5.0]
    f.write_text("district_id,year,yield\n3201,2020,5\n\n@3202,2020,5\n")
    with pytest.raises(InputError) as err:
        read_yields(f)
    (p,) = err.value.problems
    assert (p.line, p.row, p.column) == (4, 2, "district_id") and "formula" in p.message


def test_the_sowing_date_is_checked_only_for_products_anchored_on_it():
    t = pa.table({"policy_id": ["P1", "P2", "P3", "P4"], "farmer_id": ["F1"] * 4, "district_id": [D] * 4,
                  "product_id": ["rain", "rain", "yield", "yield"], "area_ha": ["1"] * 4,
                  "sowing_date": ["01/12/2023", "31/02/2024", "31/02/2024", "kemarin"]})
    register = PolicyRegister("<memory>", t, text=TextFormat(date_format="%d/%m/%Y"))
    valid, rejects = validate_policies(register, products={"rain": ProductRules(6_000_000, anchor="sowing_date"),
                                                           "yield": ProductRules(6_000_000)})
    assert valid["policy_id"].tolist() == ["P1", "P3", "P4"]
    assert valid["sowing_date"].iloc[0] == pd.Timestamp("2023-12-01") and valid["sowing_date"].iloc[1:].isna().all()
    assert rejects[["row", "reason", "column"]].values.tolist() == [[2, "bad_date", "sowing_date"]]
    assert rejects["line"].isna().all()  # an in-memory register has no lines


@pytest.mark.parametrize("raw, key, bad, unsafe", [
    ("P001 ", "P001", False, False), ("\u200bP001", "P001", False, False), ("P0\u2060\u00ad01", "P001", False, False),
    ("\ufeffP001\ufeff", "P001", False, False), ("Ｐ００１", "P001", False, False), ("\u3000P001", "P001", False, False),
    ("\tP001\r\n", "P001", False, False), ("P001\x1f", None, True, False), ("P\x7f1", None, True, False),
    ("P\u0085", None, True, False), ("P\u2066x", None, True, False), ("@x", "@x", False, True), ("-", "-", False, True),
    ("+62 812", "+62 812", False, True), ("+62812", "+62812", False, False), ("-1.5", "-1.5", False, False),
])
def test_key_normalisation_table(raw, key, bad, unsafe):
    k = normalise_keys(pa.array([raw, "P9"]))
    assert (bool(k.bad[0]), bool(k.unsafe[0])) == (bad, unsafe)
    if key is not None:  # a bad key is rejected whatever it reads as
        assert k.values[0].as_py() == key
    assert k.values[1].as_py() == "P9" and not k.bad[1] and not k.unsafe[1]


@pytest.mark.parametrize("raw, written", [
    ("=1+2", "'=1+2"), ("+1+cmd", "'+1+cmd"), ("@A1", "'@A1"), ("-2+3", "'-2+3"), ("＝1", "'＝1"),
    ("-5", "-5"), ("+6281", "+6281"), ("a=b", "a=b"), ("\t=1", "\\t=1"), ("\r=1", "\\r=1"),
    ("x\x00y", "x\\x00y"), ("a\nb", "a\\nb"), ("a\u202eb", "a\\u202eb"), ("zero\u200bwidth", "zero\\u200bwidth"),
    ("Dédé", "Dédé"),
])
def test_csv_cells_are_written_safely(tmp_path, raw, written):
    assert csv_safe_text(pa.array([raw]))[0].as_py() == written
    path = write_table_atomic(pd.DataFrame({"id": [1], "text": [raw]}), tmp_path / "t.csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert back["text"].tolist() == [written] and len(path.read_text().splitlines()) == 2


def test_a_parquet_register_goes_through_the_same_key_rules(tmp_path):
    f = tmp_path / "p.parquet"
    pq.write_table(pa.table({"no_polis": ["P1", "P1 ", "=2"], "farmer_id": ["F1", "F2", "F3"],
                             "district_id": [D, D, D], "product_id": ["yield"] * 3, "area_ha": [1.0, 1.0, 1.0]}), f)
    register = read_policies(f, TableOptions(columns={"no_polis": "policy_id"}))
    assert register.lines is None
    valid, rejects = validate_policies(register, products={"yield": ProductRules(6_000_000)})
    assert len(valid) == 0 and rejects["reason"].tolist() == ["duplicate_policy_id", "duplicate_policy_id",
                                                              "unsafe_text"]
    assert rejects["column"].tolist() == ["no_polis"] * 3 and rejects["line"].isna().all()
    assert np.array_equal(rejects["row"], [1, 2, 3])


@pytest.mark.parametrize("options, key, text", [
    ({"separator": "x"}, "inputs.policies.separator", "separator must be one of"),
    ({"encoding": "utf-16"}, "inputs.policies.encoding", "convert the file to UTF-8"),
    ({"encoding": "klingon"}, "inputs.policies.encoding", "unknown encoding"),
    ({"date_format": "%d/%m/%Y %H:%M"}, "inputs.policies.date_format", "allowed: %d, %m, %Y, %y"),
    ({"date_format": "%d/%m"}, "inputs.policies.date_format", "year"),
    ({"decimal": ",", "thousands": ","}, "inputs.policies.thousands", "is also the decimal mark"),
    ({"columns": {"luas": "luas_ha"}}, "inputs.policies.columns", "not a column panen reads here"),
    ({"columns": {"a": "area_ha", "b": "area_ha"}}, "inputs.policies.columns", "more than one column"),
])
def test_bad_reading_options_are_config_errors_naming_the_key(region, tmp_path, capsys, options, key, text):
    (tmp_path / "policies.csv").write_bytes(lines(row("P1")))

    def edit(cfg):
        cfg["inputs"]["policies"] = {"path": str(tmp_path / "policies.csv"), **options}

    cfg = config(region, tmp_path, keep_inputs=("policies", "yields"), products=("yield",), adjuster=False, edit=edit)
    capsys.readouterr()
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert key in err and text in err, err


def test_the_readme_example_of_an_indonesian_export_is_a_valid_config():
    import re

    import yaml

    from panen.datasets.readers import AssessmentsSpec, PoliciesSpec, YieldsSpec

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```yaml\n(inputs:\n  policies:\n    path: data/polis_mt1_2024\.csv.*?)```", readme, re.S)
    inputs = yaml.safe_load(block.group(1))["inputs"]
    policies = PoliciesSpec.model_validate(inputs["policies"]).table_options()
    assert (policies.separator, policies.text.decimal, policies.text.thousands, policies.codec) == (";", ",", ".",
                                                                                                   "cp1252")
    assert policies.columns["kode_kabupaten"] == "district_id"
    AssessmentsSpec.model_validate(inputs["assessments"])
    YieldsSpec.model_validate(inputs["yields"])
