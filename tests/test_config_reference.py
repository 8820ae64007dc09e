"""Every key the README's "Config reference" documents is a key of the config models, and does something.

The README is read, not copied: the config-reference YAML block, the backtest sections'
block and the term-sheet tables and paragraphs. Each documented key path must exist in the
model that validates it (season, output and adjuster sections; each input by the reader
registered for its name; each product by its trigger plugin's ``Params``; terms by the
terms model), each documented example section must validate, and each built-in term
sheet's keys must all be documented. Where showing an effect is cheap, a small synthetic
run shows it.
"""

from __future__ import annotations

import re
import typing
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pytest
import yaml
from panen.datasets.readers import TableReading
from panen.engine.api import REGISTER_OPTIONAL_COLUMNS, REGISTER_REQUIRED_COLUMNS
from panen.engine.config import (
    AdjusterConfig,
    DesignConfig,
    LimitsConfig,
    LossReference,
    OutputConfig,
    PricingConfig,
    ProjectionConfig,
    SeasonConfig,
    SettlementConfig,
)
from panen.engine.maths.premium import PremiumTerms
from panen.engine.maths.terms import Terms
from panen.engine.registry import get_reader, get_trigger
from pydantic import BaseModel, TypeAdapter

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The README text under ``## title``, up to the next ``## `` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, re.S)


# --------------------------------------------------------------------------- models as key trees
def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return models_in(typing.get_args(annotation)[0])
    return [m for arg in typing.get_args(annotation) for m in models_in(arg)] if origin is not None else []


def literals_in(annotation: Any) -> set:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return set(typing.get_args(annotation))
    if origin is Annotated:
        return literals_in(typing.get_args(annotation)[0])
    return {v for arg in typing.get_args(annotation) for v in literals_in(arg)} if origin is not None else set()


def vocabulary(*models: type[BaseModel]) -> set[str]:
    """Every key and every literal value reachable from the models."""
    words: set[str] = set()
    todo, seen = list(models), set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for name, info in m.model_fields.items():
            words.add(info.alias or name)
            words |= {str(v) for v in literals_in(info.annotation)}
            todo += models_in(info.annotation)
    return words


def unknown_keys(data: Any, models: list[type[BaseModel]], where: str = "") -> list[str]:
    """Documented key paths that no candidate model has (a union: any member may have the key)."""
    if not isinstance(data, dict):
        return []
    missing = []
    for key, value in data.items():
        fields = [m.model_fields[k] for m in models for k, f in m.model_fields.items() if (f.alias or k) == key]
        path = f"{where}.{key}" if where else str(key)
        if not fields:
            missing.append(path)
            continue
        inner = [m for f in fields for m in models_in(f.annotation)]
        if not inner:  # a free mapping (projection.history: input name -> input name): its keys are data
            continue
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            missing += unknown_keys(item, inner, f"{path}[{i}]" if isinstance(value, list) else path)
    return missing


# --------------------------------------------------------------------------- the config-reference block
REFERENCE = yaml.safe_load(yaml_blocks(section("Config reference"))[0])
SECTION_MODELS = {"season": SeasonConfig, "output": OutputConfig, "adjuster": AdjusterConfig, "limits": LimitsConfig,
                  "settlement": SettlementConfig, "projection": ProjectionConfig}


def test_the_reference_block_documents_every_section_of_a_run_config():
    assert set(REFERENCE) == {"season", "inputs", "products", "adjuster", "output", "limits", "settlement",
                              "projection"}


@pytest.mark.parametrize("name", sorted(SECTION_MODELS))
def test_every_documented_key_of_a_section_exists_and_its_example_validates(name):
    model = SECTION_MODELS[name]
    assert unknown_keys(REFERENCE[name], [model]) == []
    model.model_validate(REFERENCE[name])


@pytest.mark.parametrize("name", sorted(REFERENCE["inputs"]))
def test_every_documented_input_key_is_a_key_of_its_readers_spec(name):
    spec = get_reader(name).Spec
    assert unknown_keys(REFERENCE["inputs"][name], [spec]) == [], f"inputs.{name}"
    spec.model_validate(REFERENCE["inputs"][name])  # the documented example values are accepted


def reading_options_table() -> set[str]:
    """The keys of the "Reading the insurer's own files" table (shared by every table input)."""
    start = README.index("**Reading the insurer's own files.**")
    table = README[start:README.index("\n\n", README.index("| key |", start))]
    return set(re.findall(r"^\| `(\w+)` \|", table, re.M))


def test_every_registered_reader_is_in_the_reference_block():
    from panen.engine.registry import readers

    assert set(readers()) - set(REFERENCE["inputs"]) == set()


@pytest.mark.parametrize("name", sorted(REFERENCE["inputs"]))
def test_every_key_of_a_readers_spec_is_documented(name):
    spec = get_reader(name).Spec
    shared = set(TableReading.model_fields) - {"path"} if issubclass(spec, TableReading) else set()
    assert set(spec.model_fields) - set(REFERENCE["inputs"][name]) - shared == set(), f"inputs.{name}"


def test_the_reading_options_table_documents_exactly_the_shared_keys_and_its_example_validates():
    assert reading_options_table() == set(TableReading.model_fields) - {"path"}
    start = README.index("**Reading the insurer's own files.**")
    example = yaml.safe_load(yaml_blocks(README[start:])[0])["inputs"]
    assert set(example) == {"policies", "assessments", "yields"}
    for name, section_ in example.items():
        spec = get_reader(name).Spec
        assert issubclass(spec, TableReading)
        assert set(section_) <= set(spec.model_fields), f"inputs.{name}"  # `columns` is a free mapping
        spec.model_validate(section_)


def test_the_backtest_sections_documented_keys_exist_and_validate():
    (block,) = yaml_blocks(section("Backtesting, pricing and trigger design"))
    doc = yaml.safe_load(block)
    assert set(doc) == {"pricing", "loss_reference", "design"}
    assert unknown_keys(doc["pricing"], [PricingConfig]) == []
    assert unknown_keys(doc["design"], [DesignConfig]) == []
    assert unknown_keys(doc["loss_reference"], models_in(LossReference)) == []
    PricingConfig.model_validate(doc["pricing"])
    DesignConfig.model_validate(doc["design"])
    TypeAdapter(LossReference).validate_python(doc["loss_reference"])
    # the alternatives the block's comments give validate too
    for alternative in re.findall(r"# or (\{.*?\})", block):
        parsed = yaml.safe_load(alternative)
        target = ({"risk_load": parsed} if "factor" in parsed else parsed)
        (PricingConfig.model_validate(target) if "risk_load" in target
         else TypeAdapter(LossReference).validate_python(target))


# --------------------------------------------------------------------------- term sheets
#: Placeholders the prose uses inside backticks (not keys): schedule entries, a year range, a column name.
PLACEHOLDERS = {"r1", "r2", "first", "last", "true", "expected"}
#: Register columns a term names as a requirement.
COLUMNS = set(REGISTER_REQUIRED_COLUMNS) | set(REGISTER_OPTIONAL_COLUMNS)


def words(code: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))


def term_sheet_texts() -> dict[str, str]:
    text = section("Config reference")
    weather = text[text.index("**Weather-index term sheet**"):text.index("Load-time checks")]
    area = text[text.index("**Area-yield term sheet**"):text.index("**NDVI term sheet**")]
    ndvi = text[text.index("**NDVI term sheet**"):text.index("`panen triggers` prints")]
    return {"weather_index": weather, "area_yield": area, "ndvi": ndvi}


@pytest.mark.parametrize("trigger", ["weather_index", "area_yield", "ndvi"])
def test_every_name_in_a_term_sheets_documentation_is_a_key_or_value_of_its_models(trigger):
    plugin = get_trigger(trigger)
    specs = [get_reader(name).Spec for name in plugin.inputs]  # a term may name a key of its input's section
    known = vocabulary(plugin.Params, Terms, PremiumTerms, *specs) | COLUMNS | PLACEHOLDERS
    documented = set().union(*(words(code) for code in re.findall(r"`([^`]+)`", term_sheet_texts()[trigger])))
    assert documented - known == set()


def test_the_weather_tables_first_column_names_only_top_level_keys():
    rows = [r for r in term_sheet_texts()["weather_index"].splitlines() if r.startswith("| `")]
    keys = {w for r in rows for code in re.findall(r"`([^`]+)`", r.split("|")[1]) for w in words(code)}
    params = get_trigger("weather_index").Params
    assert keys - set(params.model_fields) == set()
    assert set(params.model_fields) - keys == {"trigger"}  # every key has a row (trigger: in the heading)


@pytest.mark.parametrize("trigger", ["area_yield", "ndvi"])
def test_every_key_of_a_built_in_term_sheet_is_documented(trigger):
    params = get_trigger(trigger).Params
    documented = set().union(*(words(code) for code in re.findall(r"`([^`]+)`", term_sheet_texts()[trigger])))
    base = {"id", "trigger", "sum_insured_per_ha", "anchor", "terms", "premium"}  # documented once, in the weather table
    assert set(params.model_fields) - base - documented == set()


def test_every_key_of_the_premium_section_is_documented_in_the_weather_table():
    documented = set().union(*(words(code) for code in re.findall(r"`([^`]+)`", term_sheet_texts()["weather_index"])))
    assert vocabulary(PremiumTerms) - documented == set()


def test_the_premiums_paragraph_states_the_documented_example():
    text = section("Config reference")
    premiums = text[text.index("**Premiums.**"):text.index("**Area-yield term sheet**")]
    for figure in ("1,102,500", "1,139,500", "944,200", "180,000 = 144,000 +"):
        assert figure in premiums


def test_every_documented_deductible_kind_is_a_terms_rule():
    weather = term_sheet_texts()["weather_index"]
    kinds = {k.strip() for m in re.findall(r"kind: ([a-z_ \\|]+)", weather) for k in m.split("\\|")}
    assert kinds == vocabulary(Terms) & {"straight", "franchise", "unconditional", "percent_of_loss", "time_excess",
                                         "dynamic"}
    assert kinds == {str(v) for m in models_in(Terms.model_fields["deductible"].annotation)
                     for v in literals_in(m.model_fields["kind"].annotation)}


# --------------------------------------------------------------------------- documented keys have their effect
@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    from panen.datasets.synthetic import generate_demo_region

    d = tmp_path_factory.mktemp("reference")
    generate_demo_region(d / "data", n_districts=8, n_farmers=1500)
    return d


def rain_config(region: Path, folder: Path, *, rainfall: dict | None = None, product: dict | None = None,
                output: dict | None = None, settlement: dict | bool | None = None) -> Path:
    """A rain-only run on the small region (the demo's rain term sheet), with extra keys
    (``settlement``: the section, when given)."""
    demo = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "demo.yaml").read_text())
    data = region / "data"
    cfg = {
        "season": demo["season"],
        "inputs": {"districts": {"path": str(data / "districts.gpkg")},
                   "rainfall": {"path": str(data / "rainfall.zarr"), "units": "mm/day", **(rainfall or {})},
                   "policies": {"path": str(data / "policies.csv")}},
        "products": [{**next(p for p in demo["products"] if p["id"] == "rain"), **(product or {})}],
        "output": {"dir": str(folder / "out"), **(output or {})},
        **({} if settlement is None else {"settlement": settlement}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "run.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def test_inputs_rainfall_min_valid_fraction_makes_a_thin_day_missing_for_every_product(region, tmp_path):
    """Set at the input, the share masks every product's days; the product's own share still applies on top."""
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch

    def run(name, **kw):
        return run_batch(load_config(rain_config(region, tmp_path / name, **kw)), None)

    lenient = run("lenient", product={"min_valid_fraction": 0.0})           # the product takes any data
    masked = run("masked", product={"min_valid_fraction": 0.0}, rainfall={"min_valid_fraction": 0.99})
    strict = run("strict", product={"min_valid_fraction": 0.99})            # the same share, set on the product

    series, valid = masked.series["rainfall"]["mean"], masked.series["rainfall"]["valid_fraction"]
    thin = (valid < 0.99).values
    assert thin.any() and (valid.values[thin] > 0).any()  # days with some data, but too little
    assert series.isnull().values[thin].all()              # ... are missing in the district series
    assert lenient.series["rainfall"]["mean"].notnull().values[thin & (valid.values > 0)].all()

    flagged = {k: int(r.results["rain"]["flagged"].sum()) for k, r in
               {"lenient": lenient, "masked": masked, "strict": strict}.items()}
    assert flagged["masked"] > flagged["lenient"]
    # the input-level share acts as the product-level one would: the same districts and cohorts flagged and paid
    for var in ("payout_rate", "flagged"):
        np.testing.assert_array_equal(masked.results["rain"][var].values, strict.results["rain"][var].values)
    withheld = {k: int((r.ledger.to_pandas()["status"] == "withheld_missing_data").sum())
                for k, r in {"lenient": lenient, "masked": masked}.items()}
    assert withheld["masked"] > withheld["lenient"]


def test_output_formats_and_payments_by_change_what_is_written(region, tmp_path):
    from panen.engine.cli import main

    p = rain_config(region, tmp_path / "csv", output={"formats": ["csv"], "payments_by": "farmer"})
    assert main(["run", str(p), "--quiet"]) == 0
    out = tmp_path / "csv" / "out"
    assert (out / "payouts.csv").exists() and not (out / "payouts.parquet").exists()
    assert set(pd.read_csv(out / "payments.csv")["payee_type"]) == {"farmer"}
    p = rain_config(region, tmp_path / "group", output={"formats": ["parquet"], "payments_by": "group"})
    assert main(["run", str(p), "--quiet"]) == 0
    out = tmp_path / "group" / "out"
    assert (out / "payouts.parquet").exists() and not (out / "payouts.csv").exists()
    assert set(pd.read_csv(out / "payments.csv")["payee_type"]) == {"group"}


# --------------------------------------------------------------------------- the named-peril wording
def test_every_key_of_the_named_peril_wording_is_documented():
    """Every key of a wording file (``configs/autp.yaml``'s model, nested models included) is
    named in the README's wording table, and every key the table names exists."""
    from panen.engine.perils.adjuster import Wording

    text = section("The AUTP adjuster and index vs indemnity")
    table = text[text.index("### The wording file, key by key"):text.index("**Rules, as written.**")]
    documented = set().union(*(words(code) for code in re.findall(r"`([^`]+)`", table)))
    keys: set[str] = set()
    todo, seen = [Wording], set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        keys |= set(m.model_fields)
        for f in m.model_fields.values():
            todo.extend(models_in(f.annotation))
    assert keys - documented == set()
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    cells = [re.split(r"(?<!\\)\|", r)[1] for r in rows]  # a "\|" inside a cell is not a cell border
    top = {w for cell in cells for code in re.findall(r"`([^`]+)`", cell) for w in words(code)}
    assert top == set(Wording.model_fields)


def test_terms_rounding_and_instalments_change_the_payouts_and_the_payments_they_reconcile_with(region, tmp_path):
    """A real run: net payouts in whole Rp 1,000, paid in three instalments two months apart;
    payments.csv still sums to the ledger's net payouts and the summary's total, and a rerun
    writes the same bytes. The settlement store does not record instalments yet, so the run
    pays them unrecorded (settlement: false); with the store on (the default) it is refused."""
    from panen.engine.cli import main

    demo = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "demo.yaml").read_text())
    terms = {"deductible": {"kind": "straight", "rate": 0.01}, "rounding": {"unit": 1000},
             "instalments": {"count": 3, "every_months": 2}}
    refused = rain_config(region, tmp_path / "recorded", product={"terms": terms}, output={"formats": ["csv"]})
    assert main(["run", str(refused), "--quiet"]) == 2
    assert not (tmp_path / "recorded" / "out").exists()
    outs = []
    for name in ("a", "b"):
        p = rain_config(region, tmp_path / name, product={"terms": terms}, output={"formats": ["csv"]},
                        settlement=False)
        assert main(["run", str(p), "--quiet"]) == 0
        outs.append(tmp_path / name / "out")
    out = outs[0]
    led = pd.read_csv(out / "payouts.csv")
    pay = pd.read_csv(out / "payments.csv", dtype={"due_date": str})
    summary = pd.read_csv(out / "summary.csv")
    paid = led[led["net_payout"] > 0]
    assert len(paid) > 0 and (led["net_payout"] % 1000 == 0).all()
    # 1 % of each policy's sum insured is the deductible wherever the gross exceeds it
    big = led[led["gross_payout"] > led["sum_insured"] // 50]
    assert (big["deductible"] == (big["sum_insured"] + 50) // 100).all()
    assert int(pay["amount"].sum()) == int(led["net_payout"].sum()) == \
        int(summary.loc[summary["level"] == "total", "net_payout"].iloc[0])
    assert set(pay["instalment"]) == {1, 2, 3}
    end = date.fromisoformat(str(demo["season"]["end"]))
    first = pay[pay["instalment"] == 1]["due_date"].unique().tolist()
    assert first == [end.isoformat()]
    assert pay["payment_id"].str.fullmatch(r"[0-9a-f]{16}/[123]").all()
    assert (outs[0] / "payments.csv").read_bytes() == (outs[1] / "payments.csv").read_bytes()
    assert (outs[0] / "payouts.csv").read_bytes() == (outs[1] / "payouts.csv").read_bytes()
