"""A station-settled weather-index product through ``panen run`` on the real BMKG West Java exports.

The expectation is computed from the raw exports with pandas alone (decimal commas read by
hand, 8888/9999/'-' treated as missing), not through panen's reader: each district's
reference is its nearest station, a missing day comes from the nearest back-up that
measured it, and the phase total is the sum over the window.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SHARED_DATA

from panen.engine.cli import main

BMKG = SHARED_DATA / "rainfall" / "bmkg_jabar_daily_2024"
JAVA = SHARED_DATA / "boundaries" / "idn_districts_java.geojson"
pytestmark = pytest.mark.skipif(not (BMKG.is_dir() and JAVA.is_file()), reason="real BMKG exports / Java districts absent")

# Kota Bandung, Kabupaten Majalengka, Kabupaten Bogor, Kabupaten Pangandaran
DISTRICTS = ["3273", "3210", "3201", "3218"]


def raw_rr(name: str) -> pd.Series:
    """A BMKG export's RR column by hand: DD-MM-YYYY dates, decimal commas, codes and '-' missing."""
    frame = pd.read_csv(BMKG / name, dtype=str, keep_default_na=False)
    frame = frame[frame["TANGGAL"].str.strip() != ""]
    dates = pd.to_datetime(frame["TANGGAL"], format="%d-%m-%Y")
    values = pd.to_numeric(frame["RR"].str.replace(",", "."), errors="coerce")
    values[values.isin([8888.0, 9999.0])] = np.nan
    return pd.Series(values.to_numpy(), index=dates)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("stations")
    layer = gpd.read_file(JAVA)
    layer = layer[layer["kode_bps_style"].astype(str).isin(DISTRICTS)]
    layer.to_file(d / "districts.gpkg", driver="GPKG")
    pd.DataFrame({"policy_id": [f"P{c}" for c in DISTRICTS], "farmer_id": [f"F{c}" for c in DISTRICTS],
                  "district_id": DISTRICTS, "product_id": "wibi", "area_ha": 1.0}).to_csv(d / "pol.csv", index=False)
    cfg = {"season": {"id": "2024-MT1", "start": "2024-01-01", "end": "2024-04-30", "year": 2024},
           "inputs": {"districts": {"path": str(d / "districts.gpkg"), "id_column": "kode_bps_style"},
                      "stations": {"path": str(BMKG), "format": "bmkg",
                                   "assign": {"max_distance_km": 80, "backups": 2}},
                      "policies": {"path": str(d / "pol.csv")}},
           "products": [{"id": "wibi", "trigger": "weather_index", "source": "stations",
                         "sum_insured_per_ha": 6_000_000, "daily_cap": 150,
                         "phases": [{"name": "jan-feb", "start_day": 0, "end_day": 60, "index": "total",
                                     "direction": "below", "strike": 900, "exit": 300, "weight": 1.0,
                                     "max_missing_days": 3}]}],
           "output": {"formats": ["csv"]}}
    (d / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["validate", str(d / "run.yaml")]) == 0
    assert main(["run", str(d / "run.yaml"), "--out", str(d / "out"), "--quiet"]) == 0
    return d / "out"


def index(out: Path) -> pd.Series:
    t = pd.read_csv(out / "district_index.csv", dtype={"district_id": str})
    return t.set_index("district_id")["index_value"]


def test_bandung_settles_on_its_own_station_with_gaps_from_kertajati(run):
    bandung, kertajati = raw_rr("Data_BMKG_-_Kota_Bandung.csv"), raw_rr("Data_BMKG_-_Kab._Majalengka.csv")
    days = pd.date_range("2024-01-01", periods=60)
    ref = bandung.reindex(days)
    filled = ref.fillna(kertajati.reindex(days)).clip(upper=150)  # Kertajati, 72.5 km: the only back-up within 80 km
    assert ref.isna().sum() == 6  # Bandung's missing days in January-February 2024
    missing = int(filled.isna().sum())
    expected = filled.sum() * 60 / (60 - missing)  # max_missing_days: the rest scaled to the window
    assert index(run).loc["3273"] == pytest.approx(expected, rel=1e-9)
    fills = pd.read_csv(run / "station_fills.csv", dtype={"district_id": str, "reference": str, "source": str})
    mine = fills[(fills["district_id"] == "3273") & (fills["date"] < "2024-03-01")]
    assert len(mine) == 6 and set(mine["reference"]) == {"96783"}
    assert set(mine["source"]) <= {"96791", "missing"}
    got = mine[mine["source"] == "96791"].set_index("date")["value"]
    assert np.allclose(got.to_numpy(), kertajati.reindex(pd.to_datetime(got.index)).to_numpy())


def test_a_district_without_a_station_in_reach_is_withheld_and_said(run):
    # Pangandaran's nearest station (Kertajati) is 105 km away, beyond the 80 km of the rule
    assert np.isnan(index(run).loc["3218"])
    payouts = pd.read_csv(run / "payouts.csv", dtype={"district_id": str})
    assert payouts.set_index("district_id").loc["3218", "status"] == "withheld_missing_data"
    manifest = json.loads((run / "manifest.json").read_text())
    assert any("no station within 80 km" in n and "3218" in n for n in manifest["notes"])
    assert manifest["data_quality"]["stations"]["stations"] == 5


def test_bogor_takes_the_nearer_of_two_stations_and_the_cap_holds(run):
    citeko = raw_rr("Data_BMKG_-_Kab._Bogor.csv")  # 24.0 km from the district's representative point
    bogor = raw_rr("Data_BMKG_-_Kota_Bogor.csv")  # 28.1 km: the first back-up
    days = pd.date_range("2024-01-01", periods=60)
    filled = citeko.reindex(days).fillna(bogor.reindex(days)).fillna(raw_rr("Data_BMKG_-_Kota_Bandung.csv")
                                                                      .reindex(days)).clip(upper=150)
    missing = int(filled.isna().sum())
    assert index(run).loc["3201"] == pytest.approx(filled.sum() * 60 / (60 - missing), rel=1e-9)
