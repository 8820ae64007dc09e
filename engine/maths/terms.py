"""Policy terms: a small closed set of named rules between gross payout and net payout.

The money path of every product is fixed; **this is the one place the order of the terms
is stated** (after OasisLMF's financial module: rules chosen by name, % terms
converted to amounts first, then small vectorised kernels in a fixed order)::

    gross [Rp] -> average clause -> deductible -> limit -> share -> round to the unit -> net [Rp]

Every step that multiplies by a fraction (average, a percentage deductible, time excess,
share) rounds its result to whole rupiah right there, so each step hands whole rupiah to
the next and ``gross - net`` splits exactly into the amounts retained by the average
clause, the deductible, the limit and the share (:func:`apply_terms_steps`). Percentage
deductibles are contract amounts, rounded half-up (:func:`rate_of`); the steps that split
the loss between the parties (average clause, pro-rata time excess, share) round the
*exact* quotient in integers (:func:`round_ratio`) in the product's :class:`Rounding`
(half-up by default), and the share step rounds the net once to the payable unit (Rp 1,
100 or 1,000). A net rounded *up* to a unit of 100 or 1,000 may pass the amount after the
deductible by less than a unit (then ``deductible + net`` passes the gross by as much) but
never the gross, the limit or the sum insured.

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
        {kind: straight, rate: 0.05, minimum: 250000}
                                                    # amount = max(5 % of the sum insured, minimum)
        {kind: franchise, amount: 35000}            # conditional: below amount 0, else all
        {kind: franchise, rate: 0.03}               # ... 3 % of the sum insured
        {kind: unconditional, amount: 50000}        # always deducted: max(loss - amount, 0)
        {kind: percent_of_loss, rate: 0.10, minimum: 10000000}
                                                    # deduct max(rate × loss, minimum)
        {kind: time_excess, days: 3}                # first N days of an interruption unpaid
        {kind: time_excess, days: 3, indemnity_days: 30, daily_loss: true}
                                                    # days 4..30 at the register's daily loss
        {kind: dynamic, schedule: [0.05, 0.35, 0.80]}
                                                    # rate by event number in the policy year
        # any of them with first_months: 3          # only events in the policy's first 3 months
      limit: 5000000                    # cap per policy [Rp]
      share: 0.9                        # insurer's coinsurance share (0, 1]
      average_clause: true              # pay loss × sum insured / actual value if under-insured
      rounding: {mode: down, unit: 1, party: insured}   # half_up | down | up; 1 | 100 | 1000
      instalments: {count: 6, every_months: 1}          # the net paid in six monthly instalments

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
``daily_loss`` [Rp/day, >= 0]
    Needed by ``time_excess`` with ``daily_loss: true``: the loss of each interruption day.
``event_date``, ``policy_start`` [days since 1970-01-01; numpy dates accepted]
    Needed by a deductible with ``first_months``: when the loss event happened and when the
    policy's cover began (the ledger passes the policy's cohort as its start, and the
    season's end as an index cover's event date where the register gives none).

``sum_insured`` is also read, when given, to cap a net rounded to a unit of 100 or 1,000.

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
from fractions import Fraction
from typing import Annotated, Any, ClassVar, Literal, Union

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from panen.engine.errors import ConfigError, InputError, Problem

__all__ = [
    "CONTEXT_COLUMNS",
    "DEDUCTIBLE_KERNELS",
    "Deductible",
    "DynamicDeductible",
    "FranchiseDeductible",
    "Instalments",
    "PercentOfLossDeductible",
    "PreparedTerms",
    "ROUNDING_DIRECTIONS",
    "Rounding",
    "StraightDeductible",
    "Terms",
    "TermsSteps",
    "TimeExcess",
    "UnconditionalDeductible",
    "add_months",
    "apply_average_clause",
    "apply_franchise_deductible",
    "apply_limit",
    "apply_share",
    "apply_straight_deductible",
    "apply_terms",
    "apply_terms_steps",
    "in_deductible_window",
    "prepare_terms",
    "rate_of",
    "round_ratio",
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


#: Rounding directions of a payable amount (:func:`round_ratio`): half away from zero
#: (``half_up``), half toward zero (``half_down``, the insurer's side of an insured's share
#: rounded half-up), toward zero (``down``, truncation) and away from zero (``up``).
ROUNDING_DIRECTIONS = ("half_up", "half_down", "down", "up")


def round_ratio(amount: np.ndarray, numerator: np.ndarray | int, denominator: np.ndarray | int,
                direction: str = "half_up", unit: int = 1) -> np.ndarray:
    """``amount × numerator / denominator`` rounded to a multiple of ``unit`` [Rp], exactly.

    The quotient is taken in integers (``divmod``), so the rounding is of the *exact*
    value — no float ever stands between the loss and the rupiah. Products that could
    overflow int64 are worked in Python integers.

    Parameters
    ----------
    amount
        int64 amounts [Rp], >= 0.
    numerator, denominator
        Whole numbers >= 0 and > 0, scalar or per policy.
    direction
        One of :data:`ROUNDING_DIRECTIONS`.
    unit
        Round to a multiple of this many rupiah (1, 100, 1000).

    Returns
    -------
    numpy.ndarray
        int64 amounts [Rp].

    Examples
    --------
    >>> a = np.array([3_500_000])   # 90 M insured of 110 M: 2,863,636.36...
    >>> [int(round_ratio(a, 90, 110, d)[0]) for d in ("half_up", "down", "up")]
    [2863636, 2863636, 2863637]
    >>> int(round_ratio(np.array([2_863_636]), 1, 1, "half_up", 1000)[0])
    2864000
    """
    if direction not in ROUNDING_DIRECTIONS:
        raise ValueError(f"round_ratio: direction must be one of {ROUNDING_DIRECTIONS}, got {direction!r}")
    a = np.asarray(amount, dtype=np.int64)
    if not a.size:
        return np.zeros(a.shape, np.int64)
    # a scalar ratio may be a Python integer beyond int64 (a share of 1e-20 is 1/10**20)
    num_max = abs(int(numerator)) if np.ndim(numerator) == 0 else int(np.abs(numerator).max(initial=0))
    den_max = abs(int(denominator)) if np.ndim(denominator) == 0 else int(np.abs(denominator).max(initial=0))
    if int(np.abs(a).max()) * num_max < 2**62 and den_max * unit < 2**61:
        num = np.asarray(numerator, dtype=np.int64)
        den = np.asarray(denominator, dtype=np.int64) * np.int64(unit)
    else:  # exact in Python integers, slower
        a = a.astype(object)
        num = int(numerator) if np.ndim(numerator) == 0 else np.asarray(numerator).astype(object)
        den = (int(denominator) if np.ndim(denominator) == 0 else np.asarray(denominator).astype(object)) * unit
    product = a * num
    q = product // den  # (np.divmod has no object loop)
    r = product - q * den
    if direction == "half_up":
        q = q + (2 * r >= den)
    elif direction == "half_down":
        q = q + (2 * r > den)
    elif direction == "up":
        q = q + (r > 0)
    return (np.asarray(q, dtype=np.int64) * np.int64(unit)).astype(np.int64)


def _fraction(value: float) -> tuple[int, int]:
    """A decimal fraction as written (``0.9`` -> 9/10): the exact ratio a term sheet means."""
    f = Fraction(repr(float(value)))
    return f.numerator, f.denominator


# --------------------------------------------------------------------------- kernels


def apply_average_clause(gross: np.ndarray, sum_insured: np.ndarray | int,
                         actual_value: np.ndarray | int, direction: str = "half_up") -> np.ndarray:
    """Underinsurance average clause: ``gross × sum_insured / actual_value`` if under-insured.

    Where the sum insured is at least the actual value the loss passes unchanged; where it
    is less, the insured is "his own insurer for the difference" and the insurer pays the
    proportion ``sum_insured / actual_value`` of the loss, rounded to the rupiah from the
    exact quotient (half-up unless ``direction`` says otherwise).

    Parameters
    ----------
    gross
        int64 loss or payout before terms [Rp].
    sum_insured, actual_value
        Per policy [Rp]; ``actual_value > 0``.
    direction
        How the insurer's part is rounded (:data:`ROUNDING_DIRECTIONS`); ``up`` is the
        same as truncating the insured's part (the source document's 2,863,637 + 636,363).

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
    >>> apply_average_clause(np.array([3_500_000]), 90_000_000, 110_000_000, "up")
    array([2863637])
    """
    g = np.asarray(gross, dtype=np.int64)
    si = np.broadcast_to(np.asarray(sum_insured, dtype=np.int64), g.shape)
    av = np.broadcast_to(np.asarray(actual_value, dtype=np.int64), g.shape)
    under = si < av
    if not under.any():
        return g.copy()
    averaged = round_ratio(np.where(under, g, 0), np.where(under, si, 0), np.where(under, av, 1), direction)
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


def apply_share(amount: np.ndarray, share: float, direction: str = "half_up", unit: int = 1,
                cap: np.ndarray | int | None = None) -> np.ndarray:
    """Insurer's coinsurance share of each amount, rounded once to the payable unit [Rp].

    The share is taken as the decimal the term sheet writes (0.9 is 9/10 exactly) and
    ``amount × share`` is rounded from its exact value (:func:`round_ratio`) to a multiple
    of ``unit`` in ``direction``: the one rounding of the final amount, so a payable unit
    of Rp 1,000 is never a rounding of an already rounded rupiah amount. To the rupiah
    the result never exceeds ``amount``; to a larger unit it may (1,049,600 to the nearest
    1,000 is 1,050,000), but never ``cap`` (the gross, the limit, the sum insured): a
    result above the cap is lowered to the largest multiple of ``unit`` not above it.

    Parameters
    ----------
    amount
        int64 amount after the limit [Rp].
    share
        Insurer share [fraction, 0 < share <= 1].
    direction, unit
        Rounding of the payable (:data:`ROUNDING_DIRECTIONS`) and its unit [Rp].
    cap
        Highest payable per policy [Rp]; ``None``: ``amount`` itself.

    Examples
    --------
    >>> apply_share(np.array([1_000_001, 1_049_600]), 0.5)
    array([500001, 524800])
    >>> apply_share(np.array([1_049_600, 1_049_600]), 1.0, "half_up", 1000, cap=np.array([2_000_000, 1_049_900]))
    array([1050000, 1049000])
    """
    a = np.asarray(amount, dtype=np.int64)
    if share == 1.0 and unit == 1:
        return a
    num, den = _fraction(share)
    out = round_ratio(a, num, den, direction, unit)
    limit = a if cap is None else np.asarray(cap, dtype=np.int64)
    over = out > limit
    return np.where(over, limit // unit * unit, out) if over.any() else out


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
    "daily_loss": ("loss per day of the interruption [Rp/day]", 0),
    "event_date": ("date of the loss event [days since 1970-01-01], the register's event_date", -(2**31)),
    "policy_start": ("start of the policy's cover [days since 1970-01-01]", -(2**31)),
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
    if values.dtype.kind == "M":  # dates: whole days since 1970-01-01, NaT missing
        nat = np.isnat(values)
        values = np.where(nat, np.nan, values.astype("datetime64[D]").astype(np.int64).astype(np.float64))
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


class _DeductibleRule(_TermModel):
    """What every deductible rule shares: the optional temporal window ``first_months``.

    ``first_months: N`` applies the deductible only to events in the first N calendar
    months of the policy: an event on or after the policy start plus N months (the same
    day of the month, or the month's last day where it has none: 30 Nov + 3 months is
    28/29 Feb) is paid without the deductible. It needs the context columns
    ``event_date`` and ``policy_start`` [days since 1970-01-01]. A "temporal franchise"
    of this kind is common in Russian motor (KASKO) and property wordings, which apply a
    deductible "only to insured events in the first months of the contract" (Wikipedia
    (ru), «Франшиза (страхование)», виды франшиз).
    """

    first_months: PositiveInt | None = Field(
        default=None, description="apply only to events in the first N months of the policy [months]")
    needs_base: ClassVar[tuple[str, ...]] = ()

    @property
    def needs(self) -> tuple[str, ...]:
        """The per-policy context columns this rule needs."""
        window = ("event_date", "policy_start") if self.first_months is not None else ()
        return self._own_needs() + window

    def _own_needs(self) -> tuple[str, ...]:
        return self.needs_base


class _AmountOrRate(_DeductibleRule):
    """An amount [Rp], or a rate of the sum insured with an optional minimum [Rp].

    ``{amount: 300000}`` is a fixed amount; ``{rate: 0.05, minimum: 250000}`` is 5 % of
    each policy's sum insured, at least Rp 250,000 (``round_rupiah(rate × sum insured)``,
    exact in whole parts per million). Russian insurance law lets a franchise "be set as a
    percentage of the sum insured or as a fixed amount" (Law No. 4015-1, art. 10 §9); a
    per-policy sum insured is what makes the rate differ from an amount.
    """

    amount: NonNegativeInt | None = Field(default=None, description="deductible per policy [Rp]")
    rate: float | None = Field(default=None, ge=0.0, le=1.0, description="share of the sum insured [fraction]")
    minimum: NonNegativeInt | None = Field(default=None, description="lowest deductible when given as a rate [Rp]")

    @field_validator("rate")
    @classmethod
    def _whole_ppm(cls, v: float | None) -> float | None:
        return v if v is None else _check_ppm(v)

    @model_validator(mode="after")
    def _amount_xor_rate(self):
        if (self.amount is None) == (self.rate is None):
            raise ValueError(f"a {self.kind!r} deductible takes either amount [Rp] or rate [fraction of the "
                             "sum insured], exactly one")
        if self.minimum is not None and self.rate is None:
            raise ValueError("minimum applies only to a deductible given as a rate of the sum insured")
        return self

    def _own_needs(self) -> tuple[str, ...]:
        return ("sum_insured",) if self.rate is not None else ()

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray],
                direction: str = "half_up") -> np.ndarray | int:
        """Deductible per policy [Rp]: the amount, or ``max(round_rupiah(rate × sum insured), minimum)``."""
        if self.rate is None:
            return self.amount
        return np.maximum(rate_of(context["sum_insured"], _ppm(self.rate)), self.minimum or 0)


class StraightDeductible(_AmountOrRate):
    """``{kind: straight, amount | rate}``: the policy keeps ``max(loss - D, 0)``."""

    kind: Literal["straight"]
    rule: ClassVar[str] = "straight"


class FranchiseDeductible(_AmountOrRate):
    """``{kind: franchise, amount | rate}``: nothing below D, the whole loss at or above it.

    A franchise given as a ``rate`` is a share of the **sum insured** (the marine "free of
    particular average under 3 %" of the insured value; Law No. 4015-1 art. 10 §9). A
    franchise "as a percentage of the loss" is not a rule: the loss compared with a share
    of itself always meets it (rate <= 1), so a percentage-of-loss retention is the
    ``percent_of_loss`` deductible; a threshold on the *degree* of damage (loss / sum
    insured >= 3 %) is exactly the rate-of-sum-insured franchise.
    """

    kind: Literal["franchise"]
    rule: ClassVar[str] = "franchise"


class UnconditionalDeductible(_AmountOrRate):
    """``{kind: unconditional, amount | rate}``: D is taken off every loss, however large.

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
    rule: ClassVar[str] = "straight"


class PercentOfLossDeductible(_DeductibleRule):
    """``{kind: percent_of_loss, rate, minimum}``: deduct ``max(rate × loss, minimum)``.

    "10 % of the claim, at least Rp 10,000,000": ``rate: 0.10, minimum: 10000000``. The
    loss is the amount entering the deductible step (after the average clause);
    ``rate × loss`` is rounded half-up to the rupiah (:func:`rate_of`).
    """

    kind: Literal["percent_of_loss"]
    rate: float = Field(ge=0.0, le=1.0, description="share of the loss retained [fraction]")
    minimum: NonNegativeInt = Field(default=0, description="lowest deductible per loss [Rp]")
    rule: ClassVar[str] = "straight"

    @field_validator("rate")
    @classmethod
    def _whole_ppm(cls, v: float) -> float:
        return _check_ppm(v)

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray],
                direction: str = "half_up") -> np.ndarray:
        """Deductible per policy [Rp]: ``max(round_rupiah(rate × loss), minimum)``."""
        return np.maximum(rate_of(loss, _ppm(self.rate)), self.minimum)


class TimeExcess(_DeductibleRule):
    """``{kind: time_excess, days: N[, indemnity_days: M][, daily_loss: true]}``: a time deductible.

    The first N days of an interruption of D days (context ``interruption_days``) are not
    covered; the policy pays days N+1 to ``min(D, M)`` — the indemnity period M, counted
    from the first day of the interruption, ends the cover (no ``indemnity_days``: the
    whole interruption).

    * Without ``daily_loss`` the loss is spread evenly over the D days and the policy pays
      ``loss × max(0, min(D, M) − N) / D``, rounded to the rupiah in the product's
      rounding direction (:class:`Rounding`); an interruption of N days or less (D = 0
      included) pays nothing.
    * With ``daily_loss: true`` the loss of each day is the register's ``daily_loss``
      column [Rp/day] and the policy pays ``daily_loss × max(0, min(D, M) − N)`` — the
      loss of the covered days themselves, not a pro-rata share of equal days — never
      more than the loss entering the step.

    The unpaid part is reported as the deductible. Interruption of 40 days, 3 days'
    excess, 30 days' indemnity, Rp 100,000 a day: days 4 to 30, 27 × 100,000 = 2,700,000.

    References
    ----------
    ISO business income form CP 00 30: the period of restoration "begins 72 hours after
    the time of direct physical loss" and "ends on the earlier of" the date of repair and
    the end of cover; a time-element deductible "expressed in time ... the costs incurred
    for 3 days will be deducted from the final payment" (Black Fox glossary, "time
    element"); a deductible "may be in the form of ... a period of time" (Rosen,
    *Insurance words*, "deductible").
    """

    kind: Literal["time_excess"]
    days: NonNegativeInt = Field(description="days of each interruption not covered [days]")
    indemnity_days: PositiveInt | None = Field(
        default=None, description="indemnity period from the first day of the interruption [days]")
    daily_loss: bool = Field(default=False, description="pay the register's daily_loss [Rp/day] per covered day")
    rule: ClassVar[str] = "straight"
    needs_base: ClassVar[tuple[str, ...]] = ("interruption_days",)

    @model_validator(mode="after")
    def _period_after_excess(self):
        if self.indemnity_days is not None and self.indemnity_days <= self.days:
            raise ValueError(f"indemnity_days ({self.indemnity_days}) must be more than the excess days "
                             f"({self.days}): otherwise nothing is ever covered")
        return self

    def _own_needs(self) -> tuple[str, ...]:
        return self.needs_base + (("daily_loss",) if self.daily_loss else ())

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray],
                direction: str = "half_up") -> np.ndarray:
        """Deductible per policy [Rp]: the loss minus the paid covered days (see the class)."""
        d = context["interruption_days"]
        last = d if self.indemnity_days is None else np.minimum(d, self.indemnity_days)
        covered = np.maximum(last - self.days, 0)
        if self.daily_loss:
            paid = context["daily_loss"] * covered
        else:
            paid = round_ratio(np.where(d > 0, loss, 0), covered, np.maximum(d, 1), direction)
        return loss - np.minimum(paid, loss)


class DynamicDeductible(_DeductibleRule):
    """``{kind: dynamic, schedule: [r1, r2, ...]}``: the rate rises with the event count.

    The k-th event of the policy year (context ``event_number``, 1-based) keeps
    ``schedule[k-1] × loss`` (the last rate for every later event), rounded half-up.
    With ``[0.05, 0.35, 0.80]`` a first loss of 70,000 pays 66,500 and a second of
    100,000 pays 65,000. The schedule must not decrease.
    """

    kind: Literal["dynamic"]
    schedule: tuple[float, ...] = Field(min_length=1, description="rate per event number [fraction]")
    rule: ClassVar[str] = "straight"
    needs_base: ClassVar[tuple[str, ...]] = ("event_number",)

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

    def prepare(self, loss: np.ndarray, context: Mapping[str, np.ndarray],
                direction: str = "half_up") -> np.ndarray:
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


class Rounding(_TermModel):
    """``rounding: {mode, unit, party}``: how a product's fractional amounts become rupiah.

    The steps that split a loss by a fraction — the average clause, a pro-rata time
    excess, the coinsurance share — round their exact value (never a float) in ``mode``;
    the final net payout is rounded once to a multiple of ``unit``. ``party`` says whose
    share ``mode`` describes: ``insurer`` (the default) rounds the amount the insurer pays;
    ``insured`` rounds the part the insured bears and the insurer pays the rest — so
    ``{mode: down, party: insured}`` (the insured's share truncated) is the same as
    ``{mode: up}`` on the insurer's side. With an average clause of 90 M insured of a
    110 M value and a 3.5 M loss, the default pays 2,863,636 (insured 636,364) and
    ``{mode: down, party: insured}`` pays 2,863,637 (insured 636,363), as the source
    document's worked example prints it.

    Deductibles given as rates (``percent_of_loss``, ``dynamic``, a rate of the sum
    insured) are *terms*, converted to an amount in the prepare step half-up like the sum
    insured from Rp/ha; the rounding mode does not move them.

    A net rounded up is never more than the amount before the share (so never more than
    the gross, the limit or the sum insured): where rounding up would pass it, the net is
    the largest multiple of ``unit`` below it.
    """

    mode: Literal["half_up", "down", "up"] = Field(default="half_up", description="rounding direction")
    unit: Literal[1, 100, 1000] = Field(default=1, description="the net payout is a multiple of this [Rp]")
    party: Literal["insurer", "insured"] = Field(default="insurer", description="whose share mode rounds")

    @property
    def direction(self) -> str:
        """The direction on the insurer's side (:data:`ROUNDING_DIRECTIONS`)."""
        if self.party == "insurer":
            return self.mode
        return {"half_up": "half_down", "down": "up", "up": "down"}[self.mode]


class Instalments(_TermModel):
    """``instalments: {count, every_months}``: pay each net amount in equal instalments.

    A payee's amount for the product is split into ``count`` instalments ``every_months``
    apart; ``payments.csv`` carries each with its number and due date (the first on the
    season's end, the k-th ``(k − 1) × every_months`` calendar months later, clipped to
    the month's last day). Integer division leaves a remainder of fewer than ``count``
    rupiah: it is paid **with the first instalment**, so the insured is never paid later
    than an even split would and the instalments sum to the amount exactly. A loss of
    1,000,000 under a 10 % deductible pays 900,000 as six monthly instalments of 150,000
    (the source document's "high deductible" example).
    """

    count: int = Field(ge=2, le=120, description="number of instalments")
    every_months: PositiveInt = Field(default=1, le=12, description="months between instalments [months]")


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
    rounding
        :class:`Rounding` of the fractional steps and the net; default half-up to the rupiah.
    instalments
        :class:`Instalments` the net amounts are paid in; default one payment.
    """

    deductible: Deductible | None = None
    limit: PositiveInt | None = Field(default=None, description="cap per policy [Rp]")
    share: float = Field(default=1.0, gt=0.0, le=1.0, description="insurer share [fraction]")
    average_clause: bool = Field(default=False, description="pay loss × sum insured / actual value")
    rounding: Rounding = Field(default_factory=Rounding, description="rounding of fractional steps and the net")
    instalments: Instalments | None = Field(default=None, description="pay the net in instalments")

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
    return PreparedTerms(d.rule, d.prepare(g, ctx, terms.rounding.direction), terms.limit, terms.share, d.kind)


def add_months(days: np.ndarray, months: int | np.ndarray) -> np.ndarray:
    """Dates plus whole calendar months, clipped to the month's last day.

    Parameters
    ----------
    days
        Dates as int days since 1970-01-01.
    months
        Calendar months to add [months], scalar or per date.

    Returns
    -------
    numpy.ndarray
        int64 days since 1970-01-01.

    Examples
    --------
    >>> d = np.array(["2023-11-01", "2023-11-30", "2024-01-31"], "datetime64[D]").astype(np.int64)
    >>> add_months(d, 3).astype("datetime64[D]")
    array(['2024-02-01', '2024-02-29', '2024-04-30'], dtype='datetime64[D]')
    """
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    day = (d - month.astype("datetime64[D]")).astype(np.int64)
    target = month + np.asarray(months, dtype=np.int64).astype("timedelta64[M]")
    length = ((target + np.timedelta64(1, "M")).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(
        np.int64)
    return (target.astype("datetime64[D]") + np.minimum(day, length - 1)).astype(np.int64)


def in_deductible_window(event_date: np.ndarray, policy_start: np.ndarray, months: int | None) -> np.ndarray:
    """Whether each event falls where the deductible applies (``first_months`` of the rule).

    ``True`` everywhere without a window; else the event is before the policy start plus
    ``months`` calendar months (:func:`add_months`). Dates as int days since 1970-01-01.

    Examples
    --------
    >>> start = np.datetime64("2023-11-01").astype(np.int64)
    >>> ev = np.array(["2024-01-31", "2024-02-01"], "datetime64[D]").astype(np.int64)
    >>> in_deductible_window(ev, np.array([start, start]), 3)
    array([ True, False])
    """
    e = np.asarray(event_date, dtype=np.int64)
    if months is None:
        return np.ones(e.shape, bool)
    return e < add_months(policy_start, months)


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
    direction = terms.rounding.direction
    averaged = (apply_average_clause(g, ctx["sum_insured"], ctx["actual_value"], direction)
                if terms.average_clause else g)
    prepared = prepare_terms(terms, averaged, ctx, product=product, policy_ids=policy_ids)
    after = (averaged if prepared.deductible_rule is None
             else DEDUCTIBLE_KERNELS[prepared.deductible_rule](averaged, prepared.deductible_amount))
    if terms.deductible is not None and terms.deductible.first_months is not None:
        window = in_deductible_window(ctx["event_date"], ctx["policy_start"], terms.deductible.first_months)
        after = np.where(window, after, averaged)  # after the first months: no deductible
    limited = apply_limit(after, prepared.limit)
    cap = g if prepared.limit is None else np.minimum(g, prepared.limit)
    if context is not None and context.get("sum_insured") is not None and terms.rounding.unit > 1:
        cap = np.minimum(cap, _context_column(context, "sum_insured", g.shape[0], "rounding", where))
    net = apply_share(limited, prepared.share, direction, terms.rounding.unit, cap)
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
