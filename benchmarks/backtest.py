"""Benchmark: a multi-decade daily backtest of an Indonesia-sized grid, from Zarr on disk.

Measures, each in a fresh child process (so peak memory is that of the step alone):

1. **read + sum**: a plain dask pass that opens the same Zarr store with
   ``xarray.open_zarr`` and sums the time range the backtest reads (decode and one cheap
   reduction: the floor for anything that must read every chunk);
2. **backtest**: :func:`panen.engine.pipeline.backtest.backtest` — open, build the zonal weights,
   stream the zonal means over every day, evaluate a three-phase weather-index product
   (total, dry spell, max 3-day) for every district and season, build the tidy and
   portfolio tables (no files written).

and prints wall time [s] (inside the child, after imports), peak RSS [GiB]
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the ratio backtest / read + sum.
Targets: ≤ 2× the read + sum pass, peak memory < 4 GiB.

Data (generated once under ``benchmarks/_data/``, gitignored): daily float32 rainfall
[mm/day] on 340 × 920 cells at 0.05° over 95–141 °E, 11 °S–6 °N from 1981-01-01, NaN over
sea (land = the cells the districts cover), ~45 % wet days with gamma amounts, a monsoon
cycle and year-to-year regional droughts so payouts vary; Zarr v3, chunks (32, 340, 920),
zstd level 3. Districts: the 514 real kabupaten/kota from ``../shared/data`` (else ~500
synthetic Voronoi cells). The full 40 years are 40 × 365 × 340 × 920 float32 ≈ 18 GB
raw (far less on disk: sea and dry days compress); ``--years N`` picks a smaller archive.

Run ``python benchmarks/backtest.py --years 10`` (default 10; ``--years 40`` for the full
size). This is a script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
# the same Indonesia-sized grid and district set as the zonal benchmark (one definition)
sys.path.insert(0, str(HERE))
from zonal import LAT1, LON0, NX, NY, RES, SHARED, load_districts  # noqa: E402
CHUNK_T = 32  # the reader's default time chunk; the store is written with the same chunks
FIRST_YEAR = 1981
SEED = 20240601


# --------------------------------------------------------------------------- data
def _coords():
    lon = LON0 + RES * (np.arange(NX) + 0.5)
    lat = LAT1 - RES * (np.arange(NY) + 0.5)
    return lat, lon


def _land_mask(districts) -> np.ndarray:
    """Cells any district covers (the rest is sea: NaN, as in CHIRPS)."""
    import rioxarray  # noqa: F401
    import xarray as xr

    from panen.engine.maths.zonal import build_weights

    lat, lon = _coords()
    grid = xr.DataArray(np.zeros((NY, NX), np.float32), dims=("lat", "lon"),
                        coords={"lat": lat, "lon": lon}).rio.write_crs("EPSG:4326")
    w = build_weights(districts, grid, id_column="district_id")
    land = np.zeros(NY * NX, bool)
    land[np.unique(w.indices)] = True
    return land.reshape(NY, NX)


def _block(times: np.ndarray, land: np.ndarray, drought: np.ndarray, block_index: int) -> np.ndarray:
    # drought: (years, tiles y, tiles x) factor on the wet-day probability
    """One (nt, NY, NX) block of synthetic daily rain [mm/day], deterministic per block.

    Wet/dry days and storm amounts are drawn on 0.5° tiles (10 × 10 cells) and refined by
    per-cell noise, so district means keep dry spells and heavy days (independent cells
    would average every district to a drizzle).
    """
    rng = np.random.default_rng((SEED, block_index))
    nt = times.size
    t = times.astype("datetime64[D]")
    month = (t.astype("datetime64[M]").astype(np.int64) % 12) + 1
    year = t.astype("datetime64[Y]").astype(np.int64) + 1970 - FIRST_YEAR
    # monsoon: wet Nov–Mar, dry Jun–Sep (CHIRPS over Java: 200–450 vs < 50 mm/month)
    p_wet = np.array([0, .62, .60, .55, .45, .35, .22, .15, .12, .18, .30, .50, .60], np.float32)[month]
    depth = np.array([0, 17, 17, 16, 14, 12, 10, 9, 9, 10, 12, 15, 17], np.float32)[month]
    ty, tx = NY // 10 + 1, NX // 10 + 1
    wet = rng.random((nt, ty, tx), dtype=np.float32) < (p_wet[:, None, None] * drought[year])
    storm = rng.standard_gamma(0.8, (nt, ty, tx), dtype=np.float32) * (depth / np.float32(0.8))[:, None, None]
    storm = np.where(wet, storm, np.float32(0.0))
    rain = np.repeat(np.repeat(storm, 10, axis=1), 10, axis=2)[:, :NY, :NX]
    rain *= rng.standard_gamma(4.0, (nt, NY, NX), dtype=np.float32) * np.float32(0.25)
    rain[:, ~land] = np.nan
    return rain


def make_store(years: int, districts) -> Path:
    """Write (once) the Zarr store of ``years`` years of daily rain; returns its path."""
    import dask
    import dask.array as da
    import pandas as pd
    import rioxarray  # noqa: F401
    import xarray as xr
    import zarr

    path = DATA / f"backtest_{years}y_{NY}x{NX}.zarr"
    if path.exists():
        return path
    DATA.mkdir(exist_ok=True)
    lat, lon = _coords()
    times = pd.date_range(f"{FIRST_YEAR}-01-01", f"{FIRST_YEAR + years - 1}-12-31", freq="D")
    land = _land_mask(districts)
    rng = np.random.default_rng(SEED)
    # year-to-year regional wetness on 1° tiles: most regions normal, a few dry each year
    coarse = np.clip(rng.normal(1.0, 0.25, (years, NY // 20 + 1, NX // 20 + 1)), 0.35, 1.4).astype(np.float32)
    drought = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)[:, :NY // 10 + 1, :NX // 10 + 1]  # on 0.5° tiles
    chunks = tuple([CHUNK_T] * (len(times) // CHUNK_T) + ([len(times) % CHUNK_T] if len(times) % CHUNK_T else []))
    starts = np.cumsum((0,) + chunks[:-1])
    tvals = times.to_numpy()
    blocks = [da.from_delayed(dask.delayed(_block)(tvals[s:s + n], land, drought, i), (n, NY, NX), np.float32)
              for i, (s, n) in enumerate(zip(starts, chunks))]
    data = da.concatenate(blocks, axis=0)
    ds = xr.Dataset({"precip": (("time", "lat", "lon"), data,
                                {"units": "mm/day", "long_name": "synthetic daily rainfall (benchmark)"})},
                    coords={"time": times, "lat": lat, "lon": lon}).rio.write_crs("EPSG:4326")
    tmp = path.with_suffix(".tmp.zarr")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        ds.to_zarr(tmp, zarr_format=3, consolidated=False, encoding={
            "precip": {"chunks": (CHUNK_T, NY, NX), "compressors": [zarr.codecs.ZstdCodec(level=3)]}})
    tmp.rename(path)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"wrote {path.name}: {len(times)} days, {size / 2**30:.2f} GiB on disk "
          f"({len(times) * NY * NX * 4 / 2**30:.1f} GiB raw) in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def write_config(store: Path, years: int) -> tuple[Path, tuple[int, int]]:
    """A weather-index term sheet on the store (strikes near the synthetic climate's 10–15th
    percentiles); the seasons whose windows lie inside the data."""
    import yaml

    districts = SHARED / "boundaries" / "idn_districts.geojson"
    if districts.exists():
        dist = {"path": str(districts), "id_column": "kode_bps_style"}
    else:
        frame, _ = load_districts()
        gpkg = DATA / "backtest_districts.gpkg"
        if not gpkg.exists():
            frame.to_file(gpkg, layer="districts")
        dist = {"path": str(gpkg), "id_column": "district_id"}
    cfg = {
        "season": {"id": "MT1", "start": "2019-11-01", "end": "2020-03-31", "year": 2020},
        "inputs": {"districts": dist, "rainfall": {"path": str(store), "variable": "precip", "units": "mm/day"}},
        "products": [{
            "id": "rain", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000, "anchor": "season_start",
            "phases": [
                {"name": "establishment", "start_day": 0, "end_day": 40, "index": "total", "direction": "below",
                 "strike": 230, "exit": 120, "weight": 0.4},
                {"name": "dry-spell", "start_day": 0, "end_day": 100, "index": "dry_spell", "dry_threshold": 1.0,
                 "direction": "above", "strike": 7, "exit": 20, "weight": 0.4},
                {"name": "flood", "start_day": 20, "end_day": 110, "index": "max_n_day", "n": 3,
                 "direction": "above", "strike": 140, "exit": 300, "weight": 0.4}]}],
    }
    path = DATA / f"backtest_{years}y.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    # season Y starts 1 Nov of Y − 1: the first full season is harvest year FIRST_YEAR + 1
    return path, (FIRST_YEAR + 1, FIRST_YEAR + years - 1)


# --------------------------------------------------------------------------- the two passes (children)
def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def child_readsum(store: str, lo: str, hi: str) -> dict:
    import dask
    import xarray as xr

    t0 = time.perf_counter()
    with xr.open_zarr(store, consolidated=False) as ds:
        total = ds["precip"].sel(time=slice(lo, hi)).data.sum(dtype=np.float64)
        value = float(dask.compute(total, scheduler="threads")[0])
    return {"wall": time.perf_counter() - t0, "peak_gib": _peak_gib(), "check": value}


def child_backtest(config: str, first: int, last: int) -> dict:
    from panen.engine.pipeline.backtest import backtest

    t0 = time.perf_counter()
    res = backtest(config, years=(first, last))
    wall = time.perf_counter() - t0
    paid = res.table.drop_duplicates(["district_id", "season"])["payout_rate"]
    return {"wall": wall, "peak_gib": _peak_gib(), "timings": res.timings, "counts": res.counts,
            "paid_share": float((paid > 0).mean()), "flagged_share": float(paid.isna().mean())}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"child {args[0]} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10, help="years of daily archive (default 10; 40 = full size)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds of both passes (default 2)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        result = child_readsum(*rest) if kind == "readsum" else child_backtest(rest[0], int(rest[1]), int(rest[2]))
        print(json.dumps(result))
        return 0
    if args.years < 2:
        parser.error("--years must be at least 2 (a season spans the turn of the year)")

    districts, what = load_districts()
    print(f"grid {NY} × {NX} at {RES}°, {args.years} years daily from {FIRST_YEAR}; districts: {what}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    store = make_store(args.years, districts)
    config, (first, last) = write_config(store, args.years)
    # the time range the backtest reads: first season start + 0 d .. last season start + 109 d
    lo, hi = f"{first - 1}-11-01", str(np.datetime64(f"{last - 1}-11-01") + np.timedelta64(109, "D"))
    ndays = int((np.datetime64(hi) - np.datetime64(lo)).astype(int)) + 1
    print(f"seasons {first}-{last} ({last - first + 1}); both passes read {lo} .. {hi} ({ndays} days, "
          f"{ndays * NY * NX * 4 / 2**30:.1f} GiB as float32)", flush=True)

    run_child("readsum", str(store), lo, hi)  # warm the page cache for both contenders alike
    rs, bt = [], []
    for _ in range(args.repeats):
        rs.append(run_child("readsum", str(store), lo, hi))
        bt.append(run_child("backtest", str(config), str(first), str(last)))
    t_rs = min(r["wall"] for r in rs)
    t_bt = min(r["wall"] for r in bt)
    best = min(bt, key=lambda r: r["wall"])
    print()
    print(f"{'pass':34s} {'wall [s]':>9s} {'peak RSS [GiB]':>15s}")
    print(f"{'read + dask sum (xarray.open_zarr)':34s} {t_rs:9.2f} {max(r['peak_gib'] for r in rs):15.2f}")
    print(f"{'panen backtest':34s} {t_bt:9.2f} {max(r['peak_gib'] for r in bt):15.2f}")
    print(f"ratio backtest / read + sum: {t_bt / t_rs:.2f} (target ≤ 2); peak memory target < 4 GiB")
    print(f"backtest steps [s]: {best['timings']}")
    c = best["counts"]
    print(f"{c['districts']} districts × {c['seasons']} seasons; {best['paid_share']:.1%} district-seasons paid, "
          f"{best['flagged_share']:.1%} flagged; walls per round: read+sum "
          f"{[round(r['wall'], 2) for r in rs]}, backtest {[round(r['wall'], 2) for r in bt]}")
    print(f"load average at end {os.getloadavg()[0]:.2f} (other work on the machine inflates every row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
