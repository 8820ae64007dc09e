"""Monthly and dekadal rainfall in seasonal runs: a ``total`` phase settles on whole periods.

Expectations by hand: a uniform dekadal grid whose dekad totals are known, a window on
dekad boundaries (exact) and one that cuts a dekad (pro rata, with a warning); and, on the
real CHIRPS Java monthly archive, the seasonal run's index equals the backtest's for the
same season (the same files, the same rule).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
import yaml
from conftest import shared_file

from panen.datasets.gridded import dekad_days, dekad_number, open_rainfall
from panen.engine.cli import main
from panen.engine.errors import InputError


def dekad_stamps(start: str, n: int) -> pd.DatetimeIndex:
    """``n`` consecutive dekads from ``start`` (a 1st, 11th or 21st), dated by their first day."""
    t0 = pd.Timestamp(start)
    first = dekad_number(pd.DatetimeIndex([t0]))[0]
    from panen.datasets.gridded import dekad_dates

    return dekad_dates(np.arange(first, first + n))


def dekadal_file(path: Path, totals: np.ndarray, start: str = "2023-10-01", units: str | None = "mm/dekad") -> Path:
    """A 2 × 2 grid over two districts holding ``totals`` [mm/dekad] (one per dekad) everywhere."""
    t = dekad_stamps(start, len(totals))
    values = np.broadcast_to(np.asarray(totals, "float32")[:, None, None], (len(t), 2, 2)).copy()
    da = xr.DataArray(values, dims=("time", "lat", "lon"),
                      coords={"time": t, "lat": [-6.0, -6.1], "lon": [106.0, 106.1]}, name="precip",
                      attrs={} if units is None else {"units": units})
    da.to_dataset().to_netcdf(path)
    return path


def test_dekad_numbers_and_lengths():
    t = pd.DatetimeIndex(["2024-02-01", "2024-02-11", "2024-02-21", "2023-02-21", "2024-03-21"])
    assert np.diff(dekad_number(t[:3])).tolist() == [1, 1]
    assert dekad_days(t).tolist() == [10, 10, 9, 8, 11]


def test_a_dekadal_file_is_read_as_mm_per_dekad_with_gaps_inserted(tmp_path):
    p = dekadal_file(tmp_path / "d.nc", np.arange(1.0, 13.0))
    da = open_rainfall(p)
    assert (da.attrs["units"], da.attrs["frequency"]) == ("mm/dekad", "dekad")
    assert da.sizes["time"] == 12
    ds = xr.open_dataset(p)
    ds.isel(time=[0, 1, 3, 4]).to_netcdf(tmp_path / "gap.nc")  # the third dekad is missing
    with pytest.warns(UserWarning, match="1 missing dekadal time step"):
        gap = open_rainfall(tmp_path / "gap.nc")
    assert gap.sizes["time"] == 5 and np.isnan(gap.isel(time=2).values).all()


def test_dekadal_units_are_checked_against_the_spacing(tmp_path):
    p = dekadal_file(tmp_path / "d.nc", np.ones(6), units="mm/day")
    with pytest.raises(InputError, match="time steps are dekadal; dekadal totals are never read as daily rain"):
        open_rainfall(p)
    q = dekadal_file(tmp_path / "mm.nc", np.full(6, 20.0), units="mm")
    assert open_rainfall(q).attrs["units"] == "mm/dekad"
    flux = dekadal_file(tmp_path / "flux.nc", np.full(3, 1e-4), units="kg m-2 s-1", start="2024-02-01")
    # 1e-4 mm/s × 86,400 s × (10, 10, 9 days of a leap February's dekads)
    assert open_rainfall(flux).isel(y=0, x=0).values == pytest.approx([86.4, 86.4, 77.76], rel=1e-5)


def run_config(tmp_path: Path, rain: Path, phases: list[dict], season=("2023-11-01", "2024-03-31")) -> Path:
    districts = gpd.GeoDataFrame({"district_id": ["A", "B"]},
                                 geometry=[shapely.box(105.95, -6.15, 106.05, -5.95),
                                           shapely.box(106.05, -6.15, 106.15, -5.95)], crs="EPSG:4326")
    districts.to_file(tmp_path / "districts.gpkg", driver="GPKG")
    pd.DataFrame({"policy_id": ["P1", "P2"], "farmer_id": ["F1", "F2"], "district_id": ["A", "B"],
                  "product_id": ["dek", "dek"], "area_ha": [1.0, 2.0]}).to_csv(tmp_path / "pol.csv", index=False)
    cfg = {"season": {"id": "S", "start": season[0], "end": season[1], "year": 2024},
           "inputs": {"districts": {"path": str(tmp_path / "districts.gpkg"), "id_column": "district_id"},
                      "rainfall": {"path": str(rain), "variable": "precip"},
                      "policies": {"path": str(tmp_path / "pol.csv")}},
           "products": [{"id": "dek", "trigger": "weather_index", "sum_insured_per_ha": 1_000_000,
                         "phases": phases}],
           "output": {"formats": ["csv"]}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def index_of(out: Path) -> float:
    table = pd.read_csv(out / "district_index.csv", dtype={"district_id": str})
    return float(table.loc[table["district_id"] == "A", "index_value"].iloc[0])


def test_a_total_phase_settles_on_whole_dekads_exactly(tmp_path, capsys):
    totals = np.arange(10.0, 10.0 + 18 * 5, 5)  # 18 dekads from 1 Oct 2023: 10, 15, 20, ...
    rain = dekadal_file(tmp_path / "d.nc", totals)
    # 1 Nov 2023 + [0, 50) days = 1 Nov .. 20 Dec: dekads 4..8 (Nov 1/11/21, Dec 1/11), whole
    phase = {"name": "early", "start_day": 0, "end_day": 50, "index": "total", "direction": "below",
             "strike": 10_000, "exit": 0, "weight": 1.0}
    cfg = run_config(tmp_path, rain, [phase])
    assert main(["validate", str(cfg)]) == 0
    assert "dek.early: total on dekad totals (whole dekads exact" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # whole dekads: no pro-rata warning
        assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert index_of(tmp_path / "out") == pytest.approx(totals[3:8].sum(), rel=1e-6)


def test_a_window_that_cuts_a_dekad_counts_it_pro_rata_with_a_warning(tmp_path):
    totals = np.full(18, 30.0)
    totals[4] = 45.0  # the dekad 11-20 Nov 2023
    rain = dekadal_file(tmp_path / "d.nc", totals)
    # 1 Nov + [0, 15) = 1..15 Nov: dekad 1-10 Nov whole (30 mm) + 5 of the 10 days of 11-20 Nov (45 × 5 / 10)
    phase = {"name": "cut", "start_day": 0, "end_day": 15, "index": "total", "direction": "below",
             "strike": 10_000, "exit": 0, "weight": 1.0}
    cfg = run_config(tmp_path, rain, [phase])
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert index_of(tmp_path / "out") == pytest.approx(30.0 + 22.5, rel=1e-6)
    notes = " ".join(json.loads((tmp_path / "out" / "manifest.json").read_text())["notes"])
    assert "cut calendar dekads" in notes and "pro rata" in notes


def test_a_daily_index_on_dekadal_data_is_refused_at_validation(tmp_path, capsys):
    rain = dekadal_file(tmp_path / "d.nc", np.full(18, 30.0))
    phase = {"name": "spell", "start_day": 0, "end_day": 50, "index": "dry_spell", "dry_threshold": 1.0,
             "direction": "above", "strike": 10, "exit": 20, "weight": 1.0}
    assert main(["validate", str(run_config(tmp_path, rain, [phase]))]) == 2
    assert "needs true daily rainfall; the rainfall input is dekadal [mm/dekad]" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_chirps_monthly_seasonal_total_equals_the_backtest_index(tmp_path):
    from panen.engine.pipeline.backtest import backtest

    rain = shared_file("rainfall", "chirps_java_monthly_1981_2020.nc")
    districts = shared_file("boundaries", "idn_districts_java.geojson")
    product = {"id": "ndj", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000,
               "phases": [{"name": "nov-jan", "start_day": 0, "end_day": 92, "index": "total",
                           "direction": "below", "strike": 700, "exit": 350, "weight": 1.0}]}
    pd.DataFrame({"policy_id": ["P1"], "farmer_id": ["F1"], "district_id": ["3212"], "product_id": ["ndj"],
                  "area_ha": [1.0]}).to_csv(tmp_path / "pol.csv", index=False)
    cfg = {"season": {"id": "MT1", "start": "2015-11-01", "end": "2016-03-31", "year": 2016},
           "inputs": {"districts": {"path": str(districts), "id_column": "kode_bps_style"},
                      "rainfall": {"path": str(rain), "variable": "precip"},
                      "policies": {"path": str(tmp_path / "pol.csv")}},
           "products": [product], "output": {"formats": ["csv"]}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    seasonal = pd.read_csv(tmp_path / "out" / "district_index.csv", dtype={"district_id": str})
    seasonal = seasonal.set_index("district_id")["index_value"]
    bt_cfg = dict(cfg, inputs={k: v for k, v in cfg["inputs"].items() if k != "policies"})
    (tmp_path / "bt.yaml").write_text(yaml.safe_dump(bt_cfg, sort_keys=False))
    res = backtest(tmp_path / "bt.yaml", years=(2016, 2016), out_dir=tmp_path / "bt")
    idx = res.results["ndj"]["index_value"].sel(phase="nov-jan")
    bt = idx.isel(cohort=0) if "cohort" in idx.dims else idx
    bt = pd.Series(np.asarray(bt.values, float).ravel(), index=np.asarray(bt["district"].values).astype(str))
    common = seasonal.index.intersection(bt.index)
    assert len(common) == 119
    assert np.allclose(seasonal.loc[common].to_numpy(), bt.loc[common].to_numpy(), rtol=1e-9)
    # Indramayu, Nov 2015 - Jan 2016 (El Niño): well under the 700 mm strike
    assert seasonal.loc["3212"] < 700
