"""Exact area-weighted zonal means (panen.engine.maths.zonal): hand-computed cases, laziness,
CRS handling, and the real CHIRPS Java cube against exactextract."""

from __future__ import annotations

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import xarray as xr
from conftest import shared_file

from panen.engine.errors import InputError
from panen.engine.maths.zonal import ZonalWeights, build_weights, cell_areas, zonal_mean

UTM = "EPSG:32749"  # UTM 49S (Java), a projected CRS in metres


# --- factories ----------------------------------------------------------------------------


@pytest.fixture
def grid():
    """``grid(values, cell=1000, x0=0, y0=0, crs=UTM, descending=True)``: a (time, y, x)
    DataArray whose cell (row 0, col 0) is the north-west cell when y is descending.

    ``values`` is ``(t, ny, nx)`` listed top row first; the grid's lower-left corner is at
    (x0, y0) and cells are ``cell`` wide [CRS units].
    """

    def make(values, *, cell=1000.0, x0=0.0, y0=0.0, crs=UTM, descending=True, units="mm",
             dims=("time", "y", "x")):
        v = np.asarray(values, dtype=float)
        if v.ndim == 2:
            v = v[None]
        nt, ny, nx = v.shape
        x = x0 + cell * (np.arange(nx) + 0.5)
        y = y0 + cell * (np.arange(ny) + 0.5)[::-1]  # top row first
        if not descending:
            y = y[::-1]
            v = v[:, ::-1, :]
        a = xr.DataArray(
            v.copy(), dims=dims,
            coords={dims[0]: np.arange(nt), dims[1]: y, dims[2]: x},
            attrs={"units": units} if units else {},
        )
        return a.rio.write_crs(crs) if crs else a

    return make


@pytest.fixture
def districts():
    """``districts({"a": geom, ...}, crs=UTM)``: a GeoDataFrame with ``district_id``."""

    def make(geoms, *, crs=UTM):
        return gpd.GeoDataFrame(
            {"district_id": list(geoms)}, geometry=list(geoms.values()), crs=crs
        )

    return make


def box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def coverage_of(w: ZonalWeights, d: int) -> dict[int, float]:
    sl = slice(w.indptr[d], w.indptr[d + 1])
    return dict(zip(w.indices[sl].tolist(), w.coverage[sl].tolist()))


# --- hand-computed cases ------------------------------------------------------------------

# a 3 × 4 grid of 1 km cells, top row first; the bottom row holds 10, 20, 40, 80
VALUES = [[1.0, 2.0, 3.0, 4.0],
          [5.0, 6.0, 7.0, 8.0],
          [10.0, 20.0, 40.0, 80.0]]


def test_two_cells_and_a_half_give_the_hand_weighted_mean(grid, districts):
    g = grid(VALUES)
    w = build_weights(districts({"a": box(0, 0, 2500, 1000)}), g)
    assert coverage_of(w, 0) == {8: 1.0, 9: 1.0, 10: 0.5}  # bottom row is row 2 → 8, 9, 10
    np.testing.assert_allclose(w.weights, [1e6, 1e6, 5e5])  # coverage × 1 km² [m²]
    out = zonal_mean(g, w)
    # (10 + 20 + 0.5 · 40) / 2.5 = 20
    assert out["mean"].values.tolist() == [[20.0]]
    assert out["valid_fraction"].values.tolist() == [[1.0]]
    assert out["mean"].dims == ("time", "district")
    assert out["mean"].attrs["units"] == "mm"
    assert out["district"].values.tolist() == ["a"]


def test_district_smaller_than_a_cell_gets_its_partial_cell(grid, districts):
    g = grid(VALUES)
    inside_one = box(1200, 1200, 1500, 1400)  # 0.3 km × 0.2 km inside the cell holding 6
    straddling = box(900, 1200, 1100, 1400)  # 0.1 km × 0.2 km of the cells holding 5 and 6
    w = build_weights(districts({"one": inside_one, "two": straddling}), g)
    assert coverage_of(w, 0) == pytest.approx({5: 0.06})
    assert coverage_of(w, 1) == pytest.approx({4: 0.02, 5: 0.02})
    np.testing.assert_allclose(w.cell_count, [0.06, 0.04])
    np.testing.assert_allclose(zonal_mean(g, w)["mean"].values, [[6.0, 5.5]])


def test_hole_is_excluded_from_coverage_and_mean(grid, districts):
    values = [[1.0, 1.0, 1.0, 0.0],
              [1.0, 1000.0, 3.0, 0.0],
              [1.0, 1.0, 1.0, 0.0]]
    g = grid(values)
    ring = shapely.Polygon(
        [(0, 0), (3000, 0), (3000, 3000), (0, 3000)],
        holes=[[(1000, 1000), (2000, 1000), (2000, 2000), (1000, 2000)]],  # the 1000 cell
    )
    half_hole = shapely.Polygon(
        [(0, 0), (3000, 0), (3000, 3000), (0, 3000)],
        holes=[[(1000, 1000), (1500, 1000), (1500, 2000), (1000, 2000)]],  # half of it
    )
    w = build_weights(districts({"ring": ring, "half": half_hole}), g)
    assert 5 not in coverage_of(w, 0)
    assert coverage_of(w, 1)[5] == pytest.approx(0.5)
    mean = zonal_mean(g, w)["mean"].values[0]
    # ring: seven cells of 1 and one of 3 → 10 / 8; half: (10 + 0.5 · 1000) / 8.5
    np.testing.assert_allclose(mean, [10 / 8, 510 / 8.5])


def test_multipolygon_parts_are_added(grid, districts):
    g = grid(VALUES)
    two_islands = shapely.MultiPolygon([box(0, 0, 1000, 1000), box(3000, 2000, 4000, 3000)])
    w = build_weights(districts({"m": two_islands}), g)
    assert coverage_of(w, 0) == {3: 1.0, 8: 1.0}
    assert zonal_mean(g, w)["mean"].item() == pytest.approx((10 + 4) / 2)


def test_nan_cell_is_skipped_and_lowers_valid_fraction(grid, districts):
    values = np.array(VALUES)
    values[2, 1] = np.nan  # the 20 cell
    g = grid(values)
    w = build_weights(districts({"a": box(0, 0, 2500, 1000)}), g)
    out = zonal_mean(g, w)
    # (10 + 0.5 · 40) / 1.5 = 20, never (10 + 0 + 20) / 2.5 = 12
    assert out["mean"].item() == pytest.approx(20.0)
    assert out["valid_fraction"].item() == pytest.approx(1.5 / 2.5)


def test_all_nan_step_gives_nan_mean_and_zero_valid_fraction(grid, districts):
    values = np.stack([np.array(VALUES), np.full((3, 4), np.nan)])
    g = grid(values)
    w = build_weights(districts({"a": box(0, 0, 2500, 1000)}), g)
    out = zonal_mean(g, w)
    assert out["mean"].values[0, 0] == pytest.approx(20.0)
    assert np.isnan(out["mean"].values[1, 0])
    assert out["valid_fraction"].values.tolist() == [[1.0], [0.0]]


def test_district_outside_the_grid_has_no_cells_nan_mean_and_zero_valid(grid, districts):
    g = grid(VALUES)
    w = build_weights(districts({
        "out": box(10_000, 10_000, 12_000, 12_000),
        "half_out": box(-1000, 0, 1000, 1000),  # only the 10 cell lies on the grid
    }), g)
    assert np.diff(w.indptr).tolist() == [0, 1]
    assert w.total_weight.tolist() == [0.0, 1e6]
    out = zonal_mean(g, w)
    assert np.isnan(out["mean"].values[0, 0])
    assert out["valid_fraction"].values[0, 0] == 0.0
    assert out["mean"].values[0, 1] == 10.0


def test_missing_or_empty_geometry_gets_no_cells(grid, districts):
    g = grid(VALUES)
    w = build_weights(districts({"none": None, "empty": shapely.Polygon(),
                                 "a": box(0, 0, 2500, 1000)}), g)
    assert np.diff(w.indptr).tolist() == [0, 0, 3]
    out = zonal_mean(g, w)
    assert np.isnan(out["mean"].values[0, :2]).all()
    assert out["valid_fraction"].values[0].tolist() == [0.0, 0.0, 1.0]


def test_ascending_and_descending_y_give_the_same_answer(grid, districts):
    rng = np.random.default_rng(1)
    values = rng.gamma(2.0, 5.0, size=(3, 6, 7))
    shapes = districts({"tri": shapely.Polygon([(300, 200), (6500, 900), (2500, 5700)]),
                        "sq": box(1200, 3100, 4400, 5900)})
    down = grid(values, descending=True)
    up = grid(values, descending=False)
    assert up.y.values[0] < up.y.values[-1]
    out_down = zonal_mean(down, build_weights(shapes, down))
    out_up = zonal_mean(up, build_weights(shapes, up))
    np.testing.assert_allclose(out_up["mean"], out_down["mean"], rtol=1e-13)


def test_lat_lon_dim_names_are_accepted(grid, districts):
    g = grid(VALUES, cell=0.05, x0=106.0, y0=-7.0, crs="EPSG:4326",
             dims=("time", "latitude", "longitude"))
    w = build_weights(districts({"a": box(106.0, -7.0, 106.125, -6.95)}, crs="EPSG:4326"), g)
    assert coverage_of(w, 0) == pytest.approx({8: 1.0, 9: 1.0, 10: 0.5})
    assert zonal_mean(g, w)["mean"].item() == pytest.approx(20.0)  # one row: equal areas


def test_two_dimensional_data_gives_one_value_per_district(grid, districts):
    g = grid(VALUES).isel(time=0)
    w = build_weights(districts({"a": box(0, 0, 2500, 1000)}), g)
    out = zonal_mean(g, w)
    assert out["mean"].dims == ("district",)
    assert out["mean"].values.tolist() == [20.0]


# --- geographic cell areas ------------------------------------------------------------------


def test_cell_areas_sum_to_the_wgs84_surface():
    areas = cell_areas(np.arange(-89.5, 90), np.arange(-179.5, 180), "EPSG:4326")
    assert areas.sum() * 360 == pytest.approx(510_065_621.724e6, rel=1e-9)  # [m²]


def test_cell_area_matches_the_geodesic_area_of_a_small_cell():
    from pyproj import Geod

    lat = -7.025
    area = cell_areas(np.array([lat + 0.05, lat]), np.array([110.0, 110.05]), "EPSG:4326")[1]
    lon0, lon1, s, n = 110.0 - 0.025, 110.0 + 0.025, lat - 0.025, lat + 0.025
    geodesic, _ = Geod(ellps="WGS84").polygon_area_perimeter(
        [lon0, lon1, lon1, lon0], [s, s, n, n])
    # a geodesic edge bows off the parallel by ~1e-6 of 5 km; the areas agree to 1e-7
    assert area == pytest.approx(abs(geodesic), rel=1e-7)


def test_geographic_weights_carry_the_area_of_each_row(grid, districts):
    g = grid(np.ones((1, 3, 2)), cell=10.0, x0=0.0, y0=40.0, crs="EPSG:4326")  # 40–70 °N
    w = build_weights(districts({"a": box(0, 40, 20, 70)}, crs="EPSG:4326"), g)
    by_row = w.weights.reshape(3, 2)[:, 0]
    np.testing.assert_allclose(by_row, w.cell_area)
    assert by_row[0] < by_row[1] < by_row[2]  # the northern row (60–70 °N) is smallest
    # against the cos(latitude) approximation: close, not equal
    np.testing.assert_allclose(by_row[0] / by_row[2], np.cos(np.radians(65)) /
                               np.cos(np.radians(45)), rtol=5e-3)


# --- dask ---------------------------------------------------------------------------------


@pytest.fixture
def random_case(grid, districts):
    rng = np.random.default_rng(7)
    values = rng.gamma(0.7, 10.0, size=(10, 12, 15)).astype(np.float32)
    values[rng.random(values.shape) < 0.1] = np.nan
    values[4] = np.nan  # one all-missing step
    g = grid(values)
    shapes = districts({
        "a": shapely.Polygon([(300, 200), (14_500, 900), (7000, 11_700)]),
        "b": box(1200, 3100, 4400, 5900).difference(box(2000, 4000, 3000, 5000)),
        "c": shapely.Point(9000, 9000).buffer(2500),
        "d": box(20_000, 0, 21_000, 1000),  # off the grid
    })
    return g, build_weights(shapes, g)


@pytest.mark.parametrize("chunks", [
    {"time": 3},
    {"time": 4, "y": 5, "x": 6},  # chunked in space too: partial sums per block
    {"time": 1, "y": 1, "x": 15},
])
def test_dask_gives_the_numpy_numbers(random_case, chunks):
    g, w = random_case
    eager = zonal_mean(g, w)
    lazy = zonal_mean(g.chunk(chunks), w)
    assert isinstance(lazy["mean"].data, da.Array)
    got = lazy.compute()
    np.testing.assert_allclose(got["mean"], eager["mean"], rtol=1e-12)
    np.testing.assert_allclose(got["valid_fraction"], eager["valid_fraction"], rtol=1e-12)
    assert got["mean"].dtype == np.float64


def test_float32_input_is_accumulated_in_float64(random_case):
    g, w = random_case
    out = zonal_mean(g, w)["mean"].values
    x = g.values.astype(np.float64).reshape(g.sizes["time"], -1)
    expected = np.full((x.shape[0], w.n_districts), np.nan)
    for d in range(w.n_districts):
        sl = slice(w.indptr[d], w.indptr[d + 1])
        v = x[:, w.indices[sl]]
        ok = ~np.isnan(v)
        num = np.where(ok, v, 0.0) @ w.weights[sl]
        den = ok @ w.weights[sl]
        with np.errstate(invalid="ignore"):
            expected[:, d] = np.where(den > 0, num / den, np.nan)
    np.testing.assert_allclose(out, expected, rtol=1e-13)
    assert np.isnan(out[4]).all() and np.isnan(out[:, 3]).all()


@pytest.mark.parametrize("chunks", [None, {"time": 3}, {"time": 4, "y": 5, "x": 6}, {"time": 1, "y": 1, "x": 15}])
def test_valid_fraction_is_the_valid_weight_share_and_exactly_0_or_1_at_the_ends(random_case, chunks):
    # the kernel sums the weight of missing cells and takes it off the total; the result
    # must still be the independent Σ w(valid) / Σ w, and exactly 0 (mean NaN, never 0)
    # when nothing is valid and exactly 1 when nothing is missing, however it is chunked
    g, w = random_case
    g = g.copy()
    g.values[7, :, :] = 1.0  # one step with no missing cell at all
    out = zonal_mean(g if chunks is None else g.chunk(chunks), w).compute()
    x = g.values.reshape(g.sizes["time"], -1)
    vf = out["valid_fraction"].values
    for d in range(w.n_districts):
        sl = slice(w.indptr[d], w.indptr[d + 1])
        if sl.stop == sl.start:
            assert (vf[:, d] == 0.0).all()
            continue
        ok = ~np.isnan(x[:, w.indices[sl]])
        np.testing.assert_allclose(vf[:, d], ok @ w.weights[sl] / w.weights[sl].sum(), rtol=1e-12, atol=0)
        assert vf[4, d] == 0.0 and np.isnan(out["mean"].values[4, d])  # the all-missing step
        assert vf[7, d] == 1.0 and out["mean"].values[7, d] == pytest.approx(1.0, rel=1e-15)


def test_result_is_lazy_and_computes_nothing_before_asked(grid, districts):
    g = grid(VALUES)
    calls = []

    def poisoned(block):
        calls.append(1)
        raise RuntimeError("computed too early")

    lazy = g.copy(data=da.from_array(g.values, chunks=(1, 3, 4)).map_blocks(
        poisoned, dtype=float, meta=np.empty((0, 0, 0))))
    w = build_weights(districts({"a": box(0, 0, 2500, 1000)}), lazy)  # reads coords only
    out = zonal_mean(lazy, w)
    assert isinstance(out["mean"].data, da.Array)
    assert calls == []
    with pytest.raises(RuntimeError, match="computed too early"):
        out.compute(scheduler="synchronous")


def test_lazy_result_matches_on_a_distributed_cluster(random_case):
    distributed = pytest.importorskip("distributed")
    g, w = random_case
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        got = zonal_mean(g.chunk(time=3, x=8), w).compute()
    np.testing.assert_allclose(got["mean"], zonal_mean(g, w)["mean"], rtol=1e-12)


# --- grids and CRS ------------------------------------------------------------------------


def test_districts_in_another_crs_are_reprojected_to_the_grid(grid, districts):
    g = grid(np.arange(24.0).reshape(1, 4, 6) ** 1.5, cell=0.05, x0=110.0, y0=-7.2,
             crs="EPSG:4326")
    shapes = districts({"p": shapely.Polygon([(110.01, -7.19), (110.29, -7.13),
                                              (110.17, -7.01), (110.03, -7.05)]),
                        "q": box(110.12, -7.18, 110.21, -7.09)}, crs="EPSG:4326")
    same = zonal_mean(g, build_weights(shapes, g))
    for crs in ("EPSG:3857", UTM):
        moved = shapes.to_crs(crs)
        got = zonal_mean(g, build_weights(moved, g))
        # vertices round-trip 4326 → crs → 4326 to ~1e-9°, and straight edges between the
        # same vertices are the same lines, so the means agree far inside 1e-9
        np.testing.assert_allclose(got["mean"], same["mean"], rtol=1e-9)
        assert moved.crs == crs  # the caller's frame keeps its CRS


def test_grid_without_crs_is_refused(grid, districts):
    g = grid(VALUES, crs=None)
    with pytest.raises(InputError, match="grid has no CRS"):
        build_weights(districts({"a": box(0, 0, 1, 1)}), g)


def test_crs_in_attrs_is_accepted(grid, districts):
    g = grid(VALUES, crs=None)
    g.attrs["crs"] = UTM
    w = build_weights(districts({"a": box(0, 0, 2500, 1000)}), g)
    assert zonal_mean(g, w)["mean"].item() == 20.0


def test_districts_without_crs_are_refused(grid):
    frame = gpd.GeoDataFrame({"district_id": ["a"]}, geometry=[box(0, 0, 1, 1)])
    with pytest.raises(InputError, match="districts have no CRS"):
        build_weights(frame, grid(VALUES))


def test_missing_id_column_and_duplicate_ids_are_refused(grid, districts):
    g = grid(VALUES)
    with pytest.raises(InputError, match="no id column 'kode'"):
        build_weights(districts({"a": box(0, 0, 1, 1)}), g, id_column="kode")
    dup = gpd.GeoDataFrame({"district_id": ["a", "a"]},
                           geometry=[box(0, 0, 1, 1), box(1, 1, 2, 2)], crs=UTM)
    with pytest.raises(InputError, match="duplicate district ids"):
        build_weights(dup, g)


@pytest.mark.parametrize("change", ["shifted", "shape", "flipped", "crs"])
def test_data_on_another_grid_is_refused(grid, districts, change):
    g = grid(VALUES)
    w = build_weights(districts({"a": box(0, 0, 2500, 1000)}), g)
    other = {
        "shifted": lambda: grid(VALUES, x0=500.0),
        "shape": lambda: grid(np.ones((1, 3, 5))),
        "flipped": lambda: grid(VALUES, descending=False),
        "crs": lambda: grid(VALUES, crs="EPSG:32750"),
    }[change]()
    with pytest.raises(InputError, match="grid|CRS"):
        zonal_mean(other, w)


def test_inputs_are_not_modified(grid, districts):
    g = grid(VALUES)
    shapes = districts({"a": box(0, 0, 2500, 1000), "b": box(-50, -50, 700, 700)})
    before_geoms = shapes.geometry.copy()
    before_values = g.values.copy()
    w = build_weights(shapes.to_crs("EPSG:3857").to_crs(UTM), g)
    build_weights(shapes, g)
    zonal_mean(g, w)
    assert shapes.geometry.geom_equals_exact(before_geoms, tolerance=0).all()
    assert not any(shapely.is_prepared(shapes.geometry.values))
    np.testing.assert_array_equal(g.values, before_values)
    with pytest.raises(ValueError):
        w.weights[0] = 0.0  # the weights are read-only


# --- real data: CHIRPS Java monthly × 119 Java districts -----------------------------------


@pytest.fixture(scope="module")
def java():
    cube = shared_file("rainfall", "chirps_java_monthly_1981_2020.nc")
    shapes = shared_file("boundaries", "idn_districts_java.geojson")
    with xr.open_dataset(cube) as ds:
        precip = ds["precip"].load()
        crs = ds.attrs["crs"]
    precip = precip.rio.write_crs(crs)  # the file keeps its CRS in the dataset attrs
    frame = gpd.read_file(shapes)
    return precip, frame, build_weights(frame, precip, id_column="kode_bps_style")


@pytest.mark.realdata
def test_java_means_match_exactextract(java):
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    precip, frame, w = java
    first = precip.isel(time=slice(0, 24))
    ours = zonal_mean(first.chunk(time=8), w)["mean"].values
    lat, lon = precip["latitude"].values, precip["longitude"].values
    extent = (lon[0] - 0.025, lat[-1] - 0.025, lon[-1] + 0.025, lat[0] + 0.025)
    wkt = precip.rio.crs.to_wkt()
    bands = [NumPyRasterSource(first.values[t], *extent, name=f"m{t}", srs_wkt=wkt)
             for t in range(24)]
    area = NumPyRasterSource(np.repeat(w.cell_area[:, None], lon.size, axis=1), *extent,
                             name="area", srs_wkt=wkt)
    theirs = exact_extract(bands, frame, ["weighted_mean"], weights=area,
                           output="pandas").to_numpy().T
    assert theirs.shape == ours.shape == (24, 119)
    # Same cells, same area weights; exactextract holds coverage fractions in float32
    # (agreement 6e-8 per cell, 2e-8 on the means), hence 1e-6 rather than 1e-12.
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


@pytest.mark.realdata
def test_java_coverage_fractions_match_exactextract(java):
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    precip, frame, w = java
    lat, lon = precip["latitude"].values, precip["longitude"].values
    extent = (lon[0] - 0.025, lat[-1] - 0.025, lon[-1] + 0.025, lat[0] + 0.025)
    # a NaN-free raster: exactextract leaves NaN (sea) cells out of its coverage lists
    ones = NumPyRasterSource(np.ones((lat.size, lon.size)), *extent)
    cells = exact_extract(ones, frame, ["cell_id", "coverage"], output="pandas")
    for d in range(len(frame)):
        order = np.argsort(cells["cell_id"].iloc[d])
        sl = slice(w.indptr[d], w.indptr[d + 1])
        np.testing.assert_array_equal(np.asarray(cells["cell_id"].iloc[d])[order],
                                      w.indices[sl])
        np.testing.assert_allclose(np.asarray(cells["coverage"].iloc[d])[order],
                                   w.coverage[sl], atol=1e-6)


@pytest.mark.realdata
def test_indramayu_matches_the_data_readme(java):
    precip, _, w = java
    d = int(np.flatnonzero(w.district_ids == "3212")[0])
    assert 66 <= w.cell_count[d] <= 69  # "about 67 CHIRPS cells"
    decade = precip.sel(time=slice("1981", "1990"))
    monthly = zonal_mean(decade, w)["mean"].sel(district="3212")
    annual = monthly.groupby("time.year").sum()
    assert 1500 <= annual.min() <= 1560 and 2280 <= annual.max() <= 2340  # 1,530–2,310 mm
    assert int(annual.idxmin()) == 1982  # El Niño
    assert zonal_mean(decade, w)["valid_fraction"].sel(district="3212").min() > 0.8


@pytest.mark.realdata
def test_java_districts_in_a_projected_crs_give_the_same_means(java):
    precip, frame, w = java
    first = precip.isel(time=slice(0, 6))
    moved = build_weights(frame.to_crs(UTM), precip, id_column="kode_bps_style")
    np.testing.assert_array_equal(moved.indices, w.indices)
    np.testing.assert_allclose(zonal_mean(first, moved)["mean"], zonal_mean(first, w)["mean"],
                               rtol=1e-9)
