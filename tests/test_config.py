"""Run config: safe YAML, strict schema, every problem listed at once with its location."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from panen.engine.cli import main
from panen.engine.config import load_config
from panen.engine.errors import ConfigError

GOOD = """\
season: {id: 2024-MT1, start: 2023-11-01, end: 2024-03-31}
inputs:
  districts: {path: data/districts.geojson, id_column: kode_bps_style}
  rainfall: {path: data/rain.nc, variable: precip, units: mm/day}
  policies: {path: data/policies.csv}
products:
  - id: rain
    trigger: weather_index
    sum_insured_per_ha: 6000000
    anchor: sowing_date
    phases:
      - {name: veg, start_day: 0, end_day: 40, index: total, direction: below, strike: 150, exit: 50, weight: 0.5}
      - {name: dry, start_day: 0, end_day: 100, index: dry_spell, dry_threshold: 1.0, direction: above,
         strike: 14, exit: 30, weight: 0.5}
    terms: {deductible: {kind: franchise, amount: 100000}}
"""


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    for name in ("districts.geojson", "rain.nc", "policies.csv"):
        (tmp_path / "data" / name).write_text("x")
    return tmp_path


def write(cfg_dir: Path, text: str) -> Path:
    p = cfg_dir / "run.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_valid_config_loads_with_paths_resolved_against_the_config_file(cfg_dir, monkeypatch):
    monkeypatch.chdir("/")
    cfg = load_config(write(cfg_dir, GOOD))
    assert cfg.inputs.districts.path == cfg_dir / "data" / "districts.geojson"
    assert Path(cfg.inputs.rainfall.path) == cfg_dir / "data" / "rain.nc"
    assert cfg.season.harvest_year == 2024
    (rain,) = cfg.products
    assert rain.anchor == "sowing_date" and [p.name for p in rain.phases] == ["veg", "dry"]
    assert cfg.terms["rain"] is not None
    assert len(cfg.sha256) == 64


def test_malformed_yaml_names_file_and_line(cfg_dir):
    p = write(cfg_dir, "season: {id: x\ninputs: [\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    (prob,) = e.value.problems
    assert prob.file == p and prob.row is not None and "malformed YAML" in prob.message


def test_every_problem_is_listed_at_once_with_key_and_line(cfg_dir):
    bad = (GOOD.replace("anchor: sowing_date", "anchor: sowing_date\n    colour: red")
           .replace("exit: 50", "exit: 170")
           .replace("path: data/rain.nc", "path: data/missing.nc")
           .replace("season: {id: 2024-MT1,", "season: {id: 2024-MT1, weather: nice,"))
    p = write(cfg_dir, bad)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msgs = {prob.key: (prob.row, prob.message) for prob in e.value.problems}
    assert len(e.value.problems) == 4, e.value
    assert msgs["season.weather"][1] == "unknown key 'weather'"
    assert msgs["products[0].colour"][1] == "product 'rain': unknown key 'colour'"
    assert msgs["products[0].colour"][0] == 11  # the YAML line of the offending key
    row, msg = msgs["products[0].phases[0]"]
    assert "product 'rain'" in msg and "exit must be < strike (150.0)" in msg and row == 13
    assert "file not found" in msgs["inputs.rainfall.path"][1]


def test_unknown_trigger_lists_installed_plugins(cfg_dir):
    p = write(cfg_dir, GOOD.replace("trigger: weather_index", "trigger: hail_radar"))
    with pytest.raises(ConfigError, match="no trigger plugin named 'hail_radar'.*weather_index"):
        load_config(p)


def test_missing_required_input_for_a_product_is_reported(cfg_dir):
    p = write(cfg_dir, GOOD.replace("  rainfall: {path: data/rain.nc, variable: precip, units: mm/day}\n", ""))
    with pytest.raises(ConfigError, match="needs inputs.rainfall"):
        load_config(p)


def test_bad_terms_are_reported_under_the_product(cfg_dir):
    p = write(cfg_dir, GOOD.replace("kind: franchise", "kind: generous"))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert all(prob.key.startswith("products[0].terms") for prob in e.value.problems)


def test_yaml_is_loaded_safely(cfg_dir):
    p = write(cfg_dir, "season: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(p)


def test_validate_command_exits_2_and_lists_problems(cfg_dir, capsys):
    p = write(cfg_dir, GOOD.replace("exit: 50", "exit: 170").replace("id_column: kode_bps_style", "id_colum: x"))
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "id_colum" in err and "exit must be < strike" in err
    # a valid config passes the config checks; validate then opens every input's header, and
    # this fixture's inputs are empty placeholder files: each is named, with what is wrong
    good = write(cfg_dir, GOOD)
    load_config(good)
    assert main(["validate", str(good)]) == 2
    err = capsys.readouterr().err
    assert "policies.csv, line 1, column 'policy_id': required column 'policy_id' is missing" in err
    assert "rain.nc: cannot read NetCDF file" in err and "districts.geojson: cannot read district file" in err


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- non-finite numbers: one rule everywhere
def problems_of(path: Path) -> dict[str, tuple[int | None, str]]:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return {prob.key: (prob.row, prob.message) for prob in e.value.problems}


@pytest.mark.parametrize("text", ['"nan"', "'inf'", "1e999", '"-Infinity"'])
def test_non_finite_numbers_written_as_text_are_refused_by_every_model(cfg_dir, text):
    """YAML reads these as strings (the loader refuses .inf/.nan itself); pydantic would read them as floats."""
    bad = (GOOD.replace("strike: 150", f"strike: {text}")
           .replace("{kind: franchise, amount: 100000}", f"{{kind: percent_of_loss, rate: {text}}}")
           .replace("season: {id: 2024-MT1, start: 2023-11-01, end: 2024-03-31}",
                    "season: {id: 2024-MT1, start: 2023-11-01, end: 2024-03-31}\n"
                    f"pricing: {{expense_loading: {text}}}"))
    found = problems_of(write(cfg_dir, bad))
    assert set(found) == {"products[0].phases[0].strike", "products[0].terms.deductible.rate",
                          "pricing.expense_loading"}, found
    for key, (row, msg) in found.items():
        assert row is not None and "finite number" in msg, (key, msg)


def test_an_open_step_band_edge_is_a_left_out_key_and_a_written_infinity_is_refused(cfg_dir):
    step = ("{name: veg, start_day: 0, end_day: 40, index: total, direction: below, strike: 150, curve: step, "
            "weight: 0.5, bands: [{max: 50, rate: 1.0}, {min: 50, max: 150, rate: 0.5}]}")
    good = GOOD.replace(
        "{name: veg, start_day: 0, end_day: 40, index: total, direction: below, strike: 150, exit: 50, weight: 0.5}",
        step)
    (rain,) = load_config(write(cfg_dir, good)).products
    assert rain.phases[0].bands[0].min == float("-inf")  # the open default
    found = problems_of(write(cfg_dir, good.replace("{max: 50, rate: 1.0}", "{min: -.inf, max: 50, rate: 1.0}")))
    (row, msg), = found.values()
    assert list(found) == ["products[0].phases[0].bands[0].min"] and row == 12 and "leaving the key out" in msg
    found = problems_of(write(cfg_dir, good.replace("{max: 50, rate: 1.0}", "{min: '-inf', max: 50, rate: 1.0}")))
    assert list(found) == ["products[0].phases[0].bands[0].min"]


def test_a_plugin_whose_nested_model_allows_infinity_still_gets_finite_numbers(cfg_dir, monkeypatch):
    """A third-party term sheet's nested model without allow_inf_nan=False: the config's general rule refuses."""
    from pydantic import BaseModel

    from panen.engine import registry
    from panen.engine.api import ProductParams, Trigger

    class Level(BaseModel):  # a plugin's own nested model: pydantic's default allows inf and nan
        lower: float = float("-inf")
        value: float = 0.0

    class HailParams(ProductParams):
        trigger: str = "hail"
        levels: list[Level] = []

    class Hail(Trigger):
        name = "hail"
        Params = HailParams
        inputs = ()

    installed = dict(registry.triggers())
    monkeypatch.setattr(registry, "triggers", lambda: {**installed, "hail": Hail})
    text = GOOD.replace("trigger: weather_index", "trigger: hail\n    levels: [{value: 1.0}, {value: 'nan'}]")
    text = text[:text.index("    anchor: sowing_date")]
    found = problems_of(write(cfg_dir, text))
    assert found == {"products[0].levels[1].value": (9, "product 'rain': must be a finite number (got nan)")}
    ok = load_config(write(cfg_dir, text.replace("{value: 'nan'}", "{value: 2.0}")))
    assert ok.products[0].levels[0].lower == float("-inf")  # a default is not given: kept


@pytest.mark.parametrize("start, why", [("2023-02-30", "day is out of range for month"),
                                        ("2024-13-01", "month must be in 1..12")])
def test_an_impossible_season_date_is_a_located_error(cfg_dir, start, why, capsys):
    p = write(cfg_dir, GOOD.replace("start: 2023-11-01", f"start: {start}"))
    assert problems_of(p) == {"season.start": (1, f"not a valid date: '{start}' ({why})")}
    assert main(["validate", str(p)]) == 2
    assert f"run.yaml, line 1, season.start: not a valid date: '{start}'" in capsys.readouterr().err
