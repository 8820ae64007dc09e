"""Area-yield index trigger: pay when a district's realised yield falls short of a threshold.

Three layers, as in :mod:`panen.triggers.weather`:

1. *Normal yield* — pure functions reducing a district's yield history to one expected
   yield: the mean of the best ``n`` of the last ``m`` years (:func:`normal_yield_best_of`,
   India's PMFBY), the mean of the last ``m`` years (:func:`normal_yield_mean`), or a
   value given in the yields table; optionally after a linear trend adjustment of the
   history to the season year (:func:`linear_trend_adjust`).
2. *Payout formulas* — :func:`threshold_yield`, :func:`shortfall_rate` (PMFBY, former US
   GRP) and :func:`arpi_payment_factor` (US Area Risk Protection Insurance, 7 CFR 407.9).
3. *Product* — :class:`AreaYieldTrigger` wires a term sheet onto the yields table.

Layers 1 and 2, the ``best_of`` and ``mean`` term-sheet models and the yields-table
helpers live in :mod:`panen.engine.maths.yieldhistory`, which the backtest's loss reference
shares; they are re-exported here.

Rules (documented here once, tested in ``tests/test_area_yield.py`` and, for the PMFBY
events and ARPI's protection factor, ``tests/test_pmfby.py``):

* **Window.** The history of season year ``Y`` is the ``L`` harvest years immediately
  before it, ``Y − L … Y − 1`` (``L = of`` for ``best_of``, ``years`` for ``mean``). The
  season's own yield is the *actual* yield and never part of its normal yield.
* **Missing years are missing, never zero.** A year is *available* when the table has a
  positive yield for it; blank, missing-coded, non-positive and absent years are not.
  ``valid_fraction`` = available years / ``L``. What a missing year does is a named rule,
  ``missing_years``:

  - ``withhold`` (the default, the safe one): every year of the window must be available,
    else the district is flagged — normal yield, threshold and payout rate are NaN and its
    policies are withheld with the reason, not paid;
  - ``average_available`` (with ``min_years``): with at least ``min_years`` available,
    ``best_of`` averages the best ``min(best, n)`` of the ``n`` available years and
    ``mean`` the ``n`` available years — the missing years are left out, which lowers the
    threshold when the best years are the missing ones (the guideline's illustration with
    its two best years blank: 2.71 instead of 3.76 t/ha, −28 %); fewer → withheld;
  - ``fill`` (with ``fill_column``): a missing year takes the value of ``fill_column`` on
    the same district and year row — the yield of the next higher unit (e.g. the state's
    that year), as PMFBY practice fills an insurance unit's gap from the higher unit; a year
    neither has stays missing, so the district is withheld. ``filled_years`` counts them;
    ``valid_fraction`` and ``history_years`` count the district's own years.
* **Notified threshold** (``threshold_column``). The threshold yield the state notified for
  the district and season, read from the season year's row, replaces level × normal yield
  (no history is read); a district without one is withheld.
* **Area correction** (``area_correction``; PMFBY Revised Operational Guidelines 2020,
  para. 21). Where the area insured in a district (the product's valid policies,
  :attr:`TriggerInputs.insured_area`) exceeds its sown area (an area column of the yields
  table on the season's row), the claim rate × sown / insured; never above 1. A district
  with a claim, insured area and no sown area is withheld (a claim is never paid
  uncorrected); a rate of 0 stays 0 without it. Without a register (a backtest) it is not
  applied, with a warning.
* **Notifications** (``prevented_sowing``, ``mid_season_adversity``; para. 21). Rows of the
  notifications table for this product (its id or ``all``) dated within the season apply.
  A district notified for *prevented sowing* pays ``prevented_sowing.rate`` (≤ 0.25) of
  the sum insured whatever its yield (even none: nothing was harvested), not area-corrected
  (the guideline pays on the area insured), and the cover ends — that is its whole claim.
  A district notified for *mid-season adversity* gets ``on_account_rate`` =
  ``mid_season_adversity.rate`` (≤ 0.25) × the likely claim: the product's claim formula
  on the notification's estimated yield, area-corrected; its final claim is the usual one
  on the actual yield (withheld until there is one). The engine pays the on-account rate in
  its own output, never in the final payouts, and does not yet deduct it from them.
* **ARPI protection factor** (``protection_factor``, 0.8–1.2; 7 CFR 407.9). Policy
  protection = sum insured × factor (:attr:`AreaYieldParams.sum_insured_factor`, applied
  by the ledger) and indemnity = payment factor × policy protection.
* **Trend** (``trend: {method: linear}``). Before the normal yield is taken, an ordinary
  least-squares line ``y = a + b·year`` is fitted to the available ``(year, yield)`` points
  of the window, and each year's yield is moved along it to the season year:
  ``y_adj = y + b·(Y − year)``. The slope is used with its sign (falling trends lower the
  normal yield). With fewer than 3 available points no line is fitted and the history is
  used unadjusted (``trend_slope`` is NaN). A perfect line detrends to a flat history at
  its season-year value. Availability (``valid_fraction``, ``min_years``) is counted on the
  raw (or filled) history; a year a steep falling trend would adjust to zero or below drops out of the
  normal yield like a missing year.
* **Actual yield.** The table's yield for ``(district, Y)``; missing or absent → flagged.
  Districts absent from the table → flagged.
* **Cohorts.** Area yield has no sowing window: every cohort gets the same values.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, model_validator

from panen.engine.api import InputInfo, ProductParams, Trigger, TriggerInputs, TriggerResult
from panen.engine.errors import DataQualityError, Problem
from panen.engine.maths.yieldhistory import (  # layers 1 and 2 are re-exported (__all__)
    BestOfNormal,
    MeanNormal,
    arpi_payment_factor,
    linear_trend_adjust,
    normal_yield_best_of,
    normal_yield_mean,
    select_season,
    shortfall_rate,
    threshold_yield,
    wide_table,
    year_columns,
)

__all__ = [
    "AreaYieldParams",
    "AreaYieldTrigger",
    "BestOfNormal",
    "GivenNormal",
    "LinearTrend",
    "MeanNormal",
    "arpi_payment_factor",
    "linear_trend_adjust",
    "normal_yield_best_of",
    "normal_yield_mean",
    "shortfall_rate",
    "threshold_yield",
]


#: The ``product_id`` of a notification that applies to every product in its district
#: (:data:`panen.datasets.notifications.ALL_PRODUCTS`; plugins do not import readers).
ALL_PRODUCTS = "all"


# --------------------------------------------------------------------------- term sheet
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GivenNormal(_Strict):
    """Normal (expected) yield read from a column of the yields table, on the season year's row."""

    method: Literal["given"]
    column: str = Field(min_length=1, description="yields-table column holding the expected yield [t/ha]")

    @property
    def window(self) -> int:
        return 0


class LinearTrend(_Strict):
    """Linear (OLS) trend adjustment of the history to the season year."""

    method: Literal["linear"]


class PreventedSowing(_Strict):
    """Prevented / failed sowing cover: a notified district pays ``rate`` of the sum insured and the cover ends."""

    rate: float = Field(gt=0, le=0.25, description="share of the sum insured paid [fraction, at most 0.25]")


class MidSeasonAdversity(_Strict):
    """Mid-season adversity cover: a notified district gets ``rate`` of its likely claim on account."""

    rate: float = Field(gt=0, le=0.25, description="share of the likely claim paid on account [fraction, at most "
                                                    "0.25]")


class AreaCorrection(_Strict):
    """Area correction factor: claims × sown / insured area where more area is insured than sown."""

    sown_area_column: str = Field(min_length=1, description="yields-table area column (inputs.yields.area_columns) "
                                                            "of the season's sown area [ha]")


MISSING_YEARS = ("withhold", "average_available", "fill")


class AreaYieldParams(ProductParams):
    """Term sheet of an area-yield index product (``trigger: area_yield``).

    ``loss_limit_factor`` must satisfy ``0 <= loss_limit_factor < indemnity_level``: the
    ARPI denominator is ``expected × (coverage − loss_limit_factor)``, which must be
    positive for the payment factor to rise from 0 at the trigger yield to 1 at
    ``expected × loss_limit_factor``. It and ``protection_factor`` only apply to
    ``formula: arpi``; setting them for ``shortfall`` is an error rather than silently
    ignored. ``threshold_column`` (a notified threshold yield) replaces ``normal_yield`` and
    ``indemnity_level``; the keys that shape a computed normal yield (``trend``,
    ``missing_years``, ``min_years``, ``fill_column``) cannot go with it. See the module
    docstring for every rule.
    """

    trigger: Literal["area_yield"] = "area_yield"
    normal_yield: BestOfNormal | MeanNormal | GivenNormal | None = Field(
        None, discriminator="method", description="{method: best_of, best, of} | {method: mean, years} | {method: given, column}; "
                          "required unless threshold_column")
    trend: LinearTrend | None = Field(None, description="{method: linear}: detrend the history to the season year")
    indemnity_level: float | None = Field(
        None, gt=0, le=1, description="threshold = level × normal yield [fraction]; required unless threshold_column")
    threshold_column: str | None = Field(
        None, min_length=1, description="yields-table column of the notified threshold yield [t/ha] on the season "
                                        "year's row, instead of level × normal yield (formula shortfall)")
    formula: Literal["shortfall", "arpi"] = Field(
        "shortfall", description="shortfall: (T − A)/T (PMFBY); arpi: 7 CFR 407.9 payment factor")
    loss_limit_factor: float = Field(
        0.18, ge=0, lt=1, description="ARPI loss limit factor [fraction of expected yield], < indemnity_level")
    protection_factor: float = Field(
        1.0, ge=0.8, le=1.2, description="ARPI protection factor [fraction, 0.8..1.2]: policy protection = sum "
                                         "insured × factor")
    missing_years: Literal["withhold", "average_available", "fill"] = Field(
        "withhold", description="a history year without a yield: withhold the district | average_available "
                                "(with min_years) | fill (from fill_column)")
    min_years: int | None = Field(
        None, ge=1, description="missing_years average_available: available history years needed, else withheld")
    fill_column: str | None = Field(
        None, min_length=1, description="missing_years fill: yields-table column holding the yield [t/ha] that "
                                        "stands in for a district's missing year (e.g. the state's)")
    prevented_sowing: PreventedSowing | None = Field(
        None, description="{rate: 0.25}: notified prevented sowing pays rate × sum insured and ends the cover")
    mid_season_adversity: MidSeasonAdversity | None = Field(
        None, description="{rate: 0.25}: notified mid-season adversity pays rate × likely claim on account")
    area_correction: AreaCorrection | None = Field(
        None, description="{sown_area_column}: claims × min(1, sown / insured area) per district")
    yield_season: str | None = Field(
        None, description="value of the yields table's season column this product settles on")

    @model_validator(mode="after")
    def _consistent(self) -> "AreaYieldParams":
        errors: list[str] = []
        notified = self.threshold_column is not None
        if notified:
            for key in ("normal_yield", "indemnity_level", "trend", "min_years", "fill_column"):
                if getattr(self, key) is not None:
                    errors.append(f"{key} does not go with threshold_column (the threshold yield is notified, "
                                  f"not computed)")
            if "missing_years" in self.model_fields_set:
                errors.append("missing_years does not go with threshold_column (the threshold yield is notified, "
                              "not computed)")
            if self.formula == "arpi":
                errors.append("formula 'arpi' needs the expected yield (normal_yield and indemnity_level), "
                              "not a notified threshold_column")
        else:
            if self.normal_yield is None:
                errors.append("normal_yield is required (or a notified threshold_column)")
            if self.indemnity_level is None:
                errors.append("indemnity_level is required (or a notified threshold_column)")
        method = self.normal_yield.method if self.normal_yield is not None else None
        if method == "given":
            for key in ("min_years", "trend", "fill_column"):
                if getattr(self, key) is not None:
                    errors.append(f"{key} only applies to normal_yield methods best_of and mean, not 'given'")
            if "missing_years" in self.model_fields_set:
                errors.append("missing_years only applies to normal_yield methods best_of and mean, not 'given'")
        elif method is not None:
            window = self.normal_yield.window
            if self.missing_years == "average_available":
                key = "of" if method == "best_of" else "years"
                if self.min_years is None:
                    errors.append(f"missing_years 'average_available' needs min_years (the fewest available "
                                  f"years, between 1 and {key} = {window})")
                elif self.min_years > window:
                    errors.append(f"min_years must be between 1 and the history window ({key} = {window}); "
                                  f"got {self.min_years}")
            elif self.min_years is not None:
                errors.append(f"min_years only applies to missing_years 'average_available' (it is "
                              f"{self.missing_years!r}); set missing_years: average_available to average the "
                              f"available years")
            if self.missing_years == "fill" and self.fill_column is None:
                errors.append("missing_years 'fill' needs fill_column (the yields-table column of the yield that "
                              "stands in for a missing year)")
            elif self.missing_years != "fill" and self.fill_column is not None:
                errors.append(f"fill_column only applies to missing_years 'fill' (it is {self.missing_years!r})")
        if self.formula == "arpi":
            if self.indemnity_level is not None and not self.loss_limit_factor < self.indemnity_level:
                errors.append(f"loss_limit_factor must be >= 0 and < indemnity_level ({self.indemnity_level}); "
                              f"got {self.loss_limit_factor}")
        else:
            for key in ("loss_limit_factor", "protection_factor"):
                if key in self.model_fields_set:
                    errors.append(f"{key} only applies to formula 'arpi', not 'shortfall'")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def required_years(self) -> int:
        """Available (or filled) history years needed (0 for a given normal yield or a notified threshold)."""
        if self.normal_yield is None or self.normal_yield.method == "given":
            return 0
        if self.missing_years == "average_available" and self.min_years is not None:
            return self.min_years
        return self.normal_yield.window

    @property
    def sum_insured_factor(self) -> float:
        """ARPI's protection factor (policy protection = sum insured × factor); 1 for ``shortfall``."""
        return float(self.protection_factor) if self.formula == "arpi" else 1.0

    @property
    def notified_kinds(self) -> tuple[str, ...]:
        """The notification kinds this term sheet covers."""
        return tuple(k for k in ("prevented_sowing", "mid_season_adversity") if getattr(self, k) is not None)


# --------------------------------------------------------------------------- product
class AreaYieldTrigger(Trigger):
    """Area-yield index per district: pay the shortfall of the actual yield below a threshold.

    See the module docstring for the window, missing-year and trend rules.

    References
    ----------
    PMFBY Operational Guidelines (revamped, effective Kharif 2020), "Assessment of Claims",
    para. 21.1 (threshold yield, claim formula); PMFBY Revised Operational Guidelines (2020),
    para. 21 (prevented / failed sowing, mid-season adversity, area correction factor).
    7 CFR 407.9, Area Risk Protection Insurance Basic Provisions (Area Yield Protection
    payment factor; section 3, coverage level and protection factor).
    """

    name = "area_yield"
    Params = AreaYieldParams
    inputs = ("yields",)
    description = "area-yield index: threshold = level × normal yield (best n of m, mean, given); shortfall or ARPI"

    @classmethod
    def required_inputs(cls, params: AreaYieldParams) -> tuple[str, ...]:
        """The yields table, and the notifications table when the term sheet covers a notified event."""
        return ("yields", "notifications") if params.notified_kinds else ("yields",)

    @classmethod
    def check_inputs(cls, params: AreaYieldParams, info: dict[str, InputInfo]) -> list[str]:
        """Every yields-table column the term sheet names must have been read."""
        y = info.get("yields")
        if y is None or not y.columns:
            return []
        named = [("threshold_column", params.threshold_column, "extra_columns"),
                 ("fill_column", params.fill_column, "extra_columns")]
        if params.normal_yield is not None and params.normal_yield.method == "given":
            named.append(("normal_yield.column", params.normal_yield.column, "extra_columns"))
        if params.area_correction is not None:
            named.append(("area_correction.sown_area_column", params.area_correction.sown_area_column,
                          "area_columns"))
        return [f"product {params.id!r}: {key} {col!r} is not a column of the yields table (inputs.yields); "
                f"read it with inputs.yields.{how} (columns read: {', '.join(y.columns)})"
                for key, col, how in named if col is not None and col not in y.columns]

    @classmethod
    def guaranteed_rate(cls, params: AreaYieldParams, inputs: TriggerInputs, result: xr.Dataset) -> xr.DataArray:
        """The payout rate no later data can lower [fraction]: the claim once the season's yield is known, else 0.

        The claim is a function of the season's realised yield alone (with its history):
        where the yields table already holds it, the rate is final and guaranteed; where it
        does not (the harvest is not in), nothing is — a yield can land anywhere. A
        mid-season adversity advance (``on_account_rate``, PMFBY para 21) is a share of the
        *likely* claim, not a guarantee: it is paid on account flagged recoverable
        (``panen run --as-of``), never counted here.

        References
        ----------
        PMFBY revised operational guidelines (2020), para 21 — the claim is settled on the
        yield data of the crop-cutting experiments; on-account payments are adjusted at the
        final settlement.
        """
        rate = result["payout_rate"]
        if inputs.as_of is None:
            return rate.copy()
        return xr.where(rate.notnull(), rate, 0.0).transpose("district", "cohort").rename("guaranteed_rate")

    def evaluate(self, params: AreaYieldParams, inputs: TriggerInputs) -> TriggerResult:
        table = _season_rows(params, inputs.tables.get("yields"))
        units = table.attrs.get("units", "t/ha")
        year = int(inputs.season.year)
        keys = np.asarray(inputs.district_ids)
        text_keys = [str(k) for k in keys]
        wide = wide_table(table, "yield", text_keys)

        def season_column(name: str) -> np.ndarray:  # one column's value on the season year's row, positive or NaN
            return year_columns(wide_table(table, name, text_keys), [year])[:, 0]

        actual = year_columns(wide, [year])[:, 0]
        spec = params.normal_yield
        slope = filled = None
        if params.threshold_column is not None:  # notified by the state: used as it is
            threshold = season_column(params.threshold_column)
            normal = np.full(len(keys), np.nan)
            available = np.isfinite(threshold).astype(float)
            valid_fraction = available
        else:
            if spec.method == "given":
                normal = season_column(spec.column)
                available = np.isfinite(normal).astype(float)
                valid_fraction = available
            else:
                window_years = np.arange(year - spec.window, year)
                history = year_columns(wide, window_years)
                available = (history > 0).sum(axis=-1).astype(float)
                valid_fraction = available / spec.window
                if params.missing_years == "fill":
                    stand_in = year_columns(wide_table(table, params.fill_column, text_keys), window_years)
                    gap = ~(history > 0)
                    history = np.where(gap, stand_in, history)
                    filled = (gap & (stand_in > 0)).sum(axis=-1)
                if params.trend is not None:
                    history, slope = linear_trend_adjust(history, window_years, year)
                if spec.method == "best_of":
                    normal = normal_yield_best_of(history, spec.best, spec.of, params.required_years)
                else:
                    normal = normal_yield_mean(history, spec.years, params.required_years)
            threshold = threshold_yield(normal, params.indemnity_level)

        def claim_rate(final: np.ndarray) -> np.ndarray:
            if params.formula == "arpi":
                return arpi_payment_factor(normal, params.indemnity_level, final, params.loss_limit_factor)
            return shortfall_rate(threshold, final)

        factor, sown, insured = _area_correction(params, inputs, season_column, text_keys)
        rate = _corrected(claim_rate(actual), factor)

        kind, estimated = _notified(params, inputs, text_keys)
        prevented = kind == "prevented_sowing"
        if params.prevented_sowing is not None:  # the cover ended at the notification: no yield claim
            rate = np.where(prevented, params.prevented_sowing.rate, rate)
        on_account = None
        if params.mid_season_adversity is not None:
            likely = _corrected(claim_rate(estimated), factor)
            on_account = np.where(kind == "mid_season_adversity", params.mid_season_adversity.rate * likely, np.nan)
            lost = np.flatnonzero((kind == "mid_season_adversity") & ~np.isfinite(on_account))
            if lost.size:
                warnings.warn(f"product {params.id!r}: {lost.size} district(s) notified for mid-season adversity "
                              f"get no on-account payment: their likely claim cannot be computed (no threshold "
                              f"yield or sown area), e.g. district {text_keys[lost[0]]!r}", UserWarning, stacklevel=2)

        cohorts = np.asarray(inputs.cohorts, dtype="datetime64[ns]")
        every_cohort = xr.DataArray(np.ones(len(cohorts)), dims="cohort")  # same value for every cohort
        payout_rate = _per_district(rate) * every_cohort
        reason = _reasons(rate, actual, normal, threshold, available, factor, sown, insured, params, year, units)
        data = {
            "payout_rate": payout_rate,
            "flagged": payout_rate.isnull(),
            "reason": xr.DataArray(np.repeat(reason[:, None], len(cohorts), axis=1), dims=("district", "cohort")),
            "index_value": _one_phase(_per_district(actual) * every_cohort).assign_attrs(units=units),
            "phase_rate": _one_phase(payout_rate),
            "valid_fraction": _one_phase(_per_district(valid_fraction) * every_cohort),
            "normal_yield": _per_district(normal, units=units),
            "threshold_yield": _per_district(threshold, units=units),
            "history_years": xr.DataArray(available.astype(np.int64), dims="district"),
            "area_correction_factor": _per_district(factor),
            "notified": xr.DataArray(kind.astype(object), dims="district"),
        }
        if slope is not None:
            data["trend_slope"] = _per_district(slope, units=f"{units} per year")
        if filled is not None:
            data["filled_years"] = xr.DataArray(np.asarray(filled, dtype=np.int64), dims="district")
        if on_account is not None:
            data["on_account_rate"] = _per_district(on_account) * every_cohort
            data["estimated_yield"] = _per_district(estimated, units=units)
        method = "notified_threshold" if spec is None else spec.method
        out = xr.Dataset(data, coords={"district": keys, "cohort": cohorts},
                         attrs={"season_year": year, "normal_yield_method": method, "formula": params.formula})
        return TriggerResult(out)


def _corrected(rate: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``rate × factor``; a rate of 0 stays 0 even where the factor is unknown (no claim needs no area)."""
    with np.errstate(invalid="ignore"):
        return np.where(rate == 0, 0.0, rate * factor)


def _area_correction(params: AreaYieldParams, inputs: TriggerInputs, season_column, keys: list[str]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area correction factor per district ``min(1, sown / insured)`` [fraction], sown and insured area [ha].

    PMFBY Revised Operational Guidelines (2020), para. 21: where the area insured in an
    insurance unit exceeds the area sown, the claims of its policies are reduced in the
    ratio of the sown to the insured area. Factor 1 where the term sheet has no
    ``area_correction``, where no policy is insured, or where no register is settled (then a
    warning says it was not applied); NaN where policies are insured and the sown area is
    missing (their claims are withheld, never paid uncorrected).
    """
    n = len(keys)
    ones, unknown = np.ones(n), np.full(n, np.nan)
    if params.area_correction is None:
        return ones, unknown, unknown
    sown = season_column(params.area_correction.sown_area_column)
    if inputs.insured_area is None:
        warnings.warn(f"product {params.id!r}: area_correction needs the insured area of a settled policy register; "
                      f"not applied here (no register)", UserWarning, stacklevel=3)
        return ones, sown, unknown
    area = inputs.insured_area
    insured = pd.Series(area.to_numpy(dtype=float), index=area.index.astype(str)).reindex(keys).fillna(0.0).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(insured > 0, np.minimum(1.0, sown / np.where(insured > 0, insured, 1.0)), 1.0)
    return factor, sown, insured


def _notified(params: AreaYieldParams, inputs: TriggerInputs, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per district: the notification kind that applies to this product (``""`` none) and its estimated yield [t/ha].

    A notification applies when its ``product_id`` is the product's id or ``all`` and its
    date lies within the season (rows of other seasons are left alone; when a register is
    settled, a warning counts them — a backtest replays many seasons and warns of none). It is distrusted: a district the product does not settle on, two
    notifications of one kind for one district, and a district notified both for prevented
    sowing (the cover ended) and mid-season adversity are located errors. A notified kind
    the term sheet does not cover is not paid (a warning names it).
    """
    n = len(keys)
    kind, estimated = np.full(n, "", dtype=object), np.full(n, np.nan)
    if not params.notified_kinds:
        return kind.astype(str), estimated
    label = f"product {params.id!r}"
    table = inputs.tables.get("notifications")
    if table is None:
        raise DataQualityError(f"{label}: prevented_sowing / mid_season_adversity need the 'notifications' table "
                               f"(inputs.notifications)")
    absent = [c for c in ("district_id", "product_id", "kind", "date") if c not in table.columns]
    if absent:
        raise DataQualityError(f"{label}: the notifications table has no column(s) {', '.join(map(repr, absent))}")
    source = table.attrs.get("source")
    lines = table["line"].to_numpy() if "line" in table.columns else np.zeros(len(table), np.int64)
    ids = table["district_id"].astype(str).to_numpy()
    mine = np.isin(table["product_id"].astype(str).to_numpy(), [params.id, ALL_PRODUCTS])
    dates = pd.to_datetime(table["date"]).to_numpy().astype("datetime64[D]")
    season = (dates >= inputs.season.start) & (dates <= inputs.season.end)
    other = int((mine & ~season).sum())
    if other and inputs.insured_area is not None:  # settling a register; a backtest replays every season
        warnings.warn(f"{label}: {other} notification(s) dated outside the season {inputs.season.id} "
                      f"({inputs.season.start} .. {inputs.season.end}) were not applied", UserWarning, stacklevel=3)
    # in season (panen run --as-of DATE) a notification dated after DATE is not yet known
    known = dates <= np.datetime64(inputs.as_of, "D") if inputs.as_of is not None else np.ones(len(dates), bool)
    rows = np.flatnonzero(mine & season & known)
    where = {k: i for i, k in enumerate(keys)}
    kinds = table["kind"].astype(str).to_numpy()
    est = (pd.to_numeric(table["estimated_yield"], errors="coerce").to_numpy(dtype=float)
           if "estimated_yield" in table.columns else np.full(len(table), np.nan))
    problems: list[Problem] = []
    first: dict[int, int] = {}

    def problem(r: int, message: str, column: str = "district_id") -> None:
        problems.append(Problem(f"{label}: {message}", file=source, row=int(r) + 1, column=column,
                                line=int(lines[r]) or None))

    uncovered: dict[str, int] = {}
    for r in rows:
        d, k = ids[r], kinds[r]
        if k not in ("prevented_sowing", "mid_season_adversity"):
            problem(r, f"kind {k!r} is not one of prevented_sowing, mid_season_adversity", "kind")
            continue
        if d not in where:
            problem(r, f"district {d!r} is not one this product settles on (its district layer or yields table)")
            continue
        if k not in params.notified_kinds:
            uncovered[k] = uncovered.get(k, 0) + 1
            continue
        i = where[d]
        if i in first:
            seen = first[i]
            on = f"line {int(lines[seen])}" if lines[seen] else f"row {seen + 1}"
            problem(r, f"district {d!r} is notified twice ({kind[i]} on {on}, {k} here)" if k != kind[i]
                    else f"a second {k} notification for district {d!r} (the first is on {on})")
            continue
        if k == "mid_season_adversity" and not (est[r] > 0):
            problem(r, f"the mid-season adversity notification of district {d!r} has no estimated yield",
                    "estimated_yield")
            continue
        first[i], kind[i] = r, k
        if k == "mid_season_adversity":
            estimated[i] = est[r]
    if problems:
        raise DataQualityError(problems)
    for k, count in sorted(uncovered.items()):
        warnings.warn(f"{label}: {count} {k} notification(s) not paid: the term sheet has no {k} cover",
                      UserWarning, stacklevel=3)
    return kind.astype(str), estimated


def _reasons(rate: np.ndarray, actual: np.ndarray, normal: np.ndarray, threshold: np.ndarray, available: np.ndarray,
             factor: np.ndarray, sown: np.ndarray, insured: np.ndarray, params: AreaYieldParams, year: int,
             units: str) -> np.ndarray:
    """Why a district could not be assessed, for the audit trail ("" where it was)."""
    out = np.full(len(rate), "", dtype=object)
    missing = ~np.isfinite(rate)
    need = params.required_years
    for i in np.flatnonzero(missing):
        if not np.isfinite(actual[i]):
            out[i] = f"no {year} yield in the yields table"
        elif params.threshold_column is not None and not np.isfinite(threshold[i]):
            out[i] = f"no notified threshold yield ({params.threshold_column}) for {year}"
        elif params.normal_yield is not None and params.normal_yield.method == "given" and not np.isfinite(normal[i]):
            out[i] = f"no expected yield ({params.normal_yield.column}) for {year}"
        elif params.threshold_column is None and params.normal_yield.method != "given" and available[i] < need:
            extra = (f" (filled from {params.fill_column} where it had a value)"
                     if params.missing_years == "fill" else "")
            out[i] = (f"yield history of {int(available[i])} year(s) in the {params.normal_yield.window} before "
                      f"{year}{extra}; the normal yield needs {need} (missing_years: {params.missing_years})")
        elif not np.isfinite(factor[i]):
            out[i] = (f"no {year} sown area ({params.area_correction.sown_area_column}) for the area correction "
                      f"of {insured[i]:g} ha insured")
        elif params.threshold_column is None and (not np.isfinite(normal[i]) or normal[i] <= 0):
            out[i] = f"no usable normal yield [{units}]"
        else:
            out[i] = "not assessable"
    return out


def _per_district(values, **attrs) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=float), dims="district", attrs=attrs)


def _one_phase(da: xr.DataArray) -> xr.DataArray:
    """Area yield has one phase, the whole season."""
    return da.expand_dims(phase=["season"])


def _season_rows(params: AreaYieldParams, table: pd.DataFrame | None) -> pd.DataFrame:
    """The yields rows this product settles on; checks the frame the reader promises."""
    label = f"product {params.id!r}"
    if table is None:
        raise DataQualityError(f"{label}: area_yield needs the 'yields' table (inputs.yields)")
    needed = ["district_id", "year", "yield"]
    if params.normal_yield is not None and params.normal_yield.method == "given":
        needed.append(params.normal_yield.column)
    needed += [c for c in (params.threshold_column, params.fill_column,
                           params.area_correction.sown_area_column if params.area_correction else None) if c]
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise DataQualityError(f"{label}: the yields table has no column(s) {', '.join(map(repr, absent))}; "
                               f"available: {', '.join(map(str, table.columns))}")
    table = select_season(table, params.yield_season, label=label)
    key = table[["district_id", "year"]].astype({"district_id": str})
    dup = key.duplicated(keep=False)
    if dup.any():
        first = key[dup].iloc[0]
        raise DataQualityError(f"{label}: the yields table has {int(dup.sum())} rows sharing a (district, year), "
                               f"e.g. district {first['district_id']!r}, year {int(first['year'])}")
    return table
