"""Hostile and messy configs never move money: exit 2, the file, line and key named, nothing written.

Each case edits a known-good run config (three index products and the AUTP adjuster on the
small synthetic region) or its policy wording, then runs ``panen validate`` and ``panen
run`` through :func:`panen.engine.cli.main`. Both must exit 2 naming the file, the YAML
line and the key path, and ``panen run`` must leave no output folder (nor a staged one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from panen.datasets.synthetic import generate_demo_region
from panen.engine.cli import main
from panen.engine.infra.yamlio import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_NODES

REPO = Path(__file__).resolve().parents[1]

#: The good config: block style where a case inserts a line, so line numbers are easy to follow.
BASE = """\
season: {id: 2024-MT1, start: 2023-11-01, end: 2024-03-31, year: 2024}
inputs:
  districts: {path: DATA/districts.gpkg, id_column: district_id}
  rainfall:
    path: DATA/rainfall.zarr
    variable: precip
    units: mm/day
  ndvi: {path: DATA/ndvi.zarr, qa: good_only}
  yields: {path: DATA/yields.csv, yield_column: yield_ku_ha, units: ku/ha}
  policies: {path: DATA/policies.csv}
  assessments: {path: DATA/assessments.csv}
products:
  - id: rain
    trigger: weather_index
    sum_insured_per_ha: 6000000
    anchor: sowing_date
    season_cap: 1.0
    phases:
      - name: establishment
        start_day: 0
        end_day: 40
        index: total
        direction: below
        strike: 220
        exit: 80
        weight: 0.4
      - {name: flood, start_day: 20, end_day: 110, index: max_n_day, n: 3, direction: above,
         strike: 220, exit: 380, weight: 0.4}
    terms:
      deductible: {kind: franchise, amount: 100000}
  - id: yield
    trigger: area_yield
    sum_insured_per_ha: 6000000
    normal_yield: {method: best_of, best: 5, of: 7}
    indemnity_level: 0.8
    missing_years: average_available
    min_years: 5
  - id: ndvi
    trigger: ndvi
    sum_insured_per_ha: 6000000
    baseline_years: [2013, 2022]
    window: {start_day: 30, end_day: 142}
    min_composites: 5
    payout: {strike_z: -10.0, exit_z: -30.0, max_rate: 1.0}
adjuster: {wording: autp.yaml}
output: {dir: out, formats: [parquet, csv], payments_by: group}
"""

WORDING = (REPO / "configs" / "autp.yaml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Case:
    """One hostile edit and the problem it must produce.

    ``old`` → ``new`` is replaced once in the config (or the wording, ``file="autp.yaml"``);
    the expected line is the ``nth`` line of the edited file containing ``at``; ``{first}``
    in ``message`` stands for the first line containing ``first`` (a duplicate's first copy).
    """

    id: str
    old: str
    new: str
    key: str
    at: str
    message: str
    file: str = "run.yaml"
    nth: int = 1
    first: str | None = None


CASES = [
    # ------------------------------------------------------------------ duplicate keys
    Case("duplicate strike in a phase", "        strike: 220\n", "        strike: 220\n        strike: 120\n",
         "products[0].phases[0].strike", at="strike: 120", first="strike: 220",
         message="duplicate key 'strike' (first at line {first})"),
    Case("duplicate sum_insured_per_ha in a product", "    anchor: sowing_date\n",
         "    anchor: sowing_date\n    sum_insured_per_ha: 60000000\n", "products[0].sum_insured_per_ha",
         at="sum_insured_per_ha: 60000000", first="sum_insured_per_ha: 6000000",
         message="duplicate key 'sum_insured_per_ha' (first at line {first})"),
    Case("duplicate season", "adjuster:", "season: {id: 2025-MT1, start: 2024-11-01, end: 2025-03-31}\nadjuster:",
         "season", at="season:", nth=2, message="duplicate key 'season' (first at line 1)"),
    Case("duplicate input section", "  policies: {path: DATA/policies.csv}\n",
         "  policies: {path: DATA/policies.csv}\n  rainfall: {path: DATA/rainfall.zarr}\n",
         "inputs.rainfall", at="rainfall:", nth=2, message="duplicate key 'rainfall' (first at line {first})",
         first="rainfall:"),
    Case("duplicate key in a flow mapping", "start: 2023-11-01, end: 2024-03-31,",
         "start: 2023-11-01, end: 2024-03-31, start: 2023-12-01,", "season.start", at="season:",
         message="duplicate key 'start' (first at line 1)"),
    Case("duplicate weight written as a number twice", "weight: 0.4}", "weight: 0.4, weight: 1.0}",
         "products[0].phases[1].weight", at="strike: 220, exit: 380", message="duplicate key 'weight'"),
    # ------------------------------------------------------------------ non-finite numbers, YAML's own and as text
    Case("exit .inf", "        exit: 80\n", "        exit: .inf\n", "products[0].phases[0].exit", at="exit: .inf",
         message="not a finite number ('.inf')"),
    Case("strike .nan", "        strike: 220\n", "        strike: .nan\n", "products[0].phases[0].strike",
         at="strike: .nan", message="not a finite number ('.nan')"),
    Case("strike overflowing to inf", "        strike: 220\n", "        strike: 2.0e+400\n",
         "products[0].phases[0].strike", at="strike: 2.0e+400", message="not a finite number"),
    Case("strike 'nan' as text", "        strike: 220\n", "        strike: 'nan'\n", "products[0].phases[0].strike",
         at="strike: 'nan'", message="product 'rain': Input should be a finite number (got 'nan')"),
    Case("exit 1e999 (text to YAML, inf to a float)", "        exit: 80\n", "        exit: 1e999\n",
         "products[0].phases[0].exit", at="exit: 1e999", message="Input should be a finite number"),
    Case("season_cap .nan", "season_cap: 1.0", "season_cap: .nan", "products[0].season_cap", at="season_cap",
         message="not a finite number"),
    Case("open band edge written as .inf",
         "      - {name: flood, start_day: 20, end_day: 110, index: max_n_day, n: 3, direction: above,\n"
         "         strike: 220, exit: 380, weight: 0.4}",
         "      - {name: flood, start_day: 20, end_day: 110, index: total, direction: above, curve: step,\n"
         "         strike: 220, weight: 0.4, bands: [{min: 220, max: 300, rate: 0.5}, {min: 300, max: .inf, rate: 1}]}",
         "products[0].phases[1].bands[1].max", at="bands:", message="an open end (e.g. a step band's edge) is "
                                                                    "written by leaving the key out"),
    Case("terms limit .inf", "deductible: {kind: franchise, amount: 100000}",
         "deductible: {kind: franchise, amount: 100000}\n      limit: .inf", "products[0].terms.limit",
         at="limit:", message="not a finite number"),
    Case("percent-of-loss rate 'NaN'", "{kind: franchise, amount: 100000}", "{kind: percent_of_loss, rate: 'NaN'}",
         "products[0].terms.deductible.rate", at="percent_of_loss", message="Input should be a finite number"),
    Case("area-yield indemnity_level .nan", "indemnity_level: 0.8", "indemnity_level: .nan",
         "products[1].indemnity_level", at="indemnity_level", message="not a finite number"),
    Case("ndvi strike_z -.inf", "strike_z: -10.0", "strike_z: -.inf", "products[2].payout.strike_z",
         at="strike_z", message="not a finite number"),
    Case("input min_valid_fraction .nan", "    units: mm/day\n", "    units: mm/day\n    min_valid_fraction: .nan\n",
         "inputs.rainfall.min_valid_fraction", at="min_valid_fraction", message="not a finite number"),
    Case("ndvi scale 'inf' as text", "{path: DATA/ndvi.zarr, qa: good_only}",
         "{path: DATA/ndvi.zarr, qa: good_only, scale: 'inf'}", "inputs.ndvi.scale", at="ndvi:",
         message="Input should be a finite number"),
    Case("pricing expense_loading .inf (backtest section, validated by run too)", "adjuster:",
         "pricing: {expense_loading: .inf}\nadjuster:", "pricing.expense_loading", at="pricing:",
         message="not a finite number"),
    Case("design max_premium_rate 'nan'", "adjuster:", "design: {max_premium_rate: 'nan'}\nadjuster:",
         "design.max_premium_rate", at="design:", message="Input should be a finite number"),
    # ------------------------------------------------------------------ impossible values
    Case("season start 2023-02-30", "start: 2023-11-01", "start: 2023-02-30", "season.start", at="season:",
         message="not a valid date: '2023-02-30' (day is out of range for month)"),
    Case("season start in month 13", "season: {id: 2024-MT1, start: 2023-11-01, end: 2024-03-31, year: 2024}\n",
         "season:\n  id: 2024-MT1\n  start: 2024-13-01\n  end: 2024-03-31\n  year: 2024\n", "season.start",
         at="start: 2024-13-01", message="not a valid date: '2024-13-01' (month must be in 1..12)"),
    Case("harvest year that cannot be", "year: 2024}", "year: -2024}", "season.year", at="season:",
         message="Input should be greater than or equal to 1900 (got -2024)"),
    Case("season start in year 1", "start: 2023-11-01", "start: 0001-11-01", "season.start", at="season:",
         message="Input should be greater than or equal to 1900-01-01 (got 0001-11-01)"),
    Case("sum insured beyond 64 bits", "    sum_insured_per_ha: 6000000\n    anchor",
         "    sum_insured_per_ha: 60000000000000000000\n    anchor", "products[0].sum_insured_per_ha",
         at="60000000000000000000", message="integer '60000000000000000000' is out of range"),
    Case("sum insured beyond exact rupiah", "    sum_insured_per_ha: 6000000\n    anchor",
         "    sum_insured_per_ha: 9007199254740992\n    anchor", "products[0].sum_insured_per_ha",
         at="9007199254740992", message="Input should be less than 9007199254740992"),
    # ------------------------------------------------------------------ bounded documents
    Case("billion laughs", "adjuster:", "\n".join(
        ['lol0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        + [f"lol{i}: &l{i} [{','.join(['*l' + str(i - 1)] * 9)}]" for i in range(1, 9)]) + "\nadjuster:",
        "lol5[0]", at="lol5:", message=f"holds more than {MAX_NODES:,} values"),
    Case("alias inside its own anchor", "adjuster:", "loop: &loop {again: [*loop]}\nadjuster:", "loop.again[0]",
         at="loop:", message="alias *loop is inside the anchor &loop it names: a recursive structure"),
    Case("nesting too deep", "adjuster:", "deep: " + "[" * 5000 + "]" * 5000 + "\nadjuster:",
         "deep" + "[0]" * (MAX_DEPTH - 1), at="deep:", message=f"deeper than {MAX_DEPTH} levels"),
    # ------------------------------------------------------------------ the policy wording
    Case("wording: duplicate sum_insured_per_ha", "premium:\n", "sum_insured_per_ha: 60000000\npremium:\n",
         "sum_insured_per_ha", at="sum_insured_per_ha: 60000000", first="sum_insured_per_ha: 6000000",
         message="duplicate key 'sum_insured_per_ha' (first at line {first})", file="autp.yaml"),
    Case("wording: a peril defined twice", "  drought:  ",
         "  flood: {name: banjir, name_en: flood, kind: other}\n  drought:  ", "perils.flood", at="  flood:", nth=2,
         message="duplicate key 'flood' (first at line {first})", first="  flood:", file="autp.yaml"),
    Case("wording: damage threshold .nan", "  damage_intensity_pct: 75", "  damage_intensity_pct: .nan",
         "thresholds.damage_intensity_pct", at="damage_intensity_pct: .nan", message="not a finite number",
         file="autp.yaml"),
    Case("wording: area cap .inf", "max_insured_area_ha: 2.0", "max_insured_area_ha: .inf", "max_insured_area_ha",
         at="max_insured_area_ha", message="not a finite number", file="autp.yaml"),
    Case("wording: premium rate 'nan' as text", "  rate: 0.03", "  rate: 'nan'", "premium.rate", at="rate: 'nan'",
         message="Input should be a finite number", file="autp.yaml"),
]


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    generate_demo_region(d / "data", n_districts=8, n_farmers=1500)
    return d


def write_case(folder: Path, region: Path, case: Case | None) -> tuple[Path, Path, str]:
    """The config and wording of a case; returns (config, the file the case edits, its text)."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"run.yaml": BASE, "autp.yaml": WORDING}
    if case is not None:
        assert texts[case.file].count(case.old) >= 1, f"{case.id}: {case.old!r} is not in {case.file}"
        texts[case.file] = texts[case.file].replace(case.old, case.new, 1)
    texts["run.yaml"] = texts["run.yaml"].replace("DATA/", f"{region / 'data'}/")
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    edited = case.file if case is not None else "run.yaml"
    return folder / "run.yaml", folder / edited, texts[edited]


def line_of(text: str, needle: str, nth: int) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} is on {len(hits)} line(s)"
    return hits[nth - 1]


def test_the_base_config_is_valid_and_runs(region, tmp_path, capsys):
    """The control: without an edit, validate passes and run writes its outputs."""
    cfg, _, _ = write_case(tmp_path / "base", region, None)
    assert main(["validate", str(cfg)]) == 0, capsys.readouterr().err
    assert main(["run", str(cfg), "--out", str(tmp_path / "base" / "out"), "--quiet"]) == 0
    assert (tmp_path / "base" / "out" / "payouts.csv").exists()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_hostile_config_exits_2_naming_file_line_and_key_and_writes_nothing(region, tmp_path, capsys, case):
    folder = tmp_path / "case"
    cfg, edited, text = write_case(folder, region, case)
    where = f"{edited}, line {line_of(text, case.at, case.nth)}, {case.key}: "
    message = case.message.replace("{first}", str(line_of(text, case.first, 1))) if case.first else case.message
    before = sorted(p.name for p in folder.iterdir())

    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"  - {where}")]
    assert lines and any(message in line for line in lines), f"expected {where}...{message}\n{err}"

    out = folder / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == err  # the same problems, found before anything is read
    assert not out.exists()
    assert sorted(p.name for p in folder.iterdir()) == before  # no staged or half-written folder either


def test_every_problem_of_a_config_and_its_wording_is_listed_at_once(region, tmp_path, capsys):
    text = (BASE.replace("        strike: 220\n", "        strike: 220\n        strike: 120\n", 1)
            .replace("        exit: 80\n", "        exit: .inf\n", 1)
            .replace("start: 2023-11-01", "start: 2023-02-30"))
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "run.yaml").write_text(text.replace("DATA/", f"{region / 'data'}/"))
    (folder / "autp.yaml").write_text(WORDING.replace("  damage_intensity_pct: 75", "  damage_intensity_pct: .nan"))
    assert main(["validate", str(folder / "run.yaml")]) == 2
    err = capsys.readouterr().err
    # the YAML-level problems of one file come together; the wording is read once the config is
    assert "invalid config (3 problems)" in err
    assert "season.start: not a valid date" in err and "phases[0].strike: duplicate key" in err
    assert "phases[0].exit: not a finite number" in err
    (folder / "run.yaml").write_text(BASE.replace("DATA/", f"{region / 'data'}/")
                                     .replace("indemnity_level: 0.8", "indemnity_level: 'nan'"))
    assert main(["validate", str(folder / "run.yaml")]) == 2
    err = capsys.readouterr().err
    assert "invalid config (2 problems)" in err
    assert "products[1].indemnity_level: product 'yield': Input should be a finite number" in err
    assert "autp.yaml, line" in err and "thresholds.damage_intensity_pct: not a finite number" in err


def test_a_config_over_the_size_bound_is_refused_before_it_is_parsed(region, tmp_path, capsys):
    cfg, _, _ = write_case(tmp_path / "big", region, None)
    cfg.write_text(cfg.read_text() + "#" * MAX_DOCUMENT_BYTES + "\n")
    for argv in (["validate", str(cfg)], ["run", str(cfg), "--out", str(tmp_path / "big" / "out"), "--quiet"]):
        assert main(argv) == 2
        assert f"  - {cfg}: config file is larger than 1 MiB" in capsys.readouterr().err
    assert not (tmp_path / "big" / "out").exists()


def test_the_cases_are_many_and_distinct():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)
