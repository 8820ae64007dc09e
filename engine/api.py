"""The small engine API that plugins build on: triggers, readers, and what they exchange.

Two kinds of plugin, both registered through entry points (built-ins included, in
``pyproject.toml``) and looked up by name (:mod:`panen.engine.registry`):

**Trigger** (group ``panen.triggers``) — an index product. It declares

* ``name`` — the value of ``trigger:`` in a term sheet;
* ``Params`` — a pydantic model of its term sheet (``extra="forbid"``; constraints are
  checked when the config is loaded, before any data is read);
* ``inputs`` — the names of the run inputs it needs (``"rainfall"``, ``"ndvi"``,
  ``"yields"``, ...; :meth:`Trigger.required_inputs` may choose by term sheet); an input
  that a reader opens as a grid reaches the trigger already reduced to district series by
  :mod:`panen.engine.maths.zonal`, a table as a DataFrame;

and implements :meth:`Trigger.evaluate`, a pure function from :class:`TriggerInputs` to a
:class:`TriggerResult`. The plugin does no I/O and stays lazy on dask input; the engine
decides when to compute, and checks the result once (:func:`standardise_result`,
:func:`check_result_values`) — so a plugin may return only ``payout_rate``. A trigger
whose season rate is a capped sum of phase curves of stored index values may also let the
trigger-design search re-price it: :meth:`Trigger.design_terms` (what may vary: a
:class:`DesignTerms` of :class:`PhaseDesign`), :meth:`Trigger.with_design` (the candidate
term sheet) and :meth:`Trigger.rates_from_index` (its phase rates, by its own curves).

**Reader** (group ``panen.readers``) — a kind of input data. It declares ``name`` (the key
under ``inputs:`` in a run config), ``Spec`` (a pydantic model of that config section) and
implements :meth:`Reader.open` (returns an :class:`OpenedInput`: a lazy grid, district
series, a table, polygons or the policy register) and optionally :meth:`Reader.inspect`
(the header only, for ``panen validate``). A third party adds a kind of data by
registering a reader; nothing in the engine changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from panen.engine.errors import PluginError
from panen.engine.infra.arrowcols import ISO, TextFormat, check_header

__all__ = [
    "ASSESSMENT_COLUMNS",
    "DesignTerms",
    "InputInfo",
    "InputKind",
    "InputSpec",
    "OpenedInput",
    "PHASE_VARIABLES",
    "PhaseDesign",
    "PolicyRegister",
    "ProductParams",
    "REGISTER_KEY_COLUMNS",
    "REGISTER_OPTIONAL_COLUMNS",
    "REGISTER_REQUIRED_COLUMNS",
    "Reader",
    "Season",
    "Trigger",
    "TriggerInputs",
    "TriggerResult",
    "check_guaranteed_rate",
    "check_result_values",
    "standardise_result",
]


# --------------------------------------------------------------------------- term sheets and seasons
class ProductParams(BaseModel):
    """Keys every product term sheet has; plugins subclass this for their own keys.

    ``terms`` and ``premium`` are validated by the engine (:mod:`panen.engine.maths.terms`,
    :mod:`panen.engine.maths.premium`), not by the plugin.
    Unknown keys and infinite or NaN numbers are errors (``extra="forbid"``,
    ``allow_inf_nan=False``; a subclass inherits both). A plugin's nested models should
    declare the same; the run config refuses a non-finite number given to them anyway.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field(min_length=1, description="product id, joined to the policy register's product_id")
    trigger: str = Field(description="registered trigger plugin name")
    sum_insured_per_ha: int = Field(
        gt=0, lt=2**53, description="sum insured [Rp/ha] when the register gives none; below 2**53 (rupiah amounts "
                                    "are exact in float64 only below it, the register's sum_insured bound)")
    anchor: Literal["season_start", "sowing_date"] = Field(
        "season_start", description="what day 0 of the season windows is"
    )
    terms: dict[str, Any] | None = Field(None, description="policy terms (deductible, limit, share)")
    premium: dict[str, Any] | None = Field(
        None, description="premium: rate, subsidy_share, policy_fee, stamp_duty, no_claim_discount, tariff "
                          "(validated by the engine: panen.engine.maths.premium.PremiumTerms)")

    @property
    def sum_insured_factor(self) -> float:
        """Multiplier of every policy's sum insured under this term sheet [fraction] (default 1).

        A product whose policy protection is the stated sum insured scaled by an elected
        factor (ARPI's protection factor, 7 CFR 407.9) overrides this; the ledger then
        settles on ``round(sum insured × factor)`` and payout rates stay in [0, 1].
        """
        return 1.0

    @property
    def reach(self) -> tuple[int, int] | None:
        """Earliest start and latest end of the product's windows [days after the anchor].

        ``None`` (the default): the product may read any time step of its gridded inputs
        (an NDVI climatology reads its baseline years), so the engine reads them whole.
        A product whose windows are fixed offsets from the anchor overrides this, and only
        ``[anchor + start, anchor + end)`` is read.
        """
        return None


@dataclass(frozen=True)
class Season:
    """The season being settled.

    Parameters
    ----------
    id
        Season label, e.g. ``"2024-MT1"``.
    start, end
        First and last day of the season [date].
    year
        Harvest year (for yields); defaults to the year of ``end``.
    """

    id: str
    start: np.datetime64
    end: np.datetime64
    year: int


# --------------------------------------------------------------------------- inputs
InputKind = Literal["grid", "series", "stations", "table", "polygons", "register"]


class InputSpec(BaseModel):
    """Base of every reader's config section (``inputs.<name>``); unknown keys and infinite or NaN numbers are errors.

    ``path_fields`` names the fields holding file paths: the config resolves them against
    the config file's folder and checks that they exist (a glob must match a file).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    path_fields: ClassVar[tuple[str, ...]] = ("path",)


@dataclass(frozen=True)
class InputInfo:
    """What an input holds, read from its header (no data values).

    Attributes
    ----------
    name
        The input's key under ``inputs:``.
    kind
        ``grid`` (time, y, x: reduced to districts by the engine), ``series`` (already
        per district: ``mean`` and ``valid_fraction`` on (time, district)), ``stations``
        (``rain`` on (station, time) with the stations' positions: each district is given
        its reference and back-up stations by the engine), ``table``,
        ``polygons`` (the district layer) or ``register`` (the policy register).
    path
        The file, folder or glob read.
    columns
        Column names of a table (empty otherwise).
    units
        Units of the values (e.g. ``mm/day``, ``mm/month``, ``1``, ``t/ha``), if known.
    frequency
        Time step of a grid or series (``day``, ``month``, ...), if known.
    time_range
        First and last time step [datetime64[D]] of a grid or series, if known.
    zones
        District ids the input knows (a table's ``district_id`` values, a series' or a
        layer's districts); ``None`` for a grid, whose districts come from the polygons.
    """

    name: str
    kind: InputKind
    path: str = ""
    columns: tuple[str, ...] = ()
    units: str | None = None
    frequency: str | None = None
    time_range: tuple[np.datetime64, np.datetime64] | None = None
    zones: frozenset[str] | None = None


@dataclass(frozen=True)
class OpenedInput:
    """An opened input: the data (lazy where gridded), what it is, and rows it refused.

    Attributes
    ----------
    info
        :class:`InputInfo` of the input.
    data
        ``xr.DataArray`` (grid, dims ``time, y, x``, dask-backed; ``attrs["valid_range"] =
        [low, high]`` declares the physically possible values: the engine treats values
        outside as missing and counts them), ``xr.Dataset`` (series; the same attribute on
        ``mean``),
        ``pandas.DataFrame`` (table), ``geopandas.GeoDataFrame`` (polygons, column
        ``district_id``) or :class:`PolicyRegister`.
    rejects
        Rows the reader could not use (``file, row, column, reason, message`` and the raw
        values), or ``None``. They go to the run's ``rejects.csv``; never dropped silently.
    """

    info: InputInfo
    data: Any
    rejects: pd.DataFrame | None = None

    @property
    def kind(self) -> InputKind:
        return self.info.kind


class Reader:
    """Base class of reader plugins (group ``panen.readers``; see the module docstring)."""

    name: ClassVar[str]
    Spec: ClassVar[type[InputSpec]]
    description: ClassVar[str] = ""

    def open(self, spec: InputSpec, **hints: Any) -> OpenedInput:  # pragma: no cover - abstract
        """Open the input. ``hints`` are optional keywords a consumer passes (a reader ignores
        those it does not know), e.g. ``peril_key`` for assessments."""
        raise NotImplementedError

    def kind_of(self, spec: InputSpec) -> InputKind | None:
        """What :meth:`open` will return for ``spec``, decided without reading it (from the
        path's form), or ``None`` when only opening tells. The config uses it to require the
        district polygons exactly when a grid must be reduced to districts."""
        return None

    def inspect(self, spec: InputSpec) -> InputInfo:
        """The input's header (columns, units, time step) for ``panen validate``.

        The default opens the input; readers of large files override it to read less.

        Raises
        ------
        InputError
            The file cannot be read or lacks what the reader needs (file, column named).
        """
        return self.open(spec).info


#: Policy register columns (the contract): required, optional, and those read as dictionaries.
REGISTER_REQUIRED_COLUMNS: tuple[str, ...] = ("policy_id", "farmer_id", "district_id", "product_id", "area_ha")
REGISTER_OPTIONAL_COLUMNS: tuple[str, ...] = ("sum_insured", "sowing_date", "group_id", "actual_value",
                                              "event_number", "interruption_days", "cover_start", "cover_end",
                                              "harvest_date", "no_claim_years", "daily_loss", "event_date")
REGISTER_KEY_COLUMNS: tuple[str, ...] = ("district_id", "product_id")
#: Columns of a loss assessments table (one row per plot, peril and event).
ASSESSMENT_COLUMNS: tuple[str, ...] = (
    "policy_id", "plot_id", "peril", "plot_area_ha", "damage_intensity_pct", "damaged_area_pct",
    "crop_age_days", "planting_method", "event_date", "notice_date",
)


@dataclass(frozen=True)
class PolicyRegister:
    """A policy register as read, before any row is checked.

    Attributes
    ----------
    path
        The source file (or ``"<memory>"``), used in every problem and reject.
    table
        All columns as read: strings for CSV (nothing is parsed yet, so a bad number is a
        row reject, not a failed read), the file's own types for Parquet; the key columns
        as dictionary arrays. Row ``i`` is data row ``i + 1`` of the file. Columns are
        named as panen names them (a reader maps the file's own headers).
    lines
        ``lines(rows)``: the 1-based text lines of 0-based rows, as a text editor numbers
        them (header = line 1); ``None`` when the source has no lines (Parquet, memory).
        Called only for rejected rows.
    source_columns
        panen's column name → the file's header, where the reader renamed it; rejects
        name the column as the file does.
    text
        How the file writes numbers and dates (decimal mark, thousands separator, date
        format); ISO by default.
    """

    path: str
    table: pa.Table
    lines: Callable[[np.ndarray], np.ndarray] | None = None
    source_columns: Mapping[str, str] = field(default_factory=dict)
    text: TextFormat = ISO

    @property
    def n_rows(self) -> int:
        """Number of data rows."""
        return self.table.num_rows

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | pa.Table, path: str | Path = "<memory>") -> PolicyRegister:
        """Wrap an in-memory table (tests, benchmarks, API users) as a register.

        Raises
        ------
        InputError
            If a required column is missing.
        """
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        check_header(table.column_names, REGISTER_REQUIRED_COLUMNS, str(path))
        return cls(str(path), table.replace_schema_metadata(None))


# --------------------------------------------------------------------------- triggers
@dataclass(frozen=True)
class TriggerInputs:
    """What the engine hands a trigger.

    Parameters
    ----------
    season
        The season being settled.
    cohorts
        ``datetime64[D]`` window anchors to evaluate: the season start for
        ``anchor: season_start``, or every distinct sowing date in the register.
    district_ids
        District keys the result must be indexed by (order preserved).
    series
        District series per gridded input name: an ``xr.Dataset`` with ``mean`` and
        ``valid_fraction`` on dims ``(time, district)``; ``mean.attrs["units"]`` is set
        (``mm/day`` for daily rainfall). Possibly dask-backed.
    tables
        Tabular inputs by name (e.g. ``yields``) as DataFrames.
    insured_area
        Insured area [ha] per district of the product's valid policies (index: district id
        as text; districts without policies absent), for rules that compare it with the
        area sown (an area correction factor). ``None`` where no register is settled (a
        backtest, a research call).
    as_of
        In-season settlement (``panen run --as-of DATE``) [datetime64[D]]: the series hold
        data up to and including this day; every later day is unknown — ``mean`` NaN and
        ``valid_fraction`` 0, never zero rain or zero vegetation — and a trigger's
        :meth:`Trigger.guaranteed_rate` says what no later day can lower. ``None``: the
        season's data are complete (a final settlement).
    """

    season: Season
    cohorts: np.ndarray
    district_ids: np.ndarray
    series: dict[str, xr.Dataset] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    insured_area: pd.Series | None = None
    as_of: np.datetime64 | None = None


#: Per-phase variables of a trigger result (dims ``phase, district, cohort``), for the audit trail.
PHASE_VARIABLES: tuple[str, ...] = ("index_value", "phase_rate", "valid_fraction")


@dataclass(frozen=True)
class TriggerResult:
    """A trigger's answer, possibly lazy.

    ``data`` is an ``xr.Dataset``. Required, on dims ``(district, cohort)``:

    * ``payout_rate`` [fraction of sum insured, 0..1] — NaN where not assessable.

    Optional (the engine fills the defaults, :func:`standardise_result`):

    * ``flagged`` (bool, ``(district, cohort)``) — True where the district could not be
      assessed (default: where ``payout_rate`` is NaN; a NaN rate is always flagged);
    * ``reason`` (text, ``(district, cohort)``) — why a flagged district could not be
      assessed, for the audit trail (default ``"missing data"``);
    * per phase on ``(phase, district, cohort)``: ``index_value`` [index units],
      ``phase_rate`` [fraction] and ``valid_fraction`` [fraction, 0..1] (default: one
      phase ``"season"`` whose rate is ``payout_rate``, index and valid fraction unknown).

    * ``on_account_rate`` [fraction of sum insured, 0..1] on ``(district, cohort)`` — an
      on-account (advance) payment due before the final claim (e.g. PMFBY mid-season
      adversity), NaN where none is due. The engine pays it in its own output
      (``on_account.csv``), never in the final payouts.

    Other variables (a normal yield, a strike) are kept for API users.
    """

    data: xr.Dataset


@dataclass(frozen=True)
class PhaseDesign:
    """One phase of a term sheet as a trigger-design search sees it, and sets it.

    Attributes
    ----------
    name
        The phase's name (its ``phase`` label in :class:`TriggerResult`).
    curve
        The phase's payout curve (``"linear"``, ``"binary"``, ``"step"``, or a plugin's
        own), for messages and reports; a search never changes it.
    direction
        ``"below"`` (deficit: pays as the index falls under the strike) or ``"above"``.
    strike
        Index value where payment starts [index units].
    exit
        Index value of full payment [index units] for a curve that has one (a linear tick);
        ``None`` for a curve that pays from its strike alone (binary, or a step schedule
        that moves with its strike): a search then varies the strike only.
    weight
        Share of the sum insured the phase can pay [fraction, (0, 1]].
    """

    name: str
    curve: str
    direction: Literal["below", "above"]
    strike: float
    exit: float | None
    weight: float


@dataclass(frozen=True)
class DesignTerms:
    """What a trigger-design search may vary in a term sheet (:meth:`Trigger.design_terms`).

    A trigger that declares these terms promises the rule the search prices candidates
    with: the season payout rate is ``min(Σ_phases phase rate, season_cap)``, where each
    phase's (weighted) rate is what :meth:`Trigger.rates_from_index` returns for it and
    depends on that phase's own terms and index value only — so candidates of different
    phases combine without re-evaluating each other.

    Attributes
    ----------
    phases
        The term sheet's phases, in its order.
    season_cap
        Cap on the summed phase rates [fraction of sum insured, (0, 1]].
    """

    phases: tuple[PhaseDesign, ...]
    season_cap: float = 1.0

    def phase(self, name: str) -> PhaseDesign:
        """The phase called ``name`` (``KeyError`` if there is none)."""
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)


def _type_name(annotation: Any) -> str:
    """A short readable type: ``float``, ``Literal['below', 'above']``, ``Phase | None``."""
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    return re.sub(r"\b(?:[A-Za-z_][A-Za-z0-9_]*\.)+([A-Za-z_][A-Za-z0-9_]*)", r"\1", text)


class Trigger:
    """Base class of trigger plugins (see the module docstring for the contract).

    Optional features are declared here with their defaults, never probed with ``getattr``:
    ``backtest_by``, :meth:`required_inputs`, :meth:`check_inputs`, :meth:`settles`,
    :meth:`guaranteed_rate` (in-season settlement), and, for triggers a design search can
    re-price, :meth:`rates_from_index`, :meth:`design_terms` and :meth:`with_design`.
    """

    name: ClassVar[str]
    Params: ClassVar[type[ProductParams]]
    inputs: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    #: How a backtest replays the product: ``"cohort"`` (one evaluation over every season,
    #: each season a cohort — for series-fed triggers), ``"season"`` (one evaluation per
    #: season, reading ``season.year`` — for table-fed triggers), ``None``: ``"cohort"`` when
    #: the trigger reads a grid or series, else ``"season"``.
    backtest_by: ClassVar[Literal["cohort", "season"] | None] = None

    def evaluate(self, params: ProductParams, inputs: TriggerInputs) -> TriggerResult:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def required_inputs(cls, params: ProductParams) -> tuple[str, ...]:
        """Names of the run inputs this term sheet needs (default: :attr:`inputs`)."""
        return tuple(cls.inputs)

    @classmethod
    def check_inputs(cls, params: ProductParams, info: dict[str, InputInfo]) -> list[str]:
        """Problems with the inputs' headers for this term sheet (units, time step), as messages.

        Called by ``panen validate`` and before a run reads any data, so that a config that
        cannot run fails at validation, not half-way. Default: none.
        """
        return []

    @classmethod
    def guaranteed_rate(cls, params: ProductParams, inputs: TriggerInputs, result: xr.Dataset) -> xr.DataArray:
        """The part of the payout rate that no later data can lower, per district and cohort [fraction].

        Called by an in-season run (``panen run --as-of DATE``) after :meth:`evaluate` on
        the same ``inputs`` (``inputs.as_of`` set; every day after it unknown). The engine
        settles this rate through the one ledger (sum insured, terms, rounding) as the
        *guaranteed minimum* that an on-account batch may pay without clawback risk, so it
        must be a true lower bound of the rate :meth:`evaluate` gives once the season's data
        are complete, whatever they turn out to be.

        Parameters
        ----------
        params
            The term sheet.
        inputs
            What :meth:`evaluate` was given (``as_of`` set).
        result
            The computed, standardised result of :meth:`evaluate` on ``inputs``
            (``payout_rate``, ``flagged`` on ``(district, cohort)``, per phase variables).

        Returns
        -------
        xarray.DataArray
            On ``(district, cohort)`` like ``result["payout_rate"]``: rates in [0, 1]; NaN
            where the district cannot be assessed on the days so far (missing data — its
            policies are withheld, as the final would withhold them).

        Notes
        -----
        Default: 0 everywhere — a plugin that declares nothing guarantees nothing in
        season, which is always a true lower bound. A plugin overrides it with what its
        index allows (a window already closed is final; an index that only grows as days are
        added guarantees the rate of its value so far on an ``above`` curve).
        """
        return xr.zeros_like(result["payout_rate"], dtype=float)

    @classmethod
    def settles(cls, params: ProductParams, info: dict[str, InputInfo]) -> dict[str, str]:
        """Per phase of ``params``, how these inputs settle it, in words (``panen validate``).

        E.g. ``{"nov-jan": "total on month totals (whole months exact, cut months pro
        rata)"}``. Default: nothing to say.
        """
        return {}

    @classmethod
    def rates_from_index(cls, params: ProductParams | Sequence[ProductParams],
                         index_value: xr.DataArray) -> xr.DataArray | None:
        """Weighted phase payout rates [fraction] of stored index values under ``params``.

        The trigger-design search re-prices candidate term sheets on the index values of a
        backtest through this method — the plugin's own curves, never a copy. It must give
        the ``phase_rate`` that :meth:`evaluate` gives for the same index values.

        Parameters
        ----------
        params
            A term sheet, or a sequence of candidate term sheets (evaluated in one call:
            a search prices thousands).
        index_value
            Index values [index units] with a ``phase`` dim holding some or all of the term
            sheet's phase names, and any other dims; possibly dask-backed (stay lazy).

        Returns
        -------
        xarray.DataArray or None
            The phases' weighted rates [fraction of sum insured, 0..1], NaN where the index
            is NaN: the dims of ``index_value`` for one term sheet, with a leading
            ``candidate`` dim for a sequence. ``None`` (the default): this trigger's payout
            is not a function of its phase index values alone, and it cannot be redesigned
            that way.
        """
        return None

    @classmethod
    def design_terms(cls, params: ProductParams) -> DesignTerms | None:
        """The phases and season cap of ``params`` that a trigger-design search may vary.

        ``None`` (the default): the trigger cannot be redesigned by re-pricing stored index
        values (:meth:`rates_from_index`). A trigger that returns terms also implements
        :meth:`rates_from_index` and :meth:`with_design`, and its season rate follows the
        rule of :class:`DesignTerms`.

        Raises
        ------
        ConfigError
            This term sheet has a phase a search cannot vary (the message says why).
        """
        return None

    @classmethod
    def with_design(cls, params: ProductParams, terms: DesignTerms) -> ProductParams:
        """A new term sheet: ``params`` with the strikes, exits, weights and season cap of ``terms``.

        Every phase keeps its curve (a search never turns one kind into another) and
        everything a search does not vary (windows, index definitions, bands' rates). The
        result is validated by :attr:`Params`, so it reloads from YAML as the same term
        sheet. ``params`` is not modified.

        Raises
        ------
        ConfigError
            ``terms`` does not match the term sheet's phases (names, curves, directions), or
            the new values break a constraint of :attr:`Params`.
        PluginError
            The trigger cannot be redesigned (the default).
        """
        raise PluginError(f"trigger plugin {cls.name!r} cannot be redesigned (it declares no design_terms)")

    @classmethod
    def thresholds(cls, params: ProductParams) -> dict[str, tuple[float, float]]:
        """``{phase: (strike, exit)}`` [index units] of the phases that have both, for reports
        (maps of how far the season went towards the strike).

        Default: the linear phases of :meth:`design_terms`; none when the trigger declares no
        design terms. A trigger whose term sheet has a strike and exit elsewhere overrides it.
        """
        from panen.engine.errors import ConfigError

        try:
            terms = cls.design_terms(params)
        except ConfigError:
            return {}
        if terms is None:
            return {}
        return {p.name: (float(p.strike), float(p.exit)) for p in terms.phases if p.exit is not None}

    @classmethod
    def parameters(cls) -> list[tuple[str, str, str]]:
        """``(name, type, description)`` of every term-sheet key, for ``panen triggers``."""
        rows = []
        for name, f in cls.Params.model_fields.items():
            ann = _type_name(f.annotation)
            desc = f.description or ""
            if not f.is_required():
                desc = f"{desc} (default {f.default!r})".strip()
            rows.append((name, ann, desc))
        return rows


# --------------------------------------------------------------------------- checking a trigger's result
def _broken(trigger: str, product_id: str, what: str) -> PluginError:
    return PluginError(f"trigger plugin {trigger!r} (product {product_id!r}) returned an invalid result: {what}")


def _on_dims(da: xr.DataArray, dims: tuple[str, ...], var: str, trigger: str, product_id: str) -> xr.DataArray:
    if set(da.dims) != set(dims):
        raise _broken(trigger, product_id, f"{var} has dims {tuple(da.dims)}, expected {dims}")
    return da.transpose(*dims)


def standardise_result(data: Any, *, trigger: str, product_id: str, district_ids: np.ndarray,
                       cohorts: np.ndarray) -> xr.Dataset:
    """Check the structure of a trigger's result and fill the optional variables' defaults.

    Works on lazy (dask-backed) results without computing them: only dims, coordinates and
    variable names are checked here; values are checked after computing
    (:func:`check_result_values`).

    Parameters
    ----------
    data
        ``TriggerResult.data`` (an ``xr.Dataset``), or the :class:`TriggerResult` itself.
    trigger, product_id
        For messages.
    district_ids
        The districts asked for: the result is reindexed to them (a district the trigger
        left out becomes NaN, hence flagged; districts it added are dropped).
    cohorts
        The cohorts asked for [datetime64[D]]: the result must have exactly these.

    Returns
    -------
    xarray.Dataset
        ``payout_rate`` and ``flagged`` on ``(district, cohort)``, ``index_value``,
        ``phase_rate`` and ``valid_fraction`` on ``(phase, district, cohort)``, ``reason``
        if the trigger gave one, and any other variables as returned; ``district`` holds
        the ids as text and ``cohort`` the requested dates.

    Raises
    ------
    PluginError
        Not a Dataset, no ``payout_rate``, wrong dims, or other cohorts than requested.
    """
    if isinstance(data, TriggerResult):
        data = data.data
    if not isinstance(data, xr.Dataset):
        raise _broken(trigger, product_id, f"expected an xarray.Dataset, got {type(data).__name__}")
    if "payout_rate" not in data:
        raise _broken(trigger, product_id, "it has no payout_rate variable")
    ds = data
    cohorts = np.asarray(cohorts).astype("datetime64[D]")
    districts = np.asarray([str(d) for d in np.asarray(district_ids).tolist()], dtype=object)
    ds = ds.assign({"payout_rate": _on_dims(ds["payout_rate"], ("district", "cohort"), "payout_rate",
                                            trigger, product_id)})
    if ds.sizes["cohort"] != len(cohorts):
        raise _broken(trigger, product_id, f"{ds.sizes['cohort']} cohorts for the {len(cohorts)} requested")
    if "cohort" in ds.coords:
        got = np.asarray(ds["cohort"].values)
        if got.dtype.kind != "M" or not np.array_equal(got.astype("datetime64[D]"), cohorts):
            raise _broken(trigger, product_id, "its cohorts are not the requested window anchors")
    ds = ds.assign_coords(cohort=cohorts.astype("datetime64[ns]"))
    if "district" in ds.coords:
        ds = ds.assign_coords(district=np.asarray([str(d) for d in ds["district"].values.tolist()], dtype=object))
        if not np.array_equal(ds["district"].values, districts):
            ds = ds.reindex(district=districts)
    elif ds.sizes["district"] == len(districts):
        ds = ds.assign_coords(district=districts)
    else:
        raise _broken(trigger, product_id, f"{ds.sizes['district']} districts without district labels, "
                                           f"for {len(districts)} requested")
    rate = ds["payout_rate"]
    if "flagged" in ds:
        flagged = _on_dims(ds["flagged"], ("district", "cohort"), "flagged", trigger, product_id)
        flagged = flagged.astype(bool) | rate.isnull()
    else:
        flagged = rate.isnull()
    ds = ds.assign(flagged=flagged)
    if "reason" in ds:
        ds = ds.assign(reason=_on_dims(ds["reason"], ("district", "cohort"), "reason", trigger, product_id))
    present = [v for v in PHASE_VARIABLES if v in ds]
    if not present:
        one = rate.expand_dims(phase=["season"])
        ds = ds.assign(index_value=xr.full_like(one, np.nan, dtype=float), phase_rate=one,
                       valid_fraction=xr.full_like(one, np.nan, dtype=float))
    else:
        shaped = {v: _on_dims(ds[v], ("phase", "district", "cohort"), v, trigger, product_id) for v in present}
        like = shaped[present[0]]
        for v in PHASE_VARIABLES:
            if v not in shaped:
                shaped[v] = xr.full_like(like, np.nan, dtype=float)
        ds = ds.assign(shaped)
        ds = ds.assign_coords(phase=np.asarray([str(p) for p in ds["phase"].values.tolist()], dtype=object))
    return ds


def check_result_values(ds: xr.Dataset, *, trigger: str, product_id: str) -> xr.Dataset:
    """Check a computed, standardised result's values and fill ``reason``.

    Rates must lie in [0, 1] (or be NaN), valid fractions in [0, 1] (or NaN). ``reason``
    becomes text on ``(district, cohort)``: the trigger's reason where it gave one, else
    ``"missing data"`` where flagged (naming the phases without an index), and ``""``
    where assessed.

    Raises
    ------
    PluginError
        A rate or valid fraction out of range.
    """
    for var, lo, hi in (("payout_rate", 0.0, 1.0), ("phase_rate", 0.0, 1.0), ("valid_fraction", 0.0, 1.0)):
        v = np.asarray(ds[var].values, dtype=np.float64)
        finite = v[np.isfinite(v)]
        if finite.size and (finite.min() < lo - 1e-12 or finite.max() > hi + 1e-12):
            raise _broken(trigger, product_id, f"{var} outside [{lo:g}, {hi:g}] "
                                               f"(from {finite.min():.6g} to {finite.max():.6g})")
        if np.isinf(v).any():
            raise _broken(trigger, product_id, f"{var} is infinite somewhere")
    flagged = np.asarray(ds["flagged"].values, dtype=bool)
    given = np.asarray(ds["reason"].values, dtype=object) if "reason" in ds else None
    reason = np.where(flagged, "missing data", "").astype(object)
    # say which phases had no index (too little valid data in their window)
    index = np.asarray(ds["index_value"].transpose("phase", "district", "cohort").values, dtype=np.float64)
    phases = [str(p) for p in ds["phase"].values.tolist()]
    if len(phases) > 1 or phases != ["season"]:
        missing = np.isnan(index)
        for d, c in zip(*np.nonzero(flagged)):
            lacking = [phases[k] for k in range(len(phases)) if missing[k, d, c]]
            if lacking:
                reason[d, c] = f"missing data: no index for phase{'s' if len(lacking) > 1 else ''} " \
                               f"{', '.join(lacking)} (too little valid data in the window)"
    if given is not None:  # the trigger's own reason wins
        text = np.array(["" if (g is None or (isinstance(g, float) and np.isnan(g))) else str(g)
                         for g in given.ravel()], dtype=object).reshape(given.shape)
        reason = np.where(flagged & (text != ""), text, reason)
    return ds.assign(reason=(("district", "cohort"), reason))


def check_guaranteed_rate(rate: Any, result: xr.Dataset, *, trigger: str, product_id: str) -> xr.DataArray:
    """Check a computed :meth:`Trigger.guaranteed_rate` against its result: dims, labels, values.

    Returns
    -------
    xarray.DataArray
        ``(district, cohort)`` with the result's coordinates, float rates in [0, 1] or NaN.

    Raises
    ------
    PluginError
        Not a DataArray, other dims or sizes, a rate outside [0, 1], or a guarantee above the
        trigger's own payout rate where that rate is assessed on the days so far (a window
        already closed: the guarantee is at most what it pays).
    """
    if not isinstance(rate, xr.DataArray):
        raise _broken(trigger, product_id, f"guaranteed_rate returned {type(rate).__name__}, not a DataArray")
    rate = _on_dims(rate, ("district", "cohort"), "guaranteed_rate", trigger, product_id)
    like = result["payout_rate"]
    if rate.shape != like.shape:
        raise _broken(trigger, product_id, f"guaranteed_rate has shape {rate.shape}, the result {like.shape}")
    values = np.asarray(rate.values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if np.isinf(values).any() or (finite.size and (finite.min() < -1e-12 or finite.max() > 1 + 1e-12)):
        raise _broken(trigger, product_id, "guaranteed_rate outside [0, 1]")
    assessed = np.asarray(like.values, dtype=np.float64)
    both = np.isfinite(values) & np.isfinite(assessed)
    if (values[both] > assessed[both] + 1e-12).any():
        raise _broken(trigger, product_id, "guaranteed_rate above the payout rate assessed on the same data")
    return xr.DataArray(np.clip(values, 0.0, 1.0), dims=("district", "cohort"), coords=like.coords,
                        name="guaranteed_rate")
