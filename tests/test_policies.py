"""Reading the policy register and sorting its rows into valid policies and rejects."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panen.engine.errors import InputError
from panen.datasets.policies import read_policies
from panen.engine.api import PolicyRegister
from panen.engine.settlement.policies import REASONS, REJECT_COLUMNS, ProductRules, validate_policies

HEADER = ["policy_id", "farmer_id", "district_id", "product_id", "area_ha", "sum_insured", "sowing_date",
          "group_id", "actual_value", "event_number", "interruption_days", "daily_loss", "event_date"]
DISTRICTS = ["3212", "3213"]
PRODUCTS = {
    "rain": ProductRules(6_000_000, "sowing_date", (date(2023, 10, 1), date(2023, 12, 31))),
    "yield": ProductRules(6_000_000, "season_start"),
}


def good_row(i: int, **changes: str) -> dict[str, str]:
    row = {"policy_id": f"P{i:03d}", "farmer_id": f"F{i:03d}", "district_id": "3212", "product_id": "rain",
           "area_ha": "0.5", "sum_insured": "", "sowing_date": "2023-11-01", "group_id": "G1", "actual_value": "",
           "event_number": "", "interruption_days": "", "daily_loss": "", "event_date": ""}
    row.update(changes)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def validate(path: Path, products=PRODUCTS):
    return validate_policies(read_policies(path), district_ids=DISTRICTS, products=products)


# --------------------------------------------------------------------------- rejects, one per reason


@pytest.mark.parametrize(("changes", "reason", "column"), [
    ({"farmer_id": ""}, "missing_value", "farmer_id"),
    ({"area_ha": "  "}, "missing_value", "area_ha"),
    ({"district_id": ""}, "missing_value", "district_id"),
    ({"product_id": "hail"}, "unknown_product", "product_id"),
    ({"district_id": "9999"}, "unknown_district", "district_id"),
    ({"area_ha": "1,5"}, "bad_number", "area_ha"),
    ({"area_ha": "abc"}, "bad_number", "area_ha"),
    ({"area_ha": "nan"}, "bad_number", "area_ha"),
    ({"sum_insured": "6.000.000"}, "bad_number", "sum_insured"),
    ({"actual_value": "x"}, "bad_number", "actual_value"),
    ({"area_ha": "0"}, "non_positive_area", "area_ha"),
    ({"area_ha": "-0.25"}, "non_positive_area", "area_ha"),
    ({"sum_insured": "-5"}, "bad_sum_insured", "sum_insured"),
    ({"sum_insured": "3000000.5"}, "bad_sum_insured", "sum_insured"),
    ({"actual_value": "0"}, "bad_actual_value", "actual_value"),
    ({"event_number": "first"}, "bad_number", "event_number"),
    ({"event_number": "0"}, "bad_event_number", "event_number"),
    ({"event_number": "1.5"}, "bad_event_number", "event_number"),
    ({"interruption_days": "-1"}, "bad_interruption_days", "interruption_days"),
    ({"interruption_days": "2.5"}, "bad_interruption_days", "interruption_days"),
    ({"daily_loss": "-1"}, "bad_daily_loss", "daily_loss"),
    ({"daily_loss": "1500.5"}, "bad_daily_loss", "daily_loss"),
    ({"daily_loss": "lots"}, "bad_number", "daily_loss"),
    ({"event_date": "2024-02-30"}, "bad_date", "event_date"),
    ({"sowing_date": "2023-02-30"}, "bad_date", "sowing_date"),
    ({"sowing_date": "01/11/2023"}, "bad_date", "sowing_date"),
    ({"sowing_date": ""}, "missing_sowing_date", "sowing_date"),
    ({"sowing_date": "2024-01-01"}, "sowing_date_outside_window", "sowing_date"),
    ({"sowing_date": "2023-09-30"}, "sowing_date_outside_window", "sowing_date"),
])
def test_each_bad_row_is_rejected_with_its_reason_row_and_column(tmp_path, changes, reason, column):
    path = write_csv(tmp_path / "policies.csv", [good_row(1), good_row(2, **changes), good_row(3)])
    valid, rejects = validate(path)
    assert valid["policy_id"].tolist() == ["P001", "P003"]
    assert len(rejects) == 1
    r = rejects.iloc[0]
    assert (r["file"], r["row"], r["column"], r["reason"]) == (str(path), 2, column, reason)
    assert r["policy_id"] == "P002" and r["product_id"] == changes.get("product_id", "rain")
    assert column in r["message"] and r["message"]
    assert reason in REASONS


def test_every_occurrence_of_a_duplicate_policy_id_is_rejected(tmp_path):
    rows = [good_row(1), good_row(2), good_row(3, policy_id="P001"), good_row(4), good_row(5, policy_id="P001")]
    valid, rejects = validate(write_csv(tmp_path / "p.csv", rows))
    assert valid["policy_id"].tolist() == ["P002", "P004"]
    assert rejects["row"].tolist() == [1, 3, 5]
    assert set(rejects["reason"]) == {"duplicate_policy_id"}
    assert rejects["message"].str.contains("3 times").all()
    assert rejects["message"].str.contains("first at row 1").all()


def test_a_row_with_several_problems_is_rejected_once_for_the_first(tmp_path):
    path = write_csv(tmp_path / "p.csv", [good_row(1, district_id="9999", area_ha="-1", sowing_date="x")])
    valid, rejects = validate(path)
    assert len(valid) == 0 and rejects["reason"].tolist() == ["unknown_district"]


def test_sowing_date_is_only_required_for_products_anchored_on_it(tmp_path):
    rows = [good_row(1, product_id="yield", sowing_date=""), good_row(2, product_id="yield", sowing_date="2030-01-01")]
    valid, rejects = validate(write_csv(tmp_path / "p.csv", rows))
    assert len(rejects) == 0 and len(valid) == 2


def test_rejects_carry_the_raw_values_of_the_row(tmp_path):
    path = write_csv(tmp_path / "p.csv", [good_row(1, area_ha="1,5", group_id="G9")])
    _, rejects = validate(path)
    assert list(rejects.columns[:len(REJECT_COLUMNS)]) == list(REJECT_COLUMNS)
    r = rejects.iloc[0]
    assert (r["area_ha"], r["group_id"], r["farmer_id"], r["district_id"]) == ("1,5", "G9", "F001", "3212")


def test_valid_policies_are_typed(tmp_path):
    rows = [good_row(1, sum_insured="3000000", actual_value="4000000"), good_row(2, group_id="")]
    valid, _ = validate(write_csv(tmp_path / "p.csv", rows))
    assert str(valid["policy_id"].dtype) == "str"
    assert isinstance(valid["district_id"].dtype, pd.CategoricalDtype)
    assert valid["area_ha"].dtype == np.float64
    assert str(valid["sum_insured"].dtype) == "Int64"
    assert valid["sum_insured"].tolist()[0] == 3_000_000 and pd.isna(valid["sum_insured"].iloc[1])
    assert valid["sowing_date"].tolist()[0] == pd.Timestamp("2023-11-01")
    assert valid["group_id"].iloc[0] == "G1" and pd.isna(valid["group_id"].iloc[1])
    assert valid["actual_value"].tolist()[0] == 4_000_000


def test_numbers_tolerate_surrounding_spaces_and_integral_sums(tmp_path):
    rows = [good_row(1, area_ha=" 0.75 ", sum_insured="4500000.0")]
    valid, rejects = validate(write_csv(tmp_path / "p.csv", rows))
    assert len(rejects) == 0
    assert valid["area_ha"].tolist() == [0.75] and valid["sum_insured"].tolist() == [4_500_000]


# --------------------------------------------------------------------------- whole-file failures


def test_a_missing_required_column_fails_the_read_naming_file_and_column(tmp_path):
    header = [h for h in HEADER if h != "area_ha"]
    path = write_csv(tmp_path / "p.csv", [good_row(1)], header=header)
    with pytest.raises(InputError) as e:
        read_policies(path)
    assert e.value.file == path and e.value.column == "area_ha"
    assert "area_ha" in str(e.value) and str(path) in str(e.value)


def test_every_missing_column_is_listed(tmp_path):
    path = write_csv(tmp_path / "p.csv", [{"policy_id": "P1"}], header=["policy_id"])
    with pytest.raises(InputError) as e:
        read_policies(path)
    assert [p.column for p in e.value.problems] == ["farmer_id", "district_id", "product_id", "area_ha"]


def test_a_semicolon_separated_file_gets_a_hint(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(";".join(HEADER) + "\n")
    with pytest.raises(InputError, match="semicolon"):
        read_policies(path)


def test_missing_file_and_unknown_format_fail_the_read(tmp_path):
    with pytest.raises(InputError, match="not found") as e:
        read_policies(tmp_path / "nope.csv")
    assert e.value.file == tmp_path / "nope.csv"
    (tmp_path / "p.xlsx").write_bytes(b"PK")
    with pytest.raises(InputError, match="unsupported"):
        read_policies(tmp_path / "p.xlsx")


def test_a_ragged_csv_fails_the_read_naming_the_file(tmp_path):
    path = tmp_path / "p.csv"
    row = ["P1", "F1", "3212", "rain", "0.5", "", "2023-11-01", "G1"] + [""] * (len(HEADER) - 8) + ["EXTRA", "MORE"]
    path.write_text(",".join(HEADER) + "\n" + ",".join(row) + "\n")
    with pytest.raises(InputError) as e:
        read_policies(path)
    assert e.value.file == path


def test_a_corrupt_parquet_file_fails_the_read(tmp_path):
    path = tmp_path / "p.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="Parquet"):
        read_policies(path)


def test_a_missing_required_column_in_parquet_fails_the_read(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"policy_id": ["P1"], "farmer_id": ["F1"]}), path)
    with pytest.raises(InputError) as e:
        read_policies(path)
    assert e.value.file == path and {p.column for p in e.value.problems} == {"district_id", "product_id", "area_ha"}


# --------------------------------------------------------------------------- Parquet = CSV


def test_parquet_input_gives_the_same_valid_policies_and_rejects_as_csv(tmp_path):
    rows = [good_row(1), good_row(2, area_ha="0"), good_row(3, sum_insured="3000000"), good_row(4, district_id="1"),
            good_row(5, policy_id="P001"), good_row(6, sowing_date="")]
    csv_path = write_csv(tmp_path / "p.csv", rows)
    typed = pd.DataFrame(rows)
    parquet = pa.table({
        "policy_id": typed["policy_id"], "farmer_id": typed["farmer_id"], "district_id": typed["district_id"],
        "product_id": typed["product_id"], "area_ha": typed["area_ha"].astype(float),
        "sum_insured": pd.to_numeric(typed["sum_insured"]).astype("Int64"),
        "sowing_date": pa.array(pd.to_datetime(typed["sowing_date"]).dt.date, pa.date32()),
        "group_id": typed["group_id"], "actual_value": pa.nulls(len(typed), pa.int64()),
        "event_number": pa.nulls(len(typed), pa.int64()), "interruption_days": pa.nulls(len(typed), pa.int32()),
        "daily_loss": pa.nulls(len(typed), pa.int64()), "event_date": pa.nulls(len(typed), pa.date32()),
    })
    pq_path = tmp_path / "p.parquet"
    pq.write_table(parquet, pq_path)
    valid_csv, rejects_csv = validate(csv_path)
    valid_pq, rejects_pq = validate(pq_path)
    pd.testing.assert_frame_equal(valid_csv, valid_pq)
    cols = ["row", "column", "policy_id", "reason"]
    pd.testing.assert_frame_equal(rejects_csv[cols], rejects_pq[cols])
    assert rejects_csv["reason"].tolist() == ["duplicate_policy_id", "non_positive_area", "unknown_district",
                                              "duplicate_policy_id", "missing_sowing_date"]


def test_an_in_memory_frame_is_a_register_too():
    frame = pd.DataFrame([good_row(1), good_row(2, area_ha="-1")])
    valid, rejects = validate_policies(PolicyRegister.from_frame(frame), district_ids=DISTRICTS, products=PRODUCTS)
    assert len(valid) == 1 and rejects["file"].tolist() == ["<memory>"]
    with pytest.raises(InputError, match="area_ha"):
        PolicyRegister.from_frame(frame.drop(columns="area_ha"))


def test_validation_does_not_modify_the_register(tmp_path):
    register = read_policies(write_csv(tmp_path / "p.csv", [good_row(1), good_row(2, area_ha="x")]))
    before = register.table
    validate_policies(register, district_ids=DISTRICTS, products=PRODUCTS)
    assert register.table.equals(before)


def test_product_rules_check_their_parameters():
    with pytest.raises(ValueError):
        ProductRules(0)
    with pytest.raises(ValueError):
        ProductRules(6_000_000, "harvest")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ProductRules(6_000_000, "sowing_date", (date(2024, 1, 2), date(2024, 1, 1)))


# --------------------------------------------------------------------------- never drop a row

_cell = st.one_of(st.sampled_from(["", " ", "x", "0", "-1", "1,5", "nan", "3212", "9999", "rain", "yield",
                                   "2023-11-01", "2024-02-30", "P1", "G1", "0.5", "6000000", "1e3"]),
                  st.text(alphabet="abc0123456789.-, ", max_size=6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({h: _cell for h in HEADER}), min_size=0, max_size=25))
def test_valid_plus_rejects_is_every_input_row(tmp_path, rows):
    path = write_csv(tmp_path / "p.csv", rows)
    valid, rejects = validate(path)
    assert len(valid) + len(rejects) == len(rows)
    assert rejects["row"].is_unique
    assert set(rejects["row"]) <= set(range(1, len(rows) + 1))
    assert rejects["reason"].isin(list(REASONS)).all()
    assert rejects["message"].notna().all()


def test_register_without_a_sowing_date_column_rejects_only_sowing_anchored_rows(tmp_path):
    import pandas as pd

    from panen.datasets.policies import read_policies

    from panen.engine.settlement.policies import ProductRules, validate_policies

    p = tmp_path / "p.csv"
    pd.DataFrame({"policy_id": ["a", "b"], "farmer_id": ["f", "g"], "district_id": ["1", "1"],
                  "product_id": ["x", "y"], "area_ha": [1, 1]}).to_csv(p, index=False)
    valid, rejects = validate_policies(read_policies(p), district_ids={"1"},
                                       products={"x": ProductRules(1000, "sowing_date"), "y": ProductRules(1000)})
    assert list(valid["policy_id"]) == ["b"]
    assert rejects[["row", "column", "reason"]].values.tolist() == [[1, "sowing_date", "missing_sowing_date"]]
