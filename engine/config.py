"""Run configuration: YAML loaded safely, validated by pydantic, every problem listed at once.

The shape is documented in the README ("Config reference"): ``season``, ``inputs``, ``products``,
``output``, ``adjuster``, and the backtest's analysis sections ``pricing``,
``loss_reference`` and ``design`` (read by ``panen backtest`` only; the seasonal
``panen run`` validates and then ignores them). Unknown keys are errors everywhere
(``extra="forbid"``), relative paths resolve against the config file's folder, and each
product's term sheet is validated by the model of the trigger plugin it names — looked up
in the entry-point registry, never by an if/elif over product names. Problems carry their
key path and, where the YAML has one, the line number.
"""

from __future__ import annotations

import datetime as dt
import glob
import math
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from panen.engine.api import InputSpec, ProductParams
from panen.engine.errors import ConfigError, PluginError, Problem
from panen.engine.infra.yamlio import dotted as _dotted
from panen.engine.infra.yamlio import load_located_yaml
from panen.engine.infra.yamlio import nearest_line as _nearest_line
from panen.engine.infra.yamlio import pydantic_message as _msg
from panen.engine.registry import get_reader, get_trigger
from panen.engine.maths.premium import PremiumTerms
from panen.engine.maths.terms import Terms
from panen.engine.maths.yieldhistory import BestOfNormal, MeanNormal

__all__ = ["RunConfig", "load_config", "parse_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: Calendar years a season may fall in (as the NDVI baseline's): far beyond any rainfall or
#: satellite record, inside what datetime64[ns] time axes can hold (1677..2262).
_FIRST_YEAR, _LAST_YEAR = 1900, 2200


class SeasonConfig(_Strict):
    """The season being settled (``season:``); its dates and harvest year in 1900..2200."""

    id: str = Field(min_length=1, description="season label, e.g. 2024-MT1")
    start: dt.date = Field(ge=dt.date(_FIRST_YEAR, 1, 1), le=dt.date(_LAST_YEAR, 12, 31),
                           description="first day of the season")
    end: dt.date = Field(ge=dt.date(_FIRST_YEAR, 1, 1), le=dt.date(_LAST_YEAR, 12, 31),
                         description="last day of the season")
    year: int | None = Field(None, ge=_FIRST_YEAR, le=_LAST_YEAR,
                             description="harvest year for yields (default: the year of end)")

    @model_validator(mode="after")
    def _ordered(self) -> "SeasonConfig":
        if self.end <= self.start:
            raise ValueError(f"season end ({self.end}) must be after its start ({self.start})")
        return self

    @property
    def harvest_year(self) -> int:
        return self.year if self.year is not None else self.end.year


class Inputs(Mapping[str, InputSpec]):
    """``inputs:`` — one section per input name, each validated by the reader registered for it.

    A mapping of input name → the reader's ``Spec`` (paths made absolute). Attribute access
    gives ``None`` for an input that is not configured (``config.inputs.rainfall``).
    """

    def __init__(self, specs: Mapping[str, InputSpec] | None = None) -> None:
        self._specs: dict[str, InputSpec] = dict(specs or {})

    def __getitem__(self, name: str) -> InputSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __getattr__(self, name: str) -> InputSpec | None:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._specs.get(name)

    def __repr__(self) -> str:
        return f"Inputs({self._specs!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Inputs) and self._specs == other._specs

    def without(self, *names: str) -> Inputs:
        """A copy without the named inputs."""
        return Inputs({k: v for k, v in self._specs.items() if k not in names})


class OutputConfig(_Strict):
    """``output:`` — where and how results are written."""

    dir: Path | None = Field(None, description="output folder (the CLI's --out wins)")
    formats: list[Literal["parquet", "csv"]] = Field(["parquet", "csv"], min_length=1)
    payments_by: Literal["farmer", "group"] = Field(
        "farmer", description="aggregate payable amounts per farmer, or per farmer group (kelompok tani)"
    )


class SettlementConfig(_Strict):
    """``settlement:`` — record each published batch in the settlement store and pay only the difference.

    On by default: a ``panen run`` that publishes an output folder asks the store
    (:mod:`panen.engine.settlement.store`) what each payee was already paid this season;
    ``payments.csv`` then holds only what is still owed (top-ups), ``recoveries.csv`` the
    overpayments, and the batch is recorded (every published batch is, so no payment leaves
    panen unrecorded). Absent (or ``settlement: {}``) means these defaults. ``settlement:
    false`` (or ``panen run --no-settlement``) turns it off for a what-if run: it pays every
    payee's full amount and records nothing, since a what-if run must never enter the record
    of what was paid. A compute-only run (no output folder) records nothing either way.
    """

    url: str | None = Field(None, description="the store: a file path, sqlite:///PATH or postgresql+psycopg://...; "
                                              "default: panen-settlement.sqlite beside the output folder")
    # an on_account batch is an in-season run's (panen run --as-of DATE, which makes it the
    # default kind): it pays a share of the guaranteed minimum (engine/pipeline/inseason.py)
    kind: Literal["on_account", "final", "correction"] = Field(
        "final", description="the batch's kind: on_account (in season, with --as-of; the default there), final "
                             "settlement, or a correction of a committed batch")
    corrects: str | None = Field(None, description="the committed batch id a correction corrects (kind: correction)")
    on_account_share: float = Field(
        1.0, gt=0, le=1, description="share of the guaranteed minimum an on-account batch pays [fraction]; "
                                     "default 1: all of it (no clawback risk by construction)")

    @model_validator(mode="after")
    def _corrects_with_correction(self) -> "SettlementConfig":
        if self.kind == "correction" and not self.corrects:
            raise ValueError("kind: correction names the batch it corrects (corrects: BATCH_ID)")
        if self.kind != "correction" and self.corrects:
            raise ValueError("corrects is only for kind: correction")
        if "on_account_share" in self.model_fields_set and "kind" in self.model_fields_set \
                and self.kind != "on_account":
            raise ValueError(f"on_account_share is only for an on-account batch (kind: on_account); got kind: "
                             f"{self.kind}")
        return self


def _settlement_form(value: Any) -> str | None:
    if value is False:
        return "off"
    return "store" if isinstance(value, (dict, SettlementConfig)) else None


#: ``settlement:`` as written: a section (the store, with its settings) or ``false`` (no store).
SettlementSection = Annotated[
    Annotated[SettlementConfig, Tag("store")] | Annotated[Literal[False], Tag("off")],
    Discriminator(_settlement_form, custom_error_type="settlement_section",
                  custom_error_message="settlement is a section ({url, kind, corrects}; {} for the defaults) "
                                       "or false (a what-if run: no settlement store, nothing recorded)")]
class ProjectionConfig(_Strict):
    """``projection:`` — project open windows with past years' weather in an in-season run (``--as-of``).

    Each day after the as-of date is filled with each analogue year's day of the same
    day-of-season offset, as FEWS NET's extended WRSI completes a season with the
    historical record (:mod:`panen.engine.research.projection`).
    """

    history: dict[str, str] = Field(
        min_length=1, description="input a product reads → the input under inputs: holding its past years, e.g. "
                                  "{rainfall: rainfall_history} (or {rainfall: rainfall} when one archive holds both)")
    years: tuple[int, int] = Field(description="first and last analogue year [harvest years], before the season's")
    min_years: int = Field(10, ge=1, description="usable analogue years a district needs for its projection; with "
                                                 "fewer its row is flagged and carries no figures")

    @model_validator(mode="after")
    def _years(self) -> "ProjectionConfig":
        first, last = self.years
        if not _FIRST_YEAR <= first <= last <= _LAST_YEAR:
            raise ValueError(f"years must be [first, last] with {_FIRST_YEAR} <= first <= last <= {_LAST_YEAR}; "
                             f"got {list(self.years)}")
        if self.min_years > last - first + 1:
            raise ValueError(f"min_years ({self.min_years}) is more than the {last - first + 1} year(s) of years "
                             f"{list(self.years)}")
        return self


class AdjusterConfig(_Strict):
    """``adjuster:`` — a named-peril cover settled from field loss assessments (e.g. AUTP)."""

    wording: Path = Field(description="policy wording file, e.g. configs/autp.yaml")
    endorsements: list[str] | None = Field(
        None, description="endorsements attached to the wording: names of its endorsement_options (e.g. "
                          "programme) or peril codes of special exclusions; replaces the wording's own list")


# --------------------------------------------------------------------------- backtest analysis sections
class StdRiskLoad(_Strict):
    """Standard-deviation principle risk load: ``factor × sd`` of the payout-rate history."""

    kind: Literal["std"] = Field(description="std: factor × sample standard deviation of the payout rates")
    factor: float = Field(ge=0, description="multiple of the standard deviation added to the rate [1]")


class TailRiskLoad(_Strict):
    """Tail risk load: ``factor × max(VaR_q − mean, 0)`` of the payout-rate history."""

    kind: Literal["tail"] = Field(description="tail: factor × (q-quantile − mean) of the payout rates")
    quantile: float = Field(gt=0, lt=1, description="quantile q of the payout-rate history [0..1], e.g. 0.95")
    factor: float = Field(ge=0, description="multiple of the quantile's excess over the mean [1]")


RiskLoad = Annotated[StdRiskLoad | TailRiskLoad, Field(discriminator="kind")]


class PricingConfig(_Strict):
    """``pricing:`` — burn cost, loadings, subsidy split and tail of ``panen backtest`` (burn cost and loadings as in the World Bank's index insurance pricing guidance)."""

    expense_loading: float = Field(0.25, ge=0, description="expense loading [fraction of the pure rate], 25 % → 0.25")
    profit_loading: float = Field(0.10, ge=0, description="profit loading [fraction of the pure rate]")
    risk_load: RiskLoad | None = Field(
        None, description="null | {kind: std, factor} | {kind: tail, quantile, factor}: added once to the gross rate")
    subsidy_share: float = Field(0.8, ge=0, le=1, description="government share of the premium [fraction] (AUTP "
                                                               "0.8) of every product whose term sheet gives no "
                                                               "premium.subsidy_share")
    detrend: bool = Field(False, description="remove a linear trend from each district's payout-rate history first")
    return_periods: list[float] = Field(
        default_factory=lambda: [5.0, 10.0, 20.0], min_length=1,
        description="return periods N of the 1-in-N year portfolio payouts [years], each > 1")
    pml_return_period: float | None = Field(
        None, gt=1, description="return period of the probable maximum loss [years] (default: the largest of "
                                "return_periods)")

    @field_validator("return_periods")
    @classmethod
    def _periods(cls, v: list[float]) -> list[float]:
        if any(not x > 1 for x in v):
            raise ValueError(f"return periods must be > 1 year; got {v}")
        return sorted(set(v))

    @property
    def pml_period(self) -> float:
        return self.pml_return_period if self.pml_return_period is not None else max(self.return_periods)


#: The area-yield trigger's ``mean`` and ``best_of`` normal yields (no ``given``: a loss history has no expected column).
LossNormal = Annotated[MeanNormal | BestOfNormal, Field(discriminator="method")]


class YieldsLossReference(_Strict):
    """Realised district loss rate from the yields history (``inputs.yields``).

    loss = clip((T − A) / T, 0, 1) with T = indemnity_level × normal yield of the
    preceding years and A the season's (harvest year's) yield; NaN when either is missing.
    """

    source: Literal["yields"] = Field("yields", description="yields: shortfall from inputs.yields")
    indemnity_level: float = Field(1.0, gt=0, le=1, description="T = level × normal yield [fraction]")
    normal: LossNormal = Field(default_factory=lambda: MeanNormal(method="mean", years=5),
                               description="{method: mean, years} | {method: best_of, best, of}")
    min_years: int | None = Field(None, ge=1, description="available history years needed (default: the window)")
    yield_season: str | None = Field(None, description="value of the yields table's season column to use")
    loss_threshold: float = Field(0.0, ge=0, lt=1, description="a loss season has loss > this [fraction]")

    @model_validator(mode="after")
    def _min_years(self) -> "YieldsLossReference":
        if self.min_years is not None and self.min_years > self.normal.window:
            raise ValueError(f"min_years must be between 1 and the history window ({self.normal.window}); "
                             f"got {self.min_years}")
        return self


class FileLossReference(_Strict):
    """Realised district loss rates read from a table: ``district_id, season, loss``."""

    source: Literal["file"] = Field("file", description="file: a CSV/Parquet of district_id, season, loss")
    path: Path = Field(description="table with district_id, season [harvest year], loss [fraction 0..1]")
    loss_threshold: float = Field(0.0, ge=0, lt=1, description="a loss season has loss > this [fraction]")


def _loss_reference_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("source") or ("file" if "path" in value else "yields"))
    return getattr(value, "source", None)


LossReference = Annotated[
    Annotated[YieldsLossReference, Tag("yields")] | Annotated[FileLossReference, Tag("file")],
    Discriminator(_loss_reference_kind, custom_error_type="loss_reference_source",
                  custom_error_message="loss_reference needs source: yields (with the yields input) or a path "
                                       "to a table of district_id, season, loss")]


class DesignConfig(_Strict):
    """``design:`` — the trigger-design search of ``panen backtest`` (products whose plugin can be redesigned)."""

    objective: Literal["hedging_effectiveness", "missed_loss_years"] = Field(
        "hedging_effectiveness", description="maximise hedging effectiveness, or minimise the missed loss-year share")
    by: Literal["product", "zone", "district"] = Field(
        "product", description="one design per product, per zone of `zones`, or per district")
    zones: dict[str, str] | Path | None = Field(
        None, description="by: zone — {district_id: zone}, or a CSV/Parquet of district_id, zone")
    max_premium_rate: float | None = Field(None, gt=0, description="cap on the gross premium rate [fraction]")
    min_payout_frequency_in_worst: float | None = Field(
        None, ge=0, le=1, description="least share of the worst loss seasons paying > meaningful_rate [fraction]")
    worst_share: float = Field(0.10, gt=0, le=1,
                               description="the worst seasons: this share of each district's seasons [fraction]")
    meaningful_rate: float = Field(0.05, ge=0, lt=1, description="a payout above this rate is meaningful [fraction]")

    @field_validator("zones", mode="before")
    @classmethod
    def _zones_as_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(z) for k, z in v.items()}
        return v

    @model_validator(mode="after")
    def _zones(self) -> "DesignConfig":
        if self.by == "zone" and self.zones is None:
            raise ValueError("by: zone needs zones ({district_id: zone} or a table path)")
        if self.by != "zone" and self.zones is not None:
            raise ValueError(f"zones only apply to by: zone, not by: {self.by}")
        return self


class LimitsConfig(_Strict):
    """``limits:`` — plausibility bounds of a policy row; rows beyond them are rejected, never paid."""

    max_area_ha: float = Field(1_000.0, gt=0, description="largest area of one policy [ha]")
    max_sum_insured: int = Field(10_000_000_000, gt=0, description="largest sum insured of one policy [Rp]")
    max_sum_insured_per_ha: int = Field(100_000_000, gt=0, description="largest sum insured per hectare [Rp/ha]")


class _RunModel(_Strict):
    season: SeasonConfig
    inputs: dict[str, Any]
    products: list[dict[str, Any]] = Field(default_factory=list)
    adjuster: AdjusterConfig | None = None
    output: OutputConfig = OutputConfig()
    limits: LimitsConfig = LimitsConfig()
    settlement: SettlementSection | None = None  # absent or empty: the store's defaults; false: no store
    projection: ProjectionConfig | None = None
    pricing: PricingConfig | None = None
    loss_reference: LossReference | None = None
    design: DesignConfig | None = None


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration.

    Attributes
    ----------
    path
        The config file (``None`` when parsed from a mapping).
    season, inputs, output
        Validated sections, with input paths made absolute.
    products
        Each product's validated term sheet (the plugin's ``Params`` model), in config order.
    terms
        Validated policy terms per product id (``None`` when a product has none).
    premiums
        Validated ``premium:`` section per product id (``None`` when a product has none).
    sha256
        Hash of the config file's bytes, for the manifest.
    settlement
        The ``settlement:`` section; its defaults when the config has none (every published
        batch is recorded). ``None``: no settlement store (``settlement: false``, and always
        for a backtest, which pays nobody): every payee is paid in full, nothing recorded.
    projection
        The ``projection:`` section (``None``: an in-season run projects nothing).
    pricing, loss_reference, design
        The backtest's analysis sections (``None`` when absent), paths made absolute;
        ``panen run`` ignores them.
    """

    path: Path | None
    season: SeasonConfig
    inputs: Inputs
    output: OutputConfig
    products: tuple[ProductParams, ...]
    terms: dict[str, Terms | None] = field(default_factory=dict)
    premiums: dict[str, PremiumTerms | None] = field(default_factory=dict)
    sha256: str = ""
    adjuster: Any = None  # the validated named-peril wording (panen.engine.perils.adjuster.Wording), if configured
    adjuster_path: Path | None = None
    pricing: PricingConfig | None = None
    loss_reference: YieldsLossReference | FileLossReference | None = None
    design: DesignConfig | None = None
    purpose: Literal["run", "backtest"] = "run"
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    settlement: SettlementConfig | None = field(default_factory=SettlementConfig)
    projection: ProjectionConfig | None = None


# --------------------------------------------------------------------------- loading
def load_config(path: str | Path, *, purpose: Literal["run", "backtest"] = "run") -> RunConfig:
    """Load and validate a run config file.

    ``purpose="backtest"`` does not require a policy register (a backtest weighs its
    portfolio by the register's exposure when there is one, else by district); every other
    rule holds.

    Raises
    ------
    ConfigError
        With every problem found (file, line, key path), for malformed YAML, unknown keys,
        out-of-range parameters, unknown triggers, missing inputs or input files.
    """
    doc = load_located_yaml(path, what="config")
    return parse_config(doc.data, base_dir=doc.path.parent, source=doc.path, lines=doc.lines, sha256=doc.sha256,
                        purpose=purpose)


def parse_config(data: Any, *, base_dir: Path | str = ".", source: Path | None = None,
                 lines: dict[tuple, int] | None = None, sha256: str = "",
                 purpose: Literal["run", "backtest"] = "run") -> RunConfig:
    """Validate a config mapping (already parsed from YAML); see :func:`load_config`."""
    lines = lines or {}
    base_dir = Path(base_dir)
    problems: list[Problem] = []

    def add(loc: tuple, msg: str) -> None:
        problems.append(Problem(msg, file=source, row=_nearest_line(lines, loc), key=_dotted(loc) or None))

    if not isinstance(data, dict):
        raise ConfigError(Problem("config must be a YAML mapping with season, inputs and products", file=source))
    try:
        model = _RunModel.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            if err["loc"][:1] == ("products",) and len(err["loc"]) > 2:
                continue  # product term sheets are validated below, by their plugins
            add(_untag(tuple(err["loc"]), data), _msg(err))
        model = None

    products: list[ProductParams] = []
    terms: dict[str, Terms | None] = {}
    premiums: dict[str, PremiumTerms | None] = {}
    raw_products = data.get("products") or []
    if not isinstance(raw_products, list):
        raw_products = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_products):
        loc = ("products", i)
        if not isinstance(raw, dict):
            add(loc, "each product must be a mapping with id and trigger")
            continue
        pid = raw.get("id")
        label = f"product {pid!r}" if pid else f"product #{i + 1}"
        if pid in seen:
            add(loc + ("id",), f"{label}: duplicate product id (also products[{seen[pid]}])")
        elif pid:
            seen[pid] = i
        name = raw.get("trigger")
        if not name:
            add(loc + ("trigger",), f"{label}: 'trigger' is required")
            continue
        try:
            plugin = get_trigger(str(name))
        except PluginError as exc:
            add(loc + ("trigger",), f"{label}: {exc}")
            continue
        valid = True
        try:
            params = plugin.Params.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                add(loc + _untag(tuple(err["loc"]), raw), f"{label}: {_msg(err)}")
            valid = False
        else:
            for sub, value in _non_finite(params):  # a plugin's own nested model may allow them; a config never
                if sub[:1] not in (("terms",), ("premium",)):  # their models say so themselves, below
                    add(loc + sub, f"{label}: must be a finite number (got {value!r})")
                    valid = False
        raw_terms = raw.get("terms")
        product_terms = None
        if isinstance(raw_terms, dict) and raw_terms:  # checked even when the term sheet is not: every problem at once
            try:
                product_terms = Terms.model_validate(raw_terms)
            except ValidationError as exc:
                for err in exc.errors():
                    add(loc + ("terms",) + _untag(tuple(err["loc"]), raw_terms), f"{label}: {_msg(err)}")
                valid = False
        raw_premium = raw.get("premium")
        product_premium = None
        if isinstance(raw_premium, dict) and raw_premium:
            try:
                product_premium = PremiumTerms.model_validate(raw_premium)
            except ValidationError as exc:
                for err in exc.errors():
                    add(loc + ("premium",) + _untag(tuple(err["loc"]), raw_premium), f"{label}: {_msg(err)}")
                valid = False
        if valid:
            terms[params.id] = product_terms
            premiums[params.id] = product_premium
            products.append(params)

    # every input section is checked (by the reader registered for its name), even when
    # another section is broken, so that every problem is listed at once
    inputs = _parse_inputs(data.get("inputs"), base_dir, add)
    if model is not None:
        for i, params in enumerate(products):
            label = f"product {params.id!r} (trigger {params.trigger})"
            for need in get_trigger(params.trigger).required_inputs(params):
                if need not in inputs:
                    add(("inputs",), f"{label} needs inputs.{need}")
        if purpose == "run" and products and inputs.policies is None:
            add(("inputs",), "inputs.policies is required to settle products")
        _require_polygons(products, inputs, add)
        for i, params in enumerate(products):
            if params.sum_insured_per_ha > model.limits.max_sum_insured_per_ha:
                add(("products", i, "sum_insured_per_ha"),
                    f"product {params.id!r}: sum_insured_per_ha {params.sum_insured_per_ha:,} is above the plausible "
                    f"maximum of {model.limits.max_sum_insured_per_ha:,} Rp/ha (limits.max_sum_insured_per_ha)")
        wording = None
        if model.adjuster is not None:
            wpath = model.adjuster.wording
            wpath = wpath if wpath.is_absolute() else (base_dir / wpath)
            from panen.engine.perils.adjuster import load_wording

            try:
                wording = load_wording(wpath)
            except ConfigError as exc:
                problems.extend(exc.problems)
            if wording is not None and model.adjuster.endorsements is not None:
                try:
                    wording = wording.with_endorsements(model.adjuster.endorsements)
                except ConfigError as exc:  # located in the run config, not the wording file
                    for p in exc.problems:
                        at = p.key.replace("endorsements", "", 1) if p.key and p.key.startswith("endorsements") \
                            else ""
                        add(("adjuster", "endorsements", *([int(at.strip("[]"))] if at.startswith("[") else [])),
                            p.message)
            if inputs.assessments is None:
                add(("inputs",), "inputs.assessments (field loss assessments) is required by the adjuster")
            if purpose == "run" and inputs.policies is None:
                add(("inputs",), "inputs.policies is required by the adjuster")
            if wording is not None and wording.id in seen:
                add(("adjuster",), f"the adjuster's wording id {wording.id!r} is also a product id")
        if not raw_products and model.adjuster is None:
            add(("products",), "at least one product (or an adjuster) is required")
        loss_reference, design = _resolve_analysis(model, inputs, base_dir, add)
        _check_projection(model, products, inputs, add)
    if problems:
        raise ConfigError(problems)
    assert model is not None
    output = model.output
    if output.dir is not None and not output.dir.is_absolute():
        output = output.model_copy(update={"dir": (base_dir / output.dir).resolve()})
    return RunConfig(path=source, season=model.season, inputs=inputs, output=output,
                     products=tuple(products), terms=terms, premiums=premiums, sha256=sha256, adjuster=wording,
                     adjuster_path=(base_dir / model.adjuster.wording) if model.adjuster else None,
                     pricing=model.pricing, loss_reference=loss_reference, design=design, purpose=purpose,
                     limits=model.limits, settlement=_settlement_of(model.settlement, purpose),
                     projection=model.projection)


def _settlement_of(section: SettlementConfig | bool | None, purpose: str) -> SettlementConfig | None:
    """The store's settings: on by default (every published batch recorded); off when the config
    says ``settlement: false`` (a what-if run) and for a backtest (it replays seasons, pays nobody)."""
    if purpose == "backtest" or section is False:
        return None
    return section if isinstance(section, SettlementConfig) else SettlementConfig()



def _check_projection(model: _RunModel, products: list[ProductParams], inputs: Inputs, add) -> None:
    """``projection.history`` maps inputs products read to configured inputs; its years precede the season's."""
    proj = model.projection
    if proj is None:
        return
    read = {n for p in products for n in get_trigger(p.trigger).required_inputs(p)}
    for name, source in proj.history.items():
        if name not in read:
            add(("projection", "history", name), f"no product reads inputs.{name}: nothing to project with its history "
                                                 f"(products read {', '.join(sorted(read)) or 'no input'})")
        if source not in inputs:
            add(("projection", "history", name), f"the history inputs.{source} is not configured under inputs:")
    if proj.years[1] >= model.season.harvest_year:
        add(("projection", "years"), f"analogue years must be before the season's harvest year "
                                     f"{model.season.harvest_year}; got {list(proj.years)} (a year's weather after the "
                                     f"as-of date is what the projection does not know)")


def _resolve_analysis(model: _RunModel, inputs: Inputs, base_dir: Path, add):
    """The backtest's ``loss_reference`` and ``design`` with paths made absolute and checked."""
    ref = model.loss_reference
    if isinstance(ref, FileLossReference):
        full = ref.path if ref.path.is_absolute() else base_dir / ref.path
        if not full.exists():
            add(("loss_reference", "path"), f"file not found: {full}")
        ref = ref.model_copy(update={"path": full})
    elif isinstance(ref, YieldsLossReference) and inputs.yields is None:
        add(("loss_reference",), "loss_reference (source: yields) needs inputs.yields")
    design = model.design
    if design is not None and isinstance(design.zones, Path):
        full = design.zones if design.zones.is_absolute() else base_dir / design.zones
        if not full.exists():
            add(("design", "zones"), f"file not found: {full}")
        design = design.model_copy(update={"zones": full})
    return ref, design


def _parse_inputs(raw: Any, base_dir: Path, add) -> Inputs:
    """Validate each ``inputs.<name>`` section with its reader's ``Spec``; resolve and check paths."""
    if raw is None:
        return Inputs()
    if not isinstance(raw, dict):
        return Inputs()  # reported by the section model
    specs: dict[str, InputSpec] = {}
    for name, section in raw.items():
        loc = ("inputs", str(name))
        if section is None:
            continue
        try:
            reader = get_reader(str(name))
        except PluginError as exc:
            add(loc, f"unknown input {name!r}: {exc}")
            continue
        if not isinstance(section, dict):
            add(loc, f"inputs.{name} must be a mapping (path: ..., and the reader's options)")
            continue
        try:
            spec = reader.Spec.model_validate(section)
        except ValidationError as exc:
            for err in exc.errors():
                add(loc + _untag(tuple(err["loc"]), section), _msg(err))
            continue
        infinite = _non_finite(spec)
        for sub, value in infinite:
            add(loc + sub, f"must be a finite number (got {value!r})")
        if infinite:
            continue
        specs[str(name)] = _resolve_paths(spec, loc, base_dir, add)
    return Inputs(specs)


def _resolve_paths(spec: InputSpec, loc: tuple, base_dir: Path, add) -> InputSpec:
    """Make a spec's path fields absolute (relative to the config file) and check they exist."""
    update: dict[str, Any] = {}
    for fname in type(spec).path_fields:
        value = getattr(spec, fname, None)
        if value is None:
            continue
        p = Path(value)
        full = p if p.is_absolute() else (base_dir / p)
        if any(ch in str(value) for ch in "*?["):
            if not glob.glob(str(full)):
                add(loc + (fname,), f"no file matches {full}")
        elif not full.exists():
            add(loc + (fname,), f"file not found: {full}")
        update[fname] = str(full) if isinstance(value, str) else full
    return spec.model_copy(update=update)


def _require_polygons(products: list[ProductParams], inputs: Inputs, add) -> None:
    """The district polygons are required exactly when some product needs a grid reduced to districts."""
    districts = inputs.districts
    have_polygons = districts is not None and get_reader("districts")().kind_of(districts) == "polygons"
    if have_polygons:
        return
    for params in products:
        for need in get_trigger(params.trigger).required_inputs(params):
            spec = inputs.get(need)
            if spec is not None and get_reader(need)().kind_of(spec) == "grid":
                what = "a list of ids without geometry" if districts is not None else "not configured"
                add(("inputs", "districts") if districts is not None else ("inputs",),
                    f"inputs.districts (district polygons) is required to reduce the gridded input {need!r} of "
                    f"product {params.id!r} to districts; it is {what}")
                return


# --------------------------------------------------------------------------- helpers
def _non_finite(value: Any, loc: tuple = ()) -> list[tuple[tuple, float]]:
    """Key paths and values of the infinite or NaN numbers a validated model was *given*.

    The general rule behind every model's ``allow_inf_nan=False``, for the models a plugin
    brings (a trigger's nested phase model, a reader's section) which may not declare it.
    Fields left at their default are not given: an open default (``-inf``) is kept.
    """
    found: list[tuple[tuple, float]] = []
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            if name in value.model_fields_set:
                found += _non_finite(getattr(value, name), loc + (info.alias or name,))
        for key, item in (value.model_extra or {}).items():
            found += _non_finite(item, loc + (key,))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found += _non_finite(item, loc + (key,))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += _non_finite(item, loc + (i,))
    elif isinstance(value, float) and not math.isfinite(value):
        found.append((loc, value))
    return found


def _untag(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union tags from an error location, following the data it was raised on.

    ``terms.deductible.percent_of_loss.rate`` → ``terms.deductible.rate``: a part that is
    not a key of the mapping it indexes, with more parts after it, is the name of the union
    member tried, not a key the user wrote (a missing key is the *last* part and is kept).
    """
    out: tuple = ()
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict):
            if part not in node and i < len(loc) - 1:
                continue
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        out += (part,)
    return out
