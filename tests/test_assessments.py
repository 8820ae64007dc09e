"""Reading loss assessments: file errors name the file and column, bad rows become located rejects."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panen.datasets.assessments import REASONS, REJECT_COLUMNS, read_assessments
from panen.engine.perils.adjuster import ASSESSMENT_COLUMNS, adjust, load_wording
from panen.engine.errors import InputError

WORDING_FILE = Path(__file__).resolve().parents[1] / "configs" / "autp.yaml"


def good_row(i: int = 1, **changes: str) -> dict[str, str]:
    row = {"policy_id": f"P{i:03d}", "plot_id": "A", "peril": "wereng batang coklat", "plot_area_ha": "0.4",
           "damage_intensity_pct": "80", "damaged_area_pct": "80", "crop_age_days": "15",
           "planting_method": "tanam pindah", "event_date": "2024-01-10", "notice_date": "2024-01-12"}
    row.update(changes)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], header=ASSESSMENT_COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(header), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def test_reads_a_good_file_typed(tmp_path):
    valid, rejects = read_assessments(write_csv(tmp_path / "a.csv", [good_row(1), good_row(2, plot_id="B")]))
    assert len(rejects) == 0 and list(rejects.columns[:len(REJECT_COLUMNS)]) == list(REJECT_COLUMNS)
    assert list(valid.columns) == list(ASSESSMENT_COLUMNS)
    assert list(valid.index) == [1, 2] and valid.index.name == "row"
    r = valid.iloc[0]
    assert (r.policy_id, r.peril, r.plot_area_ha, r.crop_age_days) == ("P001", "wereng batang coklat", 0.4, 15)
    assert valid.crop_age_days.dtype == np.int64
    assert valid.event_date.iloc[0] == pd.Timestamp("2024-01-10")
    assert valid.attrs["source"] == str(tmp_path / "a.csv")


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputError) as exc:
        read_assessments(tmp_path / "absent.csv")
    assert exc.value.file == tmp_path / "absent.csv"
    assert "not found" in str(exc.value)


def test_missing_columns_are_each_named_with_the_file(tmp_path):
    header = [c for c in ASSESSMENT_COLUMNS if c not in ("peril", "notice_date")]
    path = write_csv(tmp_path / "a.csv", [good_row()], header=header)
    with pytest.raises(InputError) as exc:
        read_assessments(path)
    assert [(p.column, p.file) for p in exc.value.problems] == [("peril", path), ("notice_date", path)]
    assert "required column 'peril' is missing" in str(exc.value)


def test_semicolon_header_gets_a_hint(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(";".join(ASSESSMENT_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="semicolon"):
        read_assessments(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "a.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="expected .csv or .parquet"):
        read_assessments(path)


@pytest.mark.parametrize(("changes", "reason", "column", "text"), [
    ({"peril": " "}, "missing_value", "peril", "peril is empty"),
    ({"notice_date": ""}, "missing_value", "notice_date", "notice_date is empty"),
    ({"plot_area_ha": "0,4"}, "bad_number", "plot_area_ha", "'0,4' is not a number"),
    ({"damage_intensity_pct": "lots"}, "bad_number", "damage_intensity_pct", "'lots'"),
    ({"event_date": "2024-02-30"}, "bad_date", "event_date", "'2024-02-30' is not an ISO date"),
    ({"notice_date": "12/01/2024"}, "bad_date", "notice_date", "'12/01/2024'"),
    ({"damage_intensity_pct": "101"}, "percent_out_of_range", "damage_intensity_pct", "got '101'"),
    ({"damaged_area_pct": "-1"}, "percent_out_of_range", "damaged_area_pct", "got '-1'"),
    ({"plot_area_ha": "0"}, "non_positive_area", "plot_area_ha", "got '0'"),
    ({"plot_area_ha": "-0.2"}, "non_positive_area", "plot_area_ha", "got '-0.2'"),
    ({"crop_age_days": "-3"}, "bad_crop_age", "crop_age_days", "got '-3'"),
    ({"crop_age_days": "15.5"}, "bad_crop_age", "crop_age_days", "got '15.5'"),
    ({"notice_date": "2024-01-09"}, "notice_before_event", "notice_date", "before event_date '2024-01-10'"),
])
def test_row_problems_are_rejected_with_row_and_column(tmp_path, changes, reason, column, text):
    rows = [good_row(1), good_row(2), good_row(3, **changes), good_row(4)]
    valid, rejects = read_assessments(write_csv(tmp_path / "a.csv", rows))
    assert list(valid.index) == [1, 2, 4]
    (r,) = rejects.itertuples()
    assert (r.file, r.row, r.column, r.reason, r.policy_id) == (str(tmp_path / "a.csv"), 3, column, reason, "P003")
    assert text in r.message, r.message
    assert reason in REASONS


def test_duplicates_reject_every_occurrence(tmp_path):
    rows = [good_row(1), good_row(2), good_row(1, damage_intensity_pct="90"), good_row(1, plot_id="B")]
    valid, rejects = read_assessments(write_csv(tmp_path / "a.csv", rows))
    assert list(valid.index) == [2, 4]
    assert rejects.row.tolist() == [1, 3]
    assert set(rejects.reason) == {"duplicate_assessment"}
    assert "occurs 2 times (first at row 1, line 2)" in rejects.message.iloc[1]
    assert rejects.damage_intensity_pct.tolist() == ["80", "90"]  # raw values kept for the fix


def test_duplicates_by_peril_code_with_a_wording(tmp_path):
    rows = [good_row(1, peril="tikus"), good_row(1, peril="Rats"), good_row(1, peril="banjir")]
    path = write_csv(tmp_path / "a.csv", rows)
    assert len(read_assessments(path)[1]) == 0  # different text: not duplicates without the wording
    valid, rejects = read_assessments(path, wording=load_wording(WORDING_FILE))
    assert rejects.row.tolist() == [1, 2] and list(valid.index) == [3]


def test_no_row_is_dropped_and_first_problem_wins(tmp_path):
    rows = [good_row(i) for i in range(1, 8)]
    rows[1] = good_row(2, plot_area_ha="", crop_age_days="x")  # empty wins over the bad number
    rows[4] = good_row(5, damage_intensity_pct="x", event_date="nope")
    valid, rejects = read_assessments(write_csv(tmp_path / "a.csv", rows))
    assert len(valid) + len(rejects) == 7
    assert rejects[["row", "column", "reason"]].values.tolist() == [
        [2, "plot_area_ha", "missing_value"], [5, "damage_intensity_pct", "bad_number"]]


def test_parquet_with_typed_columns(tmp_path):
    table = pa.table({
        "policy_id": ["P1", "P2"], "plot_id": [1, 2], "peril": ["banjir", "tikus"],
        "plot_area_ha": [0.4, -1.0], "damage_intensity_pct": [80.0, 80.0], "damaged_area_pct": [80, 80],
        "crop_age_days": pa.array([15, 20], pa.int32()), "planting_method": ["tabela", "salibu"],
        "event_date": pa.array([pd.Timestamp("2024-01-10").date()] * 2, pa.date32()),
        "notice_date": pa.array([pd.Timestamp("2024-01-12").date(), None], pa.date32()),
    })
    pq.write_table(table, tmp_path / "a.parquet")
    valid, rejects = read_assessments(tmp_path / "a.parquet")
    assert valid.plot_id.tolist() == ["1"] and valid.plot_area_ha.tolist() == [0.4]
    assert rejects[["row", "column", "reason"]].values.tolist() == [[2, "notice_date", "missing_value"]]


def test_compressed_csv(tmp_path):
    import gzip
    plain = write_csv(tmp_path / "a.csv", [good_row()])
    gz = tmp_path / "a.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert len(read_assessments(gz)[0]) == 1


def test_read_then_adjust(tmp_path):
    wording = load_wording(WORDING_FILE)
    rows = [good_row(1), good_row(2, crop_age_days="8"), good_row(3, peril="gempa bumi")]
    valid, _ = read_assessments(write_csv(tmp_path / "a.csv", rows), wording=wording)
    claims = adjust(valid, wording, season_start="2023-11-01", season_end="2024-03-31")
    assert claims.indemnity.tolist() == [2_400_000, 0, 0]
    assert claims.reason.tolist() == ["paid", "crop_too_young", "peril_excluded"]
    assert list(claims.index) == [1, 2, 3]  # source rows carried through for the audit
