"""Policy terms: a small closed set of named rules between gross payout and net payout.

The money path of every product is fixed; **this is the one place the order of the terms
is stated** (after OasisLMF's financial module: rules chosen by name, % terms
converted to amounts first, then small vectorised kernels in a fixed order)::

    gross [Rp] -> average clause -> deductible -> limit -> share -> round to rupiah -> net [Rp]

Every step that multiplies by a fraction (average, a percentage deductible, time excess,
share) rounds its result with :func:`round_rupiah` (half-up) right there, so each step
hands whole rupiah to the next and ``gross - net`` splits exactly into the amounts
retained by the average clause, the deductible, the limit and the share
(:func:`apply_terms_steps`).

*Why average before the deductible.* The British practice is to work out the averaged
("pro rata") loss first and take the excess off that figure ("Any excess on the policy
will then be taken off the final figure", theretiredbroker.com, *The cost of
underinsurance and the average clause*; the textbook formula pays *adjusted loss* × sum
insured / current value, Wikipedia, "Condition of average"). Some continental adjusters
apply the deductible first so that the insured's retention is averaged too (VANTEVO,
*What happens to the deductible when there is underinsurance*); a wording that says so
needs its own rule. The deductible before the limit and the limit before the share
follow OasisLMF's calcrules (deductible, then limit) and a coinsurer's share of the
final loss.

Terms follow the shape of OasisLMF's financial module: each rule has a *name* (never a
number), percentage terms are converted to rupiah amounts in a separate *prepare* step
(:func:`prepare_terms`), and small side-effect-free vectorised kernels
(:func:`apply_average_clause`, :func:`apply_straight_deductible`,
:func:`apply_franchise_deductible`, :func:`apply_limit`, :func:`apply_share`, in the spirit
of CLIMADA's ``apply_deductible_to_mat``) do the arithmetic on int64 rupiah arrays.

Config shape (``products[].terms`` in the run YAML; README "Config reference")::

    terms:
      deductible:                       # one of (discriminated on ``kind``):
        {kind: straight, amount: 300000}            # pay max(loss - amount, 0)
        {kind: franchise, amount: 35000}            # conditional: below amount 0, else all
        {kind: unconditional, amount: 50000}        # always deducted: max(loss - amount, 0)
        {kind: percent_of_loss, rate: 0.10, minimum: 10000000}
                                                    # deduct max(rate × loss, minimum)
        {kind: time_excess, days: 3}                # first N days of an interruption unpaid
        {kind: dynamic, schedule: [0.05, 0.35, 0.80]}
                                                    # rate by event number in the policy year
      limit: 5000000                    # cap per policy [Rp]
      share: 0.9                        # insurer's coinsurance share (0, 1]
      average_clause: true              # pay loss × sum insured / actual value if under-insured

Rates (``rate``, ``schedule``) are fractions in [0, 1] with at most six decimals (whole
parts per million), so percentage deductibles are computed exactly in integer rupiah.

Per-policy context (``context=`` of :func:`apply_terms`, a mapping of arrays aligned with
``gross``; :data:`CONTEXT_COLUMNS`):

``sum_insured`` [Rp]
    Needed by ``average_clause``; the ledger always passes it.
``actual_value`` [Rp, > 0]
    Needed by ``average_clause``: the policy register's optional ``actual_value`` column
    (the value at risk). Under an average clause **every** policy of the product must have
    one: a policy without it is an :class:`~panen.engine.errors.InputError` naming the
    product, the rule, the column and the policies, not silently paid unaveraged (that
    would overpay the under-insured) nor zeroed.
``event_number`` [1-based]
    Needed by ``dynamic``: which event of the policy year this loss is (1 = first).
``interruption_days`` [days, >= 0]
    Needed by ``time_excess``: length D of the interruption the loss covers.

A rule whose column is absent from the context raises
:class:`~panen.engine.errors.ConfigError` (the term sheet asks for data the run does not
provide); a column that is present but lacks a value for some policy, or holds an invalid
one, raises :class:`~panen.engine.errors.InputError`. Missing values are NaN (float
arrays), masked entries (:class:`numpy.ma.MaskedArray`) or NA (pandas).

Adding a rule: one model class with a ``kind`` literal, a ``rule`` (the kernel name in
:data:`DEDUCTIBLE_KERNELS`), ``needs`` (its context columns) and a ``prepare`` method that
returns the per-policy deductible in rupiah; one more kernel only if no existing one fits;
one more member of :data:`Deductible`. Nothing else is restructured.
"""

from __future__ import annotations

import math

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator

from panen.engine.errors import ConfigError, InputError, Problem

__all__ = [
    "CONTEXT_COLUMNS",
    "DEDUCTIBLE_KERNELS",
    "Deductible",
    "DynamicDeductible",
    "FranchiseDeductible",
    "PercentOfLossDeductible",
    "PreparedTerms",
    "StraightDeductible",
    "Terms",
    "TermsSteps",
    "TimeExcess",
    "UnconditionalDeductible",
    "apply_average_clause",
    "apply_franchise_deductible",
    "apply_limit",
    "apply_share",
    "apply_straight_deductible",
    "apply_terms",
    "apply_terms_steps",
    "prepare_terms",
    "rate_of",
    "round_rupiah",
]

#: Amounts within this many units in the last place (ulp) *below* a half are rounded up
#: as halves. Decimal inputs such as 0.145 have no exact binary form (0.145 * 100 ==
#: 14.499999999999998, one ulp below 14.5); a few ulps absorb that representation error
#: and nothing more: 0.4999998 is a true amount below a half and rounds down. (An absolute
#: tolerance of 1e-6 Rp, used before, rounded such amounts up.)
_HALF_ULPS = 8
#: float64 holds every integer exactly below 2**53 (about 9.0e15 Rp); above it a
#: rupiah amount could not be represented, so rounding refuses.
_EXACT_LIMIT = float(2**53)


def round_rupiah(amount: np.ndarray | float) -> np.ndarray | np.int64:
    """Round amounts to whole rupiah, half away from zero ("half-up").

    This is the single rounding rule of the ledger: sums insured from area × rate per
    hectare, gross payouts from sum insured × payout rate, and coinsurance shares are all
    rounded here, once, so totals of the rounded amounts reconcile to the rupiah.

    Parameters
    ----------
    amount
        Amount(s) [Rp], float64 (or anything convertible). Must be finite and below
        2**53 in magnitude: float64 represents every integer exactly below 2**53, so the
        rounded result is an exact int64.

    Returns
    -------
    numpy.ndarray or numpy.int64
        int64 amount(s) [Rp]; an int64 scalar for a scalar input.

    Notes
    -----
    Half-up is applied to the exact float64 value, except that a value within 8 units in
    the last place (and at most 1e-6 Rp) below a half is taken as the half: a decimal half that lands a few ulps
    below it in binary (``0.145 * 100``) still rounds up, as it would on paper, while a
    true amount below a half (``0.4999998``) rounds down. Amounts from 2**52 Rp on are
    whole numbers in float64 and are returned as they are (never a rupiah more). Amounts are non-negative in the ledger; for negative input
    the rule is symmetric (half away from zero, like ``decimal.ROUND_HALF_UP``).

    Examples
    --------
    >>> int(round_rupiah(2.5)), int(round_rupiah(2.4999)), int(round_rupiah(0.145 * 100)), int(round_rupiah(0.4999998))
    (3, 2, 15, 0)
    """
    a = np.asarray(amount, dtype=np.float64)
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty(flat.shape, np.int64)
    if not _round_half_up(flat, out, _HALF_ULPS, _EXACT_LIMIT):
        if not np.isfinite(flat).all():
            raise ValueError("round_rupiah: amounts must be finite (NaN or inf given)")
        raise ValueError("round_rupiah: amount of 2**53 Rp or more cannot be exact in float64")
    return out[0] if a.ndim == 0 else out.reshape(a.shape)


@njit(nogil=True, cache=True)
def _round_half_up(a, out, ulps, limit):  # pragma: no cover - numba
    """One pass of :func:`round_rupiah`; False if an amount is not finite or too large.

    Below 2**52 every float has a spacing of at most 0.5, so ``|x| + 0.5`` is exact and its
    floor is the half-up rounding of the exact value; an amount within ``ulps`` units in the
    last place (and at most 1e-6 Rp) below a half is taken as that half. From 2**52 on every
    float is a whole
    number already (adding 0.5 would round to even and could add a rupiah).
    """
    for i in range(a.shape[0]):
        x = a[i]
        magnitude = abs(x)
        if not magnitude < limit:  # also False for NaN
            return False
        if magnitude >= 4503599627370496.0:  # 2**52: already whole
            m = magnitude
        else:
            t = magnitude + 0.5
            m = np.floor(t)
            f, e = math.frexp(magnitude) if magnitude > 0.0 else (0.0, -1073)
            ulp = math.ldexp(1.0, e - 53)
            if (m + 1.0) - t <= min(ulps * ulp, 1e-6):
                m = m + 1.0
        out[i] = np.int64(-m if x < 0 else m)
    return True


#: Rates are whole parts per million: ``rate × loss`` is then exact in integer rupiah.
_PPM = 1_000_000


def rate_of(loss: np.ndarray, ppm: np.ndarray | int) -> np.ndarray:
    """``loss × ppm / 10**6`` rounded half-up to the rupiah, exactly.

    The loss is split as ``q × 10**6 + r`` so that ``q × ppm`` is an exact int64 and only
    ``r × ppm / 10**6`` (< ppm) goes through :func:`round_rupiah`; the result is exact for
    every loss below 2**53 Rp and rises by at most one rupiah per rupiah of loss.

    Parameters
    ----------
    loss
        int64 amounts [Rp], >= 0.
    ppm
        Rate in parts per million [0 .. 10**6], scalar or per policy.

    Returns
    -------
    numpy.ndarray
        int64 amounts [Rp].

    Examples
    --------
    >>> rate_of(np.array([70_000, 5_000_005]), 50_000)   # 5 %: 3,500 and 250,000.25
    array([  3500, 250000])
    """
    q, r = np.divmod(np.asarray(loss, dtype=np.int64), _PPM)
    p = np.asarray(ppm, dtype=np.int64)
    return q * p + round_rupiah(r * p / float(_PPM))


def _ppm(rate: float) -> int:
    return int(round(rate * _PPM))


# --------------------------------------------------------------------------- kernels


def apply_average_clause(gross: np.ndarray, sum_insured: np.ndarray | int,
                         actual_value: np.ndarray | int) -> np.ndarray:
    """Underinsurance average clause: ``gross × sum_insured / actual_value`` if under-insured.

    Where the sum insured is at least the actual value the loss passes unchanged; where it
    is less, the insured is "his own insurer for the difference" and the insurer pays the
    proportion ``sum_insured / actual_value`` of the loss, rounded half-up to the rupiah.

    Parameters
    ----------
    gross
        int64 loss or payout before terms [Rp].
    sum_insured, actual_value
        Per policy [Rp]; ``actual_value > 0``.

    Returns
    -------
    numpy.ndarray
        int64 averaged amount [Rp], ``<= gross``.

    References
    ----------
    Pro rata condition of average (Commonwealth markets; Wikipedia, "Condition of
    average": payout = adjusted loss × sum insured / current value).

    Examples
    --------
    >>> apply_average_clause(np.array([3_500_000]), 90_000_000, 110_000_000)  # 2,863,636.36
    array([2863636])
    """
    g = np.asarray(gross, dtype=np.int64)
    si = np.broadcast_to(np.asarray(sum_insured, dtype=np.int64), g.shape)
    av = np.broadcast_to(np.asarray(actual_value, dtype=np.int64), g.shape)
    under = si < av
    if not under.any():
        return g.copy()
    averaged = round_rupiah(np.where(under, g.astype(np.float64) * si / np.where(under, av, 1), 0.0))
    return np.where(under, np.minimum(averaged, g), g)


def apply_straight_deductible(gross: np.ndarray, amount: np.ndarray | int) -> np.ndarray:
    """Straight (ordinary) deductible: ``max(gross - D, 0)``.

    Also the kernel of the ``unconditional``, ``percent_of_loss``, ``time_excess`` and
    ``dynamic`` rules, whose prepare step turns their terms into the amount D.

    Parameters
    ----------
    gross
        int64 loss or payout before terms [Rp].
    amount
        Deductible D [Rp], scalar or per policy.

    Returns
    -------
    numpy.ndarray
        int64 amount after the deductible [Rp].

    References
    ----------
    OasisLMF ktools FM profiles, calcrule 12 ("deductible only").

    Examples
    --------
    >>> apply_straight_deductible(np.array([5_000_000, 200_000]), 300_000)
    array([4700000,       0])
    """
    return np.maximum(np.asarray(gross, dtype=np.int64) - amount, 0)


def apply_franchise_deductible(gross: np.ndarray, amount: np.ndarray | int) -> np.ndarray:
    """Franchise (conditional) deductible: below D nothing, at or above D everything.

    A loss exactly equal to the franchise **is paid in full**. This follows the market
    wording ("once it is met, the entire amount of the loss is paid" — IRMI glossary,
    "franchise deductible"; the marine franchise clause pays a loss "equaling or
    exceeding" the franchise) and OasisLMF's calcrule 3 (``if (x.loss < ded) loss = 0;
    else loss = x.loss``). Actuarial texts (Klugman, Panjer & Willmot, *Loss Models*)
    define the franchise payment on ``X > d`` instead; the two differ only at the
    boundary, and a term sheet that needs the strict form must say so.

    Parameters
    ----------
    gross
        int64 loss or payout before terms [Rp].
    amount
        Franchise D [Rp], scalar or per policy.

    Returns
    -------
    numpy.ndarray
        int64 amount after the franchise [Rp].

    Examples
    --------
    >>> apply_franchise_deductible(np.array([25_000, 35_000, 40_000]), 35_000)
    array([    0, 35000, 40000])
    """
    g = np.asarray(gross, dtype=np.int64)
    return np.where(g >= amount, g, np.int64(0))


def apply_limit(amount: np.ndarray, limit: np.ndarray | int | None) -> np.ndarray:
    """Cap each policy's amount at its limit [Rp] (``None``: no limit)."""
    a = np.asarray(amount, dtype=np.int64)
    return a if limit is None else np.minimum(a, limit)


def apply_share(amount: np.ndarray, share: float) -> np.ndarray:
    """Insurer's coinsurance share [fraction, 0 < share <= 1] of each amount, rounded to rupiah."""
    a = np.asarray(amount, dtype=np.int64)
    return a if share == 1.0 else round_rupiah(a * share)


#: Deductible kernel name -> kernel ``(loss [Rp], prepared amount [Rp]) -> after [Rp]``.
DEDUCTIBLE_KERNELS: dict[str, Callable[[np.ndarray, np.ndarray | int], np.ndarray]] = {
    "straight": apply_straight_deductible,
    "franchise": apply_franchise_deductible,
}


# --------------------------------------------------------------------------- context

#: Per-policy context columns a rule may need, with their unit and lowest valid value.
CONTEXT_COLUMNS: dict[str, tuple[str, int]] = {
    "sum_insured": ("sum insured [Rp]", 0),
    "actual_value": ("actual value at risk [Rp], the register's actual_value column", 1),
    "event_number": ("1-based number of this event in the policy year", 1),
    "interruption_days": ("length of the interruption [days]", 0),
}


@dataclass(frozen=True)
class _Where:
    """Who asks for context, for error messages: product, rule and policy labels."""

    product: str | None
    policy_ids: Sequence[Any] | None

    def label(self) -> str:
        return f"product {self.product!r}" if self.product else "terms"

    def policies(self, positions: np.ndarray) -> str:
        shown = positions[:5].tolist()
        if self.policy_ids is not None:
            names = [self.policy_ids[i] for i in shown]
            names = [getattr(x, "as_py", lambda x=x: x)() for x in names]  # pyarrow scalars
            text = "policy_id " + ", ".join(map(str, names))
        else:
            text = "positions " + ", ".join(map(str, shown))
        more = len(positions) - len(shown)
        count = f"{len(positions)} {'policy' if len(positions) == 1 else 'policies'}"
        return f"{count} ({text}{f', and {more} more' if more else ''})"


def _context_column(context: Mapping[str, Any] | None, column: str, n: int, rule: str,
                    where: _Where) -> np.ndarray:
    """One context column as int64, checked complete and valid for every policy.

    Raises
    ------
    ConfigError
        The column is not in the context at all.
    InputError
        A policy lacks a value (NaN, masked, NA) or has one that is not a whole number at
        or above the column's minimum.
    """
    meaning, minimum = CONTEXT_COLUMNS[column]
    raw = None if context is None else context.get(column)
    if raw is None:
        raise ConfigError(Problem(
            f"{where.label()}: rule {rule!r} needs the per-policy column {column!r} ({meaning}), "
            "which the run does not provide", column=column))
    if hasattr(raw, "isna") and hasattr(raw, "to_numpy"):  # pandas Series / Index
        raw = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    mask = np.ma.getmaskarray(raw) if np.ma.isMaskedArray(raw) else None
    values = np.asarray(np.ma.getdata(raw))
    if values.shape != (n,):
        raise ValueError(f"{where.label()}: context column {column!r} has shape {values.shape}, "
                         f"expected ({n},) like the gross payouts")
    if values.dtype.kind not in "iuf":
        raise TypeError(f"{where.label()}: context column {column!r} must be numeric, got {values.dtype}")
    missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(n, bool)
    if mask is not None:
        missing |= mask
    if missing.any():
        raise InputError(Problem(
            f"{where.label()}: rule {rule!r} needs {column!r} ({meaning}) for every policy; "
            f"{where.policies(np.flatnonzero(missing))} lack it", column=column))
    whole = values == np.floor(values) if values.dtype.kind == "f" else np.ones(n, bool)
    bad = ~whole | (values < minimum) | (values >= 2**53)
    if bad.any():
        raise InputError(Problem(
            f"{where.label()}: {column!r} must be a whole number >= {minimum} for rule {rule!r}; "
            f"{where.policies(np.flatnonzero(bad))} do not comply", column=column))
    return values.astype(np.int64)


# --------------------------------------------------------------------------- models


class _TermModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_ppm(rate: float) -> float:
    if abs(rate * _PPM - round(rate * _PPM)) > 1e-6:
        raise ValueError(f"rate {rate!r} has more than six decimals (whole parts per million only)")
    return rate


class StraightDeductible(_TermModel):
    """``{kind: straight, amount}``: the policy keeps ``max(loss - amount, 0)``."""

    kind: Literal["straight"]
    amount: NonNegativeInt = Field(description="deductible per policy [Rp]")
    rule: ClassVar[str] = "straight"
    needs: ClassVar[tuple[str, ...]] = ()

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray | int:
        """Deductible amount per policy [Rp] (already an amount: returned as is)."""
        return self.amount


class FranchiseDeductible(_TermModel):
    """``{kind: franchise, amount}``: nothing below ``amount``, the whole loss at or above it."""

    kind: Literal["franchise"]
    amount: NonNegativeInt = Field(description="franchise per policy [Rp]")
    rule: ClassVar[str] = "franchise"
    needs: ClassVar[tuple[str, ...]] = ()

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray | int:
        """Franchise amount per policy [Rp] (already an amount: returned as is)."""
        return self.amount


class UnconditionalDeductible(_TermModel):
    """``{kind: unconditional, amount}``: ``amount`` is taken off every loss, however large.

    "Unconditional" (absolute) is the counterpart of the *conditional* deductible (the
    franchise, :class:`FranchiseDeductible`): a franchise stops applying once the loss
    reaches it, an unconditional deductible **always applies, even when the loss exceeds
    it** — the insured keeps the first ``amount`` of every loss. Russian insurance law
    states the pair: the conditional franchise releases the insurer if the loss does not
    exceed it but pays the loss in full if it does; under the unconditional one "the
    indemnity is the difference between the loss and the franchise" (Law No. 4015-1 "On
    the organisation of insurance business in the Russian Federation", art. 10 §9, in
    force since 2014; also Wikipedia (ru), "Франшиза (страхование)").

    The arithmetic is therefore **the same as the straight deductible** (50,000 on a loss
    of 75,000 pays 25,000; on 40,000 it pays 0): the literature contrasts unconditional
    with *conditional*, not with straight. The rule keeps its own name because term
    sheets written in that tradition use it; it shares the straight kernel.
    """

    kind: Literal["unconditional"]
    amount: NonNegativeInt = Field(description="deductible per loss [Rp]")
    rule: ClassVar[str] = "straight"
    needs: ClassVar[tuple[str, ...]] = ()

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray | int:
        """Deductible amount per policy [Rp] (already an amount: returned as is)."""
        return self.amount


class PercentOfLossDeductible(_TermModel):
    """``{kind: percent_of_loss, rate, minimum}``: deduct ``max(rate × loss, minimum)``.

    "10 % of the claim, at least Rp 10,000,000": ``rate: 0.10, minimum: 10000000``. The
    loss is the amount entering the deductible step (after the average clause);
    ``rate × loss`` is rounded half-up to the rupiah (:func:`rate_of`).
    """

    kind: Literal["percent_of_loss"]
    rate: float = Field(ge=0.0, le=1.0, description="share of the loss retained [fraction]")
    minimum: NonNegativeInt = Field(default=0, description="lowest deductible per loss [Rp]")
    rule: ClassVar[str] = "straight"
    needs: ClassVar[tuple[str, ...]] = ()

    @field_validator("rate")
    @classmethod
    def _whole_ppm(cls, v: float) -> float:
        return _check_ppm(v)

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray:
        """Deductible per policy [Rp]: ``max(round_rupiah(rate × loss), minimum)``."""
        return np.maximum(rate_of(loss, _ppm(self.rate)), self.minimum)


class TimeExcess(_TermModel):
    """``{kind: time_excess, days: N}``: the first N days of an interruption are not covered.

    The loss is pro-rated by days: for an interruption of D days (context
    ``interruption_days``) the policy pays ``round_rupiah(loss × max(0, D − N) / D)``;
    an interruption of N days or less (including D = 0) pays nothing. The unpaid part is
    reported as the deductible.

    References
    ----------
    A deductible "may be in the form of ... a period of time" (Rosen, *Insurance words*,
    "deductible"); business-interruption "time excess".
    """

    kind: Literal["time_excess"]
    days: NonNegativeInt = Field(description="days of each interruption not covered [days]")
    rule: ClassVar[str] = "straight"
    needs: ClassVar[tuple[str, ...]] = ("interruption_days",)

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray:
        """Deductible per policy [Rp]: ``loss - round_rupiah(loss × max(0, D − N) / D)``."""
        d = context["interruption_days"]
        covered = np.maximum(d - self.days, 0)
        paid = round_rupiah(np.where(d > 0, loss.astype(np.float64) * covered / np.maximum(d, 1), 0.0))
        return loss - np.minimum(paid, loss)


class DynamicDeductible(_TermModel):
    """``{kind: dynamic, schedule: [r1, r2, ...]}``: the rate rises with the event count.

    The k-th event of the policy year (context ``event_number``, 1-based) keeps
    ``schedule[k-1] × loss`` (the last rate for every later event), rounded half-up.
    With ``[0.05, 0.35, 0.80]`` a first loss of 70,000 pays 66,500 and a second of
    100,000 pays 65,000. The schedule must not decrease.
    """

    kind: Literal["dynamic"]
    schedule: tuple[float, ...] = Field(min_length=1, description="rate per event number [fraction]")
    rule: ClassVar[str] = "straight"
    needs: ClassVar[tuple[str, ...]] = ("event_number",)

    @field_validator("schedule")
    @classmethod
    def _rising_rates(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        for r in v:
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"schedule rate {r!r} is not in [0, 1]")
            _check_ppm(r)
        if any(b < a for a, b in zip(v, v[1:])):
            raise ValueError("a dynamic deductible's schedule must not decrease with the event number")
        return v

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray:
        """Deductible per policy [Rp]: ``round_rupiah(schedule[min(k, len) - 1] × loss)``."""
        ppm = np.array([_ppm(r) for r in self.schedule], np.int64)
        k = np.minimum(context["event_number"], len(ppm)) - 1
        return rate_of(loss, ppm[k])


#: The closed set of deductible rules, told apart by ``kind``.
Deductible = Annotated[
    Union[StraightDeductible, FranchiseDeductible, UnconditionalDeductible, PercentOfLossDeductible,
          TimeExcess, DynamicDeductible],
    Field(discriminator="kind"),
]


class Terms(_TermModel):
    """A product's policy terms (``products[].terms`` in the run config).

    Parameters
    ----------
    deductible
        One deductible rule, or ``None``.
    limit
        Maximum payout per policy [Rp], or ``None`` for no limit beyond the sum insured.
    share
        The insurer's coinsurance share [fraction, 0 < share <= 1]; default 1.
    average_clause
        Apply the underinsurance average clause (needs ``sum_insured`` and
        ``actual_value`` for every policy); default ``False``.
    """

    deductible: Deductible | None = None
    limit: PositiveInt | None = Field(default=None, description="cap per policy [Rp]")
    share: float = Field(default=1.0, gt=0.0, le=1.0, description="insurer share [fraction]")
    average_clause: bool = Field(default=False, description="pay loss × sum insured / actual value")

    @property
    def context_columns(self) -> tuple[str, ...]:
        """The per-policy context columns these terms need (empty: none)."""
        need = ("sum_insured", "actual_value") if self.average_clause else ()
        return need + (self.deductible.needs if self.deductible is not None else ())


# --------------------------------------------------------------------------- prepare + apply


@dataclass(frozen=True)
class PreparedTerms:
    """Terms with every percentage already turned into rupiah amounts (kernel input).

    Attributes
    ----------
    deductible_rule
        Name of the kernel in :data:`DEDUCTIBLE_KERNELS`, or ``None``.
    deductible_amount
        Deductible per policy [Rp] (scalar or array), against the loss after the average.
    limit
        Cap per policy [Rp] or ``None``.
    share
        Insurer share [fraction].
    deductible_kind
        The rule's name in the term sheet (``percent_of_loss``, ...), or ``None``.
    """

    deductible_rule: str | None
    deductible_amount: np.ndarray | int
    limit: np.ndarray | int | None
    share: float
    deductible_kind: str | None = None


def _checked_context(terms: Terms, n: int, context: Mapping[str, Any] | None,
                     where: _Where) -> dict[str, np.ndarray]:
    """The context columns ``terms`` need, validated, as int64 arrays."""
    out = {}
    if terms.average_clause:
        for column in ("sum_insured", "actual_value"):
            out[column] = _context_column(context, column, n, "average_clause", where)
    if terms.deductible is not None:
        for column in terms.deductible.needs:
            out[column] = _context_column(context, column, n, terms.deductible.kind, where)
    return out


def prepare_terms(terms: Terms | None, loss: np.ndarray, context: Mapping[str, Any] | None = None, *,
                  product: str | None = None, policy_ids: Sequence[Any] | None = None) -> PreparedTerms:
    """Convert a term sheet to per-policy rupiah amounts (the OasisLMF "prepare" step).

    Parameters
    ----------
    terms
        The product's terms, or ``None`` for none.
    loss
        int64 amount entering the deductible step per policy [Rp] (the gross payout after
        the average clause; :func:`apply_terms` passes it).
    context
        Per-policy context columns (see the module docstring).
    product, policy_ids
        Used only to name the product and the policies in errors.

    Returns
    -------
    PreparedTerms

    Raises
    ------
    ConfigError, InputError
        A rule's context column is absent, or incomplete or invalid.
    """
    if terms is None:
        return PreparedTerms(None, 0, None, 1.0)
    g = np.asarray(loss, dtype=np.int64)
    if terms.deductible is None:
        return PreparedTerms(None, 0, terms.limit, terms.share)
    ctx = _checked_context(terms, g.shape[0] if g.ndim else 1, context, _Where(product, policy_ids))
    d = terms.deductible
    return PreparedTerms(d.rule, d.prepare(g, ctx), terms.limit, terms.share, d.kind)


@dataclass(frozen=True)
class TermsSteps:
    """Each policy's amount after each step of the fixed order, all int64 [Rp].

    ``gross - after_average`` is borne by the insured for under-insurance,
    ``after_average - after_deductible`` is the deductible, ``after_deductible -
    after_limit`` is above the limit and ``after_limit - net`` is the co-insurers' part.
    """

    gross: np.ndarray
    after_average: np.ndarray
    after_deductible: np.ndarray
    after_limit: np.ndarray
    net: np.ndarray

    @property
    def deductible(self) -> np.ndarray:
        """Amount retained by the deductible rule [Rp]."""
        return self.after_average - self.after_deductible


def apply_terms_steps(gross: np.ndarray, terms: Terms | None, *,
                      context: Mapping[str, Any] | None = None, product: str | None = None,
                      policy_ids: Sequence[Any] | None = None) -> TermsSteps:
    """Apply policy terms in the fixed order and keep every intermediate amount.

    gross → average clause → deductible → limit → share → round to rupiah (module
    docstring). Parameters as :func:`apply_terms`.

    Returns
    -------
    TermsSteps
    """
    g = np.asarray(gross)
    if g.dtype.kind not in "iu":
        raise TypeError(f"apply_terms: gross must be integer rupiah, got dtype {g.dtype}")
    g = np.array(g, dtype=np.int64, ndmin=1)  # a copy: never hand back (a view of) the caller's array
    if g.size and g.min() < 0:
        raise ValueError("apply_terms: gross payouts must be >= 0")
    if terms is None:
        return TermsSteps(g, g, g, g, g.copy())
    where = _Where(product, policy_ids)
    ctx = _checked_context(terms, g.shape[0], context, where)
    averaged = (apply_average_clause(g, ctx["sum_insured"], ctx["actual_value"]) if terms.average_clause
                else g)
    prepared = prepare_terms(terms, averaged, ctx, product=product, policy_ids=policy_ids)
    after = (averaged if prepared.deductible_rule is None
             else DEDUCTIBLE_KERNELS[prepared.deductible_rule](averaged, prepared.deductible_amount))
    limited = apply_limit(after, prepared.limit)
    net = apply_share(limited, prepared.share)
    if net is limited:
        net = net.copy()
    return TermsSteps(g, averaged, after.astype(np.int64, copy=False), limited.astype(np.int64, copy=False),
                      net.astype(np.int64, copy=False))


def apply_terms(gross: np.ndarray, terms: Terms | None, *,
                context: Mapping[str, Any] | None = None, product: str | None = None,
                policy_ids: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply policy terms: average clause → deductible → limit → share → round to rupiah.

    Parameters
    ----------
    gross
        Gross payout per policy [Rp], integer, >= 0, one-dimensional.
    terms
        The product's terms; ``None`` pays the gross unchanged.
    context
        Per-policy context arrays aligned with ``gross`` (``sum_insured``,
        ``actual_value``, ``event_number``, ``interruption_days``; module docstring).
        Only the columns the terms need are read.
    product, policy_ids
        Used only to name the product and the policies in errors.

    Returns
    -------
    deductible : numpy.ndarray
        int64 amount retained by the deductible rule [Rp]: loss after the average minus
        loss after the deductible. The average clause, the limit and the share reduce
        the payout further but are not counted here (see :func:`apply_terms_steps`).
    net : numpy.ndarray
        int64 net payout [Rp], ``0 <= net <= gross``, ``net <= limit`` and
        ``deductible + net <= gross``.

    Raises
    ------
    ConfigError
        A rule needs a context column that is not given (names product, rule, column).
    InputError
        A context column lacks a value for some policy or holds an invalid one.

    Examples
    --------
    >>> t = Terms(deductible={"kind": "straight", "amount": 300_000})
    >>> apply_terms(np.array([5_000_000]), t)
    (array([300000]), array([4700000]))
    >>> t = Terms(average_clause=True)
    >>> apply_terms(np.array([3_500_000]), t,
    ...             context={"sum_insured": [90_000_000], "actual_value": [110_000_000]})[1]
    array([2863636])
    """
    steps = apply_terms_steps(gross, terms, context=context, product=product, policy_ids=policy_ids)
    return steps.deductible, steps.net
