"""Area-yield trigger and yields reader: published worked examples, missing-year rules, real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from conftest import shared_file
from panen.datasets.yields import read_yields
from panen.engine.api import Season, TriggerInputs
from panen.engine.errors import DataQualityError, InputError
from panen.triggers.area_yield import (
    AreaYieldParams,
    AreaYieldTrigger,
    arpi_payment_factor,
    linear_trend_adjust,
    normal_yield_best_of,
    normal_yield_mean,
    shortfall_rate,
    threshold_yield,
)

PMFBY_YIELDS = [4500, 3750, 2000, 4250, 1800, 4300, 1750]  # kg/ha, PMFBY guideline illustration


# --------------------------------------------------------------------------- factories
def yields_frame(series: dict[str, dict[int, float]], **extra: dict[str, dict[int, float]]) -> pd.DataFrame:
    """The reader's frame from ``{district: {year: yield [t/ha]}}`` (+ extra columns alike)."""
    rows = [{"district_id": d, "year": y, "yield": v} for d, by_year in series.items() for y, v in by_year.items()]
    df = pd.DataFrame(rows, columns=["district_id", "year", "yield"]).astype({"year": "int64", "yield": float})
    for col, values in extra.items():
        df[col] = [values.get(r.district_id, {}).get(r.year, np.nan) for r in df.itertuples()]
    df.attrs["units"] = "t/ha"
    return df


def product(**kw) -> AreaYieldParams:
    base = dict(id="yield", trigger="area_yield", sum_insured_per_ha=6_000_000,
                normal_yield={"method": "best_of", "best": 5, "of": 7}, indemnity_level=0.9)
    return AreaYieldParams(**(base | kw))


def evaluate(params, table, year, districts=None, cohorts=("2024-01-01",)):
    districts = list(table["district_id"].unique()) if districts is None else districts
    inputs = TriggerInputs(
        season=Season("s", np.datetime64(f"{year - 1}-11-01"), np.datetime64(f"{year}-03-31"), year),
        cohorts=np.array(cohorts, dtype="datetime64[D]"), district_ids=np.array(districts),
        tables={"yields": table},
    )
    return AreaYieldTrigger().evaluate(params, inputs).data


def pmfby_table(actual=2.5, season_year=2015):
    """PMFBY illustration yields (2008–2014) in t/ha, and an actual yield for the season."""
    hist = {2008 + i: v / 1000 for i, v in enumerate(PMFBY_YIELDS)}
    return yields_frame({"X": hist | ({season_year: actual} if actual is not None else {})})


# --------------------------------------------------------------------------- worked examples (pure)
def test_best_five_of_seven_is_3760():
    assert float(normal_yield_best_of(PMFBY_YIELDS, best=5, of=7)) == 3760.0


@pytest.mark.parametrize("level, threshold", [(0.9, 3384), (0.8, 3008), (0.7, 2632)])
def test_threshold_yield_at_indemnity_levels(level, threshold):
    assert threshold_yield(3760.0, level) == pytest.approx(threshold)


def test_pmfby_claim_is_7837_rupees():
    claim = float(shortfall_rate(3384.0, 2500.0)) * 30_000
    assert claim == pytest.approx(7836.88, abs=0.005)
    assert round(claim) == 7837


def test_arpi_payment_factor_worked_examples():
    assert float(arpi_payment_factor(150, 0.9, 110)) == pytest.approx(0.231481, abs=5e-7)
    assert float(arpi_payment_factor(100, 0.9, 10)) == 1.0  # capped at 1
    assert float(arpi_payment_factor(150, 0.9, 135)) == 0.0  # at the trigger yield
    assert float(arpi_payment_factor(150, 0.9, 27, loss_limit_factor=0.18)) == 1.0  # at expected × llf


def test_formulas_propagate_nan_and_refuse_non_positive_thresholds():
    assert np.isnan(shortfall_rate(np.nan, 1.0)) and np.isnan(shortfall_rate(3.0, np.nan))
    assert np.isnan(shortfall_rate(0.0, 1.0))
    assert np.isnan(arpi_payment_factor(np.nan, 0.9, 1.0)) and np.isnan(arpi_payment_factor(5.0, 0.9, np.nan))
    assert np.isnan(normal_yield_best_of([np.nan] * 7, 5, 7))
    np.testing.assert_array_equal(shortfall_rate(np.array([4.0, 2.0, 0.0, 5.0]), np.array([2.0, 3.0, 1.0, 0.0])),
                                  [0.5, 0.0, np.nan, 1.0])


def test_formulas_keep_dims_and_stay_lazy_on_dask_backed_xarray():
    import dask.array as da
    import xarray as xr

    t = xr.DataArray(da.from_array(np.array([4.0, 2.0, 0.0, np.nan]), chunks=2), dims="district")
    a = xr.DataArray(da.from_array(np.array([2.0, 3.0, 1.0, 1.0]), chunks=2), dims="district")
    for out, eager in [(shortfall_rate(t, a), [0.5, 0.0, np.nan, np.nan]),
                       (arpi_payment_factor(t, 0.9, a), [1.6 / 2.88, 0.0, np.nan, np.nan])]:
        assert isinstance(out.data, da.Array) and out.dims == ("district",)
        np.testing.assert_allclose(out.values, eager)


# --------------------------------------------------------------------------- worked examples (trigger)
def test_pmfby_example_through_the_trigger_and_the_reader(tmp_path):
    f = tmp_path / "y.csv"
    rows = [f"X,{2008 + i},{v}" for i, v in enumerate(PMFBY_YIELDS)] + ["X,2015,2500"]
    f.write_text("district,yr,kg_per_ha\n" + "\n".join(rows) + "\n")
    table = read_yields(f, district_column="district", year_column="yr", yield_column="kg_per_ha", units="kg/ha")
    ds = evaluate(product(), table, 2015)
    assert ds["normal_yield"].sel(district="X").item() == pytest.approx(3.760)
    assert ds["threshold_yield"].sel(district="X").item() == pytest.approx(3.384)
    rate = ds["payout_rate"].sel(district="X").item()
    assert round(rate * 30_000) == 7837 and rate * 30_000 == pytest.approx(7836.88, abs=0.005)
    assert ds["index_value"].sel(phase="season", district="X").item() == 2.5
    assert ds["valid_fraction"].sel(phase="season", district="X").item() == 1.0
    assert not ds["flagged"].any()
    assert ds["index_value"].attrs["units"] == "t/ha"


def test_result_has_the_contract_dims_and_one_value_for_every_cohort():
    ds = evaluate(product(), pmfby_table(), 2015, cohorts=("2014-11-01", "2014-12-01", "2015-01-10"))
    assert ds["payout_rate"].dims == ("district", "cohort") and ds["flagged"].dims == ("district", "cohort")
    for v in ("index_value", "phase_rate", "valid_fraction"):
        assert ds[v].dims == ("phase", "district", "cohort")
    assert ds["phase"].values.tolist() == ["season"]
    assert ds["normal_yield"].dims == ("district",) and ds["threshold_yield"].dims == ("district",)
    rates = ds["payout_rate"].values[0]
    assert rates.shape == (3,) and np.all(rates == rates[0])


@pytest.mark.parametrize("level, actual, rate", [(0.9, 3.384, 0.0), (0.9, 4.0, 0.0), (0.8, 1.504, 0.5), (0.7, 1.316, 0.5)])
def test_shortfall_rate_through_the_trigger(level, actual, rate):
    ds = evaluate(product(indemnity_level=level), pmfby_table(actual), 2015)
    assert ds["payout_rate"].item() == pytest.approx(rate)


def test_arpi_worked_examples_through_the_trigger():
    table = yields_frame({"A": {2024: 110.0}, "B": {2024: 10.0}}, expected={"A": {2024: 150.0}, "B": {2024: 100.0}})
    ds = evaluate(product(normal_yield={"method": "given", "column": "expected"}, formula="arpi"), table, 2024)
    assert ds["payout_rate"].sel(district="A").item() == pytest.approx(0.231481, abs=5e-7)
    assert ds["payout_rate"].sel(district="B").item() == 1.0
    assert ds["threshold_yield"].sel(district="A").item() == pytest.approx(135.0)


def test_mean_method_averages_the_window_before_the_season():
    table = yields_frame({"D": {2019: 9.0, 2020: 4.0, 2021: 5.0, 2022: 6.0, 2023: 3.0}})
    ds = evaluate(product(normal_yield={"method": "mean", "years": 3}, indemnity_level=0.8), table, 2023)
    assert ds["normal_yield"].item() == pytest.approx(5.0)  # 2020–2022; 2019 outside, 2023 is the actual
    assert ds["payout_rate"].item() == pytest.approx((4.0 - 3.0) / 4.0)


def test_given_method_reads_the_expected_column_on_the_season_row():
    table = yields_frame({"D": {2023: 9.9, 2024: 4.0}}, expected={"D": {2023: 1.0, 2024: 5.0}})
    ds = evaluate(product(normal_yield={"method": "given", "column": "expected"}, indemnity_level=1.0), table, 2024)
    assert ds["normal_yield"].item() == 5.0
    assert ds["payout_rate"].item() == pytest.approx(0.2)


def test_given_method_without_the_column_is_a_data_quality_error():
    with pytest.raises(DataQualityError, match="'expected'"):
        evaluate(product(normal_yield={"method": "given", "column": "expected"}), pmfby_table(), 2015)


# --------------------------------------------------------------------------- trend
def test_trend_of_a_perfect_line_detrends_flat_at_the_target_year():
    years = np.arange(2010, 2017)
    line = 3.0 + 0.1 * (years - 2000)
    adjusted, slope = linear_trend_adjust(line, years, 2017)
    assert float(slope) == pytest.approx(0.1)
    np.testing.assert_allclose(adjusted, np.full(7, 4.7))


def test_trend_keeps_missing_years_missing_and_needs_three_points():
    adjusted, slope = linear_trend_adjust([1.0, np.nan, 2.0, 2.5], [2001, 2002, 2003, 2004], 2005)
    assert float(slope) == pytest.approx(0.5)
    np.testing.assert_allclose(adjusted, [3.0, np.nan, 3.0, 3.0])
    adjusted, slope = linear_trend_adjust([1.0, np.nan, 2.0], [2001, 2002, 2003], 2005)
    assert np.isnan(slope)
    np.testing.assert_allclose(adjusted, [1.0, np.nan, 2.0])  # too few points: unadjusted


@pytest.mark.parametrize("normal", [{"method": "best_of", "best": 5, "of": 7}, {"method": "mean", "years": 7}])
def test_trend_adjusted_normal_yield_through_the_trigger(normal):
    hist = {y: 3.0 + 0.1 * (y - 2000) for y in range(2010, 2017)}
    table = yields_frame({"T": hist | {2017: 4.0}})
    ds = evaluate(product(normal_yield=normal, trend={"method": "linear"}, indemnity_level=1.0), table, 2017)
    assert ds["normal_yield"].item() == pytest.approx(4.7)
    assert ds["trend_slope"].item() == pytest.approx(0.1)
    assert ds["payout_rate"].item() == pytest.approx((4.7 - 4.0) / 4.7)
    untrended = evaluate(product(normal_yield=normal, indemnity_level=1.0), table, 2017)
    assert untrended["normal_yield"].item() < 4.7 and "trend_slope" not in untrended


# --------------------------------------------------------------------------- missing data: flagged, never zero
def test_too_few_history_years_are_flagged_not_paid():
    hist = {2008 + i: v / 1000 for i, v in enumerate(PMFBY_YIELDS)}
    del hist[2009], hist[2012]  # 5 of 7 years available
    table = yields_frame({"X": hist | {2015: 1.0}})
    ds = evaluate(product(), table, 2015)
    assert ds["flagged"].item() and np.isnan(ds["payout_rate"].item())
    assert np.isnan(ds["normal_yield"].item()) and np.isnan(ds["threshold_yield"].item())
    assert ds["valid_fraction"].item() == pytest.approx(5 / 7)
    assert ds["history_years"].item() == 5
    # with min_years 5 the 5 available years are used exactly as they are (no zeros)
    ds = evaluate(product(missing_years="average_available", min_years=5), table, 2015)
    assert ds["normal_yield"].item() == pytest.approx(np.mean([4.5, 2.0, 4.25, 4.3, 1.75]))
    assert not ds["flagged"].item()


def test_nan_and_non_positive_history_years_count_as_missing():
    hist = {2008 + i: v / 1000 for i, v in enumerate(PMFBY_YIELDS)}
    table = yields_frame({"X": hist | {2009: np.nan, 2012: 0.0, 2015: 1.0}})
    ds = evaluate(product(), table, 2015)
    assert ds["flagged"].item() and ds["history_years"].item() == 5
    ds = evaluate(product(missing_years="average_available", min_years=4, normal_yield={"method": "best_of", "best": 3, "of": 7}), table, 2015)
    assert ds["normal_yield"].item() == pytest.approx(np.mean([4.5, 4.3, 4.25]))


def test_best_of_uses_all_available_years_when_fewer_than_best():
    assert float(normal_yield_best_of([5.0, np.nan, np.nan, 3.0, 4.0, np.nan, 1.0], 5, 7, min_years=4)) == 3.25


@pytest.mark.parametrize("season_value", [None, np.nan, 0.0, -1.0])
def test_missing_season_yield_is_flagged(season_value):
    table = pmfby_table(actual=season_value)
    ds = evaluate(product(), table, 2015)
    assert ds["flagged"].item() and np.isnan(ds["payout_rate"].item())
    assert ds["normal_yield"].item() == pytest.approx(3.76)  # the history itself is fine


def test_district_absent_from_the_yields_table_is_flagged():
    ds = evaluate(product(), pmfby_table(), 2015, districts=["X", "NOWHERE"])
    assert ds["flagged"].sel(district="NOWHERE").item()
    assert np.isnan(ds["payout_rate"].sel(district="NOWHERE").item())
    assert ds["valid_fraction"].sel(district="NOWHERE").item() == 0.0
    assert not ds["flagged"].sel(district="X").item()
    assert ds["district"].values.tolist() == ["X", "NOWHERE"]


def test_yield_season_selects_rows_and_several_seasons_need_it():
    a, b = pmfby_table(2.5), pmfby_table(3.384)
    table = pd.concat([a.assign(season="kharif"), b.assign(season="rabi")], ignore_index=True)
    assert evaluate(product(yield_season="rabi"), table, 2015)["payout_rate"].item() == pytest.approx(0.0)
    assert evaluate(product(yield_season="kharif"), table, 2015)["payout_rate"].item() > 0.26
    with pytest.raises(DataQualityError, match="yield_season"):
        evaluate(product(), table, 2015)


# --------------------------------------------------------------------------- term-sheet constraints
@pytest.mark.parametrize("change, needle", [
    ({"normal_yield": {"method": "best_of", "best": 8, "of": 7}}, "best must be between 1 and of (7); got 8"),
    ({"indemnity_level": 1.2}, "less than or equal to 1"),
    ({"indemnity_level": 0}, "greater than 0"),
    ({"formula": "arpi", "indemnity_level": 0.7, "loss_limit_factor": 0.7},
     "loss_limit_factor must be >= 0 and < indemnity_level (0.7); got 0.7"),
    ({"loss_limit_factor": 0.2}, "loss_limit_factor only applies to formula 'arpi'"),
    ({"missing_years": "average_available", "min_years": 8},
     "min_years must be between 1 and the history window (of = 7); got 8"),
    ({"normal_yield": {"method": "given", "column": "e"}, "trend": {"method": "linear"}}, "trend only applies"),
    ({"normal_yield": {"method": "median", "years": 5}}, "does not match any of the expected tags"),
    ({"normal_yield": {"method": "mean", "years": 5, "best": 3}}, "Extra inputs are not permitted"),
    ({"formula": "grp"}, "'shortfall' or 'arpi'"),
])
def test_bad_parameters_are_rejected_with_parameter_and_range(change, needle):
    with pytest.raises(ValidationError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        product(**change)


def test_bad_parameters_are_reported_under_the_product_at_config_load(tmp_path):
    parse_config = pytest.importorskip("panen.engine.config").parse_config
    from panen.engine.errors import ConfigError

    cfg = {"season": {"id": "2024-MT1", "start": "2023-11-01", "end": "2024-03-31"}, "inputs": {},
           "products": [{"id": "padi", "trigger": "area_yield", "sum_insured_per_ha": 6_000_000,
                         "normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 1.2}]}
    with pytest.raises(ConfigError) as err:
        parse_config(cfg, base_dir=tmp_path)
    text = str(err.value)
    assert "product 'padi'" in text and "products[0].indemnity_level" in text and "less than or equal to 1" in text


def test_defaults_follow_the_programs():
    p = product(formula="arpi")
    assert p.loss_limit_factor == 0.18 and p.required_years == 7
    assert product(normal_yield={"method": "mean", "years": 10}).required_years == 10


# --------------------------------------------------------------------------- reader
def write(tmp_path, text, name="y.csv"):
    f = tmp_path / name
    f.write_text(text)
    return f


@pytest.mark.parametrize("units, value, t_ha", [("ku/ha", "52", 5.2), ("q/ha", "52", 5.2), ("kg/ha", "5200", 5.2),
                                                 ("t/ha", "5.2", 5.2), ("ku/ha", "53.68", 5.368)])
def test_reader_converts_units_to_tonnes_per_hectare(tmp_path, units, value, t_ha):
    df = read_yields(write(tmp_path, f"district_id,year,yield\n3212,2024,{value}\n"), units=units)
    assert df["yield"].item() == t_ha  # exact: conversion divides by 10 / 1000
    assert df.attrs["units"] == "t/ha"
    assert df["district_id"].item() == "3212" and df["year"].dtype == np.int64 and df["yield"].dtype == np.float64


def test_reader_minus_one_blank_zero_and_tokens_are_missing_never_zero(tmp_path):
    f = write(tmp_path, "d,y,v\nA,2000,-1\nA,2001,\nA,2002,0\nA,2003,2500\nA,2004,-\nA,2005,-1.0\n")
    df = read_yields(f, district_column="d", year_column="y", yield_column="v", units="kg/ha",
                     missing_values=(-1, "-"))
    assert df["year"].tolist() == [2000, 2001, 2002, 2003, 2004, 2005]  # rows kept, values missing
    assert df["yield"].isna().tolist() == [True, True, True, False, True, True]
    assert (df["yield"].dropna() == 2.5).all() and not (df["yield"] == 0).any()


def test_reader_keeps_season_extra_columns_and_maps_districts(tmp_path):
    f = write(tmp_path, "code,year,season,y,exp\n32.12,2024,MT1,50,55\n32.12,2024,MT2,45,\n")
    df = read_yields(f, district_column="code", yield_column="y", season_column="season", units="ku/ha",
                     district_map={"32.12": "3212"}, extra_columns=("exp",))
    assert df.columns.tolist() == ["district_id", "year", "yield", "season", "exp"]
    assert df["district_id"].tolist() == ["3212", "3212"] and df["season"].tolist() == ["MT1", "MT2"]
    assert df["exp"].iloc[0] == 5.5 and np.isnan(df["exp"].iloc[1])


def test_reader_reads_parquet(tmp_path):
    f = tmp_path / "y.parquet"
    pd.DataFrame({"kode": [3212.0, 3213.0], "tahun": [2024, 2024], "ku": [52.0, -1.0]}).to_parquet(f)
    df = read_yields(f, district_column="kode", year_column="tahun", yield_column="ku", units="ku/ha",
                     missing_values=(-1,))
    assert df["district_id"].tolist() == ["3212", "3213"]
    assert df["yield"].iloc[0] == 5.2 and np.isnan(df["yield"].iloc[1])


def test_reader_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found") as err:
        read_yields(tmp_path / "nope.csv")
    assert err.value.file == tmp_path / "nope.csv"


def test_reader_missing_column_lists_available(tmp_path):
    f = write(tmp_path, "kode_bps,year,produktivitas_ku_ha\n3212,2024,52\n")
    with pytest.raises(InputError, match="available columns: kode_bps, year, produktivitas_ku_ha") as err:
        read_yields(f, district_column="kode_bps")
    assert err.value.column == "yield" and err.value.file == f


def test_reader_unparsable_number_names_row_and_column(tmp_path):
    f = write(tmp_path, "district_id,year,yield\nA,2020,5.1\nA,2021,5,2\nA,2022,abc\n".replace("5,2", '"5,2"'))
    with pytest.raises(InputError) as err:
        read_yields(f)
    probs = err.value.problems
    assert [(p.row, p.column) for p in probs] == [(2, "yield"), (3, "yield")]
    assert "'abc' is not a number" in str(err.value) and str(f) in str(err.value)


def test_reader_refuses_an_infinite_yield(tmp_path):
    f = write(tmp_path, "district_id,year,yield\nA,2020,5.1\nA,2021,inf\nA,2022,-inf\n")
    with pytest.raises(InputError) as err:
        read_yields(f)
    assert [(p.row, p.column) for p in err.value.problems] == [(2, "yield"), (3, "yield")]
    assert "'inf' is not a finite number" in str(err.value)


def test_reader_bad_year_and_empty_district(tmp_path):
    f = write(tmp_path, "district_id,year,yield\n,2020,5.1\nA,2020.5,5.2\nB,,5.0\n")
    with pytest.raises(InputError) as err:
        read_yields(f)
    got = {(p.row, p.column) for p in err.value.problems}
    assert got == {(1, "district_id"), (2, "year"), (3, "year")}


def test_reader_duplicate_rows_are_named(tmp_path):
    f = write(tmp_path, "district_id,year,yield\nA,2020,5.1\nB,2020,5.2\nA,2020,5.3\n")
    with pytest.raises(InputError, match="duplicate rows for district 'A', year 2020: rows 1, 3") as err:
        read_yields(f)
    assert err.value.row == 1
    # the same district and year in different seasons is not a duplicate
    f2 = write(tmp_path, "district_id,year,s,yield\nA,2020,MT1,5.1\nA,2020,MT2,5.3\n", "s.csv")
    assert len(read_yields(f2, season_column="s")) == 2


def test_reader_unknown_units(tmp_path):
    with pytest.raises(InputError, match="allowed: t/ha, ku/ha, q/ha, kg/ha"):
        read_yields(write(tmp_path, "district_id,year,yield\nA,2020,5\n"), units="bu/ac")


# --------------------------------------------------------------------------- real data
BPS = ("yields", "bps_jabar_padi_kabkota_2020_2024.csv")
ICRISAT = ("yields", "icrisat_india_district_2000_2017.csv")
RICE = "RICE YIELD (Kg per ha)"


@pytest.mark.realdata
def test_bps_west_java_mean_of_four_years_matches_pandas():
    path = shared_file(*BPS)
    table = read_yields(path, district_column="kode_bps", yield_column="produktivitas_ku_ha", units="ku/ha")
    assert table["district_id"].nunique() == 27 and len(table) == 135
    assert 4.0 <= table["yield"].min() and table["yield"].max() < 7.5  # Java rice, t/ha
    assert 5.0 < table["yield"].median() < 6.5

    districts = sorted(table["district_id"].unique())
    ds = evaluate(product(normal_yield={"method": "mean", "years": 4}, indemnity_level=0.9), table, 2024, districts)

    raw = pd.read_csv(path)
    raw["t_ha"] = raw["produktivitas_ku_ha"] / 10
    raw["kode_bps"] = raw["kode_bps"].astype(str)
    normal = raw[raw.year.between(2020, 2023)].groupby("kode_bps")["t_ha"].mean().reindex(districts)
    actual = raw[raw.year == 2024].set_index("kode_bps")["t_ha"].reindex(districts)
    threshold = 0.9 * normal
    rate = ((threshold - actual) / threshold).clip(0, 1)
    np.testing.assert_allclose(ds["normal_yield"].values, normal.values, rtol=1e-12)
    np.testing.assert_allclose(ds["threshold_yield"].values, threshold.values, rtol=1e-12)
    np.testing.assert_allclose(ds["index_value"].sel(phase="season").values[:, 0], actual.values, rtol=1e-12)
    np.testing.assert_allclose(ds["payout_rate"].values[:, 0], rate.values, rtol=1e-12, atol=1e-15)
    assert not ds["flagged"].any() and (ds["valid_fraction"] == 1.0).all()


def _icrisat():
    path = shared_file(*ICRISAT)
    table = read_yields(path, district_column="Dist Code", year_column="Year", yield_column=RICE,
                        units="kg/ha", missing_values=(-1,))
    return path, table


@pytest.mark.realdata
def test_icrisat_best_five_of_seven_matches_pandas():
    path, table = _icrisat()
    raw = pd.read_csv(path, usecols=["Dist Code", "Year", RICE])
    window = raw[raw.Year.between(2003, 2009)]
    complete = window[window[RICE] > 0].groupby("Dist Code").size()
    picks = [str(d) for d in complete[complete == 7].index[:5]]
    ds = evaluate(product(indemnity_level=0.8), table, 2010, picks)
    for d in picks:
        hist = window.loc[window["Dist Code"] == int(d), RICE].to_numpy() / 1000
        normal = np.sort(hist)[-5:].mean()
        actual = raw.loc[(raw["Dist Code"] == int(d)) & (raw.Year == 2010), RICE].item() / 1000
        rate = min(1.0, max(0.0, (0.8 * normal - actual) / (0.8 * normal))) if actual > 0 else np.nan
        assert ds["normal_yield"].sel(district=d).item() == pytest.approx(normal, rel=1e-12)
        np.testing.assert_allclose(ds["payout_rate"].sel(district=d).values, rate, rtol=1e-12, atol=1e-15)


@pytest.mark.realdata
def test_icrisat_missing_years_are_not_counted_as_zero():
    # This copy of the DLD prints 0 (not -1) where no rice was grown; both are missing.
    path, table = _icrisat()
    raw = pd.read_csv(path, usecols=["Dist Code", "Year", RICE])
    window = raw[raw.Year.between(2003, 2009)]
    gaps = window.groupby("Dist Code")[RICE].apply(lambda s: int((s <= 0).sum()))
    district = int(gaps[gaps == 1].index[0])  # one missing year in its window
    d = str(district)
    assert (table.loc[table.district_id == d, "yield"].dropna() > 0).all()

    ds = evaluate(product(indemnity_level=0.8), table, 2010, [d])
    assert ds["flagged"].item() and ds["history_years"].item() == 6  # default: a complete window
    assert ds["valid_fraction"].item() == pytest.approx(6 / 7)

    ds = evaluate(product(indemnity_level=0.8, missing_years="average_available", min_years=5), table,
                  2010, [d])
    hist = window.loc[(window["Dist Code"] == district) & (window[RICE] > 0), RICE].to_numpy() / 1000
    assert len(hist) == 6
    expected = np.sort(hist)[-5:].mean()  # best 5 of the 6 available years
    with_zero = np.sort(np.append(hist, 0.0))[-5:].mean()
    assert ds["normal_yield"].item() == pytest.approx(expected, rel=1e-12)
    mean_ds = evaluate(product(normal_yield={"method": "mean", "years": 7}, indemnity_level=0.8,
                               missing_years="average_available", min_years=5),
                       table, 2010, [d])
    assert mean_ds["normal_yield"].item() == pytest.approx(hist.mean(), rel=1e-12)
    assert mean_ds["normal_yield"].item() != pytest.approx(np.append(hist, 0.0).mean())
    assert with_zero == pytest.approx(expected)  # best-of drops the zero anyway; the mean shows the difference
