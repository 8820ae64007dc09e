"""Trigger design: search strikes, exits and phase weights against a loss history.

A researcher designing an index product asks which strike and exit (and which split of
the sum insured between phases) best protect farmers at a premium they can bear.
:func:`search` answers by brute force over a grid, per product and per *zone* (a group of
districts sharing one design), with the historical simulation of :mod:`panen.engine.pipeline.backtest`
(``district_id, product_id, season, phase, index_value``) and a loss reference
(``district_id, season, loss``, as for :func:`panen.engine.research.basis.basis_risk_table`).

The index values per district × season × phase do not depend on the strike or the exit,
so the search never touches the grid again: it re-prices the stored index values under
every candidate term sheet. With a term sheet (:meth:`DesignSpace.from_term_sheet`, as
``panen backtest --optimise`` does) the candidates are term sheets built by the product's
own trigger plugin (:meth:`panen.engine.api.Trigger.with_design`) and priced by its own
curves (:meth:`panen.engine.api.Trigger.rates_from_index`): what the plugin declares
variable (:meth:`panen.engine.api.Trigger.design_terms`) is searched as such — a linear
phase by strike and exit, a binary phase by its strike, a step schedule moved with its
trigger point — and no phase ever changes kind. The chosen term sheets
(:attr:`DesignResult.term_sheets`) are those very candidates. Without a term sheet (a bare
index table) every phase is a linear tick phase between strike and exit
(:func:`panen.engine.maths.curves.linear_rate`). Phases are priced one at a time — each
phase's candidates in one plugin call — and combined for all candidates at once (numpy
broadcasting, candidates × district-seasons, in batches that bound the memory), so
thousands of candidates evaluate in about a second.

Per candidate design (pooled over the zone's district-seasons):

* payout rate of a district-season = min(Σ_phases weighted phase rate, season cap)
  [fraction of sum insured] — the rule a redesignable trigger declares
  (:class:`panen.engine.api.DesignTerms`), the cap being the term sheet's unless
  :attr:`Constraints.max_rate` sets one;
* ``burn_cost`` = mean payout rate over the zone's district-seasons (pure premium rate);
  ``gross_premium_rate`` = burn cost × (1 + expense + profit loading)
  (:func:`panen.engine.research.pricing.gross_premium_rate`) — the season-weighted mean of
  the district premiums;
* ``payout_frequency`` = share of district-seasons with a payout > 0;
* ``pod`` = a / (a + b) and ``missed_loss_year_share`` = b / (a + b)
  (:func:`panen.engine.research.scores.contingency`; a payout event is payout >
  ``payout_threshold``, a loss event loss > ``loss_threshold``);
* ``payout_in_worst_share``: share of the *worst loss seasons* in which the design pays
  more than ``meaningful_rate``. The worst seasons of a district are its
  k = ⌈q × n⌉ (at least 1) seasons of largest loss (ties: the earlier season first), n its
  compared seasons, keeping only seasons with a loss event;
* ``hedging_effectiveness``: :func:`panen.engine.research.scores.hedging_effectiveness`
  (semivariance below each district's own mean uninsured income, pooled over the zone's
  district-seasons; Vedenov & Barnett 2004) on the normalised income **revenue = 1 − loss**,
  with the candidate's own premium: each district's burn cost under the candidate, loaded
  (:func:`panen.engine.research.scores.premium_rates`), so a more generous design also
  costs more: insured income Y = 1 − loss − premium + payout. This is the rule of
  :func:`panen.engine.research.basis.basis_risk_table` with the same loadings: the HE of a
  chosen design is the HE ``basis_risk.csv`` reports when that term sheet is backtested.
  With loadings the premium exceeds the expected payout, so the design that replicates
  the loss exactly is in general *not* the HE-optimal one (a slightly cheaper or steeper
  design can beat it); with ``loadings=(0, 0)`` (fair premium) an exact replica reaches
  HE = 1.

Constraints (:class:`Constraints`) make a candidate infeasible — a premium cap on the gross
rate and a minimum meaningful-payout share in the worst seasons — and each infeasible
candidate carries the reason. ``max_rate`` is not a filter but the season cap applied to
every candidate (and written into the chosen term sheets). A zone with no feasible candidate gets no chosen design: it is listed in
:attr:`DesignResult.unresolved` with the reason; constraints are never relaxed silently.

The trade-off curve (:attr:`DesignResult.frontier`) is the set of Pareto-efficient
candidates of objective versus gross premium rate among those that meet every constraint
*except* the premium cap (so it shows what a higher cap would buy); the chosen design is
always on it.

References
----------
Vedenov, D. V. & Barnett, B. J. (2004), Efficiency of weather derivatives as primary crop
insurance instruments, *J. Agric. Resour. Econ.* 29(3), 387–403 (semivariance hedging
effectiveness; strike and exit chosen to maximise it over a historical record).
Clarke, D. J. (2016), A theory of rational demand for index insurance, *Am. Econ. J.:
Microeconomics* 8(1), 283–306 (basis risk and loadings: more cover is not always better).
World Bank (2011), *Weather Index Insurance for Agriculture: Guidance for Development
Practitioners*, and IFAD/WFP (2010), *The Potential for Scale and Sustainability in
Weather Index Insurance* (contract design by calibrating strike and exit on historical
yield and weather data, subject to an affordable premium and meaningful payouts in bad
years).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, model_validator

from panen.engine.api import DesignTerms, ProductParams
from panen.engine.errors import ConfigError, InputError, PluginError, Problem
from panen.engine.maths.curves import linear_rate
from panen.engine.registry import get_trigger
from panen.engine.research.pricing import gross_premium_rate
from panen.engine.research.scores import contingency, hedging_effectiveness, premium_rates

__all__ = [
    "DESIGN_METRICS",
    "OBJECTIVES",
    "Constraints",
    "DesignResult",
    "DesignSpace",
    "PhaseSpace",
    "Range",
    "plot_tradeoff",
    "search",
    "to_term_sheet",
]

#: Objectives of :func:`search` and whether each is maximised.
OBJECTIVES: dict[str, bool] = {"hedging_effectiveness": True, "missed_loss_years": False}
#: Metric columns of :attr:`DesignResult.designs` after the design columns, in order.
DESIGN_METRICS: tuple[str, ...] = (
    "seasons", "burn_cost", "gross_premium_rate", "payout_frequency", "max_payout_rate", "pod",
    "missed_loss_year_share", "worst_seasons", "payout_in_worst_share", "hedging_effectiveness", "objective",
    "feasible", "reason",
)
#: Default strike quantiles of a deficit (``below``) phase [non-exceedance probability]; an
#: excess (``above``) phase mirrors them (1 − q).
DEFAULT_STRIKE_QUANTILES: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50)
#: Default exit quantiles of a deficit phase (only exits beyond the strike are kept).
DEFAULT_EXIT_QUANTILES: tuple[float, ...] = (0.0, 0.025, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45)
_CELLS_PER_BATCH = 2_000_000  # candidates × district-seasons held at once (≈ 16 MB per float array)
_ZONE_ALL = "all"


# ---------------------------------------------------------------------------------------
# the design space and the constraints
# ---------------------------------------------------------------------------------------


class Range(BaseModel):
    """An evenly spaced grid ``start, start + step, …`` up to ``stop`` **inclusive** [index units].

    >>> Range(start=40, stop=60, step=10).values().tolist()
    [40.0, 50.0, 60.0]
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    start: float
    stop: float
    step: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.stop < self.start:
            raise ValueError(f"range stop ({self.stop}) must be ≥ start ({self.start})")
        if (self.stop - self.start) / self.step > 1e6:
            raise ValueError("range has more than a million steps")
        return self

    def values(self) -> np.ndarray:
        """The grid [index units] (the last step is kept when it reaches ``stop`` within 1e-9 steps)."""
        n = int(math.floor((self.stop - self.start) / self.step + 1e-9)) + 1
        return self.start + self.step * np.arange(n, dtype=np.float64)


GridSpec = list[float] | Range | None


class PhaseSpace(BaseModel):
    """Candidate strikes, exits and weights of one phase.

    Parameters
    ----------
    direction
        ``"below"`` (deficit cover, exit < strike) or ``"above"`` (excess, exit > strike).
    strikes, exits
        Explicit values, a :class:`Range`, or ``None`` for the default: empirical quantiles
        of the zone's index values of this phase (``strike_quantiles`` /
        ``exit_quantiles``; for ``above`` the mirrored quantiles 1 − q). Only pairs with the
        exit strictly beyond the strike are candidates [index units].
    with_exit
        Whether the phase's curve has an exit to search (a linear tick). ``False`` for a
        curve that pays from its strike alone (a binary phase, or a step schedule that
        moves with its strike): only strikes are candidates and ``exits`` must be unset.
        :meth:`DesignSpace.from_term_sheet` sets it from the trigger plugin.
    weights
        Candidate phase weights [fraction of the sum insured the phase can pay, (0, 1]].
    strike_quantiles, exit_quantiles
        Quantile levels of the default grids [0..1].
    decimals
        Round default (quantile) grids to this many decimals (e.g. 0 for mm); ``None``
        keeps the exact quantiles.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    direction: Literal["below", "above"] = "below"
    strikes: GridSpec = None
    exits: GridSpec = None
    with_exit: bool = True
    weights: list[float] | Range = Field(default_factory=lambda: [1.0])
    strike_quantiles: list[float] = Field(default_factory=lambda: list(DEFAULT_STRIKE_QUANTILES))
    exit_quantiles: list[float] = Field(default_factory=lambda: list(DEFAULT_EXIT_QUANTILES))
    decimals: int | None = Field(None, ge=0, le=12)

    @model_validator(mode="after")
    def _check(self) -> "PhaseSpace":
        errors = []
        w = _values(self.weights)
        if w.size == 0 or not ((w > 0) & (w <= 1)).all():
            errors.append(f"weights must be non-empty and in (0, 1]; got {w.tolist()}")
        for name in ("strike_quantiles", "exit_quantiles"):
            q = np.asarray(getattr(self, name), dtype=np.float64)
            if q.size == 0 or not ((q >= 0) & (q <= 1)).all():
                errors.append(f"{name} must be non-empty and in [0, 1]; got {q.tolist()}")
        for name in ("strikes", "exits"):
            spec = getattr(self, name)
            if isinstance(spec, list) and (not spec or not np.isfinite(spec).all()):
                errors.append(f"{name} must be a non-empty list of finite values")
        if not self.with_exit and self.exits is not None:
            errors.append("exits only apply to a phase with an exit (with_exit=True, a linear curve)")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def grid(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate (strike, exit) pairs [index units] given a zone's index values (finite).

        Returns two aligned arrays, strikes outer and exits inner, each sorted ascending;
        only pairs with the exit strictly beyond the strike in ``direction``. Without an
        exit (``with_exit=False``): every strike, with NaN exits.
        """
        mirror = self.direction == "above"
        strikes = self._axis(self.strikes, self.strike_quantiles, index, mirror)
        if not self.with_exit:
            return strikes, np.full(strikes.shape, np.nan)
        exits = self._axis(self.exits, self.exit_quantiles, index, mirror)
        s, e = np.meshgrid(strikes, exits, indexing="ij")
        keep = (e < s) if self.direction == "below" else (e > s)
        return s[keep], e[keep]

    def _axis(self, spec: GridSpec, quantiles: list[float], index: np.ndarray, mirror: bool) -> np.ndarray:
        if spec is not None:
            return np.unique(_values(spec))
        q = np.asarray(quantiles, dtype=np.float64)
        v = np.quantile(index, 1.0 - q if mirror else q, method="linear")
        if self.decimals is not None:
            v = np.round(v, self.decimals)
        return np.unique(v)


class DesignSpace(BaseModel):
    """What the search varies, and over which groups of districts one design is shared.

    Parameters
    ----------
    phases
        Phase name → :class:`PhaseSpace`. ``None``: every phase of the simulation (of the
        term sheet, when given), each with the default ``PhaseSpace()`` — without a term
        sheet a deficit cover; with one, the phase's direction, weight and whether it has an
        exit. A product's phases must all be listed (a phase not listed would otherwise
        pay nothing).
    by
        ``"product"``: one design per product for all its districts (zone ``"all"``);
        ``"zone"``: one per product and zone of ``zones``; ``"district"``: one per product
        and district (zone = district id).
    zones
        District id → zone name; required with ``by="zone"`` and covering every district.
    weights_sum
        If set, only weight combinations whose phase weights sum to this value (within
        1e-9) are candidates [fraction], e.g. 1.0 to split the sum insured between phases.
    term_sheet
        The product's term sheet (its trigger plugin must declare
        :meth:`~panen.engine.api.Trigger.design_terms`). Candidates are then term sheets
        built and priced by that plugin, and the phases' directions and exits must match
        it. ``None``: the phases are linear tick phases of a bare index table.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    phases: dict[str, PhaseSpace] | None = None
    by: Literal["product", "zone", "district"] = "product"
    zones: dict[str, str] | None = None
    weights_sum: float | None = Field(None, gt=0)
    term_sheet: ProductParams | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        """Zones as text; without ``phases``, a term sheet's phases with the default grids."""
        if isinstance(data, dict) and data.get("zones") is not None:
            z = data["zones"]
            items = z.items() if isinstance(z, (Mapping, pd.Series)) else z
            data = {**data, "zones": {str(k): str(v) for k, v in items}}
        if isinstance(data, dict) and data.get("phases") is None and isinstance(data.get("term_sheet"), ProductParams):
            data = {**data, "phases": _default_phases(_design_terms(data["term_sheet"]))}
        return data

    @model_validator(mode="after")
    def _check(self) -> "DesignSpace":
        if self.by == "zone" and not self.zones:
            raise ValueError("by='zone' needs a zones mapping (district id → zone)")
        if self.by != "zone" and self.zones is not None:
            raise ValueError(f"zones only apply to by='zone', not by={self.by!r}")
        if self.phases is not None and not self.phases:
            raise ValueError("phases must name at least one phase (or be None for all)")
        if self.term_sheet is not None:
            terms = _design_terms(self.term_sheet)
            problems = []
            names = [p.name for p in terms.phases]
            if sorted(self.phases) != sorted(names):
                problems.append(f"the space has phases {sorted(self.phases)}; the term sheet {names}")
            for ph in terms.phases:
                ps = self.phases.get(ph.name)
                if ps is None:
                    continue
                if ps.direction != ph.direction:
                    problems.append(f"phase {ph.name!r} is {ph.direction!r} in the term sheet, {ps.direction!r} here")
                if ps.with_exit != (ph.exit is not None):
                    problems.append(f"phase {ph.name!r} is a {ph.curve} phase " + (
                        "with an exit to search (with_exit=True)" if ph.exit is not None else
                        "without an exit: only its strike is searched (with_exit=False)"))
            if problems:
                raise ConfigError([Problem(f"design space of product {self.term_sheet.id!r}: {p}") for p in problems])
        return self

    @classmethod
    def from_term_sheet(cls, params: ProductParams, **kwargs: Any) -> "DesignSpace":
        """The default space of a term sheet, searched through its trigger plugin.

        Each phase keeps its direction and weight (and has an exit to search only when its
        curve has one, as the plugin's :meth:`~panen.engine.api.Trigger.design_terms`
        says); strikes and exits at the default quantiles. ``kwargs`` go to the model
        (``by``, ``zones``, ``weights_sum``).

        Raises
        ------
        ConfigError
            The trigger cannot be redesigned, or this term sheet has a phase a search
            cannot vary (the plugin's message).
        """
        return cls(phases=_default_phases(_design_terms(params)), term_sheet=params, **kwargs)


class Constraints(BaseModel):
    """Constraints of a design search.

    Parameters
    ----------
    max_premium_rate
        Cap on the gross premium rate = burn cost × (1 + loadings) [fraction of sum
        insured]; ``None``: no cap.
    min_payout_frequency_in_worst
        Minimum share of the worst loss seasons in which the design pays more than
        ``meaningful_rate`` [fraction, 0..1]; ``None``: no such constraint.
    worst_share
        q: the worst seasons of a district are its ⌈q × n⌉ seasons of largest loss
        [fraction, (0, 1]], default 10 %.
    meaningful_rate
        A payout counts as meaningful above this rate [fraction], default 5 %.
    max_rate
        Season cap on the summed phase rates, applied to every candidate and written into
        the chosen term sheets [fraction, (0, 1]]; ``None``: the term sheet's own cap (1
        without a term sheet).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    max_premium_rate: float | None = Field(None, gt=0)
    min_payout_frequency_in_worst: float | None = Field(None, ge=0, le=1)
    worst_share: float = Field(0.10, gt=0, le=1)
    meaningful_rate: float = Field(0.05, ge=0, lt=1)
    max_rate: float | None = Field(None, gt=0, le=1)


# ---------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------


@dataclass
class DesignResult:
    """What :func:`search` found.

    Attributes
    ----------
    designs
        Every evaluated candidate: ``product_id, zone, candidate`` (0-based within the zone),
        then per phase ``<phase>.strike, <phase>.exit, <phase>.weight`` [index units,
        fraction], then :data:`DESIGN_METRICS` (rates as fractions of the sum insured;
        ``objective`` repeats the objective's metric; ``reason`` is empty when feasible).
        Phase columns of phases a product does not have are NaN.
    chosen
        The best feasible candidate per zone (same columns); zones without one are absent.
    frontier
        Pareto-efficient candidates (objective vs gross premium rate) among those meeting
        every constraint but the premium cap, sorted by premium; ``feasible`` tells which
        are within the cap.
    unresolved
        ``product_id, zone, candidates, reason`` of zones without a feasible design.
    objective, maximise
        The objective's name and whether it is maximised.
    constraints, loadings
        As given: the constraints and the (expense, profit) loadings.
    phases
        Product id → its phase names, in design-column order.
    notes
        Decisions worth reporting (e.g. district-seasons left out).
    term_sheets
        With a term sheet: zone → the chosen term sheet (built by the trigger plugin, the
        very candidate priced); empty otherwise.
    season_cap
        The season cap applied to every candidate [fraction].
    """

    designs: pd.DataFrame
    chosen: pd.DataFrame
    frontier: pd.DataFrame
    unresolved: pd.DataFrame
    objective: str
    maximise: bool
    constraints: Constraints
    loadings: tuple[float, float]
    phases: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    term_sheets: dict[str, Any] = field(default_factory=dict)
    season_cap: float = 1.0


# ---------------------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------------------


def search(sim: pd.DataFrame, losses: pd.DataFrame, space: DesignSpace | None = None,
           constraints: Constraints | None = None, *,
           objective: Literal["hedging_effectiveness", "missed_loss_years"] = "hedging_effectiveness",
           loadings: tuple[float, float] = (0.25, 0.10), loss_threshold: float = 0.0,
           payout_threshold: float = 0.0, loss_column: str = "loss",
           max_candidates: int = 2_000_000) -> DesignResult:
    """Search strike, exit and weight of every phase per product and zone.

    Every combination of the phases' candidate (strike, exit) pairs and weights is
    evaluated on the zone's district-seasons (see the module docstring for the metrics),
    checked against ``constraints`` and ranked by ``objective``:
    ``"hedging_effectiveness"`` is maximised, ``"missed_loss_years"`` (b / (a + b))
    minimised. Ties go to the lower gross premium rate, then (missed loss years only) the
    higher hedging effectiveness, then the earlier candidate.

    A district-season is compared only when every phase of the product has a finite index
    value, it is not ``flagged`` (when that column exists) and the loss is finite; others
    are left out (counted in :attr:`DesignResult.notes`), never read as "no loss".

    Parameters
    ----------
    sim
        Simulation table (:func:`panen.engine.research.simulation.simulation_table`): ``district_id,
        product_id, season, phase, index_value`` [index units], optional ``flagged``; one row
        per district, product, season and phase. Its rates are not used. Not modified.
    losses
        Loss reference ``district_id, season, loss_column`` [fraction of sum insured, 0..1;
        NaN = unknown], one row per ``(district_id, season)``. Not modified.
    space
        :class:`DesignSpace`; ``None`` → defaults (every phase a linear deficit cover, one
        design per product). With a term sheet (:meth:`DesignSpace.from_term_sheet`) the
        candidates are built and priced by its trigger plugin and ``sim`` must hold that
        product only.
    constraints
        :class:`Constraints`; ``None`` → no premium cap, no worst-year constraint, the term
        sheet's season cap (1 without one).
    objective
        ``"hedging_effectiveness"`` or ``"missed_loss_years"``.
    loadings
        ``(expense_loading, profit_loading)`` [fraction of the pure rate], default
        (0.25, 0.10): 25 % expenses and 10 % profit.
    loss_threshold, payout_threshold
        Event thresholds [fraction]: a loss season has loss > ``loss_threshold``, a payout
        season payout > ``payout_threshold``.
    loss_column
        Column of ``losses``.
    max_candidates
        Refuse a zone with more candidates than this (shrink the grids instead).

    Returns
    -------
    DesignResult
        With a term sheet, :attr:`DesignResult.term_sheets` holds the chosen term sheets.

    Raises
    ------
    ConfigError
        Unknown objective, bad loadings, a product phase missing from ``space`` (or a term
        sheet phase missing from ``sim``), a phase without a valid (strike, exit) pair, a
        phase without an exit and no term sheet, or too many candidates.
    PluginError
        The trigger plugin declares design terms but returns no or malformed rates.
    InputError
        Missing columns, duplicate rows, losses outside [0, 1], districts without a zone.

    References
    ----------
    Vedenov & Barnett (2004); Clarke (2016); World Bank (2011) — see the module docstring.

    Examples
    --------
    >>> index = np.array([150.0, 95, 60, 120, 45, 100, 80, 35, 130, 70])
    >>> sim = pd.DataFrame({"district_id": "d1", "product_id": "rain", "season": range(2001, 2011),
    ...                     "phase": "p1", "index_value": index})
    >>> losses = pd.DataFrame({"district_id": "d1", "season": range(2001, 2011),
    ...                        "loss": np.clip((100 - index) / 60, 0, 1)})
    >>> space = DesignSpace(phases={"p1": PhaseSpace(strikes=[90, 100, 110], exits=[30, 40, 50])})
    >>> res = search(sim, losses, space, loadings=(0.0, 0.0))
    >>> res.chosen[["p1.strike", "p1.exit", "hedging_effectiveness"]].iloc[0].tolist()
    [100.0, 40.0, 1.0]
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}; {objective!r} given")
    space = space or DesignSpace()
    constraints = constraints or Constraints()
    if len(loadings) != 2:
        raise ConfigError(f"loadings must be (expense_loading, profit_loading); {loadings!r} given")
    expense, profit = (float(x) for x in loadings)
    gross_premium_rate(0.0, expense_loading=expense, profit_loading=profit)  # validates the loadings
    frame, notes = _prepare(sim, losses, space, loss_column)
    maximise = OBJECTIVES[objective]
    sheet = space.term_sheet
    terms = _design_terms(sheet) if sheet is not None else None
    if sheet is not None:
        other = sorted(set(frame["product_id"].unique().tolist()) - {sheet.id})
        if other:
            raise ConfigError(f"the design space searches product {sheet.id!r} (its term sheet), but the simulation "
                              f"also has product(s) {', '.join(map(repr, other))}: pass that product's rows only")
    cap = float(constraints.max_rate if constraints.max_rate is not None else
                (terms.season_cap if terms is not None else 1.0))

    phases_of: dict[str, list[str]] = {}
    parts, unresolved = [], []
    for pid, prod in frame.groupby("product_id", sort=True):
        pid = str(pid)
        names = sorted(prod["phase"].unique().tolist(), key=str)
        if space.phases is not None:
            missing = [n for n in names if n not in space.phases]
            if missing:
                raise ConfigError(f"product {pid!r}: phase(s) {', '.join(map(repr, missing))} are not in the "
                                  f"design space (it has {', '.join(map(repr, space.phases))})")
            names = [n for n in space.phases if n in names]  # the space's order
        if terms is not None:
            absent = [p.name for p in terms.phases if p.name not in names]
            if absent:
                raise ConfigError(f"product {pid!r}: the simulation has no index values of phase(s) "
                                  f"{', '.join(map(repr, absent))} of the term sheet")
        phases_of[pid] = names
        spaces = [space.phases[n] if space.phases is not None else PhaseSpace() for n in names]
        if terms is None:
            bare = [n for n, ps in zip(names, spaces) if not ps.with_exit]
            if bare:
                raise ConfigError(f"product {pid!r}: phase(s) {', '.join(map(repr, bare))} have no exit; without a "
                                  "term sheet the search prices linear tick phases only — build the space with "
                                  "DesignSpace.from_term_sheet to search binary or step phases through their plugin")
        for zone, part in prod.groupby("zone", sort=True):
            data = _zone_arrays(part, names)
            where = f"product {pid!r}, zone {zone!r}"
            if data is None:
                unresolved.append((pid, str(zone), 0, "no district-season with an index value for every phase "
                                                      "and a loss"))
                continue
            index, loss, district = data
            grids = []
            for n, ps, x in zip(names, spaces, index):
                s, e = ps.grid(x)
                if s.size == 0:
                    raise ConfigError(f"{where}: phase {n!r} has no (strike, exit) pair with the exit "
                                      f"{'below' if ps.direction == 'below' else 'above'} the strike")
                grids.append((s, e))
            weight_index, weight_sets, unique = _weight_sets(spaces, space.weights_sum, where)
            n_cand = len(weight_sets) * math.prod(g[0].size for g in grids)
            if n_cand > max_candidates:
                raise ConfigError(f"{where}: {n_cand:,} candidates exceed max_candidates={max_candidates:,}; "
                                  "use coarser grids")
            if terms is None:
                rates = [_tick_rates(x, s, e, ps.direction, u)
                         for x, (s, e), ps, u in zip(index, grids, spaces, unique)]
            else:
                rates = [_plugin_rates(sheet, terms, n, x, s, e, u)
                         for n, x, (s, e), u in zip(names, index, grids, unique)]
            table = _evaluate(rates, grids, weight_index, weight_sets, loss, district, cap, constraints, expense,
                              profit, loss_threshold, payout_threshold)
            table["objective"] = table["hedging_effectiveness" if objective == "hedging_effectiveness"
                                       else "missed_loss_year_share"]
            _feasibility(table, constraints, objective)
            cols = {}
            for k, n in enumerate(names):
                cols[f"{n}.strike"] = table.pop(f"_s{k}")
                cols[f"{n}.exit"] = table.pop(f"_e{k}")
                cols[f"{n}.weight"] = table.pop(f"_w{k}")
            head = pd.DataFrame({"product_id": pid, "zone": str(zone), "candidate": np.arange(len(table))})
            parts.append(pd.concat([head, pd.DataFrame(cols), table[list(DESIGN_METRICS)]], axis=1))

    design_cols = [f"{n}.{c}" for names in phases_of.values() for n in names for c in ("strike", "exit", "weight")]
    design_cols = list(dict.fromkeys(design_cols))
    columns = ["product_id", "zone", "candidate", *design_cols, *DESIGN_METRICS]
    designs = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    chosen, frontier = [], []
    for (pid, zone), d in designs.groupby(["product_id", "zone"], sort=True):
        score = d["objective"].to_numpy(np.float64) * (1.0 if maximise else -1.0)
        frontier.append(d.iloc[_pareto(d, score, constraints)])
        ok = d["feasible"].to_numpy(bool)
        if ok.any():
            chosen.append(d.iloc[[_best(d, score, ok, objective)]])
        else:
            unresolved.append((pid, zone, len(d), _why_none(d, constraints)))
    chosen_df = pd.concat(chosen, ignore_index=True) if chosen else pd.DataFrame(columns=columns)
    frontier_df = pd.concat(frontier, ignore_index=True) if frontier else pd.DataFrame(columns=columns)
    unresolved_df = pd.DataFrame(unresolved, columns=["product_id", "zone", "candidates", "reason"])
    unresolved_df = unresolved_df.sort_values(["product_id", "zone"], ignore_index=True)
    for row in unresolved_df.itertuples():
        notes.append(f"no design chosen for product {row.product_id!r}, zone {row.zone!r}: {row.reason}")
    sheets = ({str(row["zone"]): to_term_sheet(sheet, row, max_rate=cap) for _, row in chosen_df.iterrows()}
              if sheet is not None else {})
    return DesignResult(designs=designs, chosen=chosen_df, frontier=frontier_df, unresolved=unresolved_df,
                        objective=objective, maximise=maximise, constraints=constraints,
                        loadings=(expense, profit), phases=phases_of, notes=notes, term_sheets=sheets,
                        season_cap=cap)


# ---------------------------------------------------------------------------------------
# term sheet and plot
# ---------------------------------------------------------------------------------------


def to_term_sheet(params: ProductParams, design: pd.Series | Mapping[str, Any], *,
                  max_rate: float | None = None) -> ProductParams:
    """The term sheet with a design's strikes, exits and weights, built by its trigger plugin.

    Parameters
    ----------
    params
        The product's term sheet; its trigger plugin must declare
        :meth:`~panen.engine.api.Trigger.design_terms`.
    design
        One row of :attr:`DesignResult.chosen` (or ``designs``) of that product:
        ``<phase>.strike``, ``<phase>.exit`` (NaN for a phase without an exit) and
        ``<phase>.weight`` of every phase [index units, fraction].
    max_rate
        Season cap to set (e.g. :attr:`DesignResult.season_cap`); ``None`` keeps the term
        sheet's.

    Returns
    -------
    ProductParams
        A new term sheet validated by the plugin's ``Params`` (``params`` is not modified).
        Every phase keeps its curve: a binary or step phase stays one, and a design that
        gives it an exit (one searched as a linear phase) is refused.

    Raises
    ------
    ConfigError
        A phase missing from the design, an exit where the phase's curve has none (or none
        where it has one), or values the term sheet's constraints reject.
    """
    plugin = get_trigger(params.trigger)
    terms = _design_terms(params)
    phases, problems = [], []
    for p in terms.phases:
        strike, exit_, weight = (design.get(f"{p.name}.{c}") if isinstance(design, Mapping) else
                                 (design[f"{p.name}.{c}"] if f"{p.name}.{c}" in design else None)
                                 for c in ("strike", "exit", "weight"))
        if strike is None or pd.isna(strike) or weight is None or pd.isna(weight):
            problems.append(f"the design has no strike or weight for phase {p.name!r}")
            continue
        has_exit = exit_ is not None and not pd.isna(exit_)
        if has_exit != (p.exit is not None):
            problems.append(f"phase {p.name!r} is a {p.curve} phase " + (
                "with an exit, and the design gives none" if p.exit is not None else
                "without an exit, and the design gives one (it was searched as a linear phase: search it with "
                "DesignSpace.from_term_sheet)"))
            continue
        phases.append(replace(p, strike=float(strike), exit=float(exit_) if has_exit else None, weight=float(weight)))
    if problems:
        raise ConfigError([Problem(f"product {params.id!r}: {m}") for m in problems])
    cap = terms.season_cap if max_rate is None else float(max_rate)
    return plugin.with_design(params, DesignTerms(tuple(phases), cap))


def plot_tradeoff(result: DesignResult, path: str | Path, *, max_panels: int = 12) -> Path:
    """Plot objective versus gross premium rate, one panel per product and zone (PNG, Agg).

    All candidates are drawn faint grey, feasible ones coloured, the frontier
    (:attr:`DesignResult.frontier`) as a line, the chosen design as a star and the premium
    cap as a dashed vertical line. At most ``max_panels`` zones are drawn (the first in
    product, zone order); the figure title says how many were left out.

    Parameters
    ----------
    result
        A :func:`search` result.
    path
        Output file [PNG]; its folder is created.
    max_panels
        Most panels drawn (≥ 1).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if max_panels < 1:
        raise ConfigError(f"max_panels must be ≥ 1; {max_panels} given")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [k for k, _ in result.designs.groupby(["product_id", "zone"], sort=True)] if len(result.designs) else []
    shown = keys[:max_panels]
    ncols = min(3, max(1, len(shown)))
    nrows = max(1, math.ceil(len(shown) / ncols))
    fig = Figure(figsize=(4.6 * ncols, 3.6 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    label = {"hedging_effectiveness": "hedging effectiveness [–]",
             "missed_loss_years": "missed loss-year share b/(a+b) [fraction]"}[result.objective]
    cap = result.constraints.max_premium_rate
    for ax, key in zip(axes, shown):
        d = result.designs[(result.designs["product_id"] == key[0]) & (result.designs["zone"] == key[1])]
        ok = d["feasible"].to_numpy(bool)
        ax.scatter(d["gross_premium_rate"], d["objective"], s=6, color="0.75", alpha=0.5, lw=0, label="candidate")
        ax.scatter(d.loc[ok, "gross_premium_rate"], d.loc[ok, "objective"], s=9, color="tab:blue", alpha=0.8,
                   lw=0, label="feasible")
        f = result.frontier
        f = f[(f["product_id"] == key[0]) & (f["zone"] == key[1])]
        if len(f):
            ax.plot(f["gross_premium_rate"], f["objective"], "-o", ms=3, color="tab:orange", lw=1.2,
                    label="frontier")
        c = result.chosen
        c = c[(c["product_id"] == key[0]) & (c["zone"] == key[1])] if len(c) else c
        if len(c):
            ax.plot(c["gross_premium_rate"], c["objective"], "*", ms=14, color="tab:red", mec="k", label="chosen")
        else:
            ax.text(0.5, 0.5, "no feasible design", transform=ax.transAxes, ha="center", va="center",
                    color="tab:red")
        if cap is not None:
            ax.axvline(cap, ls="--", color="k", lw=0.8, label="premium cap")
        ax.set_title(f"{key[0]} — zone {key[1]}", fontsize=9)
        ax.set_xlabel("gross premium rate [fraction of sum insured]", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    if shown:
        axes[0].legend(fontsize=7, loc="best")
    else:
        axes[0].set_visible(True)
        axes[0].text(0.5, 0.5, "no candidates", ha="center", va="center")
    title = f"trigger design: {result.objective.replace('_', ' ')} vs premium"
    if len(keys) > len(shown):
        title += f" (first {len(shown)} of {len(keys)} zones shown)"
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110, format="png")
    return path


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _values(spec: list[float] | Range) -> np.ndarray:
    return spec.values() if isinstance(spec, Range) else np.asarray(spec, dtype=np.float64)


def _design_terms(params: ProductParams) -> DesignTerms:
    """What the term sheet's trigger plugin lets a search vary; ConfigError if nothing."""
    terms = get_trigger(params.trigger).design_terms(params)
    if terms is None:
        raise ConfigError(f"product {params.id!r}: trigger {params.trigger!r} cannot be redesigned by re-pricing its "
                          "index values (its plugin declares no design_terms)")
    return terms


def _default_phases(terms: DesignTerms) -> dict[str, PhaseSpace]:
    """Default grids for each phase of ``terms``: its direction and weight, an exit only if it has one."""
    return {p.name: PhaseSpace(direction=p.direction, weights=[float(p.weight)], with_exit=p.exit is not None)
            for p in terms.phases}


def _prepare(sim: pd.DataFrame, losses: pd.DataFrame, space: DesignSpace,
             loss_column: str) -> tuple[pd.DataFrame, list[str]]:
    """Join index values with losses; add ``zone``; one row per district, product, season, phase."""
    need = ["district_id", "product_id", "season", "phase", "index_value"]
    missing = [c for c in need if c not in sim.columns]
    if missing:
        raise InputError(f"simulation table lacks the column(s) {', '.join(missing)}")
    missing = [c for c in ("district_id", "season", loss_column) if c not in losses.columns]
    if missing:
        raise InputError(f"loss reference lacks the column(s) {', '.join(missing)}")
    keys = ["district_id", "product_id", "season", "phase"]
    s = sim[need + (["flagged"] if "flagged" in sim.columns else [])].copy()
    if s[keys].isna().any().any():
        raise InputError("simulation table has missing district_id, product_id, season or phase")
    s["district_id"] = s["district_id"].astype(str)
    s["product_id"] = s["product_id"].astype(str)
    s["phase"] = s["phase"].astype(str)
    s["season"] = s["season"].astype(np.int64)
    dup = s.duplicated(keys)
    if dup.any():
        raise InputError("simulation table has more than one row for a (district_id, product_id, season, phase)",
                         row=int(dup.to_numpy().argmax()) + 1)
    s["index_value"] = pd.to_numeric(s["index_value"], errors="coerce").astype(np.float64)
    if "flagged" in s.columns:
        s.loc[s["flagged"].fillna(True).astype(bool), "index_value"] = np.nan
    lo = losses[["district_id", "season", loss_column]].copy()
    lo["district_id"] = lo["district_id"].astype(str)
    lo["season"] = lo["season"].astype(np.int64)
    dup = lo.duplicated(["district_id", "season"])
    if dup.any():
        raise InputError("loss reference has more than one row for a (district_id, season)",
                         row=int(dup.to_numpy().argmax()) + 1)
    x = pd.to_numeric(lo[loss_column], errors="coerce").astype(np.float64)
    bad = (lo[loss_column].notna() & x.isna()) | (x < 0) | (x > 1) | np.isinf(x)
    if bad.any():
        raise InputError("losses must be fractions in [0, 1] (NaN for unknown)", row=int(bad.to_numpy().argmax()) + 1,
                         column=loss_column)
    lo["_loss"] = x
    frame = s.merge(lo[["district_id", "season", "_loss"]], on=["district_id", "season"], how="left")
    if space.by == "product":
        frame["zone"] = _ZONE_ALL
    elif space.by == "district":
        frame["zone"] = frame["district_id"]
    else:
        frame["zone"] = frame["district_id"].map(space.zones)
        lost = sorted(frame.loc[frame["zone"].isna(), "district_id"].unique())
        if lost:
            raise InputError(f"{len(lost)} district(s) have no zone in the zones mapping, e.g. {lost[:5]}")
    notes = []
    finite = pd.Series(np.isfinite(frame["index_value"].to_numpy()) & np.isfinite(frame["_loss"].to_numpy()),
                       index=frame.index)
    ok = finite.groupby([frame["product_id"], frame["district_id"], frame["season"]], sort=False).all()
    left_out = int((~ok).sum())
    if left_out:
        notes.append(f"{left_out} of {len(ok)} product × district × season(s) left out: an index value missing "
                     "or flagged, or no loss")
    return frame, notes


def _zone_arrays(part: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``index (phases, n)``, ``loss (n,)``, ``district code (n,)`` of the compared district-seasons,
    ordered by district then season; ``None`` if there are none."""
    wide = part.pivot(index=["district_id", "season"], columns="phase", values="index_value")
    wide = wide.reindex(columns=names).sort_index()
    loss = part.drop_duplicates(["district_id", "season"]).set_index(["district_id", "season"])["_loss"]
    loss = loss.reindex(wide.index).to_numpy(np.float64)
    index = wide.to_numpy(np.float64).T
    ok = np.isfinite(index).all(axis=0) & np.isfinite(loss)
    if not ok.any():
        return None
    district = pd.factorize(wide.index.get_level_values("district_id").to_numpy()[ok])[0]
    return np.ascontiguousarray(index[:, ok]), loss[ok], district


def _weight_sets(spaces: list[PhaseSpace], total: float | None,
                 where: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Candidate weight combinations: ``(W, phases)`` positions in each phase's sorted unique
    weights, the ``(W, phases)`` weights themselves, and each phase's unique weights."""
    unique = [np.unique(_values(ps.weights)) for ps in spaces]
    positions = np.array(list(itertools.product(*(range(u.size) for u in unique))), dtype=np.int64)
    positions = positions.reshape(-1, len(spaces))
    combos = np.stack([u[positions[:, k]] for k, u in enumerate(unique)], axis=1)
    if total is not None:
        keep = np.abs(combos.sum(axis=1) - total) <= 1e-9
        positions, combos = positions[keep], combos[keep]
        if not len(combos):
            raise ConfigError(f"{where}: no combination of the phase weights sums to weights_sum={total}")
    return positions, combos, unique


def _tick_rates(index: np.ndarray, strikes: np.ndarray, exits: np.ndarray, direction: str,
                weights: np.ndarray) -> np.ndarray:
    """Weighted rates ``(W × P, n)`` of a linear tick phase without a term sheet: weight-major,
    row ``w × P + p`` for weight ``w`` and (strike, exit) pair ``p``."""
    r = linear_rate(index[None, :], strikes[:, None], exits[:, None], direction)  # (P, n)
    return (weights[:, None, None] * r[None]).reshape(-1, index.size)


def _plugin_rates(sheet: ProductParams, terms: DesignTerms, name: str, index: np.ndarray, strikes: np.ndarray,
                  exits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted rates ``(W × P, n)`` of phase ``name`` through the term sheet's trigger plugin.

    Every candidate is a term sheet the plugin builds (:meth:`~panen.engine.api.Trigger.with_design`:
    ``sheet`` with this phase's strike, exit and weight replaced) and prices with its own curve
    (:meth:`~panen.engine.api.Trigger.rates_from_index`, all candidates of the phase in one
    call). Rows are weight-major, as in :func:`_tick_rates`.
    """
    plugin = get_trigger(sheet.trigger)
    base = terms.phase(name)
    candidates = []
    for w in weights:
        for s, e in zip(strikes, exits):
            phase = replace(base, strike=float(s), exit=None if np.isnan(e) else float(e), weight=float(w))
            candidates.append(plugin.with_design(
                sheet, replace(terms, phases=tuple(phase if p.name == name else p for p in terms.phases))))
    values = xr.DataArray(index[None, :], dims=("phase", "unit"), coords={"phase": [name]})
    rates = plugin.rates_from_index(candidates, values)
    if rates is None:
        raise PluginError(f"trigger plugin {sheet.trigger!r} declares design terms but no rates_from_index")
    out = np.asarray(rates.transpose("candidate", "phase", "unit").values, dtype=np.float64)
    if out.shape != (len(candidates), 1, index.size):
        raise PluginError(f"trigger plugin {sheet.trigger!r}: rates_from_index returned {out.shape} for "
                          f"{len(candidates)} candidates of one phase × {index.size} values")
    return out[:, 0, :]


def _evaluate(rates: list[np.ndarray], grids: list, weight_index: np.ndarray, weight_sets: np.ndarray,
              loss: np.ndarray, district: np.ndarray, cap: float, cons: Constraints, expense: float, profit: float,
              loss_threshold: float, payout_threshold: float) -> pd.DataFrame:
    """Metrics of every candidate (weight set × pair of phase 1 × … × pair of phase K), vectorised.

    ``rates[k]`` holds the weighted rates ``(W_k × P_k, n)`` of phase k's candidates
    (weight-major); a candidate's season rate is min(Σ_k its phase-k row, ``cap``).
    """
    n = loss.size
    sizes = [g[0].size for g in grids]
    shape = (len(weight_sets), *sizes)
    total = math.prod(shape)
    lost = loss > loss_threshold
    worst = _worst_mask(loss, district, cons.worst_share) & lost
    n_worst = int(worst.sum())
    revenue = 1.0 - loss
    out = {k: np.empty(total) for k in ("burn_cost", "gross_premium_rate", "payout_frequency", "max_payout_rate",
                                        "pod", "missed_loss_year_share", "payout_in_worst_share",
                                        "hedging_effectiveness")}
    batch = max(1, _CELLS_PER_BATCH // max(n, 1))
    for start in range(0, total, batch):
        sl = slice(start, min(start + batch, total))
        idx = np.unravel_index(np.arange(sl.start, sl.stop), shape)
        pay = np.zeros((sl.stop - sl.start, n))
        for k, r in enumerate(rates):
            pay += r[weight_index[idx[0], k] * sizes[k] + idx[k + 1]]
        np.minimum(pay, cap, out=pay)
        burn = pay.mean(axis=1)
        events = contingency(pay > payout_threshold, lost)
        premium = premium_rates(pay, district, expense_loading=expense, profit_loading=profit)
        out["burn_cost"][sl] = burn
        out["gross_premium_rate"][sl] = gross_premium_rate(burn, expense_loading=expense, profit_loading=profit)
        out["payout_frequency"][sl] = (pay > 0).mean(axis=1)
        out["max_payout_rate"][sl] = pay.max(axis=1)
        out["pod"][sl] = events.pod
        out["missed_loss_year_share"][sl] = events.loss_years_unpaid_share
        out["payout_in_worst_share"][sl] = ((pay[:, worst] > cons.meaningful_rate).sum(axis=1) / n_worst
                                            if n_worst else np.nan)
        out["hedging_effectiveness"][sl] = hedging_effectiveness(revenue, premium, pay, district)
    table = pd.DataFrame(out)
    table.insert(0, "seasons", n)
    table["worst_seasons"] = n_worst
    all_idx = np.unravel_index(np.arange(total), shape)
    for k, (s, e) in enumerate(grids):
        table[f"_s{k}"] = s[all_idx[k + 1]]
        table[f"_e{k}"] = e[all_idx[k + 1]]
        table[f"_w{k}"] = weight_sets[all_idx[0], k]
    return table


def _worst_mask(loss: np.ndarray, district: np.ndarray, q: float) -> np.ndarray:
    """The ⌈q n_d⌉ (≥ 1) largest-loss seasons of each district; ties to the earlier season.

    Rows are ordered by district then season, so a stable sort keeps the earlier season first.
    """
    order = np.lexsort((-loss, district))  # by district, then loss descending (stable: earlier season first)
    counts = np.bincount(district)
    k = np.maximum(1, np.ceil(q * counts - 1e-9).astype(np.int64))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(loss.size) - np.repeat(starts, counts)  # rank within the district in sorted order
    mask = np.zeros(loss.size, dtype=bool)
    mask[order] = rank < np.repeat(k, counts)
    return mask


def _feasibility(table: pd.DataFrame, cons: Constraints, objective: str) -> None:
    """Add ``feasible`` and ``reason`` (every failed constraint, in words)."""
    reasons = [[] for _ in range(len(table))]
    if cons.max_premium_rate is not None:
        gross = table["gross_premium_rate"].to_numpy()
        for i in np.flatnonzero(~(gross <= cons.max_premium_rate)):
            reasons[i].append(f"gross premium rate {gross[i]:.4g} > cap {cons.max_premium_rate:.4g}")
    if cons.min_payout_frequency_in_worst is not None:
        share = table["payout_in_worst_share"].to_numpy()
        q, m, need = cons.worst_share, cons.meaningful_rate, cons.min_payout_frequency_in_worst
        if np.isnan(share).all():
            for r in reasons:
                r.append(f"no loss season among the worst {q:.0%} to check the payout frequency on")
        else:
            for i in np.flatnonzero(~(share >= need - 1e-12)):
                reasons[i].append(f"pays > {m:.3g} in {share[i]:.0%} of the worst-{q:.0%} loss seasons "
                                  f"(< {need:.0%})")
    obj = table["objective"].to_numpy()
    what = "no downside to hedge" if objective == "hedging_effectiveness" else "no loss season"
    for i in np.flatnonzero(~np.isfinite(obj)):
        reasons[i].append(f"objective undefined ({what})")
    table["reason"] = ["; ".join(r) for r in reasons]
    table["feasible"] = table["reason"] == ""


def _best(d: pd.DataFrame, score: np.ndarray, ok: np.ndarray, objective: str) -> int:
    """Position in ``d`` of the best feasible candidate (ties: lower premium, [higher HE], earlier)."""
    premium = d["gross_premium_rate"].to_numpy(np.float64)
    he = d["hedging_effectiveness"].to_numpy(np.float64)
    second = np.where(np.isfinite(he), -he, np.inf) if objective == "missed_loss_years" else np.zeros(len(d))
    pos = np.flatnonzero(ok)
    order = np.lexsort((pos, second[pos], premium[pos], -score[pos]))
    return int(pos[order[0]])


def _pareto(d: pd.DataFrame, score: np.ndarray, cons: Constraints) -> np.ndarray:
    """Positions of the non-dominated candidates (higher score, lower premium) among those meeting every
    constraint but the premium cap, sorted by premium; of exact duplicates the earliest is kept."""
    premium = d["gross_premium_rate"].to_numpy(np.float64)
    eligible = np.isfinite(score) & np.isfinite(premium)
    if cons.min_payout_frequency_in_worst is not None:
        share = d["payout_in_worst_share"].to_numpy(np.float64)
        eligible &= share >= cons.min_payout_frequency_in_worst - 1e-12
    pos = np.flatnonzero(eligible)
    order = pos[np.lexsort((pos, -score[pos], premium[pos]))]
    keep, best = [], -np.inf
    for i in order:
        if score[i] > best:
            keep.append(i)
            best = score[i]
    return np.asarray(keep, dtype=np.int64)


def _why_none(d: pd.DataFrame, cons: Constraints) -> str:
    """Why no candidate of a zone is feasible, with the numbers that would make one so."""
    n = len(d)
    parts = [f"no feasible design among {n} candidate(s)"]
    if cons.max_premium_rate is not None:
        over = int((~(d["gross_premium_rate"] <= cons.max_premium_rate)).sum())
        if over:
            parts.append(f"{over} exceed the premium cap {cons.max_premium_rate:.4g} "
                         f"(cheapest gross rate {d['gross_premium_rate'].min():.4g})")
    if cons.min_payout_frequency_in_worst is not None:
        share = d["payout_in_worst_share"]
        if share.isna().all():
            parts.append(f"no loss season among the worst {cons.worst_share:.0%} to check the payout frequency on")
        else:
            low = int((~(share >= cons.min_payout_frequency_in_worst - 1e-12)).sum())
            if low:
                parts.append(f"{low} pay > {cons.meaningful_rate:.3g} in fewer than "
                             f"{cons.min_payout_frequency_in_worst:.0%} of the worst-{cons.worst_share:.0%} loss "
                             f"seasons (best {share.max():.0%})")
    undefined = int((~np.isfinite(d["objective"].to_numpy(np.float64))).sum())
    if undefined:
        parts.append(f"{undefined} have an undefined objective")
    return "; ".join(parts)
