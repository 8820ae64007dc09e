"""Deterministic synthetic demo region: a made-up Java-like island with its rain and farmers.

:func:`generate_demo_region` writes everything a demo run needs, from one seed, in a few
seconds, byte-identical for the same arguments:

``districts.gpkg``
    Layer ``districts``: ``district_id`` (BPS-style ``PPKK``: kabupaten ``PP01``..,
    kota ``PP71``..), ``name``, ``province_id``, ``kind`` (kabupaten/kota), EPSG:4326. A
    jittered Voronoi tessellation clipped to an elongated island at about 106–112 °E,
    6–8 °S, with district sizes varying west to east, and a few small kota carved out of
    kabupaten; the smallest is smaller than one 0.05° grid cell.
``rainfall.zarr``
    Zarr (format 2, consolidated) ``precip`` (time, lat, lon) float32 [mm/day], CF
    attributes, a ``spatial_ref`` CRS (EPSG:4326), 0.05° cells, NaN over sea, daily from
    60 days before ``season_start`` to 150 days after ``season_end``. Readable with
    :func:`panen.datasets.gridded.open_rainfall`.
``ndvi.zarr``
    Zarr (format 2, consolidated) ``NDVI`` (time, lat, lon) float32 [1] and ``VI_Quality``
    (time, lat, lon) uint16 (MOD13 bit field), same grid, CRS and sea mask as the rain: a
    16-day composite on the MOD13Q1 dates (day of year 1, 17, …, 353 of every year) from
    1 January ten years before the season's start year (2013 for the 2023/24 demo, so
    2013–2022 serve as baseline) to ``season_end + 150 d``. Cloudy pixels are NaN in
    ``NDVI`` (missing, never 0) and flagged MODLAND 11 in ``VI_Quality`` (good pixels 0,
    sea the fill 65535). Readable with :func:`panen.datasets.ndvi.open_ndvi` (any QA
    policy).
``yields.csv``
    ``district_id, year, yield_ku_ha``: rice productivity in quintal per hectare (BPS
    ``ku/ha``; 1 ku/ha = 0.1 t/ha) per district for the 16 harvest years up to the
    season's (2009–2024 for the 2023/24 demo), 0.01 ku/ha resolution; a few history
    years blank (missing, never 0). Readable with
    :func:`panen.datasets.yields.read_yields` (``yield_column="yield_ku_ha",
    units="ku/ha"``).
``policies.csv``
    ``policy_id, farmer_id, district_id, product_id, area_ha, sowing_date, group_id``:
    one row per farmer and product (by default the index covers ``rain``, ``yield`` and
    ``ndvi`` and the named-peril cover ``autp``: every farmer holds all four, in that order;
    ``policy_id`` is ``P-<district>-<farmer no.>-<product>``). Adding a product only adds
    rows: the other products' rows stay byte for byte.
``assessments.csv``
    Only with the ``autp`` product: AUTP field loss assessments by POPT officers, one row per
    assessed plot (petak alami) — ``policy_id`` (an ``autp`` policy), ``plot_id``
    (``PT-<district>-<farmer no.>-<k>``), ``peril`` (field names, mostly Indonesian:
    :data:`PERIL_NAMES`), ``plot_area_ha``, ``damage_intensity_pct``, ``damaged_area_pct``
    (integer %), ``crop_age_days`` (days after planting at the event), ``planting_method``
    (``transplanting`` | ``tabela`` | ``salibu``), ``event_date``, ``notice_date``. The
    input of the AUTP adjuster (:func:`make_assessments`).
``truth_hazards.csv``
    The "hidden" truth per district: the hazard the generator planted (drought, flood or
    none), its severity, the event dates, and the data gap planted in one district —
    for basis-risk work, never an engine input.
``truth_losses.csv``
    The hidden crop truth per district: ``water_regime`` (irrigated/rainfed), the season's
    planted ``yield_loss`` (fraction) and its ``cause`` (drought, flood, pest, none), the
    ``hazard_loss`` and ``pest_loss`` parts, ``buffered`` (a hazard district that lost
    little) and ``pest_visible_in_ndvi`` (0–1) — never an engine input.

Realism (magnitudes after CHIRPS over Java and BPS yields)
------------------------------------------------------------
* Monsoon cycle: wet season Nov–Mar 200–450 mm/month, dry season Jun–Sep < 50 mm/month,
  annual ~1,700–2,800 mm; the climatological onset is up to two weeks later in the east.
* Daily rain is intermittent: about half of the wet-season days are dry (< 1 mm); wet-day
  amounts are gamma distributed (shape 0.8), spatially correlated over ~15–25 km, with
  heavy days of 50–150 mm.
* Planted hazards: a delayed onset / long dry spell (drought) in a few districts early in
  the season (Gaussian footprints, so neighbours get part of it) and multi-day heavy-rain
  (flood) events of 3–5 days at 70–140 mm/day in others.
* Missing data: ~0.5 % of land cell-days NaN at random, and one district almost entirely
  missing for a month, so the engine's "too little valid data → flagged, not paid" path
  runs. Missing is NaN, never 0.
* Farmers: plots 0.1–2 ha (truncated log-normal, median ~0.35 ha; AUTP insures at most
  2 ha), kelompok tani of 20–40 farmers who sow within a few days of one another, sowing
  dates spread over ~6 weeks around the district's onset.
* Yields (:func:`make_crop`, :func:`make_yields`): irrigated districts (more likely north of
  the island's spine, as Java's pantura) 55–64 ku/ha, rainfed 36–49 ku/ha at the middle of
  the record, +0.5 %/yr trend, year-to-year noise (region ± 2.5 %, district ± 3.5 %),
  El Niño droughts in 2015 and 2019 (15–35 % lost in ~60 % of districts) and La Niña floods
  in 2010 (8–20 % in ~15 %). The season's harvest year carries the planted hazards: drought
  districts lose 15–45 %, flood districts 10–30 % (more with severity, district noise), the
  fringe less; a couple of hazard districts are buffered (lose < ~6 %), and a couple of
  hazard-free districts lose 15–30 % to pests the rain cannot show — basis risk.
* NDVI (:func:`make_ndvi`): every land cell is paddy-dominated. Per crop, NDVI = floor
  (~0.23, ~0.28 in the dry season) + amplitude × (σ((a − 35)/8) − σ((a − 100)/8)) at crop
  age a [days after transplanting], σ the logistic: ~0.25 at transplanting, peak ~0.62–0.82
  at 60–75 days, falling toward harvest (~110 days). Wet-season (MT1) transplanting 21–35 days
  after the season-start anniversary (later in the east, ± a week between years), MT2
  128 days later at 45 % (rainfed) / 72 % (irrigated) of the MT1 amplitude, MT3 (irrigated
  only) at 35 %. Noise sd 0.025 in Nov–Mar composites, 0.045 otherwise; the amplitude
  follows the yield's year noise, El Niño years depress MT2/MT3. In the season, drought
  cells transplant up to ~25 days late with a lower peak, flood cells dip after the flood
  and stay lower, visible pests lower the late canopy — driven by the rain's footprints
  and a district response shared with, but not equal to, the yield loss. Clouds: spatially
  clustered (σ ≈ 3 cells) NaN on 10–30 % of land pixels in Dec–Feb composites, 3–10 % in
  Nov and Mar, 0–3 % otherwise. Composites take the curve at their mid-period (date + 8 d).
* AUTP assessments (:func:`make_assessments`): follow the planted truth without copying
  it. Drought/flood districts (planted and fringe) report damage on 30–75 % of the insured
  area, with puso (≥ 75 % intensity and ≥ 75 % damaged area) on ~0.75 × the district's
  hazard loss (± 25 %, clustered by kelompok tani): ~20–30 % of the area in the worst
  districts; the two pest districts claim brown planthopper, rats, blast or tungro
  outbreaks the rain never shows; every district has background claims (pests, diseases,
  local floods) reaching puso on ~1.5–3 % of its area, as AUTP's national 1.5–2.6 %
  (BPS, Statistik Indonesia). Some claims fail the wording's gates: excluded perils (fire; and keong mas,
  grassy stunt, bacterial leaf blight unless the programme endorsement covers them; ~3 %), late notices (> 7 days; ~3.5 %) and crops
  too young (< 10 days transplanted, < 30 days tabela/salibu; ~5–8 %). Methods: 85 %
  transplanting, 11 % tabela, 4 % salibu. For the default seed the district share of
  insured area at puso has Spearman ρ ≈ 0.95 with the planted yield loss; the basis risk
  shows farmer by farmer (plot-level puso against district-level indices).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import shapely

from panen.engine.infra.atomic import fixed_gpkg_date
import xarray as xr
from scipy.ndimage import gaussian_filter
from scipy.special import expit, gammaincinv, ndtr

__all__ = ["generate_demo_region", "CELL_DEG", "SOWING_SPREAD_DAYS", "DAYS_BEFORE", "DAYS_AFTER",
           "YIELD_HISTORY_YEARS", "NDVI_BASELINE_YEARS", "MOD13_DAYS_OF_YEAR", "DEFAULT_PRODUCTS",
           "AUTP_PRODUCT", "PERIL_NAMES", "PLANTING_METHODS"]

#: Grid cell size [degrees], as CHIRPS.
CELL_DEG = 0.05
#: Rainfall starts this many days before ``season_start`` [days].
DAYS_BEFORE = 60
#: Rainfall ends this many days after ``season_end`` [days].
DAYS_AFTER = 150
#: Sowing dates lie within ± this many days of the district's onset [days] (~6 weeks).
SOWING_SPREAD_DAYS = 21
#: The district's onset (centre of sowing) is 21–35 days after ``season_start`` [days].
ONSET_BASE_DAYS = 21
ONSET_EAST_DELAY_DAYS = 14
#: Default product ids: every farmer is insured by the rainfall, area-yield and NDVI covers
#: and by AUTP (the named-peril cover the index products are compared with).
DEFAULT_PRODUCTS = ("rain", "yield", "ndvi", "autp")
#: Product id of the AUTP policies the loss assessments refer to.
AUTP_PRODUCT = "autp"
#: ``yields.csv`` covers the season's harvest year and this many years before it.
YIELD_HISTORY_YEARS = 15
#: NDVI starts on 1 January this many years before the season's start year (the baseline).
NDVI_BASELINE_YEARS = 10
#: MOD13Q1 composite dates: these days of year in every year.
MOD13_DAYS_OF_YEAR = tuple(range(1, 366, 16))
#: Harvest years of the planted El Niño droughts and La Niña floods in the yield history.
EL_NINO_YEARS = (2015, 2019)
LA_NINA_YEARS = (2010,)
#: VI_Quality values written: MODLAND QA 00 (good), 11 (cloudy, not produced), fill (sea).
QA_GOOD, QA_CLOUD, QA_FILL = 0, 0b11, 65535

#: Climatological monthly rain Jan..Dec [mm/month] at spatial factor 1 (CHIRPS
#: over Java: wet Nov–Mar 200–450, dry Jun–Sep < 50; annual ~2,200).
MONTHLY_CLIMATOLOGY_MM = (390, 350, 310, 190, 95, 40, 25, 20, 30, 95, 280, 360)

_LON_RANGE = (105.8, 112.2)  # grid extent [°E]
_LAT_RANGE = (-8.2, -5.8)  # grid extent [°N]
_ISLAND_LON = (105.95, 112.05)

_PREFIXES = ("Suka", "Ciba", "Karang", "Tanjung", "Mekar", "Sumber", "Banyu", "Wono", "Sido",
             "Rejo", "Purwa", "Kali", "Gunung", "Pasir", "Jati", "Tegal", "Kedung", "Bojong",
             "Sri", "Mulya", "Tirta", "Giri", "Wana", "Sari")
_SUFFIXES = ("jaya", "makmur", "sari", "harjo", "mulya", "asri", "wangi", "agung", "rejo",
             "arum", "mukti", "laksana", "manah", "raharja", "tani", "sentosa")


@dataclass(frozen=True)
class _Grid:
    lat: np.ndarray  # cell centres, north to south [°N]
    lon: np.ndarray  # cell centres, west to east [°E]
    land: np.ndarray  # (lat, lon) bool: the cell touches the island

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)

    def boxes(self) -> np.ndarray:
        lon2, lat2 = np.meshgrid(self.lon, self.lat)
        h = CELL_DEG / 2
        return shapely.box(lon2 - h, lat2 - h, lon2 + h, lat2 + h)


@dataclass(frozen=True)
class _Hazard:
    district_id: str
    kind: str  # "drought" | "flood"
    centre: tuple[float, float]  # lon, lat
    radius: float  # Gaussian footprint sd [°]
    start: pd.Timestamp
    end: pd.Timestamp
    intensity: float  # flood: peak extra rain [mm/day]; drought: unused (1.0)


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def generate_demo_region(
    out_dir: str | PathLike[str],
    *,
    seed: int = 20240,
    n_districts: int = 36,
    n_farmers: int = 40_000,
    season_start: str = "2023-11-01",
    season_end: str = "2024-03-31",
    products: Sequence[str] = DEFAULT_PRODUCTS,
) -> dict[str, Path]:
    """Write the synthetic demo region (districts, rainfall, NDVI, yields, policies, truth).

    Parameters
    ----------
    out_dir
        Folder to write into (created if needed); existing demo files are replaced.
    seed
        Seed of every random draw; the same arguments give byte-identical files.
    n_districts
        Number of districts (kabupaten and kota), at least 4.
    n_farmers
        Number of farmers, at least 20 per district (one kelompok tani each).
    season_start, season_end
        The season (ISO dates); rainfall covers ``season_start − 60 d`` to
        ``season_end + 150 d`` so sowing-date-anchored windows fit. The yield history
        ends with ``season_end``'s year (the harvest year), NDVI starts ten years before
        ``season_start``'s year.
    products
        Product ids; the register has one row per farmer and product. NDVI and yields are
        written whatever the products; ``assessments.csv`` only when :data:`AUTP_PRODUCT`
        is among them (its policies are what the assessments refer to).

    Returns
    -------
    dict[str, pathlib.Path]
        ``{"districts", "rainfall", "ndvi", "yields", "policies", "truth",
        "truth_losses"}`` (+ ``"assessments"`` with the AUTP product) → written paths.
    """
    if n_districts < 4:
        raise ValueError("n_districts must be at least 4")
    if n_farmers < 20 * n_districts:
        raise ValueError(f"n_farmers must be at least 20 per district ({20 * n_districts})")
    if not products or len(set(products)) != len(products):
        raise ValueError("products must be a non-empty list of distinct ids")
    start, end = pd.Timestamp(season_start), pd.Timestamp(season_end)
    if end <= start:
        raise ValueError("season_end must be after season_start")

    # spawn(7)'s first six children are spawn(6)'s: adding streams left the old draws as they were
    rng_geo, rng_hazard, rng_rain, rng_farm, rng_crop, rng_ndvi, rng_assess = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    island = make_island(rng_geo)
    districts = make_districts(island, n_districts, rng_geo)
    grid = make_grid(island)
    onset = onset_delay_days(districts)
    hazards = plant_hazards(districts, start, rng_hazard)
    gap_district = _pick_gap_district(districts, hazards)
    times = pd.date_range(start - pd.Timedelta(days=DAYS_BEFORE), end + pd.Timedelta(days=DAYS_AFTER),
                          freq="D", unit="ns")
    rain = make_rainfall(grid, times, hazards, rng_rain)
    gap = (start + pd.Timedelta(days=10), start + pd.Timedelta(days=40))
    rain = plant_missing(rain, grid, times, districts, gap_district, gap, rng_rain)
    policies = make_policies(districts, onset, n_farmers, start, products, rng_farm)
    truth = hazard_truth(districts, grid, hazards, gap_district, gap)
    crop = make_crop(districts, truth, gap_district, end.year, rng_crop)
    yields = make_yields(crop, rng_crop)
    composites = mod13_dates(pd.Timestamp(start.year - NDVI_BASELINE_YEARS, 1, 1),
                             end + pd.Timedelta(days=DAYS_AFTER))
    ndvi, quality = make_ndvi(grid, districts, hazards, crop, composites, start, rng_ndvi)
    assessments = (make_assessments(policies, districts, truth, crop, hazards, start, end, rng_assess)
                   if AUTP_PRODUCT in products else None)

    paths = {
        "districts": out / "districts.gpkg",
        "rainfall": out / "rainfall.zarr",
        "ndvi": out / "ndvi.zarr",
        "yields": out / "yields.csv",
        "policies": out / "policies.csv",
        "truth": out / "truth_hazards.csv",
        "truth_losses": out / "truth_losses.csv",
    }
    _write_gpkg(districts, paths["districts"])
    _write_zarr(rainfall_dataset(rain, grid, times, seed), paths["rainfall"])
    _write_zarr(ndvi_dataset(ndvi, quality, grid, composites, seed), paths["ndvi"],
                time_chunk=len(MOD13_DAYS_OF_YEAR), fill={"VI_Quality": QA_FILL})
    _write_csv(yields, paths["yields"], "%.2f")  # ku/ha to 0.01, as BPS prints
    _write_csv(policies, paths["policies"], "%.2f")  # area_ha to 0.01 ha
    _write_csv(truth, paths["truth"], "%.3f")
    _write_csv(crop.truth(), paths["truth_losses"], "%.3f")
    stale = out / "assessments.csv"
    if assessments is not None:
        paths["assessments"] = stale
        _write_csv(assessments, stale, "%.2f")  # plot_area_ha to 0.01 ha
    else:  # no AUTP cover in the register: no assessments, and none left from an earlier run
        stale.unlink(missing_ok=True)
    return paths


# ---------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------


def make_island(rng: np.random.Generator) -> shapely.Polygon:
    """An elongated Java-like island, ~6 ° long and 0.6–1.5 ° wide, around 7 °S.

    The centre line wanders ±0.2 ° and the coasts carry a few random harmonics (bays and
    capes of ~0.05–0.1 °); both ends taper.
    """
    x0, x1 = _ISLAND_LON
    x = np.linspace(x0, x1, 241)
    u = (x - x0) / (x1 - x0)
    centre = -7.0 + 0.18 * np.sin(2 * np.pi * (u + 0.1)) - 0.1 * u
    width = (0.42 + 0.22 * np.sin(np.pi * u)) * (4 * u * (1 - u)).clip(0, 1) ** 0.35

    def coast() -> np.ndarray:
        k = np.arange(3, 12)
        amp = rng.uniform(0.01, 0.05, k.size) / np.sqrt(k / 3)
        phase = rng.uniform(0, 2 * np.pi, k.size)
        return (amp[:, None] * np.sin(2 * np.pi * k[:, None] * u + phase[:, None])).sum(axis=0)

    taper = (4 * u * (1 - u)).clip(0, 1) ** 0.5
    north = centre + width + coast() * taper
    south = centre - width + coast() * taper
    ring = np.concatenate([np.c_[x, north], np.c_[x[::-1], south[::-1]]])
    island = shapely.make_valid(shapely.Polygon(ring))
    parts = sorted(shapely.get_parts(island), key=lambda g: -g.area)
    return shapely.Polygon(parts[0].exterior).simplify(0.002)


def make_districts(island: shapely.Polygon, n_districts: int,
                   rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Kabupaten as a jittered Voronoi tessellation of the island, plus small kota.

    Seeds are thrown with a minimum distance that grows from west (denser, smaller
    districts) to east; about one district in nine is a kota, a small polygon carved out
    of a kabupaten, the first of them smaller than a 0.05° cell.
    """
    n_kota = max(1, n_districts // 9)
    n_kab = n_districts - n_kota
    seeds = _throw_seeds(island, n_kab, rng)
    cells = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=island.buffer(1.0))
    polys = list(shapely.get_parts(cells))
    kab = []
    for sx, sy in seeds:  # voronoi_polygons does not keep the seed order
        cell = next(p for p in polys if p.contains(shapely.Point(sx, sy)))
        kab.append(_polygonal(cell.intersection(island)))

    kota_radius = [0.024] + list(np.linspace(0.045, 0.09, n_kota - 1)) if n_kota > 1 else [0.024]
    hosts = rng.permutation(n_kab)
    kota: list[tuple[int, shapely.Polygon]] = []
    for radius in kota_radius:
        placed = False
        while not placed:  # shrink the kota until some free kabupaten can host it
            for h in hosts:
                if h in {k for k, _ in kota}:
                    continue
                shape = _kota_shape(kab[h], radius, rng)
                if shape is not None:
                    kota.append((int(h), shape))
                    placed = True
                    break
            radius *= 0.8
    for h, shape in kota:
        kab[h] = _polygonal(kab[h].difference(shape))

    rows = [{"kind": "kabupaten", "host": i, "geometry": g} for i, g in enumerate(kab)]
    rows += [{"kind": "kota", "host": h, "geometry": g} for h, g in kota]
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    return _assign_codes(gdf, rng)


def _throw_seeds(island: shapely.Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = island.bounds
    area_per_seed = island.area / n
    spacing = 0.75 * np.sqrt(area_per_seed)
    seeds: list[tuple[float, float]] = []
    attempts = 0
    while len(seeds) < n:
        attempts += 1
        if attempts % 2000 == 0:
            spacing *= 0.9  # relax when the island is full
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if not shapely.contains_xy(island, x, y):
            continue
        local = spacing * (0.75 + 0.5 * (x - minx) / (maxx - minx))  # west denser than east
        if all((x - a) ** 2 + (y - b) ** 2 >= local**2 for a, b in seeds):
            seeds.append((x, y))
    return np.round(np.array(seeds), 6)


def _kota_shape(host: shapely.Geometry, radius: float, rng: np.random.Generator) -> shapely.Polygon | None:
    """A small irregular polygon of ~``radius`` [°] well inside ``host``, or None."""
    inner = host.buffer(-2.5 * radius)
    if inner.is_empty:
        return None
    cx, cy = inner.representative_point().coords[0]
    cx, cy = cx + rng.uniform(-0.3, 0.3) * radius, cy + rng.uniform(-0.3, 0.3) * radius
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    r = radius * rng.uniform(0.8, 1.2, angles.size)
    shape = shapely.Polygon(np.c_[cx + r * np.cos(angles), cy + r * np.sin(angles)])
    shape = _polygonal(shapely.make_valid(shape))
    return shape if host.contains(shape) else None


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    polys = [q for p in parts for q in shapely.get_parts(p) if q.area > 1e-6]
    polys.sort(key=lambda p: -p.area)
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _assign_codes(gdf: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Province by west-to-east position of the kabupaten; BPS-style codes and names."""
    pts = gdf.geometry.representative_point()
    gdf = gdf.assign(lon=pts.x.round(6), lat=pts.y.round(6))
    kab = gdf[gdf.kind == "kabupaten"].sort_values("lon")
    cut = np.quantile(kab.lon, [0.12, 0.45, 0.75])
    prov_codes = np.array(["36", "32", "33", "35"])  # a Banten/Jabar/Jateng/Jatim-like order
    prov_of_kab = dict(zip(kab.index, prov_codes[np.searchsorted(cut, kab.lon)], strict=True))
    gdf["province_id"] = [prov_of_kab[i] if k == "kabupaten" else prov_of_kab[h]
                          for i, k, h in zip(gdf.index, gdf.kind, gdf.host, strict=True)]
    gdf = gdf.sort_values(["province_id", "kind", "lon", "lat"]).reset_index(drop=True)
    gdf["number"] = gdf.groupby(["province_id", "kind"]).cumcount() + 1
    gdf["district_id"] = [f"{p}{n + (70 if k == 'kota' else 0):02d}"
                          for p, k, n in zip(gdf.province_id, gdf.kind, gdf.number, strict=True)]
    names = _names(len(gdf), rng)
    gdf["name"] = [f"{'Kota' if k == 'kota' else 'Kab.'} {n}" for k, n in zip(gdf.kind, names, strict=True)]
    gdf = gdf.sort_values("district_id").reset_index(drop=True)
    return gdf[["district_id", "name", "province_id", "kind", "geometry"]]


def _names(n: int, rng: np.random.Generator) -> list[str]:
    pairs = [p + s for p in _PREFIXES for s in _SUFFIXES]
    return [pairs[i] for i in rng.choice(len(pairs), size=n, replace=False)]


def make_grid(island: shapely.Polygon) -> _Grid:
    """0.05° cells over the island; land = cells that touch the island (others are sea)."""
    nx = round((_LON_RANGE[1] - _LON_RANGE[0]) / CELL_DEG)
    ny = round((_LAT_RANGE[1] - _LAT_RANGE[0]) / CELL_DEG)
    lon = np.round(_LON_RANGE[0] + CELL_DEG * (np.arange(nx) + 0.5), 6)
    lat = np.round(_LAT_RANGE[1] - CELL_DEG * (np.arange(ny) + 0.5), 6)
    grid = _Grid(lat, lon, np.zeros((ny, nx), bool))
    shapely.prepare(island)
    return _Grid(lat, lon, shapely.intersects(island, grid.boxes()))


# ---------------------------------------------------------------------------------------
# Climate and planted hazards
# ---------------------------------------------------------------------------------------


def onset_delay_days(districts: gpd.GeoDataFrame) -> pd.Series:
    """Climatological onset delay per district [days after ``season_start`` + 21]:
    0 in the far west to :data:`ONSET_EAST_DELAY_DAYS` in the far east."""
    lon = districts.geometry.representative_point().x
    frac = (lon - _ISLAND_LON[0]) / (_ISLAND_LON[1] - _ISLAND_LON[0])
    return pd.Series(np.round(frac.clip(0, 1) * ONSET_EAST_DELAY_DAYS).astype(int).to_numpy(),
                     index=districts.district_id.to_numpy())


def plant_hazards(districts: gpd.GeoDataFrame, start: pd.Timestamp,
                  rng: np.random.Generator) -> list[_Hazard]:
    """Choose 1–3 drought and 1–3 flood centres on kabupaten far (≥ 0.9°) from one another.

    Drought: delayed onset and a long dry spell from 20 days before ``season_start`` to
    55–70 days after it (at the centre 97 % fewer wet days, 60 % less rain on them).
    Flood: 3–5 consecutive days of 70–140 mm/day at the centre,
    45–110 days after ``season_start``. Footprints are flat-topped Gaussians (:func:`_footprint`)
    with a standard deviation of at least 0.25° (larger for large districts).
    """
    n = len(districts)
    n_drought = min(3, max(1, round(n / 12)))
    n_flood = min(3, max(1, round(n / 14)))
    kab = districts[districts.kind == "kabupaten"]
    order = rng.permutation(len(kab))
    pts = kab.geometry.representative_point()
    chosen: list[int] = []
    min_dist = 0.9
    while len(chosen) < n_drought + n_flood:
        for i in order:
            if i in chosen:
                continue
            if all(pts.iloc[i].distance(pts.iloc[j]) >= min_dist for j in chosen):
                chosen.append(int(i))
                if len(chosen) == n_drought + n_flood:
                    break
        min_dist *= 0.8
    hazards = []
    for k, i in enumerate(chosen):
        row = kab.iloc[i]
        radius = max(0.25, 0.8 * float(np.sqrt(row.geometry.area / np.pi)))
        centre = (round(float(pts.iloc[i].x), 6), round(float(pts.iloc[i].y), 6))
        if k < n_drought:
            s = start - pd.Timedelta(days=20)
            e = start + pd.Timedelta(days=int(rng.integers(55, 71)))
            hazards.append(_Hazard(row.district_id, "drought", centre, radius, s, e, 1.0))
        else:
            s = start + pd.Timedelta(days=int(rng.integers(45, 111)))
            e = s + pd.Timedelta(days=int(rng.integers(2, 5)))
            hazards.append(_Hazard(row.district_id, "flood", centre, radius, s, e,
                                   float(np.round(rng.uniform(70, 140), 1))))
    return hazards


def _footprint(grid_or_xy: _Grid | tuple[np.ndarray, np.ndarray], hazard: _Hazard) -> np.ndarray:
    """Hazard strength 0..1: a flat-topped Gaussian, min(1, 1.5 exp(−d² / 2r²)), so the
    centre district is hit across its whole area and neighbours get the fringe."""
    if isinstance(grid_or_xy, _Grid):
        x, y = np.meshgrid(grid_or_xy.lon, grid_or_xy.lat)
    else:
        x, y = grid_or_xy
    d2 = (x - hazard.centre[0]) ** 2 + (y - hazard.centre[1]) ** 2
    return np.minimum(1.0, 1.5 * np.exp(-d2 / (2 * hazard.radius**2)))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to unit standard deviation."""
    z = gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="wrap")
    return z / z.std()


def make_rainfall(grid: _Grid, times: pd.DatetimeIndex, hazards: list[_Hazard],
                  rng: np.random.Generator) -> np.ndarray:
    """Daily rain [mm/day] on the grid, shape (time, lat, lon), NaN over sea.

    mean(t, cell) = A(cell) · c(t − lag(cell)) [mm/day], where c interpolates the monthly
    climatology :data:`MONTHLY_CLIMATOLOGY_MM` (Jan 390 … Jul 25 … Dec 360 mm/month), A is
    a smooth spatial factor (~0.85–1.25, wetter in the south-west) times a smooth season
    anomaly (± ~12 %), and the lag grows to 14 days in the east. Wet-day probability
    p = 0.14 + 0.46 √s, s = c rescaled to 0..1 (≈ 0.5–0.6 in the wet season, so about half
    the wet-season days are dry); occurrence from an AR(1)-in-time, spatially smoothed
    Gaussian field (ρ = 0.5, σ ≈ 3 cells); amounts gamma(shape 0.8) with mean mean / p,
    drawn as quantiles of a mostly smooth Gaussian field (σ ≈ 2 cells), capped at 250 mm.
    Rounded to 0.1 mm.
    """
    ny, nx = grid.shape
    nt = times.size
    lon2, lat2 = np.meshgrid(grid.lon, grid.lat)
    west = (_ISLAND_LON[1] - lon2) / (_ISLAND_LON[1] - _ISLAND_LON[0])
    south = (-6.0 - lat2) / 2.0
    factor = 0.85 + 0.2 * west.clip(0, 1) + 0.15 * south.clip(0, 1)
    factor = factor * np.exp(0.12 * _smooth_noise(rng, (ny, nx), (10, 10)) - 0.0072)
    lag = (1 - west.clip(0, 1)) * ONSET_EAST_DELAY_DAYS

    rate = _climatological_rate(times, lag)  # (time, lat, lon) [mm/day] at factor 1
    s = (rate - rate.min()) / (rate.max() - rate.min())  # 0 in the driest, 1 in the wettest week
    mean = factor[None] * rate
    p_wet = 0.14 + 0.46 * np.sqrt(s)
    wet_mean = mean / p_wet  # climatological mean amount on a wet day [mm]
    amount_scale = np.ones_like(mean)

    for hz in hazards:
        if hz.kind != "drought":
            continue
        within = np.asarray((times >= hz.start) & (times <= hz.end))[:, None, None]
        d = _footprint(grid, hz)[None]
        p_wet = np.where(within, p_wet * (1 - 0.97 * d), p_wet)
        amount_scale = np.where(within, amount_scale * (1 - 0.6 * d), amount_scale)

    eps = _smooth_noise(rng, (nt, ny, nx), (0, 3, 3))
    occ = np.empty_like(eps)
    occ[0] = eps[0]
    rho = 0.5
    for t in range(1, nt):
        occ[t] = rho * occ[t - 1] + np.sqrt(1 - rho**2) * eps[t]
    wet = ndtr(occ) < p_wet
    # Wet-day amounts: gamma(shape 0.8) quantiles of a mostly smooth Gaussian field, so
    # storms are coherent over ~10–25 km with cell-to-cell texture.
    shape = 0.8
    z = 0.8 * _smooth_noise(rng, (nt, ny, nx), (0, 2, 2)) + 0.6 * rng.standard_normal((nt, ny, nx))
    amounts = _gamma_quantile(z, shape) * (wet_mean / shape) * amount_scale
    rain = np.where(wet, np.minimum(amounts, 250.0), 0.0)

    for hz in hazards:
        if hz.kind != "flood":
            continue
        f = _footprint(grid, hz)
        days = np.flatnonzero(np.asarray((times >= hz.start) & (times <= hz.end)))
        for t in days:
            extra = hz.intensity * f * rng.uniform(0.85, 1.15, f.shape)
            rain[t] = np.where(f > 0.05, np.maximum(rain[t], extra), rain[t])

    rain = np.round(rain, 1).astype(np.float32)
    rain[:, ~grid.land] = np.nan
    return rain


def _gamma_quantile(z: np.ndarray, shape: float) -> np.ndarray:
    """Gamma(shape, scale 1) quantile of the standard-normal probability of ``z``
    (tabulated on z ∈ [-7, 7] and interpolated: exact to ~1e-4, 20× faster)."""
    table_z = np.linspace(-7, 7, 4001)
    table_x = gammaincinv(shape, ndtr(table_z))
    return np.interp(z, table_z, table_x)


def _climatological_rate(times: pd.DatetimeIndex, lag: np.ndarray) -> np.ndarray:
    """Mean daily rain [mm/day] on each day, interpolated periodically between mid-month
    values of :data:`MONTHLY_CLIMATOLOGY_MM` and delayed by ``lag`` [days] per cell."""
    mid = np.array([pd.Timestamp(2001, m, 1).day_of_year - 1 + pd.Timestamp(2001, m, 1).days_in_month / 2
                    for m in range(1, 13)])
    daily = np.array(MONTHLY_CLIMATOLOGY_MM) / np.array(
        [pd.Timestamp(2001, m, 1).days_in_month for m in range(1, 13)])
    doy = times.day_of_year.to_numpy(float)[:, None, None] - 0.5 - lag[None]
    return np.interp(doy % 365.0, mid, daily, period=365.0)


def _pick_gap_district(districts: gpd.GeoDataFrame, hazards: list[_Hazard]) -> str:
    """A kabupaten without a planted hazard, far from hazard centres: its data go missing."""
    planted = {h.district_id for h in hazards}
    kab = districts[(districts.kind == "kabupaten") & ~districts.district_id.isin(planted)]
    pts = kab.geometry.representative_point()
    dist = np.array([min(np.hypot(p.x - h.centre[0], p.y - h.centre[1]) for h in hazards) for p in pts])
    return str(kab.district_id.iloc[int(np.argmax(dist))])


def plant_missing(rain: np.ndarray, grid: _Grid, times: pd.DatetimeIndex,
                  districts: gpd.GeoDataFrame, gap_district: str,
                  gap: tuple[pd.Timestamp, pd.Timestamp], rng: np.random.Generator) -> np.ndarray:
    """~0.5 % of land cell-days NaN at random; 97 % of the cells touching ``gap_district``
    NaN on every day of ``gap`` (inclusive)."""
    rain = rain.copy()
    scattered = (rng.random(rain.shape) < 0.005) & grid.land[None]
    rain[scattered] = np.nan
    poly = districts.set_index("district_id").geometry[gap_district]
    cells = shapely.intersects(poly, grid.boxes()) & grid.land
    days = np.flatnonzero(np.asarray((times >= gap[0]) & (times <= gap[1])))
    drop = rng.random((days.size, *grid.shape)) < 0.97
    block = rain[days]
    block[drop & cells[None]] = np.nan
    rain[days] = block
    return rain


def rainfall_dataset(rain: np.ndarray, grid: _Grid, times: pd.DatetimeIndex, seed: int) -> xr.Dataset:
    """CF-style dataset: ``precip`` (time, lat, lon) [mm/day] with an EPSG:4326 ``spatial_ref``."""
    da = xr.DataArray(
        rain, dims=("time", "lat", "lon"),
        coords={
            "time": times,
            "lat": ("lat", grid.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", grid.lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        name="precip",
        attrs={"units": "mm/day", "long_name": "synthetic daily precipitation (panen demo region)"},
    )
    ds = da.to_dataset()
    ds.attrs = {"title": "panen synthetic demo region: daily rainfall", "Conventions": "CF-1.8",
                "source": "panen.datasets.synthetic.generate_demo_region", "seed": int(seed)}
    return ds.rio.write_crs("EPSG:4326")


# ---------------------------------------------------------------------------------------
# Farmers
# ---------------------------------------------------------------------------------------


def make_policies(districts: gpd.GeoDataFrame, onset: pd.Series, n_farmers: int,
                  start: pd.Timestamp, products: Sequence[str],
                  rng: np.random.Generator) -> pd.DataFrame:
    """The policy register: farmers per district, kelompok tani, plot sizes, sowing dates.

    Farmers per district ∝ area × a log-normal rice-intensity weight (kota × 0.3), at
    least 20. Groups of 20–40 farmers; a group sows together (group offset sd 8 days,
    farmer sd 5 days) around the district's onset, clipped to ± 21 days. Plot areas
    [ha]: log-normal (median 0.35 ha, σ 0.75) truncated to 0.1–2 ha, 0.01 ha resolution.
    """
    ids = districts.district_id.to_numpy()
    weight = shapely.area(districts.geometry.to_numpy()) * rng.lognormal(0, 0.4, len(ids))
    weight = np.where(districts.kind.to_numpy() == "kota", 0.3 * weight, weight)
    counts = 20 + rng.multinomial(n_farmers - 20 * len(ids), weight / weight.sum())

    columns: dict[str, list] = {k: [] for k in ("farmer_id", "district_id", "area_ha",
                                                "sowing_date", "group_id")}
    for d, n in zip(ids, counts, strict=True):
        sizes = _group_sizes(int(n), rng)
        group_of = np.repeat(np.arange(sizes.size), sizes)
        group_shift = rng.normal(0, 8, sizes.size)[group_of]
        centre = ONSET_BASE_DAYS + int(onset[d])
        offset = np.round(group_shift + rng.normal(0, 5, n)).clip(-SOWING_SPREAD_DAYS, SOWING_SPREAD_DAYS)
        sowing = start + pd.to_timedelta(centre + offset, unit="D")
        columns["farmer_id"] += [f"F-{d}-{i:05d}" for i in range(1, n + 1)]
        columns["district_id"] += [d] * n
        columns["area_ha"] += list(_plot_areas(int(n), rng))
        columns["sowing_date"] += list(sowing.strftime("%Y-%m-%d"))
        columns["group_id"] += [f"G-{d}-{g + 1:03d}" for g in group_of]
    farmers = pd.DataFrame(columns)
    rows = []
    for product in products:
        part = farmers.assign(product_id=product)
        part.insert(0, "policy_id", "P-" + farmers.farmer_id.str[2:] + "-" + product)
        rows.append(part)
    register = pd.concat(rows, ignore_index=True)
    order = np.lexsort((np.repeat(np.arange(len(products)), len(farmers)),
                        np.tile(np.arange(len(farmers)), len(products))))
    register = register.iloc[order].reset_index(drop=True)
    return register[["policy_id", "farmer_id", "district_id", "product_id", "area_ha",
                     "sowing_date", "group_id"]]


def _group_sizes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``n`` ≥ 20 farmers into groups of 20–40 (random sizes, ~30 on average)."""
    lo, hi = -(-n // 40), n // 20  # feasible numbers of groups
    g = int(np.clip(round(n / 30), lo, hi))
    extra = n - 20 * g  # 0 ≤ extra ≤ 20 g, shared out on top of 20 each
    for _ in range(20):
        sizes = 20 + rng.multinomial(extra, rng.dirichlet(np.full(g, 3.0)))
        if sizes.max() <= 40:
            return sizes
    slots = rng.choice(20 * g, size=extra, replace=False)  # always feasible
    return 20 + np.bincount(slots // 20, minlength=g)


def _plot_areas(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(0)
    while out.size < n:
        draw = rng.lognormal(np.log(0.35), 0.75, 2 * n)
        out = np.concatenate([out, draw[(draw >= 0.1) & (draw <= 2.0)]])
    return np.round(out[:n], 2).clip(0.1, 2.0)


# ---------------------------------------------------------------------------------------
# AUTP loss assessments
# ---------------------------------------------------------------------------------------

#: Peril names as POPT field reports write them (Indonesian mostly, English in some
#: districts' forms) → the English peril of the AUTP wording (the AUTP wording: covered flood,
#: drought, brown planthopper, stem borer, rice bug, rats, armyworm, blast, brown spot,
#: tungro, stem rot, ragged stunt; excluded fire, grassy stunt, bacterial leaf blight,
#: golden apple snail, ...).
PERIL_NAMES: dict[str, str] = {
    "kekeringan": "drought", "banjir": "flood",
    "wereng batang coklat": "brown planthopper", "penggerek batang": "stem borer",
    "walang sangit": "rice bug", "tikus": "rats", "ulat grayak": "armyworm",
    "blas": "blast", "bercak coklat": "brown spot", "tungro": "tungro",
    "busuk batang": "stem rot", "kerdil hampa": "ragged stunt",
    "keong mas": "golden apple snail", "kebakaran": "fire", "kerdil rumput": "grassy stunt",
    "hawar daun bakteri": "bacterial leaf blight",
    "drought": "drought", "flood": "flood", "brown planthopper": "brown planthopper",
    "rats": "rats", "blast": "blast",
}
#: ``planting_method`` values: transplanting (tanam pindah), direct seeding (tabela) and
#: ratoon (salibu), with their shares among farmers.
PLANTING_METHODS: dict[str, float] = {"transplanting": 0.85, "tabela": 0.11, "salibu": 0.04}
#: Background claims (every district, every season): peril → share of the claims.
_BACKGROUND_PERILS: dict[str, float] = {
    "wereng batang coklat": 0.20, "tikus": 0.20, "penggerek batang": 0.10, "blas": 0.10,
    "tungro": 0.05, "walang sangit": 0.04, "ulat grayak": 0.03, "bercak coklat": 0.03,
    "busuk batang": 0.02, "kerdil hampa": 0.02, "banjir": 0.08, "kekeringan": 0.03,
    "keong mas": 0.05, "kebakaran": 0.01, "kerdil rumput": 0.01, "hawar daun bakteri": 0.03,
}
#: Crop age [days after planting] at the damaging event, drawn uniformly per peril.
_PERIL_AGES: dict[str, tuple[int, int]] = {
    "kekeringan": (15, 60), "banjir": (5, 80), "wereng batang coklat": (35, 90),
    "penggerek batang": (20, 85), "walang sangit": (60, 90), "tikus": (15, 95),
    "ulat grayak": (15, 50), "blas": (25, 85), "bercak coklat": (40, 90), "tungro": (15, 50),
    "busuk batang": (50, 95), "kerdil hampa": (20, 60), "keong mas": (3, 25),
    "kebakaran": (60, 100), "kerdil rumput": (20, 60), "hawar daun bakteri": (30, 80),
}
#: Outbreak pests of the pest districts (one per district).
_OUTBREAK_PESTS = ("wereng batang coklat", "tikus", "blas", "tungro")
#: The English name some districts' forms use instead of the Indonesian one.
_ENGLISH_OF = {"kekeringan": "drought", "banjir": "flood", "wereng batang coklat": "brown planthopper",
               "tikus": "rats", "blas": "blast"}
#: Share of severe plots reaching puso (≥ 75 % intensity and ≥ 75 % damaged area) under
#: the severe draw of :func:`_damage`; used to turn target puso shares into probabilities.
_SEVERE_PUSO = 0.7


def make_assessments(policies: pd.DataFrame, districts: gpd.GeoDataFrame, truth: pd.DataFrame, crop: _Crop,
                     hazards: list[_Hazard], start: pd.Timestamp, end: pd.Timestamp,
                     rng: np.random.Generator, product: str = AUTP_PRODUCT) -> pd.DataFrame:
    """AUTP field loss assessments by POPT officers, one row per assessed plot (petak alami).

    Every ``product`` policy's farm is split into 1–3 plots (one below 0.25 ha; Dirichlet
    shares, 0.01 ha, at least 0.05 ha each). Each farmer falls in at most one damage
    category, drawn with per-district probabilities from three sources:

    * hazard (the district's truth ``cause`` drought / flood, planted or fringe): target
      puso share of insured area T = min(0.6, 0.75 × hazard_loss × e^N(0, 0.25)) —
      ~34 % for a district losing 45 %, ~4 % for a buffered one; severe with probability
      T / 0.7 and moderate with 0.6 T / 0.7 + 0.05, both × a kelompok-tani factor
      e^(N(0, 0.5) − 0.125) (damage clusters by group); all the farmer's plots assessed.
    * pest districts: T = min(0.5, 0.8 × pest_loss × e^N(0, 0.25)), same probabilities
      (moderate + 0.03); one outbreak pest (brown planthopper, rats, blast or tungro) for
      85 % of the claims, the background mix for the rest.
    * background in every district: T ~ U(1.5, 3.2) % (AUTP nationally pays on 1.5–2.6 %
      of insured area in normal years, as reported for AUTP; the adjuster's gates decline some),
      moderate 2 × severe; perils :data:`_BACKGROUND_PERILS` (pests and diseases, local
      flood and drought, ~10 % excluded: keong mas, fire, grassy stunt, bacterial leaf
      blight).

    Probabilities are scaled down where they add up to more than 0.95.

    Pest and background claims assess each plot with probability 0.75 (at least one).
    Damage per plot (:func:`_damage`): severe intensity N(88, 9) %, damaged area N(84, 13) %
    (~70 % reach puso ≥ 75/75), moderate N(45, 16) % / N(50, 20) % (~1 %), a farmer
    offset N(0, 4) on both, clipped to 5–100 and recorded to 1 % or, by the officers of
    half the districts, to 5 %. Peril names are Indonesian, 12 % English where a form has
    it (:data:`PERIL_NAMES`).

    Dates: the register's ``sowing_date`` is the planting date; ``crop_age_days`` =
    ``event_date`` − planting. Flood: a day of the planted flood (plots not yet planted
    then are not damaged); drought: 10 days after planting to 15 days after the dry spell
    ends, 4 % of them seedlings of 3–9 days; other perils: :data:`_PERIL_AGES`. Events
    never after ``end``. ``notice_date`` = event + min(7, Poisson(1.8)) days, 3.5 % of
    them 8–25 days late. Planting methods per farmer: :data:`PLANTING_METHODS`.

    Returns
    -------
    pandas.DataFrame
        ``policy_id, plot_id, peril, plot_area_ha, damage_intensity_pct,
        damaged_area_pct, crop_age_days, planting_method, event_date, notice_date``,
        in register order then plot number; ``plot_id`` is ``PT-<district>-<farmer no.>-<k>``.
    """
    reg = policies[policies.product_id == product].reset_index(drop=True)
    n = len(reg)
    ids = districts.district_id.to_numpy()
    d_of = pd.Index(ids).get_indexer(reg.district_id)
    t = truth.set_index("district_id").loc[ids]
    n_d = ids.size

    # district parameters (all drawn in district order, whatever is used)
    kind = np.where(np.isin(crop.cause, ("drought", "flood")), crop.cause, "none")
    hazard_t = np.where(kind != "none", np.minimum(0.6, 0.75 * crop.hazard_loss * np.exp(rng.normal(0, 0.25, n_d))),
                        0.0)
    pest_t = np.minimum(0.5, 0.8 * crop.pest_loss * np.exp(rng.normal(0, 0.25, n_d)))
    outbreak = rng.choice(len(_OUTBREAK_PESTS), n_d)
    background_t = rng.uniform(0.015, 0.032, n_d)
    step5 = rng.random(n_d) < 0.5  # officers who record damage to the nearest 5 %
    event_hazard = _district_hazards(districts, t, kind, hazards)

    # farmers: group factor, damage category, planting method
    groups, group_of = np.unique(reg.group_id.to_numpy(str), return_inverse=True)
    factor = np.exp(rng.normal(0, 0.5, groups.size) - 0.125)[group_of]
    sev_h = hazard_t[d_of] / _SEVERE_PUSO * factor
    mod_h = np.where(kind[d_of] != "none", (0.6 * hazard_t[d_of] / _SEVERE_PUSO + 0.05) * factor, 0.0)
    sev_p = pest_t[d_of] / _SEVERE_PUSO * factor
    mod_p = np.where(pest_t[d_of] > 0, (0.6 * pest_t[d_of] / _SEVERE_PUSO + 0.03) * factor, 0.0)
    sev_b = background_t[d_of] / _SEVERE_PUSO
    prob = np.stack([sev_h, mod_h, sev_p, mod_p, sev_b, 2 * sev_b], axis=1)
    prob *= np.minimum(1.0, 0.95 / prob.sum(axis=1))[:, None]
    category = (rng.random(n)[:, None] >= prob.cumsum(axis=1)).sum(axis=1)  # 0..5, 6 = no claim
    method = np.array(list(PLANTING_METHODS))[rng.choice(len(PLANTING_METHODS), n, p=list(PLANTING_METHODS.values()))]

    # perils and events of the claimants
    f = np.flatnonzero(category < 6)
    cat = category[f]
    source = cat // 2  # 0 hazard, 1 pest, 2 background
    severe = cat % 2 == 0
    background = list(_BACKGROUND_PERILS)
    peril = np.array(background, dtype=object)[rng.choice(len(background), f.size, p=list(_BACKGROUND_PERILS.values()))]
    pest_main = np.array(_OUTBREAK_PESTS, dtype=object)[outbreak[d_of[f]]]
    peril = np.where((source == 1) & (rng.random(f.size) < 0.85), pest_main, peril)
    peril = np.where(source == 0, np.where(kind[d_of[f]] == "drought", "kekeringan", "banjir"), peril)

    sowing = pd.to_datetime(reg.sowing_date.to_numpy()[f])
    sow_day = ((sowing - start) / pd.Timedelta(days=1)).to_numpy(float).astype(np.int64)
    last = (end - start).days
    lo = np.array([_PERIL_AGES[p][0] for p in peril])
    hi = np.array([_PERIL_AGES[p][1] for p in peril])
    age = rng.integers(lo, hi + 1)
    # the district's planted drought / flood dates
    hz_start = np.array([(h.start - start).days if h is not None else 0 for h in event_hazard])[d_of[f]]
    hz_end = np.array([(h.end - start).days if h is not None else 0 for h in event_hazard])[d_of[f]]
    drought = (source == 0) & (kind[d_of[f]] == "drought")
    flood = (source == 0) & (kind[d_of[f]] == "flood")
    drought_hi = np.maximum(15, hz_end + 15 - sow_day)
    drought_age = np.where(rng.random(f.size) < 0.04, rng.integers(3, 10, f.size),
                           (10 + rng.random(f.size) * (drought_hi - 10)).astype(np.int64))
    flood_day = hz_start + np.floor(rng.random(f.size) * (hz_end - hz_start + 1)).astype(np.int64)
    age = np.where(drought, drought_age, np.where(flood, flood_day - sow_day, age))
    age = np.minimum(age, last - sow_day)
    keep = age >= 0  # flooded before planting: nothing to damage
    f, peril, severe, source, age, sow_day = f[keep], peril[keep], severe[keep], source[keep], age[keep], sow_day[keep]
    english = np.array([p in _ENGLISH_OF for p in peril]) & (rng.random(f.size) < 0.12)
    peril = np.where(english, [_ENGLISH_OF.get(p, p) for p in peril], peril)
    delay = np.where(rng.random(f.size) < 0.035, rng.integers(8, 26, f.size), np.minimum(7, rng.poisson(1.8, f.size)))

    # plots: split each claimant's farm, choose the assessed plots, draw the damage
    area = reg.area_ha.to_numpy(float)[f]
    plot_area, plot_no, owner = _split_plots(area, rng)
    assessed = (source[owner] == 0) | (rng.random(owner.size) < 0.75)
    first = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
    pick = first + np.floor(rng.random(f.size) * np.bincount(owner, minlength=f.size)).astype(np.int64)
    assessed[pick] = True
    intensity, damaged = _damage(severe, owner, step5[d_of[f]], rng)
    rows = np.flatnonzero(assessed)
    o = owner[rows]
    event = start + pd.to_timedelta(sow_day[o] + age[o], unit="D")
    notice = event + pd.to_timedelta(delay[o], unit="D")
    farmer = pd.Series(reg.farmer_id.to_numpy(str)[f][o])
    return pd.DataFrame({
        "policy_id": reg.policy_id.to_numpy(str)[f][o],
        "plot_id": "PT-" + farmer.str[2:] + "-" + pd.Series(plot_no[rows]).astype(str),
        "peril": peril[o].astype(str),
        "plot_area_ha": plot_area[rows],
        "damage_intensity_pct": intensity[rows],
        "damaged_area_pct": damaged[rows],
        "crop_age_days": age[o],
        "planting_method": method[f][o],
        "event_date": event.strftime("%Y-%m-%d"),
        "notice_date": notice.strftime("%Y-%m-%d"),
    })


def _district_hazards(districts: gpd.GeoDataFrame, truth: pd.DataFrame, kind: np.ndarray,
                      hazards: list[_Hazard]) -> list[_Hazard | None]:
    """Per district, the planted hazard of its ``kind`` whose footprint is strongest at the
    district's representative point (its event dates date the claims); None for none."""
    pts = districts.geometry.representative_point()
    out: list[_Hazard | None] = []
    events = zip(kind, pts.x, pts.y, truth.event_start.to_numpy(str), truth.event_end.to_numpy(str), strict=True)
    for k, x, y, first, last in events:
        same = [h for h in hazards if h.kind == k]
        # a planted district: the event truth_hazards.csv names; the fringe: any of its kind
        named = [h for h in same if (h.start.strftime("%Y-%m-%d"), h.end.strftime("%Y-%m-%d")) == (first, last)]
        candidates = named or same
        strength = [float(_footprint((np.array([x]), np.array([y])), h)[0]) for h in candidates]
        out.append(candidates[int(np.argmax(strength))] if candidates else None)
    return out


def _split_plots(area: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split farms [ha] into 1–3 plots: (plot areas [ha], plot numbers 1.., farm index),
    farm by farm. One plot below 0.25 ha; otherwise 1 + Bernoulli(0.45) + (≥ 0.8 ha)
    Bernoulli(0.5); Dirichlet(4) shares rounded to 0.01 ha, the last plot taking the
    rest; a farm whose split leaves a plot under 0.05 ha stays one plot."""
    m = area.size
    count = 1 + ((area >= 0.25) & (rng.random(m) < 0.45)) + ((area >= 0.8) & (rng.random(m) < 0.5))
    shares = rng.dirichlet([4.0, 4.0, 4.0], m) * (np.arange(3)[None] < count[:, None])
    shares /= shares.sum(axis=1, keepdims=True)
    parts = np.round(area[:, None] * shares, 2)
    cum = np.round(np.cumsum(parts, axis=1), 2)
    parts[np.arange(m), count - 1] = np.round(area - (cum[np.arange(m), count - 1] - parts[np.arange(m), count - 1]), 2)
    too_small = ((parts < 0.05) & (np.arange(3)[None] < count[:, None])).any(axis=1)
    count = np.where(too_small, 1, count)
    parts[too_small] = 0.0
    parts[too_small, 0] = area[too_small]
    owner = np.repeat(np.arange(m), count)
    number = np.arange(owner.size) - np.repeat(np.r_[0, np.cumsum(count)[:-1]], count) + 1
    return np.round(parts[owner, number - 1], 2), number, owner


def _damage(severe: np.ndarray, owner: np.ndarray, step5: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Damage intensity and damaged area [%] per plot (int): severe N(88, 9) / N(84, 13),
    moderate N(45, 16) / N(50, 20), a farmer offset N(0, 4), clipped to 5–100, to 1 % or
    (``step5`` farms) 5 %."""
    sev = severe[owner]
    offset = rng.normal(0, 4, severe.size)[owner]
    k = owner.size
    intensity = np.where(sev, rng.normal(88, 9, k), rng.normal(45, 16, k)) + offset
    damaged = np.where(sev, rng.normal(84, 13, k), rng.normal(50, 20, k)) + offset
    step = np.where(step5[owner], 5.0, 1.0)
    return tuple(np.clip(np.round(v / step) * step, 5, 100).astype(np.int64) for v in (intensity, damaged))


# ---------------------------------------------------------------------------------------
# Truth
# ---------------------------------------------------------------------------------------


def hazard_truth(districts: gpd.GeoDataFrame, grid: _Grid, hazards: list[_Hazard],
                 gap_district: str, gap: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    """Per district, what the generator planted.

    ``footprint_drought`` / ``footprint_flood``: district mean (over the cell centres inside
    it, or its representative point) of the strongest drought / flood footprint (0–1).
    ``hazard``: the larger of the two when ≥ 0.5, else ``none``; ``severity``: that mean
    (0 for none; ``severity_class`` ≥ 0.9 severe, ≥ 0.7 moderate, else mild);
    ``event_start``/``event_end``: the planted event; ``data_gap_*``: the planted outage.
    """
    rows = []
    lon2, lat2 = np.meshgrid(grid.lon, grid.lat)
    pts = np.c_[lon2.ravel(), lat2.ravel()]
    for d, geom in zip(districts.district_id, districts.geometry, strict=True):
        inside = shapely.contains_xy(geom, pts[:, 0], pts[:, 1])
        if inside.any():
            xy = (pts[inside, 0], pts[inside, 1])
        else:
            px, py = geom.representative_point().coords[0]
            xy = (np.array([px]), np.array([py]))
        strongest: dict[str, tuple[float, _Hazard | None]] = {"drought": (0.0, None), "flood": (0.0, None)}
        for hz in hazards:
            value = float(_footprint(xy, hz).mean())
            if value > strongest[hz.kind][0]:
                strongest[hz.kind] = (value, hz)
        kind = max(strongest, key=lambda k: strongest[k][0])
        value, hz = strongest[kind]
        planted = hz is not None and value >= 0.5
        severity = round(value, 3) if planted else 0.0
        rows.append({
            "district_id": d,
            "hazard": kind if planted else "none",
            "severity": severity,
            "severity_class": ("severe" if severity >= 0.9 else "moderate" if severity >= 0.7
                               else "mild") if planted else "",
            "event_start": hz.start.strftime("%Y-%m-%d") if planted else "",
            "event_end": hz.end.strftime("%Y-%m-%d") if planted else "",
            "footprint_drought": round(strongest["drought"][0], 3),
            "footprint_flood": round(strongest["flood"][0], 3),
            "data_gap_start": gap[0].strftime("%Y-%m-%d") if d == gap_district else "",
            "data_gap_end": gap[1].strftime("%Y-%m-%d") if d == gap_district else "",
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------
# Crops: yields and NDVI
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Crop:
    """The latent crop model that yields and NDVI share, one entry per district (in the
    district layer's order) and harvest year."""

    district_id: np.ndarray  # (n,) str
    irrigated: np.ndarray  # (n,) bool
    years: np.ndarray  # (Y,) harvest years; the last is the season's
    level: np.ndarray  # (n,) trend yield at the middle of the record [ku/ha]
    year_noise: np.ndarray  # (Y, n) log-yield noise (region + district)
    loss: np.ndarray  # (Y, n) fraction lost to planted events; last row: the season
    hazard_loss: np.ndarray  # (n,) the season's loss to the planted drought / flood
    pest_loss: np.ndarray  # (n,) the season's loss to pests (not in the rain)
    pest_visible: np.ndarray  # (n,) share of the pest damage the canopy (NDVI) shows, 0..1
    response: np.ndarray  # (n,) district response to the planted hazards (yields and NDVI)
    buffered: np.ndarray  # (n,) bool: a hazard district that lost little
    cause: np.ndarray  # (n,) str: drought, flood, pest or none

    def truth(self) -> pd.DataFrame:
        """``truth_losses.csv``: the season's planted crop losses per district."""
        return pd.DataFrame({
            "district_id": self.district_id,
            "water_regime": np.where(self.irrigated, "irrigated", "rainfed"),
            "cause": self.cause,
            "yield_loss": np.round(self.loss[-1], 3),
            "hazard_loss": np.round(self.hazard_loss, 3),
            "pest_loss": np.round(self.pest_loss, 3),
            "buffered": np.where(self.buffered, "yes", "no"),
            "pest_visible_in_ndvi": np.round(self.pest_visible, 3),
        })


def make_crop(districts: gpd.GeoDataFrame, truth: pd.DataFrame, gap_district: str,
              harvest_year: int, rng: np.random.Generator) -> _Crop:
    """Water regime, yield level, year noise and planted losses per district.

    * Irrigated with probability clip(0.5 + 1.5 × degrees north of the island's spine,
      0.2, 0.8) (a pantura-like irrigated north coast); trend level at the middle of the
      record U(55.5, 64) ku/ha irrigated, U(36.5, 48.5) rainfed.
    * Log-yield noise: region N(0, 0.025) per year + district N(0, 0.035).
    * El Niño harvest years (:data:`EL_NINO_YEARS`): 75 % of rainfed and 45 % of irrigated
      districts lose U(15, 35) %, the rest U(0, 5) %; La Niña years
      (:data:`LA_NINA_YEARS`): 15 % lose U(8, 20) %.
    * The season (last year), from ``truth``'s district-mean footprints f: drought
      0.15 + 0.6 (f − 0.5) for f ≥ 0.5 (15 → 45 %), 0.3 f on the fringe; flood
      0.10 + 0.4 (f − 0.5) (10 → 30 %), 0.2 f on the fringe; both × a district response
      exp(N(0, 0.2)) + N(0, 0.04), then clipped to 15–45 % (drought districts) / 10–30 %
      (flood districts). ``min(2, hazard districts // 4)`` hazard districts, irrigated
      first, are buffered (response 0.1–0.2, loss ≤ 6 %). Up to two hazard-free districts
      (footprints < 0.2, not the data-gap one) lose U(15, 30) % to pests; the canopy shows
      60–80 % of the first one's damage and 0–20 % of the second's.
    """
    n = len(districts)
    ids = districts.district_id.to_numpy()
    t = truth.set_index("district_id").loc[ids]
    pts = districts.geometry.representative_point()
    u = ((pts.x.to_numpy() - _ISLAND_LON[0]) / (_ISLAND_LON[1] - _ISLAND_LON[0])).clip(0, 1)
    spine = -7.0 + 0.18 * np.sin(2 * np.pi * (u + 0.1)) - 0.1 * u  # make_island's centre line
    irrigated = rng.random(n) < np.clip(0.5 + 1.5 * (pts.y.to_numpy() - spine), 0.2, 0.8)
    level = np.where(irrigated, rng.uniform(55.5, 64.0, n), rng.uniform(36.5, 48.5, n))

    years = np.arange(harvest_year - YIELD_HISTORY_YEARS, harvest_year + 1)
    year_noise = rng.normal(0, 0.025, (years.size, 1)) + rng.normal(0, 0.035, (years.size, n))
    loss = np.zeros((years.size, n))
    for k, year in enumerate(years[:-1]):
        if year in EL_NINO_YEARS:
            hit = rng.random(n) < np.where(irrigated, 0.45, 0.75)
            loss[k] = np.where(hit, rng.uniform(0.15, 0.35, n), rng.uniform(0.0, 0.05, n))
        elif year in LA_NINA_YEARS:
            hit = rng.random(n) < 0.15
            loss[k] = np.where(hit, rng.uniform(0.08, 0.20, n), 0.0)

    fd = t.footprint_drought.to_numpy(float)
    ff = t.footprint_flood.to_numpy(float)
    hazard = t.hazard.to_numpy(str)
    drought = np.where(fd >= 0.5, 0.15 + 0.6 * (fd - 0.5), 0.3 * fd)
    flood = np.where(ff >= 0.5, 0.10 + 0.4 * (ff - 0.5), 0.2 * ff)
    response = np.exp(rng.normal(0, 0.2, n))
    planted = np.flatnonzero(hazard != "none")
    order = planted[rng.permutation(planted.size)]
    order = order[np.argsort(~irrigated[order], kind="stable")]  # irrigation buffers first
    buffered = np.zeros(n, bool)
    buffered[order[:min(2, planted.size // 4)]] = True
    response[buffered] = rng.uniform(0.1, 0.2, int(buffered.sum()))
    noise = rng.normal(0, 0.04, n) * np.minimum(1.0, (drought + flood) / 0.1)
    hazard_loss = 1 - (1 - drought * response) * (1 - flood * response) + noise
    lo = np.select([hazard == "drought", hazard == "flood"], [0.15, 0.10], 0.0)
    hi = np.select([hazard == "drought", hazard == "flood"], [0.45, 0.30], 0.6)
    hazard_loss = np.where(buffered, hazard_loss.clip(0.0, 0.06), hazard_loss.clip(lo, hi))

    pest_loss, pest_visible = np.zeros(n), np.zeros(n)
    calm = np.flatnonzero((hazard == "none") & (np.maximum(fd, ff) < 0.2) & (ids != gap_district))
    pests = rng.choice(calm, size=min(2, calm.size), replace=False)
    pest_loss[pests] = rng.uniform(0.15, 0.30, pests.size)
    pest_visible[pests] = rng.uniform([0.6, 0.0][:pests.size], [0.8, 0.2][:pests.size])
    loss[-1] = 1 - (1 - hazard_loss) * (1 - pest_loss)

    fringe = np.where(fd >= ff, "drought", "flood")
    cause = np.where(hazard != "none", hazard,
                     np.where(pest_loss > 0, "pest", np.where(hazard_loss >= 0.05, fringe, "none")))
    return _Crop(ids, irrigated, years, level, year_noise, loss, hazard_loss, pest_loss, pest_visible,
                 response, buffered, cause)


def make_yields(crop: _Crop, rng: np.random.Generator) -> pd.DataFrame:
    """``district_id, year, yield_ku_ha``: level × 1.005^(year − mid-record) × exp(noise)
    × (1 − planted loss) [ku/ha], 0.01 ku/ha; ~1.5 % of the history years (never the
    season's, at least one) blank."""
    mid = crop.years.mean()
    trend = 1.005 ** (crop.years - mid)
    y = np.round(crop.level[None] * trend[:, None] * np.exp(crop.year_noise) * (1 - crop.loss), 2)
    missing = rng.random(y.shape) < 0.015
    missing[-1] = False
    if not missing.any():
        missing[rng.integers(0, y.shape[0] - 1), rng.integers(0, y.shape[1])] = True
    y[missing] = np.nan
    n_years, n = y.shape
    return pd.DataFrame({"district_id": np.repeat(crop.district_id, n_years),
                         "year": np.tile(crop.years, n), "yield_ku_ha": y.T.ravel()})


def mod13_dates(first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """MOD13Q1 composite dates (days of year 1, 17, …, 353 of each year) in [first, last]."""
    dates = [pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d - 1)
             for y in range(first.year, last.year + 1) for d in MOD13_DAYS_OF_YEAR]
    return pd.DatetimeIndex([d for d in dates if first <= d <= last]).as_unit("ns")


def _cell_owner(grid: _Grid, districts: gpd.GeoDataFrame) -> np.ndarray:
    """(lat, lon) index of the district holding each land cell's centre (the nearest one
    for coastal cells centred at sea); −1 over sea."""
    lon2, lat2 = np.meshgrid(grid.lon, grid.lat)
    owner = np.full(grid.shape, -1, dtype=np.int64)
    geoms = districts.geometry.to_numpy()
    for i, geom in enumerate(geoms):
        owner[shapely.contains_xy(geom, lon2, lat2) & (owner < 0)] = i
    rest = grid.land & (owner < 0)
    if rest.any():
        pts = shapely.points(lon2[rest], lat2[rest])
        owner[rest] = np.stack([shapely.distance(g, pts) for g in geoms]).argmin(axis=0)
    owner[~grid.land] = -1
    return owner


def _crop_curve(age: np.ndarray) -> np.ndarray:
    """Green canopy 0..~1 at crop age [days after transplanting]: up through 35 d, ~1 at
    60–75 d, down through 100 d, ~0.2 at harvest (110 d)."""
    return expit((age - 35.0) / 8.0) - expit((age - 100.0) / 8.0)


def _add_crop(ndvi: np.ndarray, day: np.ndarray, transplant: np.ndarray, amplitude: np.ndarray,
              canopy: float | np.ndarray = 1.0) -> None:
    """ndvi += amplitude × :func:`_crop_curve` × canopy, on the composites where the crop is
    within 40 days before / 200 days after transplanting (elsewhere the curve is < 1e-4)."""
    lo, hi = np.searchsorted(day[:, 0, 0], [transplant.min() - 40, transplant.max() + 200])
    if hi <= lo:
        return
    part = amplitude * _crop_curve(day[lo:hi] - transplant)
    ndvi[lo:hi] += part * (canopy[lo:hi] if isinstance(canopy, np.ndarray) else canopy)


def make_ndvi(grid: _Grid, districts: gpd.GeoDataFrame, hazards: list[_Hazard], crop: _Crop,
              times: pd.DatetimeIndex, start: pd.Timestamp,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """16-day NDVI composites [1] and their ``VI_Quality``, shape (time, lat, lon).

    Per cell and wet season w (transplanting around the anniversary of ``start`` in year
    w + 21 days + the eastward lag of up to 14 days + N(0, 6) region + N(0, 4) district
    + a smooth ± 3-day cell shift): NDVI = floor + Σ amplitude × :func:`_crop_curve` over
    MT1, MT2 (+128 ± 5 days) and MT3 (+118 days, irrigated only), evaluated at each
    composite's mid-period. Floor 0.23 ± 0.015 (+0.05 around September); MT1 amplitude
    0.52 irrigated / 0.45 rainfed ± 0.03 × exp(0.6 × the yield's year noise + N(0, 0.03)).
    The season ``start.year``: drought stress S = footprint × district response delays
    transplanting by 25 S days and lowers the amplitude by 45 S %; a flood of footprint
    F cuts the canopy by F × (15 % + 45 % e^(−days since/20)) from its first day; pests cut
    the late canopy by 1.5 × loss × visibility. Noise: white sd 0.02 (Nov–Mar) / 0.04,
    plus smooth sd 0.015; clipped to [0.02, 0.95], rounded to 1e-4. Clouds (module
    docstring) and sea are NaN, with ``VI_Quality`` :data:`QA_CLOUD` / :data:`QA_FILL`.
    """
    ny, nx = grid.shape
    nt = times.size
    n_d = len(districts)
    d = _cell_owner(grid, districts).clip(0)  # sea cells borrow district 0, masked at the end
    irr = crop.irrigated[d]
    lon2, _ = np.meshgrid(grid.lon, grid.lat)
    west = ((_ISLAND_LON[1] - lon2) / (_ISLAND_LON[1] - _ISLAND_LON[0])).clip(0, 1)
    lag = (1 - west) * ONSET_EAST_DELAY_DAYS
    amp = np.where(irr, 0.52, 0.45) + 0.03 * _smooth_noise(rng, (ny, nx), (4, 4))
    cell_shift = 3.0 * _smooth_noise(rng, (ny, nx), (3, 3))
    floor = 0.23 + 0.015 * _smooth_noise(rng, (ny, nx), (3, 3))

    epoch = pd.Timestamp("1970-01-01")
    mid = times + pd.Timedelta(days=8)
    day = ((mid - epoch) / pd.Timedelta(days=1)).to_numpy(float)[:, None, None]
    dry = np.cos(2 * np.pi * (mid.day_of_year.to_numpy(float) - 245) / 365.25).clip(0) ** 2
    ndvi = floor[None] + 0.05 * dry[:, None, None]

    season = start.year
    years = list(crop.years)
    for w in range(times[0].year - 1, min(season, times[-1].year) + 1):
        anchor = (start + pd.DateOffset(years=w - season) - epoch).days
        region_shift, d_shift = rng.normal(0, 6), rng.normal(0, 4, n_d)
        amp_noise, mt2_noise, mt2_shift = rng.normal(0, 0.03, n_d), rng.normal(0, 0.06, n_d), rng.normal(0, 5, n_d)
        k = years.index(w + 1) if w + 1 in years else None
        year_noise = crop.year_noise[k] if k is not None else rng.normal(0, 0.043, n_d)
        el_nino = (crop.loss[k] if k is not None and w + 1 in EL_NINO_YEARS and w != season
                   else np.zeros(n_d))[d]
        t1 = anchor + ONSET_BASE_DAYS + lag + region_shift + d_shift[d] + cell_shift
        a1 = amp * np.exp(0.6 * year_noise[d] + amp_noise[d])
        a2 = a1 * np.where(irr, 0.72, 0.45) * np.exp(mt2_noise[d]) * (1 - 1.2 * el_nino).clip(0.2)
        a3 = np.where(irr, 0.35 * a1 * (1 - 1.5 * el_nino).clip(0.1), 0.0)
        canopy: float | np.ndarray = 1.0
        if w == season:  # a late MT1 delays MT2 and MT3 too
            t1, a1, canopy = _season_damage(grid, hazards, crop, d, t1, a1, day, epoch)
        t2 = t1 + 128 + mt2_shift[d]
        _add_crop(ndvi, day, t1, a1, canopy)
        _add_crop(ndvi, day, t2, a2)
        _add_crop(ndvi, day, t2 + 118, a3)

    month = mid.month.to_numpy()
    white = np.where(np.isin(month, (11, 12, 1, 2, 3)), 0.02, 0.04)[:, None, None]
    ndvi += white * rng.standard_normal((nt, ny, nx)) + 0.015 * _smooth_noise(rng, (nt, ny, nx), (0, 2, 2))
    ndvi = np.round(ndvi.clip(0.02, 0.95), 4).astype(np.float32)

    cloudy = _clouds(grid, times, rng)
    quality = np.where(cloudy, QA_CLOUD, QA_GOOD).astype(np.uint16)
    ndvi[cloudy] = np.nan
    ndvi[:, ~grid.land] = np.nan
    quality[:, ~grid.land] = QA_FILL
    return ndvi, quality


def _season_damage(grid: _Grid, hazards: list[_Hazard], crop: _Crop, d: np.ndarray, t1: np.ndarray,
                   a1: np.ndarray, day: np.ndarray, epoch: pd.Timestamp) -> tuple[np.ndarray, ...]:
    """The planted season's MT1 transplanting day, amplitude and canopy factor (time, lat, lon)."""
    response = crop.response[d]
    stress = np.zeros(grid.shape)
    for hz in hazards:
        if hz.kind == "drought":
            stress = np.maximum(stress, _footprint(grid, hz))
    stress = (stress * response).clip(0, 1)
    t1 = t1 + 25 * stress
    a1 = a1 * (1 - 0.45 * stress)
    canopy = np.ones((day.shape[0], *grid.shape))
    for hz in hazards:
        if hz.kind == "flood":
            since = day - (hz.start - epoch).days
            cut = np.where(since >= 0, 0.15 + 0.45 * np.exp(-since.clip(0) / 20), 0.0)
            canopy *= 1 - (_footprint(grid, hz) * response).clip(0, 1)[None] * cut
    pest = 1.5 * (crop.pest_loss * crop.pest_visible)[d]
    canopy *= 1 - pest[None] * expit((day - t1[None] - 55) / 6)
    return t1, a1, canopy


def _clouds(grid: _Grid, times: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
    """(time, lat, lon) bool: clustered clouds on a share of land pixels per composite —
    U(10, 30) % in Dec–Feb, U(3, 10) % in Nov and Mar, U(0, 3) % otherwise — the highest
    values of a smooth field (σ = 3 cells)."""
    month = times.month.to_numpy()
    lo = np.select([np.isin(month, (12, 1, 2)), np.isin(month, (11, 3))], [0.10, 0.03], 0.0)
    hi = np.select([np.isin(month, (12, 1, 2)), np.isin(month, (11, 3))], [0.30, 0.10], 0.03)
    share = rng.uniform(lo, hi)
    field = _smooth_noise(rng, (times.size, *grid.shape), (0, 3, 3))[:, grid.land]
    rank = field.argsort(axis=1).argsort(axis=1)  # 0 = clearest
    n_land = int(grid.land.sum())
    cloudy_land = rank >= n_land - np.round(share * n_land)[:, None]
    cloudy = np.zeros((times.size, *grid.shape), bool)
    cloudy[:, grid.land] = cloudy_land
    return cloudy


def ndvi_dataset(ndvi: np.ndarray, quality: np.ndarray, grid: _Grid, times: pd.DatetimeIndex,
                 seed: int) -> xr.Dataset:
    """``NDVI`` [1] and ``VI_Quality`` (time, lat, lon) with an EPSG:4326 ``spatial_ref``."""
    dims = ("time", "lat", "lon")
    coords = {
        "time": times,
        "lat": ("lat", grid.lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", grid.lon, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    ds = xr.Dataset(
        {
            "NDVI": (dims, ndvi, {
                "units": "1", "long_name": "synthetic 16-day NDVI composite (MOD13Q1-like, panen demo region)",
                "comment": "NaN = cloudy composite or sea: missing, never 0"}),
            "VI_Quality": (dims, quality, {
                "long_name": "VI quality (MOD13Q1 bit field)",
                "comment": "MODLAND QA (bits 0-1) 00 = good, 11 = cloudy / not produced; other bits 0; "
                           "65535 (fill) over sea"}),
        },
        coords=coords,
    )
    ds.attrs = {"title": "panen synthetic demo region: 16-day NDVI composites", "Conventions": "CF-1.8",
                "source": "panen.datasets.synthetic.generate_demo_region", "seed": int(seed),
                "time_convention": "first day of the 16-day compositing period (MOD13Q1 days of year "
                                   "1, 17, ..., 353)"}
    return ds.rio.write_crs("EPSG:4326")


# ---------------------------------------------------------------------------------------
# Writers (temp file, then rename; nothing depends on the wall clock)
# ---------------------------------------------------------------------------------------


def _write_gpkg(gdf: gpd.GeoDataFrame, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.unlink(missing_ok=True)
    with fixed_gpkg_date():
        gdf.to_file(tmp, driver="GPKG", layer="districts", engine="pyogrio")
    os.replace(tmp, path)


def _write_zarr(ds: xr.Dataset, path: Path, time_chunk: int = 32,
                fill: dict[str, int] | None = None) -> None:
    """Every data variable in (``time_chunk``, lat, lon) chunks, in its own dtype; ``fill``:
    integer ``_FillValue`` per variable (float variables get xarray's NaN)."""
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    ny, nx = ds.sizes["lat"], ds.sizes["lon"]
    encoding: dict[str, dict] = {
        str(name): {"chunks": (time_chunk, ny, nx), "dtype": str(var.dtype)}
        for name, var in ds.data_vars.items()
    }
    for name, value in (fill or {}).items():
        encoding[name]["_FillValue"] = value
    encoding["time"] = {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int32"}
    ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True, encoding=encoding)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def _write_csv(df: pd.DataFrame, path: Path, float_format: str) -> None:
    """CSV with ``float_format`` for floats and blank for NaN (as ``to_csv(float_format=)``,
    but formatting each distinct value once: the register repeats few plot sizes)."""
    tmp = path.with_name(f".{path.name}.tmp")
    out = df.copy()
    for col in df.columns:
        if pd.api.types.is_float_dtype(df[col].dtype):
            uniq, inverse = np.unique(df[col].to_numpy(), return_inverse=True)
            text = np.array([float_format % v if np.isfinite(v) else "" for v in uniq], dtype=object)
            out[col] = text[inverse.ravel()]
    out.to_csv(tmp, index=False, lineterminator="\n")
    os.replace(tmp, path)
