"""The ledger: rates gathered per policy, money to the rupiah, totals, payments, files."""

from __future__ import annotations

import os
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panen.engine.errors import ConfigError, DataQualityError, InputError
from panen.engine.settlement.ledger import (
    LEDGER_COLUMNS,
    ReconciliationError,
    build_ledger,
    district_totals,
    payment_id,
    payments,
    reconcile,
    sort_order,
)
from panen.engine.infra.atomic import PARQUET_OPTIONS, write_table_atomic
from panen.datasets.policies import read_policies
from panen.engine.settlement.policies import ProductRules, validate_policies
from panen.engine.settlement.rates import RateTable
from panen.engine.maths.terms import Terms

SEASON = np.datetime64("2023-11-01")


def rate_table(rates, districts=None, cohorts=None, flagged=None, anchor="season_start", product_id="rain"):
    """A RateTable from a (district × cohort) list of rates; NaN where unassessed."""
    rate = np.array(rates, dtype=float).reshape(len(rates), -1)
    districts = districts or [f"D{i + 1}" for i in range(rate.shape[0])]
    cohorts = cohorts if cohorts is not None else [str(SEASON)]
    flagged = np.zeros(rate.shape, bool) if flagged is None else np.array(flagged, bool).reshape(rate.shape)
    return RateTable(product_id, np.array(districts), np.array(cohorts, dtype="datetime64[D]"), rate, flagged,
                     anchor=anchor)


def policies(rows: list[dict]) -> pd.DataFrame:
    base = {"farmer_id": "F1", "product_id": "rain", "area_ha": 1.0}
    return pd.DataFrame([{**base, **r} for r in rows])


RULES = {"rain": ProductRules(6_000_000)}


def ledger_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for c in ("district_id", "product_id", "status"):
        frame[c] = frame[c].astype(str)
    return frame


# --------------------------------------------------------------------------- the worked example


def tick_rate(realized_mm: float, strike: float = 100.0, exit_: float = 50.0) -> float:
    """Linear deficit cover (World Bank 2011): clip((strike - I) / (strike - exit), 0, 1)."""
    return float(np.clip((strike - realized_mm) / (strike - exit_), 0.0, 1.0))


def test_worked_example_strike_100_exit_50_liability_50000():
    # realized 90 mm -> rate 0.2 -> 10,000; <= 50 mm -> rate 1 -> 50,000; >= 100 mm -> 0
    rates = [[tick_rate(90)], [tick_rate(40)], [tick_rate(120)]]
    assert [r[0] for r in rates] == pytest.approx([0.2, 1.0, 0.0])
    pol = policies([{"policy_id": f"P{i}", "district_id": f"D{i}", "sum_insured": 50_000} for i in (1, 2, 3)])
    pol["sum_insured"] = pol["sum_insured"].astype("Int64")
    ledger = ledger_frame(build_ledger(pol, {"rain": rate_table(rates)}, RULES))
    assert ledger["gross_payout"].tolist() == [10_000, 50_000, 0]
    assert ledger["net_payout"].tolist() == [10_000, 50_000, 0]
    assert ledger["sum_insured"].tolist() == [50_000] * 3
    assert ledger["payout_rate"].tolist() == pytest.approx([0.2, 1.0, 0.0])
    assert ledger["status"].tolist() == ["paid", "paid", "no_payout"]
    assert list(ledger.columns[:len(LEDGER_COLUMNS)]) == list(LEDGER_COLUMNS)
    for c in ("sum_insured", "gross_payout", "deductible", "net_payout"):
        assert ledger[c].dtype == np.int64


def test_sum_insured_is_area_times_rate_per_ha_rounded_half_up():
    pol = policies([{"policy_id": "A", "district_id": "D1", "area_ha": 0.125},      # 750,000
                    {"policy_id": "B", "district_id": "D1", "area_ha": 0.00000025},  # 1.5 -> 2
                    {"policy_id": "C", "district_id": "D1", "area_ha": 2.0}])
    ledger = ledger_frame(build_ledger(pol, {"rain": rate_table([[0.5]])}, RULES))
    assert ledger["sum_insured"].tolist() == [750_000, 2, 12_000_000]
    assert ledger["gross_payout"].tolist() == [375_000, 1, 6_000_000]  # 2 x 0.5 = 1


def test_a_given_sum_insured_overrides_the_per_hectare_amount():
    pol = policies([{"policy_id": "A", "district_id": "D1", "sum_insured": 1_000_001},
                    {"policy_id": "B", "district_id": "D1", "sum_insured": None}])
    pol["sum_insured"] = pol["sum_insured"].astype("Int64")
    ledger = ledger_frame(build_ledger(pol, {"rain": rate_table([[0.5]])}, RULES))
    assert ledger["sum_insured"].tolist() == [1_000_001, 6_000_000]
    assert ledger["gross_payout"].tolist() == [500_001, 3_000_000]  # 500,000.5 rounds up


def test_terms_are_applied_per_product():
    pol = policies([{"policy_id": "A", "district_id": "D1", "sum_insured": 250_000},
                    {"policy_id": "B", "district_id": "D1", "sum_insured": 400_000}])
    franchise = {"rain": Terms(deductible={"kind": "franchise", "amount": 35_000})}
    ledger = ledger_frame(build_ledger(pol, {"rain": rate_table([[0.1]])}, RULES, franchise))
    assert ledger["gross_payout"].tolist() == [25_000, 40_000]
    assert ledger["deductible"].tolist() == [25_000, 0]
    assert ledger["net_payout"].tolist() == [0, 40_000]
    assert ledger["status"].tolist() == ["no_payout", "paid"]


def test_an_average_clause_product_uses_the_registers_actual_value():
    # 90 M insured of a 110 M value, rate 3.5 M / 90 M -> gross 3.5 M -> insurer 2,863,636
    pol = policies([{"policy_id": "A", "district_id": "D1", "sum_insured": 90_000_000, "actual_value": 110_000_000},
                    {"policy_id": "B", "district_id": "D1", "sum_insured": 90_000_000, "actual_value": 80_000_000}])
    for c in ("sum_insured", "actual_value"):
        pol[c] = pol[c].astype("Int64")
    sheet = {"rain": Terms(average_clause=True)}
    ledger = ledger_frame(build_ledger(pol, {"rain": rate_table([[3.5 / 90]])}, RULES, sheet))
    assert ledger["gross_payout"].tolist() == [3_500_000, 3_500_000]
    assert ledger["net_payout"].tolist() == [2_863_636, 3_500_000]  # B is not under-insured
    assert ledger["deductible"].tolist() == [0, 0]  # the average is not a deductible


def test_an_average_clause_product_needs_actual_value_for_every_policy():
    pol = policies([{"policy_id": "A", "district_id": "D1", "actual_value": 7_000_000},
                    {"policy_id": "B", "district_id": "D1", "actual_value": None}])
    pol["actual_value"] = pol["actual_value"].astype("Int64")
    sheet = {"rain": Terms(average_clause=True)}
    with pytest.raises(InputError, match=r"'rain'.*'average_clause'.*policy_id B") as err:
        build_ledger(pol, {"rain": rate_table([[0.5]])}, RULES, sheet)
    assert err.value.column == "actual_value"
    with pytest.raises(ConfigError, match=r"'rain'.*'average_clause'.*'actual_value'"):
        build_ledger(pol.drop(columns="actual_value"), {"rain": rate_table([[0.5]])}, RULES, sheet)


# --------------------------------------------------------------------------- missing data


def test_policies_in_a_flagged_district_are_withheld_not_paid_and_not_rejected():
    pol = policies([{"policy_id": "A", "district_id": "D1"}, {"policy_id": "B", "district_id": "D2"}])
    rates = rate_table([[1.0], [np.nan]], flagged=[[False], [True]])
    table = build_ledger(pol, {"rain": rates}, RULES)
    ledger = ledger_frame(table)
    assert ledger["status"].tolist() == ["paid", "withheld_missing_data"]
    assert table["payout_rate"].null_count == 1 and table["payout_rate"][1].as_py() is None
    assert ledger.loc[1, ["gross_payout", "deductible", "net_payout"]].tolist() == [0, 0, 0]
    assert ledger.loc[1, "sum_insured"] == 6_000_000


def test_a_flagged_cell_is_withheld_even_if_it_carries_a_rate():
    pol = policies([{"policy_id": "A", "district_id": "D1"}])
    ledger = ledger_frame(build_ledger(pol, {"rain": rate_table([[0.7]], flagged=[[True]])}, RULES))
    assert ledger["status"].tolist() == ["withheld_missing_data"] and ledger["net_payout"].tolist() == [0]


def test_a_nan_rate_is_never_paid_even_if_not_flagged():
    pol = policies([{"policy_id": "A", "district_id": "D1"}])
    ledger = ledger_frame(build_ledger(pol, {"rain": rate_table([[np.nan]])}, RULES))
    assert ledger["status"].tolist() == ["withheld_missing_data"] and ledger["gross_payout"].tolist() == [0]


# --------------------------------------------------------------------------- cohorts and lookups


def test_each_policy_gets_the_rate_of_its_sowing_date_cohort():
    cohorts = ["2023-11-01", "2023-11-08", "2023-11-15"]
    rates = rate_table([[0.0, 0.5, 1.0], [0.25, 0.0, 0.0]], cohorts=cohorts, anchor="sowing_date")
    pol = policies([{"policy_id": "A", "district_id": "D1", "sowing_date": "2023-11-15"},
                    {"policy_id": "B", "district_id": "D1", "sowing_date": "2023-11-08"},
                    {"policy_id": "C", "district_id": "D2", "sowing_date": "2023-11-01"},
                    {"policy_id": "D", "district_id": "D1", "sowing_date": "2023-11-01"}])
    pol["sowing_date"] = pd.to_datetime(pol["sowing_date"])
    rules = {"rain": ProductRules(100_000, "sowing_date")}
    ledger = ledger_frame(build_ledger(pol, {"rain": rates}, rules))
    assert ledger["policy_id"].tolist() == ["A", "B", "D", "C"]
    assert ledger["gross_payout"].tolist() == [100_000, 50_000, 0, 25_000]
    assert [str(c) for c in ledger["cohort"]] == ["2023-11-15", "2023-11-08", "2023-11-01", "2023-11-01"]


def test_a_sowing_date_without_a_cohort_is_an_error_not_a_zero():
    rates = rate_table([[0.5]], cohorts=["2023-11-01"], anchor="sowing_date")
    pol = policies([{"policy_id": "A", "district_id": "D1", "sowing_date": pd.Timestamp("2023-11-02")}])
    with pytest.raises(ValueError, match="no cohort for sowing date"):
        build_ledger(pol, {"rain": rates}, {"rain": ProductRules(100_000, "sowing_date")})


def test_a_district_without_rates_is_an_error():
    pol = policies([{"policy_id": "A", "district_id": "D9"}])
    with pytest.raises(ValueError, match="D9"):
        build_ledger(pol, {"rain": rate_table([[0.5]])}, RULES)


def test_a_product_without_a_rate_table_is_an_error():
    pol = policies([{"policy_id": "A", "district_id": "D1", "product_id": "ndvi"}])
    with pytest.raises(ValueError, match="ndvi"):
        build_ledger(pol, {"rain": rate_table([[0.5]])}, RULES)


def test_the_ledger_is_sorted_by_product_district_and_policy_id():
    rows = [{"policy_id": p, "district_id": d, "product_id": pr}
            for p, d, pr in [("b", "D2", "rain"), ("ab", "D1", "rain"), ("a", "D1", "rain"), ("é", "D1", "rain"),
                             ("Z", "D1", "rain"), ("a", "D1", "ndvi"), ("10", "D10", "rain"), ("9", "D10", "rain")]]
    rules = {"rain": ProductRules(1_000), "ndvi": ProductRules(1_000)}
    rates = {"rain": rate_table([[0.1], [0.2], [0.3]], districts=["D1", "D2", "D10"]),
             "ndvi": rate_table([[0.1]], product_id="ndvi")}
    ledger = ledger_frame(build_ledger(policies(rows), rates, rules))
    keys = list(zip(ledger["product_id"], ledger["district_id"], ledger["policy_id"]))
    assert keys == sorted(keys, key=lambda k: tuple(s.encode("utf-8") for s in k))
    assert keys[0] == ("ndvi", "D1", "a") and keys[1:5] == [("rain", "D1", "Z"), ("rain", "D1", "a"),
                                                            ("rain", "D1", "ab"), ("rain", "D1", "é")]


@pytest.mark.parametrize("prefix", ["", "AUTP-2024-MT1-KAB-3212-", "x" * 40])
def test_sort_order_matches_a_byte_wise_sort(prefix):
    rng = np.random.default_rng(7)
    words = [prefix + "".join(rng.choice(list("ab\x00é9"), rng.integers(0, 30))) for _ in range(3000)]
    words += words[:50]  # exact duplicates keep input order
    group = rng.integers(0, 4, len(words))
    order = sort_order(group, 4, pa.array(words))
    expected = sorted(range(len(words)), key=lambda i: (group[i], words[i].encode(), i))
    assert order.tolist() == expected


def test_build_ledger_does_not_modify_the_policies():
    pol = policies([{"policy_id": "B", "district_id": "D1", "group_id": "G1"},
                    {"policy_id": "A", "district_id": "D1", "group_id": None}])
    before = pol.copy()
    build_ledger(pol, {"rain": rate_table([[0.5]])}, RULES)
    pd.testing.assert_frame_equal(pol, before)


def test_an_empty_register_gives_an_empty_ledger():
    pol = policies([{"policy_id": "A", "district_id": "D1"}]).iloc[:0]
    table = build_ledger(pol, {"rain": rate_table([[0.5]])}, RULES)
    assert table.num_rows == 0 and list(table.column_names[:9]) == list(LEDGER_COLUMNS)
    totals = district_totals(table)
    reconcile(table, totals)
    assert totals["net_payout"].tolist() == [0]


# --------------------------------------------------------------------------- totals and payments


@pytest.fixture
def small_ledger() -> pa.Table:
    pol = policies([
        {"policy_id": "P1", "farmer_id": "F1", "district_id": "D1", "area_ha": 0.5, "group_id": "G1"},
        {"policy_id": "P2", "farmer_id": "F1", "district_id": "D1", "area_ha": 0.25, "group_id": "G1"},
        {"policy_id": "P3", "farmer_id": "F2", "district_id": "D1", "area_ha": 1.0, "group_id": "G2"},
        {"policy_id": "P4", "farmer_id": "F3", "district_id": "D2", "area_ha": 2.0, "group_id": "G2"},
        {"policy_id": "P5", "farmer_id": "F4", "district_id": "D3", "area_ha": 1.0, "group_id": "G3"},
    ])
    rates = rate_table([[0.1], [0.0], [np.nan]], flagged=[[False], [False], [True]])
    return build_ledger(pol, {"rain": rates}, RULES)


def test_district_totals_by_hand(small_ledger):
    totals = district_totals(small_ledger)
    assert totals["level"].tolist() == ["district"] * 3 + ["total"]
    assert totals["district_id"].tolist()[:3] == ["D1", "D2", "D3"]
    assert totals["policies"].tolist() == [3, 1, 1, 5]
    assert totals["withheld"].tolist() == [0, 0, 1, 1]
    assert totals["area_ha"].tolist() == [1.75, 2.0, 1.0, 4.75]
    assert totals["sum_insured"].tolist() == [10_500_000, 12_000_000, 6_000_000, 28_500_000]
    assert totals["gross_payout"].tolist() == [1_050_000, 0, 0, 1_050_000]
    assert totals["net_payout"].tolist() == [1_050_000, 0, 0, 1_050_000]
    reconcile(small_ledger, totals)


def test_reconcile_catches_a_district_total_off_by_one_rupiah(small_ledger):
    totals = district_totals(small_ledger)
    totals.loc[0, "net_payout"] += 1
    with pytest.raises(ReconciliationError, match="D1 net_payout"):
        reconcile(small_ledger, totals)


def test_reconcile_catches_a_tampered_ledger(small_ledger):
    totals = district_totals(small_ledger)
    net = small_ledger["net_payout"].to_numpy().copy()
    net[0] -= 1
    tampered = small_ledger.set_column(small_ledger.column_names.index("net_payout"), "net_payout", pa.array(net))
    with pytest.raises(ReconciliationError, match="net_payout"):
        reconcile(tampered, totals)


def test_reconcile_catches_a_missing_district_row(small_ledger):
    totals = district_totals(small_ledger)
    with pytest.raises(ReconciliationError, match="missing from the totals"):
        reconcile(small_ledger, totals.drop(index=1))


def test_payments_per_farmer_pay_only_positive_amounts(small_ledger):
    pay = payments(small_ledger, by="farmer", season_id="2024-MT1")
    assert pay["payee_id"].tolist() == ["F1", "F2"]
    assert pay["amount"].tolist() == [450_000, 600_000]   # F1: 300,000 + 150,000
    assert pay["policies"].tolist() == [2, 1]
    assert pay["payment_id"].tolist() == [payment_id("2024-MT1", "rain", "farmer", "F1"),
                                          payment_id("2024-MT1", "rain", "farmer", "F2")]
    assert pay["payment_id"].str.fullmatch("[0-9a-f]{16}").all()
    assert pay["amount"].sum() == district_totals(small_ledger)["net_payout"].iloc[-1]


def test_payments_per_group_and_ids_are_stable_across_reruns(small_ledger):
    pay = payments(small_ledger, by="group", season_id="2024-MT1")
    assert pay[["payee_id", "amount"]].values.tolist() == [["G1", 450_000], ["G2", 600_000]]
    again = payments(small_ledger, by="group", season_id="2024-MT1")
    pd.testing.assert_frame_equal(pay, again)
    other_season = payments(small_ledger, by="group", season_id="2024-MT2")
    assert set(pay["payment_id"]).isdisjoint(other_season["payment_id"])
    assert set(pay["payment_id"]).isdisjoint(payments(small_ledger, by="farmer", season_id="2024-MT1")["payment_id"])


def test_paying_by_group_needs_a_group_for_every_paid_policy():
    pol = policies([{"policy_id": "P1", "district_id": "D1", "group_id": None},
                    {"policy_id": "P2", "district_id": "D1", "group_id": "G1"}])
    ledger = build_ledger(pol, {"rain": rate_table([[0.5]])}, RULES)
    with pytest.raises(DataQualityError, match="no group_id"):
        payments(ledger, by="group", season_id="2024-MT1")


# --------------------------------------------------------------------------- files


def build_demo(tmp_path, name: str) -> pa.Table:
    rng = np.random.default_rng(3)
    n = 2_000
    pol = pd.DataFrame({
        "policy_id": [f"P{i:05d}" for i in rng.permutation(n)],
        "farmer_id": [f"F{i:04d}" for i in rng.integers(0, 900, n)],
        "district_id": rng.choice(["D1", "D2", "D3"], n),
        "product_id": "rain",
        "area_ha": np.round(rng.uniform(0.1, 2, n), 2),
        "group_id": [f"G{i}" for i in rng.integers(0, 40, n)],
    })
    return build_ledger(pol, {"rain": rate_table([[0.15], [np.nan], [0.333]], flagged=[[0], [1], [0]])}, RULES,
                        {"rain": Terms(deductible={"kind": "straight", "amount": 10_000})})


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_inputs_give_byte_identical_files(tmp_path, fmt):
    a = write_table_atomic(build_demo(tmp_path, "a"), tmp_path / f"a.{fmt}")
    b = write_table_atomic(build_demo(tmp_path, "b"), tmp_path / f"b.{fmt}")
    assert a.read_bytes() == b.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def mixed_register(n: int = 3_500, seed: int = 5) -> tuple[pd.DataFrame, dict, dict, dict]:
    """Two products (one by sowing-date cohort), given and per-hectare sums insured,
    group ids with gaps, a flagged cell and terms: every column of the ledger varies."""
    rng = np.random.default_rng(seed)
    cohorts = ["2023-11-01", "2023-11-08", "2023-11-15"]
    pol = pd.DataFrame({
        "policy_id": [f"P{i:05d}" for i in rng.permutation(n)],
        "farmer_id": [f"F{i:04d}" for i in rng.integers(0, 2_000, n)],
        "district_id": rng.choice(["D1", "D2", "D3", "D4"], n),
        "product_id": rng.choice(["rain", "dry"], n),
        "area_ha": np.round(rng.uniform(0.1, 2, n), 2),
        "sowing_date": pd.to_datetime(rng.choice(cohorts, n)),
        "sum_insured": pd.array(np.where(rng.random(n) < 0.3, rng.integers(1, 90, n) * 100_000, -1),
                                dtype="Int64"),
        "group_id": [f"G{i}" if i else "" for i in rng.integers(0, 30, n)],
    })
    pol.loc[pol["sum_insured"] < 0, "sum_insured"] = pd.NA
    rates = {"rain": rate_table([[0.15], [np.nan], [0.333], [0.0]], flagged=[[0], [1], [0], [0]]),
             "dry": rate_table(rng.uniform(0, 1, (4, 3)).round(4).tolist(), cohorts=cohorts, anchor="sowing_date",
                               product_id="dry")}
    rules = {"rain": ProductRules(6_000_000),
             "dry": ProductRules(4_500_000, "sowing_date", (date(2023, 11, 1), date(2023, 11, 15)))}
    terms = {"rain": Terms(deductible={"kind": "straight", "amount": 10_000}),
             "dry": Terms(deductible={"kind": "franchise", "amount": 40_000})}
    return pol, rates, rules, terms


@pytest.mark.parametrize("row_group", [1_000, 1 << 20])
def test_a_ledger_streamed_to_parquet_is_the_same_file_and_table(tmp_path, monkeypatch, row_group):
    # build_ledger(parquet_path=...) writes row group by row group from a thread while it
    # builds; the file must be the bytes write_table_atomic gives for the whole table, and
    # the ledger the same whatever the row-group size (1,000: the 3,500 rows span 4 groups
    # and both products inside one group)
    monkeypatch.setitem(PARQUET_OPTIONS, "row_group_size", row_group)
    pol, rates, rules, terms = mixed_register()
    whole = build_ledger(pol, rates, rules, terms)
    streamed = build_ledger(pol, rates, rules, terms, parquet_path=tmp_path / "streamed.parquet")
    once = write_table_atomic(whole, tmp_path / "once.parquet")
    assert (tmp_path / "streamed.parquet").read_bytes() == once.read_bytes()
    assert streamed.equals(whole)
    assert pq.ParquetFile(once).metadata.num_row_groups == -(-len(pol) // row_group)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["once.parquet", "streamed.parquet"]
    monkeypatch.setitem(PARQUET_OPTIONS, "row_group_size", 1 << 20)  # one chunk, the same rows
    assert whole.combine_chunks().equals(build_ledger(pol, rates, rules, terms).combine_chunks())


def test_a_streamed_ledger_that_fails_midway_leaves_no_file(tmp_path, monkeypatch):
    # the average clause needs actual_value: a policy missing it in the last row group
    # fails the build after earlier row groups went to the writer
    monkeypatch.setitem(PARQUET_OPTIONS, "row_group_size", 500)
    pol, rates, rules, _ = mixed_register()
    pol["actual_value"] = pd.array(np.full(len(pol), 50_000_000), dtype="Int64")
    last = ledger_frame(build_ledger(pol, rates, rules))["policy_id"].iloc[-1]
    pol.loc[pol["policy_id"] == last, "actual_value"] = pd.NA
    sheet = {pid: Terms(average_clause=True) for pid in rules}
    with pytest.raises(InputError, match=f"policy_id {last}"):
        build_ledger(pol, rates, rules, sheet, parquet_path=tmp_path / "payouts.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_streamed_ledger_whose_write_fails_raises_and_leaves_no_file(tmp_path, monkeypatch):
    class FailOnSecondGroup(pq.ParquetWriter):
        calls = 0

        def write_table(self, table, row_group_size=None):
            FailOnSecondGroup.calls += 1
            if FailOnSecondGroup.calls == 2:
                raise OSError("disk full")
            super().write_table(table, row_group_size=row_group_size)

    monkeypatch.setitem(PARQUET_OPTIONS, "row_group_size", 500)
    monkeypatch.setattr("panen.engine.infra.atomic.pq.ParquetWriter", FailOnSecondGroup)
    pol, rates, rules, terms = mixed_register()
    with pytest.raises(OSError, match="disk full"):
        build_ledger(pol, rates, rules, terms, parquet_path=tmp_path / "payouts.parquet")
    assert list(tmp_path.iterdir()) == []


def test_parquet_round_trips_without_pandas_metadata(tmp_path):
    table = build_demo(tmp_path, "a")
    path = write_table_atomic(table, tmp_path / "payouts.parquet")
    back = pq.read_table(path)
    assert back.equals(table)
    assert b"pandas" not in (back.schema.metadata or {})
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "LZ4"
    frame = pd.DataFrame({"a": [1, 2]}, index=[5, 6])
    back = pq.read_table(write_table_atomic(frame, tmp_path / "f.parquet"))
    assert back.column_names == ["a"] and b"pandas" not in (back.schema.metadata or {})


def test_csv_writes_integers_without_a_decimal_point_and_nulls_empty(tmp_path):
    pol = policies([{"policy_id": "A", "district_id": "D1"}, {"policy_id": "B", "district_id": "D2"}])
    table = build_ledger(pol, {"rain": rate_table([[0.25], [np.nan]], flagged=[[0], [1]])}, RULES)
    lines = write_table_atomic(table, tmp_path / "payouts.csv").read_text().splitlines()
    assert lines[0].startswith('"policy_id","farmer_id","district_id","product_id","sum_insured","payout_rate"')
    assert lines[1] == '"A","F1","D1","rain",6000000,0.25,1500000,0,1500000,1,2023-11-01,"paid",'  # reason: empty
    assert lines[2] == '"B","F1","D2","rain",6000000,,0,0,0,1,2023-11-01,"withheld_missing_data","missing data"'


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "payouts.parquet"
    path.write_bytes(b"old")

    class HalfThenFail:
        def __init__(self, where, schema, **options):
            self.where = where

        def write_table(self, table, row_group_size=None):
            self.where.write(b"PAR1 half a file")
            raise OSError("disk full")

        def close(self):
            pass

    monkeypatch.setattr("panen.engine.infra.atomic.pq.ParquetWriter", HalfThenFail)
    with pytest.raises(OSError, match="disk full"):
        write_table_atomic(pa.table({"a": [1]}), path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["payouts.parquet"]


def test_written_files_get_ordinary_permissions(tmp_path):
    path = write_table_atomic(pa.table({"a": [1]}), tmp_path / "x.csv")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


# --------------------------------------------------------------------------- end to end


def test_time_excess_and_dynamic_terms_read_their_context_from_the_register(tmp_path):
    # rate 0.1 of Rp 6,000,000/ha; by hand:
    #   time_excess 3 days: D = 10 -> 600,000 × 7/10 = 420,000 paid; D = 2 -> 0; D = 3 -> 0
    #   dynamic [0.05, 0.35, 0.80]: event 1 keeps 5 % (570,000 paid), event 2 35 % (390,000),
    #   event 5 the last rate, 80 % (120,000)
    path = tmp_path / "policies.csv"
    path.write_text(
        "policy_id,farmer_id,district_id,product_id,area_ha,interruption_days,event_number\n"
        "T1,F1,D1,bi,1.0,10,\n"
        "T2,F2,D1,bi,1.0,2,\n"
        "T3,F3,D1,bi,1.0,3,\n"
        "E1,F4,D1,ev,1.0,,1\n"
        "E2,F5,D1,ev,1.0,,2\n"
        "E5,F6,D1,ev,1.0,,5\n")
    rules = {"bi": ProductRules(6_000_000), "ev": ProductRules(6_000_000)}
    valid, rejects = validate_policies(read_policies(path), district_ids=["D1"], products=rules)
    assert rejects.empty and str(valid["interruption_days"].dtype) == "Int64"
    rates = {pid: rate_table([[0.1]], product_id=pid) for pid in rules}
    sheet = {"bi": Terms(deductible={"kind": "time_excess", "days": 3}),
             "ev": Terms(deductible={"kind": "dynamic", "schedule": [0.05, 0.35, 0.80]})}
    ledger = ledger_frame(build_ledger(valid, rates, rules, sheet)).set_index("policy_id")
    assert ledger.loc[["T1", "T2", "T3", "E1", "E2", "E5"], "net_payout"].tolist() == \
        [420_000, 0, 0, 570_000, 390_000, 120_000]
    assert (ledger["deductible"] + ledger["net_payout"] == ledger["gross_payout"]).all()

    # a policy of the time-excess product without its interruption length is an error naming
    # it, never paid unreduced; a register without the column at all is a configuration error
    path.write_text(path.read_text().replace("T2,F2,D1,bi,1.0,2,", "T2,F2,D1,bi,1.0,,"))
    valid, _ = validate_policies(read_policies(path), district_ids=["D1"], products=rules)
    with pytest.raises(InputError, match=r"'bi'.*'interruption_days'.*policy_id T2"):
        build_ledger(valid, rates, rules, sheet)
    with pytest.raises(ConfigError, match=r"'interruption_days'"):
        build_ledger(valid.drop(columns="interruption_days"), rates, rules, sheet)


def test_register_to_ledger_end_to_end(tmp_path):
    path = tmp_path / "policies.csv"
    path.write_text(
        "policy_id,farmer_id,district_id,product_id,area_ha,sowing_date,group_id\n"
        "P1,F1,3212,rain,0.5,2023-11-01,G1\n"
        "P2,F2,3212,rain,1.0,2023-11-08,G1\n"
        "P3,F3,3213,rain,abc,2023-11-01,G2\n"
        "P4,F4,3213,rain,2.0,2023-11-08,G2\n")
    rules = {"rain": ProductRules(6_000_000, "sowing_date", (date(2023, 11, 1), date(2023, 11, 30)))}
    valid, rejects = validate_policies(read_policies(path), district_ids=["3212", "3213"], products=rules)
    rates = rate_table([[0.2, 0.0], [np.nan, 0.5]], districts=["3212", "3213"],
                       cohorts=["2023-11-01", "2023-11-08"], flagged=[[0, 0], [1, 0]], anchor="sowing_date")
    ledger = ledger_frame(build_ledger(valid, {"rain": rates}, rules))
    assert rejects["row"].tolist() == [3] and rejects["reason"].tolist() == ["bad_number"]
    assert ledger["policy_id"].tolist() == ["P1", "P2", "P4"]
    assert ledger["net_payout"].tolist() == [600_000, 0, 6_000_000]
    assert ledger["group_id"].tolist() == ["G1", "G1", "G2"]


# --------------------------------------------------------------------------- issue 12: term context, instalments
def test_a_first_months_deductible_reads_event_dates_from_the_register_and_the_season_end(tmp_path):
    # rate 0.5 of Rp 6,000,000/ha = 3,000,000 gross; straight 300,000 for events in the first
    # 3 months of the policy (season start 2023-11-01 -> up to 2024-01-31):
    #   A1 event 2024-01-15 -> 2,700,000; A2 event 2024-02-01 -> 3,000,000;
    #   A3 no event date: an index loss is known at the season end (2024-03-31) -> 3,000,000
    path = tmp_path / "policies.csv"
    path.write_text(
        "policy_id,farmer_id,district_id,product_id,area_ha,event_date\n"
        "A1,F1,D1,rain,1.0,2024-01-15\n"
        "A2,F2,D1,rain,1.0,2024-02-01\n"
        "A3,F3,D1,rain,1.0,\n"
        "A4,F4,D1,rain,1.0,2024-02-30\n")
    valid, rejects = validate_policies(read_policies(path), district_ids=["D1"], products=RULES)
    assert rejects[["row", "reason", "column"]].values.tolist() == [[4, "bad_date", "event_date"]]
    sheet = {"rain": Terms(deductible={"kind": "straight", "amount": 300_000, "first_months": 3})}
    ledger = ledger_frame(build_ledger(valid, {"rain": rate_table([[0.5]])}, RULES, sheet,
                                       season_end=date(2024, 3, 31))).set_index("policy_id")
    assert ledger.loc[["A1", "A2", "A3"], "net_payout"].tolist() == [2_700_000, 3_000_000, 3_000_000]
    assert ledger.loc[["A1", "A2", "A3"], "deductible"].tolist() == [300_000, 0, 0]
    # a season ending inside the window: the undated index loss takes the deductible
    ledger = ledger_frame(build_ledger(valid, {"rain": rate_table([[0.5]])}, RULES, sheet,
                                       season_end=date(2024, 1, 31))).set_index("policy_id")
    assert ledger.loc["A3", "net_payout"] == 2_700_000
    # without a season end, an undated policy is named, never paid without its deductible
    with pytest.raises(InputError, match=r"'event_date'.*policy_id A3"):
        build_ledger(valid, {"rain": rate_table([[0.5]])}, RULES, sheet)


def test_the_policy_start_of_a_sowing_anchored_cover_is_its_sowing_date():
    # sown 2023-12-15: 3 months run to 2024-03-14; an event on 2024-03-01 takes the deductible,
    # although it is four months after the season start
    rules = {"rain": ProductRules(6_000_000, "sowing_date")}
    pol = policies([{"policy_id": "S1", "district_id": "D1", "sowing_date": np.datetime64("2023-12-15"),
                     "event_date": np.datetime64("2024-03-01")},
                    {"policy_id": "S2", "district_id": "D1", "sowing_date": np.datetime64("2023-12-15"),
                     "event_date": np.datetime64("2024-03-15")}])
    rates = rate_table([[0.5]], cohorts=["2023-12-15"], anchor="sowing_date")
    sheet = {"rain": Terms(deductible={"kind": "straight", "amount": 300_000, "first_months": 3})}
    ledger = ledger_frame(build_ledger(pol, {"rain": rates}, rules, sheet))
    assert ledger["net_payout"].tolist() == [2_700_000, 3_000_000]


def test_a_time_excess_paid_per_day_reads_daily_loss_from_the_register(tmp_path):
    # gross 0.5 × 6,000,000 = 3,000,000; 3 days' excess, 30 days' indemnity, daily loss from the
    # register: B1 40 days × 50,000 -> days 4..30 = 27 × 50,000 = 1,350,000; B2 10 days × 80,000
    # -> 7 × 80,000 = 560,000; B3 a daily loss of -5 is rejected
    path = tmp_path / "policies.csv"
    path.write_text(
        "policy_id,farmer_id,district_id,product_id,area_ha,interruption_days,daily_loss\n"
        "B1,F1,D1,rain,1.0,40,50000\n"
        "B2,F2,D1,rain,1.0,10,80000\n"
        "B3,F3,D1,rain,1.0,10,-5\n")
    valid, rejects = validate_policies(read_policies(path), district_ids=["D1"], products=RULES)
    assert rejects[["row", "reason", "column"]].values.tolist() == [[3, "bad_daily_loss", "daily_loss"]]
    sheet = {"rain": Terms(deductible={"kind": "time_excess", "days": 3, "indemnity_days": 30, "daily_loss": True})}
    ledger = ledger_frame(build_ledger(valid, {"rain": rate_table([[0.5]])}, RULES, sheet))
    assert ledger["net_payout"].tolist() == [1_350_000, 560_000]
    assert (ledger["deductible"] + ledger["net_payout"] == ledger["gross_payout"]).all()


def test_a_payout_paid_in_six_monthly_instalments():
    """The source's high-deductible example: a loss of 1,000,000 with a 10 % deductible pays
    900,000 in six monthly instalments of 150,000."""
    pol = policies([{"policy_id": "H1", "farmer_id": "F1", "district_id": "D1", "sum_insured": 1_000_000},
                    {"policy_id": "H2", "farmer_id": "F2", "district_id": "D1", "sum_insured": 1_111_115}])
    sheet = {"rain": Terms(deductible={"kind": "percent_of_loss", "rate": 0.10}, instalments={"count": 6})}
    ledger = build_ledger(pol, {"rain": rate_table([[1.0]])}, RULES, sheet)
    pay = payments(ledger, by="farmer", season_id="2024-MT1", instalments={"rain": sheet["rain"].instalments},
                   due=date(2024, 3, 31))
    f1 = pay[pay["payee_id"] == "F1"]
    base = payment_id("2024-MT1", "rain", "farmer", "F1")
    assert f1["payment_id"].tolist() == [f"{base}/{k}" for k in range(1, 7)]
    assert f1["instalment"].tolist() == [1, 2, 3, 4, 5, 6]
    assert f1["amount"].tolist() == [150_000] * 6
    # monthly from the season end, clipped to the month's last day
    assert f1["due_date"].tolist() == ["2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30", "2024-07-31",
                                       "2024-08-31"]
    # H2: 1,111,115 - 111,112 (10 %, 111,111.5 half-up) = 1,000,003 = 6 × 166,667 + 1:
    # the rupiah left over is paid with the first instalment
    assert pay.loc[pay["payee_id"] == "F2", "amount"].tolist() == [166_668] + [166_667] * 5
    assert int(pay["amount"].sum()) == int(district_totals(ledger)["net_payout"].iloc[-1]) == 1_900_003


def test_instalments_every_three_months_and_amounts_below_the_count():
    pol = policies([{"policy_id": "Q1", "farmer_id": "F1", "district_id": "D1", "sum_insured": 4},
                    {"policy_id": "Q2", "farmer_id": "F2", "district_id": "D1", "sum_insured": 1_000}])
    ledger = build_ledger(pol, {"rain": rate_table([[1.0]])}, RULES)
    schedule = Terms(instalments={"count": 6, "every_months": 3}).instalments
    pay = payments(ledger, by="farmer", season_id="S", instalments={"rain": schedule}, due=date(2023, 11, 30))
    # 4 rupiah: 6 × 0 + 4, only the first instalment is positive; 1,000 = 6 × 166 + 4
    assert pay[["payee_id", "instalment", "amount"]].values.tolist() == [
        ["F1", 1, 4], ["F2", 1, 170], ["F2", 2, 166], ["F2", 3, 166], ["F2", 4, 166], ["F2", 5, 166], ["F2", 6, 166]]
    assert pay.loc[pay["payee_id"] == "F2", "due_date"].tolist() == [
        "2023-11-30", "2024-02-29", "2024-05-30", "2024-08-30", "2024-11-30", "2025-02-28"]
    # without instalments: one payment, instalment 1, due on the given date (or empty)
    single = payments(ledger, by="farmer", season_id="S", due=date(2024, 3, 31))
    assert single[["instalment", "due_date"]].values.tolist() == [[1, "2024-03-31"], [1, "2024-03-31"]]
    assert payments(ledger, by="farmer", season_id="S")["due_date"].tolist() == ["", ""]
