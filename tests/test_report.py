"""report.html and districts.gpkg, built from a finished run's outputs only."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.report import html as rep
from panen.engine.cli import main
from panen.engine.config import load_config
from panen.engine.report.html import (district_rates, phase_thresholds, province_rollup, read_outputs, write_gpkg,
                                 write_report, write_reports)
from panen.engine.pipeline.run import run_batch

from conftest import shared_file

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")


# --------------------------------------------------------------------------- fixtures
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """A small demo run (8 districts, 3 index products + AUTP) with three bad policy rows, and its
    report built by ``panen report OUT_DIR`` while anything that could recompute is booby-trapped."""
    d = tmp_path_factory.mktemp("report")
    generate_demo_region(d / "data", n_districts=8, n_farmers=2000)
    pol = pd.read_csv(d / "data" / "policies.csv", dtype=str, keep_default_na=False)
    bad = pol.head(3).copy()
    bad["policy_id"] = ["BAD-1", "BAD-2", "BAD-3"]
    bad.iloc[0, bad.columns.get_loc("district_id")] = "9999"
    bad.iloc[1, bad.columns.get_loc("district_id")] = "9998"
    bad.iloc[2, bad.columns.get_loc("area_ha")] = "-1"
    pd.concat([pol, bad]).to_csv(d / "data" / "policies.csv", index=False)
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for k in cfg["inputs"]:
        cfg["inputs"][k]["path"] = cfg["inputs"][k]["path"].replace("../demo_data/", "data/")
    cfg["output"]["dir"] = "out"
    cfg["adjuster"]["wording"] = str(REPO / "configs" / "autp.yaml")
    (d / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = run_batch(load_config(d / "run.yaml"), d / "out").out_dir
    before = {f.name: _sha(f) for f in out.iterdir()}

    def boom(*a, **k):
        raise AssertionError("the report must not recompute")

    import panen.engine.settlement.ledger as ledger_mod
    import panen.engine.pipeline.run as run_mod
    import panen.engine.maths.zonal as zonal_mod

    with pytest.MonkeyPatch.context() as mp:
        for mod, name in ((zonal_mod, "zonal_mean"), (zonal_mod, "build_weights"), (ledger_mod, "build_ledger"),
                          (run_mod, "run_batch")):
            mp.setattr(mod, name, boom)
        rc = main(["report", str(out)])
    after = {f: _sha(out / f) for f in before}
    return {"out": out, "rc": rc, "before": before, "after": after}


@pytest.fixture(scope="module")
def run_dir(built) -> Path:
    assert built["rc"] == 0
    return built["out"]


@pytest.fixture(scope="module")
def page(run_dir) -> str:
    return (run_dir / "report.html").read_text()


class _Collect(HTMLParser):
    """Every element's attributes, by tag."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def parse(html_text: str) -> _Collect:
    p = _Collect()
    p.feed(html_text)
    return p


def data_values(html_text: str) -> dict[str, str]:
    return {a["data-key"]: a["data-value"] for _, a in parse(html_text).tags if "data-key" in a}


def ledger(run_dir: Path) -> pd.DataFrame:
    led = pd.read_parquet(run_dir / "payouts.parquet")
    return led.astype({"product_id": str, "district_id": str, "status": str})


def fake_outputs(folder: Path, districts: Path, id_column: str, *, products=("rain",), per_district: int = 3,
                 seed: int = 1) -> Path:
    """A minimal output folder with the files a run writes, for layouts a real run would take long to make."""
    rng = np.random.default_rng(seed)
    gdf = gpd.read_file(districts)
    ids = gdf[id_column].astype(str).to_numpy()
    rows = []
    for pid in products:
        for did in ids:
            rate = float(rng.choice([0.0, 0.0, rng.uniform(0, 1)]))
            for k in range(per_district):
                si = int(rng.integers(1, 20)) * 600_000
                gross = int(si * rate + 0.5)
                rows.append({"policy_id": f"P-{did}-{k}-{pid}", "farmer_id": f"F-{did}-{k}", "district_id": did,
                             "product_id": pid, "sum_insured": si, "payout_rate": rate, "gross_payout": gross,
                             "deductible": 0, "net_payout": gross, "area_ha": si / 6e6, "cohort": "2023-11-01",
                             "status": "paid" if gross else "no_payout", "group_id": f"G-{did}"})
    pay = pd.DataFrame(rows)
    folder.mkdir(parents=True)
    pay.to_parquet(folder / "payouts.parquet", index=False)
    di = pay.drop_duplicates(["product_id", "district_id"])[["district_id", "product_id", "cohort", "payout_rate"]]
    di = di.assign(phase="establishment", index_value=220 - di["payout_rate"] * 140, valid_fraction=1.0, flagged=False)
    di.to_csv(folder / "district_index.csv", index=False)
    g = pay.groupby(["product_id", "district_id"]).agg(
        policies=("policy_id", "size"), area_ha=("area_ha", "sum"), sum_insured=("sum_insured", "sum"),
        gross_payout=("gross_payout", "sum"), deductible=("deductible", "sum"), net_payout=("net_payout", "sum")
    ).reset_index().assign(level="district", withheld=0)
    g.to_csv(folder / "summary.csv", index=False)
    pd.DataFrame(columns=["file", "row", "column", "policy_id", "product_id", "reason", "message"]).to_csv(
        folder / "rejects.csv", index=False)
    phases = [{"name": "establishment", "start_day": 0, "end_day": 40, "index": "total", "direction": "below",
               "strike": 220.0, "exit": 80.0, "weight": 1.0, "curve": "linear"}]
    manifest = {"run_id": "fake0000", "panen_version": "0.0", "season": "2024-MT1", "created": "2024-01-01T00:00:00",
                "config": {"path": None, "sha256": "0" * 64},
                "inputs": {"districts": {"path": str(districts), "sha256": "", "files": "1"}},
                "districts": {"path": str(districts), "id_column": id_column, "layer": None},
                "products": [{"id": p, "trigger": "weather_index", "phases": phases} for p in products],
                "counts": {"policies_valid": len(pay)}, "by_product": [], "timings_s": {"total": 1.0}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


# --------------------------------------------------------------------------- money
def test_headline_figures_equal_the_ledger_to_the_rupiah(run_dir, page):
    led = ledger(run_dir)
    values = data_values(page)
    assert int(values["net_payout"]) == int(led["net_payout"].sum())
    assert int(values["sum_insured"]) == int(led["sum_insured"].sum())
    assert int(values["policies"]) == len(led)
    assert int(values["farmers"]) == led["farmer_id"].nunique()
    for pid, d in led.groupby("product_id"):
        for col in ("sum_insured", "gross_payout", "deductible", "net_payout"):
            assert int(values[f"{pid}.{col}"]) == int(d[col].sum()), (pid, col)
        assert int(values[f"{pid}.policies"]) == len(d)
        assert int(values[f"{pid}.policies_withheld"]) == int((d["status"] == "withheld_missing_data").sum())
    assert int(values["total.net_payout"]) == int(led["net_payout"].sum())
    claims = pd.read_csv(run_dir / "autp_claims.csv")
    indemnity = int(claims.loc[claims["decision"] == "paid", "indemnity"].sum())
    assert int(values["autp.indemnity"]) == indemnity == int(values["autp.net_payout"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    autp = next(r for r in manifest["by_product"] if r["product_id"] == "autp")
    assert int(values["autp.premium"]) == int(autp["premium"])
    assert int(values["autp.subsidy"]) + int(values["autp.farmer_share"]) == int(values["autp.premium"])


def test_district_rate_is_sum_insured_weighted_and_skips_withheld_policies():
    pay = pd.DataFrame({
        "product_id": ["p"] * 5, "district_id": ["A", "A", "A", "B", "B"],
        "status": ["paid", "no_payout", "withheld_missing_data", "withheld_missing_data", "withheld_missing_data"],
        "sum_insured": [3_000_000, 1_000_000, 9_000_000, 1, 1], "payout_rate": [0.4, 0.0, np.nan, np.nan, np.nan]})
    r = district_rates(pay).set_index("district_id")
    assert r.loc["A", "payout_rate"] == pytest.approx((0.4 * 3 + 0 * 1) / 4)
    assert r.loc["A", "assessed"] == 2 and r.loc["A", "policies"] == 3
    assert np.isnan(r.loc["B", "payout_rate"]), "all withheld: no rate, not zero"


def test_phase_thresholds_come_from_the_trigger_plugin():
    """The report does not parse term-sheet shapes: it asks the product's plugin."""
    phase = {"start_day": 0, "end_day": 40, "index": "total", "direction": "below", "weight": 0.5}
    rain = {"id": "rain", "trigger": "weather_index", "sum_insured_per_ha": 1, "phases": [
        {**phase, "name": "establishment", "strike": 220, "exit": 80},
        {**phase, "name": "flood", "index": "max_n_day", "n": 3, "direction": "above", "strike": 220, "exit": 380},
        {**phase, "name": "binary", "strike": 50, "curve": "binary"}]}
    assert phase_thresholds(rain) == {"establishment": (220.0, 80.0), "flood": (220.0, 380.0)}
    ndvi = {"id": "n", "trigger": "ndvi", "sum_insured_per_ha": 1, "baseline_years": [2003, 2022],
            "window": {"start_day": 0, "end_day": 112}}
    assert phase_thresholds({**ndvi, "payout": {"strike_z": -10, "exit_z": -30, "max_rate": 1}}) == \
        {"season": (-10.0, -30.0)}
    assert phase_thresholds({**ndvi, "payout": {"percentile": 15}}) == {}
    assert phase_thresholds({"id": "y", "trigger": "area_yield", "sum_insured_per_ha": 1, "indemnity_level": 0.8,
                             "normal_yield": {"method": "mean", "years": 5}}) == {}
    assert phase_thresholds({"id": "x", "trigger": "not_installed", "strike": 1, "exit": 2}) == {}


def test_province_rollup_sums_district_rows_to_the_rupiah(run_dir):
    s = pd.read_csv(run_dir / "summary.csv", dtype={"district_id": str})
    g = province_rollup(s)  # BPS codes: province = first two digits
    d = s[s["level"] == "district"]
    assert set(g["province_id"]) == {x[:2] for x in d["district_id"]}
    for pid, dd in d.groupby("product_id"):
        gg = g[g["product_id"] == pid]
        assert int(gg["net_payout"].sum()) == int(dd["net_payout"].sum())
        assert int(gg["sum_insured"].sum()) == int(dd["sum_insured"].sum())
        assert int(gg["districts"].sum()) == dd["district_id"].nunique()
    # a province_id column in the districts layer wins over the code prefix
    layer = pd.DataFrame({"district_id": d["district_id"].unique()}).assign(province_id="P1")
    assert set(province_rollup(s, layer)["province_id"]) == {"P1"}
    # neither: no roll-up rather than a wrong one
    odd = s.assign(district_id=s["district_id"].where(s["level"] != "district", "KAB-" + s["district_id"].astype(str)))
    assert province_rollup(odd) is None


# --------------------------------------------------------------------------- the page
def test_report_is_self_contained_and_offline(run_dir, page):
    tags = parse(page).tags
    assert not any(t == "script" for t, _ in tags), "no script needed"
    assert not any(t == "link" for t, _ in tags), "styles are inline"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page), "nothing loaded from the network"
    imgs = [a["src"] for t, a in tags if t == "img"]
    assert imgs and all(s.startswith("data:image/png;base64,") for s in imgs)
    for s in imgs:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for t, a in tags:  # every link is a section of the page or a file of the output folder
        href = a.get("href")
        if t == "a" and href:
            assert (href[1:] in {x.get("id") for _, x in tags}) if href.startswith("#") else (run_dir / href).exists()


def test_report_has_every_section_in_its_table_of_contents(page):
    ids = re.findall(r'<section id="([a-z]+)">', page)
    toc = re.findall(r'<li><a href="#([a-z]+)">', page)
    assert ids == toc
    assert {"headline", "maps", "index", "phases", "basis", "districts", "provinces", "quality", "files"} <= set(ids)
    assert "Season 2024-MT1" in page
    # one figure of payout-rate maps, and one of index-against-strike maps per product
    assert page.count('<figure class="map">') == 1 + 3


def test_run_header_names_the_season_products_and_data_hashes(run_dir, page):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["sha256"] in page
    for name, spec in manifest["inputs"].items():
        assert spec["sha256"] in page and spec["path"] in page, name
    for p in manifest["products"]:
        assert f"{p['id']} ({p['trigger']})" in page


def test_data_quality_lists_rejects_by_reason_with_examples(run_dir, page):
    rejects = pd.read_csv(run_dir / "rejects.csv", dtype=str)
    section = page[page.index('<section id="quality">'):]
    for reason, n in rejects["reason"].value_counts().items():
        assert re.search(rf"<td>{reason}</td><td class=\"num\" data-value=\"{n}\">", section), reason
    assert "BAD-1" in section and "rejects.csv" in section


def test_data_quality_lists_districts_flagged_for_missing_data(run_dir, page):
    di = pd.read_csv(run_dir / "district_index.csv", dtype={"district_id": str})
    section = page[page.index('<section id="quality">'):]
    flagged = di[di["flagged"]]
    if flagged.empty:
        assert "No district was flagged" in section
    for (pid, did), _ in flagged.groupby(["product_id", "district_id"]):
        assert f"<td>{pid}</td><td>{did}</td>" in section


def test_long_tables_show_twenty_rows_and_fold_the_rest(run_dir, page):
    s = pd.read_csv(run_dir / "summary.csv")
    n = int((s["level"] == "district").sum())
    section = page[page.index('<section id="districts">'):page.index('<section id="provinces">')]
    first = section[:section.index("</table>")]
    assert first.count("<tr>") == 1 + rep.TABLE_ROWS
    assert f"{n - rep.TABLE_ROWS:,} more district rows" in section and 'href="summary.csv"' in section


# --------------------------------------------------------------------------- GIS layer
def test_gpkg_has_one_layer_per_product_in_the_districts_crs(run_dir):
    path = run_dir / "districts.gpkg"
    layers = [name for name, _ in pyogrio.list_layers(path)]
    led = ledger(run_dir)
    assert sorted(layers) == sorted(led["product_id"].unique())
    src = gpd.read_file(json.loads((run_dir / "manifest.json").read_text())["districts"]["path"])
    summary = pd.read_csv(run_dir / "summary.csv", dtype={"district_id": str})
    indexed = set(pd.read_csv(run_dir / "district_index.csv")["product_id"])
    for pid in layers:
        g = gpd.read_file(path, layer=pid)
        assert g.crs == src.crs and len(g) == len(src)
        assert int(g["net_payout"].sum()) == int(led.loc[led["product_id"] == pid, "net_payout"].sum())
        assert int(g["policies"].sum()) == int((led["product_id"] == pid).sum())
        rates = g["payout_rate"].dropna()
        assert ((rates >= 0) & (rates <= 1)).all()
        if pid in indexed:  # an index product's layer carries its index; the named-peril cover has none
            assert any(c.startswith("index_") for c in g.columns)
        assert "pod" in g.columns and "name" in g.columns  # summary metrics and the layer's own attributes
        s = summary[(summary["level"] == "district") & (summary["product_id"] == pid)].set_index("district_id")
        gg = g.set_index("district_id")
        assert (gg.loc[s.index, "sum_insured"] == s["sum_insured"]).all()
    rain = gpd.read_file(path, layer="rain")
    assert {"index_establishment", "strike_distance_establishment", "index_dry_spell", "flagged"} <= set(rain.columns)


# --------------------------------------------------------------------------- CLI
def test_cli_report_builds_from_the_outputs_without_recomputing(built):
    out = built["out"]
    assert built["rc"] == 0, "panen report ran with every recomputing function booby-trapped"
    assert (out / "report.html").is_file() and (out / "districts.gpkg").is_file()
    assert built["after"] == built["before"], "the run's outputs are untouched"


@pytest.mark.parametrize("make", ["missing", "empty", "no_manifest", "bad_manifest", "no_ledger"])
def test_cli_report_on_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys, make):
    folder = tmp_path / "x"
    if make != "missing":
        folder.mkdir()
    if make == "no_manifest":
        (folder / "payouts.csv").write_text("a\n1\n")
    if make == "bad_manifest":
        (folder / "manifest.json").write_text("{not json")
    if make == "no_ledger":
        (folder / "manifest.json").write_text(json.dumps({"run_id": "x", "panen_version": "0"}))
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "not a panen output folder" in err and str(folder) in err
    assert not (folder / "report.html").exists()


def test_report_without_the_district_layer_says_so_and_keeps_the_numbers(run_dir, tmp_path):
    out = tmp_path / "nomap"
    shutil.copytree(run_dir, out)
    m = json.loads((out / "manifest.json").read_text())
    m["districts"]["path"] = str(tmp_path / "gone.gpkg")
    (out / "manifest.json").write_text(json.dumps(m))
    (out / "districts.gpkg").unlink()
    o = read_outputs(out)
    assert o.districts is None and any("no longer there" in n for n in o.notes)
    html_text = write_report(out, outputs=o).read_text()
    assert write_gpkg(out, outputs=o) is None and not (out / "districts.gpkg").exists()
    assert "no longer there" in html_text and '<figure class="map">' not in html_text
    assert data_values(html_text) == data_values((run_dir / "report.html").read_text())


def test_district_layer_hash_matches_the_manifest(run_dir):
    from panen.engine.infra.manifest import sha256_tree as _sha256_tree

    m = json.loads((run_dir / "manifest.json").read_text())
    path = Path(m["districts"]["path"])
    assert rep._sha256_input(path) == _sha256_tree([path]) == m["inputs"]["districts"]["sha256"]
    assert not any("changed" in n for n in read_outputs(run_dir).notes)


def test_district_layer_falls_back_to_the_run_config(run_dir, tmp_path):
    m = json.loads((run_dir / "manifest.json").read_text())
    m.pop("districts")
    path, id_column, _ = rep._district_source(m)
    assert Path(path).resolve() == Path(m["inputs"]["districts"]["path"]).resolve() and id_column == "district_id"


# --------------------------------------------------------------------------- large portfolios, backtests
def test_large_portfolio_stays_readable(tmp_path):
    geo = shared_file("boundaries", "idn_districts.geojson")
    out = fake_outputs(tmp_path / "idn", geo, "kode_bps_style")
    t0 = time.perf_counter()
    write_reports(out)
    took = time.perf_counter() - t0
    page = (out / "report.html").read_text()
    assert took < 20, took
    o = read_outputs(out)
    frame = rep._map_frame(o.districts)
    fig = rep._map_figure(frame, [("x", pd.Series(0.5, index=frame.ids))], cmap=rep._mpl()[1]["YlOrRd"],
                          norm=rep._mpl()[2].Normalize(0, 1), cbar_label="rate")
    ax = fig.axes[0]
    assert len(ax.texts) == 0, "no district labels at 514 districts"
    assert ax.collections[0].get_linewidths()[0] <= 0.1, "thin edges"
    assert any(getattr(a, "_colorbar", None) is not None for a in fig.axes), "a colour bar"
    section = page[page.index('<section id="districts">'):page.index('<section id="provinces">')]
    assert section[:section.index("</table>")].count("<tr>") == 1 + rep.TABLE_ROWS
    assert "more district rows" in section
    assert re.search(r"the 12 of 514 districts with the largest net payout|the 40 of 514 districts", page)
    assert page.count("data:image/png") >= 3
    # provinces: 38 from the BPS codes
    prov = page[page.index('<section id="provinces">'):page.index('<section id="quality">')]
    assert "38 provinces" in prov
    small = rep._map_frame(o.districts.head(30))
    fig = rep._map_figure(small, [("x", pd.Series(0.5, index=small.ids))], cmap=rep._mpl()[1]["YlOrRd"],
                          norm=rep._mpl()[2].Normalize(0, 1), cbar_label="rate")
    assert len(fig.axes[0].texts) == 30, "small maps are labelled"


def test_backtest_outputs_add_a_heat_map_per_product(run_dir, tmp_path):
    layer = Path(json.loads((run_dir / "manifest.json").read_text())["districts"]["path"])
    out = fake_outputs(tmp_path / "bt", layer, "district_id", products=("rain", "yield"), per_district=1)
    without = write_report(out).read_text()
    assert 'id="backtest"' not in without
    ids = sorted(gpd.read_file(layer)["district_id"].astype(str))
    rng = np.random.default_rng(0)
    rows = [{"district_id": d, "product_id": p, "season": y, "anchor": "2000-11-01", "phase": "season",
             "index_value": 1.0, "phase_rate": r, "payout_rate": r, "valid_fraction": 1.0, "flagged": False}
            for p in ("rain", "yield") for d in ids for y in range(1991, 2021)
            for r in [float(rng.choice([0, 0, 0, rng.uniform()]))]]
    pd.DataFrame(rows).to_csv(out / "backtest.csv", index=False)
    port = pd.DataFrame(rows).groupby(["season", "product_id"])["payout_rate"].mean().reset_index()
    port.assign(payout=port["payout_rate"] * 1e9, exposure_basis="register").to_csv(out / "portfolio.csv", index=False)
    page = write_report(out).read_text()
    section = page[page.index('<section id="backtest">'):]
    assert section.count("data:image/png") == 2 and 'href="portfolio.csv"' in section
    assert page.count("data:image/png") == without.count("data:image/png") + 2
    # a backtest's own folder (no ledger): the report is the backtest
    for f in ("payouts.parquet", "district_index.csv", "summary.csv"):
        (out / f).unlink()
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**m, "kind": "backtest", "years": [1991, 2020]}))
    paths = write_reports(out)
    only = paths["report"].read_text()
    assert "gpkg" not in paths and "Backtest 1991–2020" in only
    assert re.findall(r'<section id="([a-z]+)">', only) == ["quality", "backtest", "files"]


# --------------------------------------------------------------------------- in a browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(run_dir, tmp_path):
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]
    url = (run_dir / "report.html").as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console
    assert dom.stdout.count('src="data:image/png;base64,') == (run_dir / "report.html").read_text().count(
        'src="data:image/png;base64,') >= 6
    assert dom.stdout.count('<figure class="map"><img src="data:image/png') == 4
    shot = tmp_path / "report.png"
    res = subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1280,4000", url], capture_output=True,
                         text=True, timeout=90)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 4000)
        px = np.asarray(im.convert("L"))
    assert px.std() > 20, "the page rendered content, not a blank screen"


def _backtest_with_pricing(run_dir: Path, folder: Path, *, design: bool) -> tuple[Path, list[str]]:
    """A fake backtest folder with the pricing, tail, basis-risk (and design) files `panen backtest` writes."""
    layer = Path(json.loads((run_dir / "manifest.json").read_text())["districts"]["path"])
    out = fake_outputs(folder, layer, "district_id", products=("rain",), per_district=1)
    ids = sorted(gpd.read_file(layer)["district_id"].astype(str))
    rng = np.random.default_rng(3)
    rows = [{"district_id": d, "product_id": "rain", "season": y, "anchor": "2000-11-01", "phase": "season",
             "index_value": 1.0, "phase_rate": r, "payout_rate": r, "valid_fraction": 1.0, "flagged": False}
            for d in ids for y in range(2001, 2021) for r in [float(rng.choice([0, 0, 0, rng.uniform()]))]]
    bt = pd.DataFrame(rows)
    bt.to_csv(out / "backtest.csv", index=False)
    port = bt.groupby(["season", "product_id"])["payout_rate"].mean().reset_index()
    port.assign(payout=port["payout_rate"] * 1e9, exposure_basis="register").to_csv(out / "portfolio.csv", index=False)
    burn = bt.groupby("district_id")["payout_rate"].mean()
    pd.DataFrame({"product_id": "rain", "district_id": burn.index, "seasons": 20, "missing": 0, "burn_cost": burn.values,
                  "standard_error": 0.01, "frequency": 0.25, "gross_premium_rate": burn.values * 1.35,
                  "exposure": 6_000_000, "exposure_basis": "register", "credibility_z": 0.5,
                  "credibility_rate": burn.mean(), "premium": 6e6 * burn.values * 1.35, "subsidy": 0.0,
                  "farmer_share": 0.0}).to_csv(out / "pricing.csv", index=False)
    pd.DataFrame([{"product_id": "rain", "exposure_basis": "register", "districts": len(ids), "sum_insured": 6e6 * len(ids),
                   "seasons": 20, "seasons_incomplete": 0, "mean_payout": 1234567.4, "max_payout": 98765432.0,
                   "max_season": 2016, "payout_1in5": 12345678.6, "payout_1in10": 23456789.0,
                   "payout_1in20": 45678901.2, "pml_return_period": 20, "pml": 45678901.2, "pml_rate": 0.4}]
                 ).to_csv(out / "tail.csv", index=False)
    basis = [{"scope": "district", "product_id": "rain", "district_id": d, "seasons": 20, "hits": 3, "misses": k % 3,
              "false_alarms": 1, "correct_negatives": 14, "pod": 0.75, "far": 0.25} for k, d in enumerate(ids)]
    basis.append({"scope": "product", "product_id": "rain", "district_id": None, "seasons": 20 * len(ids), "hits": 9,
                  "misses": 2, "false_alarms": 3, "correct_negatives": 50, "pod": 0.818, "far": 0.25})
    pd.DataFrame(basis).to_csv(out / "basis_risk.csv", index=False)
    if design:
        d = {"product_id": "rain", "zone": "all", "candidate": 5, "establishment.strike": 74.0,
             "establishment.exit": 40.0, "burn_cost": 0.096, "gross_premium_rate": 0.1296, "pod": 0.43,
             "feasible": True, "reason": ""}
        pd.DataFrame([d]).to_csv(out / "design_chosen.csv", index=False)
        pd.DataFrame([{**d, "candidate": 0, "establishment.strike": 58.0}, d]).to_csv(out / "design_frontier.csv",
                                                                                      index=False)
        (out / "plots").mkdir()
        Figure, _, _ = rep._mpl()
        fig = Figure(figsize=(2, 1.5), dpi=50)
        fig.subplots().plot([0, 1], [0, 1])
        fig.savefig(out / "plots" / "tradeoff_rain.png", format="png")
    return out, ids


def test_backtest_report_has_pricing_maps_and_a_tail_table_equal_to_tail_csv(run_dir, tmp_path):
    out, ids = _backtest_with_pricing(run_dir, tmp_path / "bt", design=False)
    page = write_report(out).read_text()
    sections = re.findall(r'<section id="([a-z]+)">', page)
    assert "pricing" in sections and "basisrisk" in sections and "design" not in sections
    pricing = page[page.index('<section id="pricing">'):page.index('<section id="basisrisk">')]
    assert pricing.count("data:image/png") == 1 and "burn-cost map" in pricing and "gross-premium-rate map" in pricing
    assert 'href="pricing.csv"' in pricing and 'href="tail.csv"' in pricing
    if len(ids) > rep.TABLE_ROWS:  # long district tables fold like the others
        assert f"{len(ids) - rep.TABLE_ROWS:,} more district rows" in pricing
    values = data_values(page)
    tail = pd.read_csv(out / "tail.csv").iloc[0]
    for col in ("payout_1in5", "payout_1in10", "payout_1in20", "pml", "mean_payout", "sum_insured"):
        assert values[f"tail.rain.{col}"] == str(int(round(tail[col]))), col
    assert "12,345,679" in pricing and "45,678,901" in pricing  # integer rupiah, thousands separators
    basis = page[page.index('<section id="basisrisk">'):]
    assert "Per product" in basis and 'href="basis_risk.csv"' in basis
    assert "<script" not in page.lower()


def test_backtest_report_embeds_the_trade_off_curve_and_the_chosen_design(run_dir, tmp_path):
    out, _ = _backtest_with_pricing(run_dir, tmp_path / "bt", design=True)
    page = write_report(out).read_text()
    design = page[page.index('<section id="design">'):page.index('<section id="files">')]
    png = base64.b64encode((out / "plots" / "tradeoff_rain.png").read_bytes()).decode("ascii")
    assert f'src="data:image/png;base64,{png}"' in design and "trade-off curve" in design
    assert 'src="plots/' not in page  # embedded, not linked
    values = data_values(page)
    assert values["design.rain.all.establishment.strike"] == "74.0"
    assert values["design.rain.all.gross_premium_rate"] == repr(0.1296)
    assert 'href="design_frontier.csv"' in design and 'href="design_chosen.csv"' in design
