"""Policy terms: a small closed set of named rules between gross payout and net payout.

The money path of every product is fixed (DESIGN.md, STYLE.md "Fixed order for money")::

    gross [Rp] -> deductible -> limit -> share -> round to rupiah -> net [Rp]

Terms follow the shape of OasisLMF's financial module: each rule has a *name* (never a
number), percentage terms are converted to rupiah amounts in a separate *prepare* step
(:func:`prepare_terms`), and small side-effect-free vectorised kernels
(:func:`apply_straight_deductible`, :func:`apply_franchise_deductible`,
:func:`apply_limit`, :func:`apply_share`, in the spirit of CLIMADA's
``apply_deductible_to_mat``) do the arithmetic on int64 rupiah arrays.

Config shape (``products[].terms`` in the run YAML)::

    terms: {deductible: {kind: straight | franchise, amount: 300000}, limit: 5000000, share: 0.9}

The deductible is a discriminated union on ``kind``. A later rule (``unconditional``,
``percent_of_loss`` with ``rate`` and ``minimum``, ``time_excess``, ``dynamic`` with a
``schedule``, and ``average_clause`` on :class:`Terms`) is one more model class with a
``prepare`` method that returns per-policy amounts, one entry in
:data:`DEDUCTIBLE_KERNELS` if it needs a new kernel, and one more member of
:data:`Deductible`; nothing else is restructured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal, Union

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

__all__ = [
    "DEDUCTIBLE_KERNELS",
    "Deductible",
    "FranchiseDeductible",
    "PreparedTerms",
    "StraightDeductible",
    "Terms",
    "apply_franchise_deductible",
    "apply_limit",
    "apply_share",
    "apply_straight_deductible",
    "apply_terms",
    "prepare_terms",
    "round_rupiah",
]

#: Amounts within this many rupiah *below* a half are rounded up as halves. Decimal
#: inputs such as 0.145 have no exact binary form (0.145 * 100 == 14.499999999999998);
#: one micro-rupiah absorbs that representation error for amounts up to ~1e9 Rp.
_HALF_TOLERANCE = 1e-6
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
    Half-up is applied to the float64 value with a tolerance of 1e-6 Rp: a value that is
    a decimal half but lands a few ulps below it in binary (``0.145 * 100``) still rounds
    up, as it would on paper. Amounts are non-negative in the ledger; for negative input
    the rule is symmetric (half away from zero, like ``decimal.ROUND_HALF_UP``).

    Examples
    --------
    >>> int(round_rupiah(2.5)), int(round_rupiah(2.4999)), int(round_rupiah(0.145 * 100))
    (3, 2, 15)
    """
    a = np.asarray(amount, dtype=np.float64)
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty(flat.shape, np.int64)
    if not _round_half_up(flat, out, _HALF_TOLERANCE, _EXACT_LIMIT):
        if not np.isfinite(flat).all():
            raise ValueError("round_rupiah: amounts must be finite (NaN or inf given)")
        raise ValueError("round_rupiah: amount of 2**53 Rp or more cannot be exact in float64")
    return out[0] if a.ndim == 0 else out.reshape(a.shape)


@njit(nogil=True, cache=True)
def _round_half_up(a, out, tolerance, limit):  # pragma: no cover - numba
    """One pass of :func:`round_rupiah`; False if an amount is not finite or too large."""
    for i in range(a.shape[0]):
        x = a[i]
        magnitude = abs(x) + 0.5
        if not magnitude < limit:  # also False for NaN
            return False
        m = np.floor(magnitude + tolerance)
        out[i] = np.int64(-m if x < 0 else m)
    return True


# --------------------------------------------------------------------------- kernels


def apply_straight_deductible(gross: np.ndarray, amount: np.ndarray | int) -> np.ndarray:
    """Straight (ordinary) deductible: ``max(gross - D, 0)``.

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


#: Deductible rule name -> kernel ``(gross [Rp], prepared amount [Rp]) -> after [Rp]``.
DEDUCTIBLE_KERNELS: dict[str, Callable[[np.ndarray, np.ndarray | int], np.ndarray]] = {
    "straight": apply_straight_deductible,
    "franchise": apply_franchise_deductible,
}


# --------------------------------------------------------------------------- models


class _TermModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StraightDeductible(_TermModel):
    """``{kind: straight, amount}``: the policy keeps ``max(gross - amount, 0)``."""

    kind: Literal["straight"]
    amount: NonNegativeInt = Field(description="deductible per policy [Rp]")
    rule: ClassVar[str] = "straight"

    def prepare(self, gross: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray | int:
        """Deductible amount per policy [Rp] (already an amount: returned as is)."""
        return self.amount


class FranchiseDeductible(_TermModel):
    """``{kind: franchise, amount}``: nothing below ``amount``, the whole gross at or above it."""

    kind: Literal["franchise"]
    amount: NonNegativeInt = Field(description="franchise per policy [Rp]")
    rule: ClassVar[str] = "franchise"

    def prepare(self, gross: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray | int:
        """Franchise amount per policy [Rp] (already an amount: returned as is)."""
        return self.amount


#: The closed set of deductible rules, told apart by ``kind``.
Deductible = Annotated[Union[StraightDeductible, FranchiseDeductible], Field(discriminator="kind")]


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
    """

    deductible: Deductible | None = None
    limit: PositiveInt | None = Field(default=None, description="cap per policy [Rp]")
    share: float = Field(default=1.0, gt=0.0, le=1.0, description="insurer share [fraction]")


# --------------------------------------------------------------------------- prepare + apply


@dataclass(frozen=True)
class PreparedTerms:
    """Terms with every percentage already turned into rupiah amounts (kernel input).

    Attributes
    ----------
    deductible_rule
        Name of the kernel in :data:`DEDUCTIBLE_KERNELS`, or ``None``.
    deductible_amount
        Deductible per policy [Rp] (scalar or array).
    limit
        Cap per policy [Rp] or ``None``.
    share
        Insurer share [fraction].
    """

    deductible_rule: str | None
    deductible_amount: np.ndarray | int
    limit: np.ndarray | int | None
    share: float


def prepare_terms(terms: Terms | None, gross: np.ndarray, *,
                  sum_insured: np.ndarray | None = None,
                  actual_value: np.ndarray | None = None) -> PreparedTerms:
    """Convert a term sheet to per-policy rupiah amounts (the OasisLMF "prepare" step).

    Parameters
    ----------
    terms
        The product's terms, or ``None`` for none.
    gross
        int64 gross payout per policy [Rp].
    sum_insured, actual_value
        int64 per policy [Rp]; context for rules that need it (percent of sum insured,
        the average clause). The straight and franchise rules use neither.

    Returns
    -------
    PreparedTerms
    """
    if terms is None:
        return PreparedTerms(None, 0, None, 1.0)
    context = {k: v for k, v in (("sum_insured", sum_insured), ("actual_value", actual_value))
               if v is not None}
    if terms.deductible is None:
        rule, amount = None, 0
    else:
        rule, amount = terms.deductible.rule, terms.deductible.prepare(gross, context)
    return PreparedTerms(rule, amount, terms.limit, terms.share)


def apply_terms(gross: np.ndarray, terms: Terms | None, *,
                sum_insured: np.ndarray | None = None,
                actual_value: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply policy terms to gross payouts in the fixed order deductible → limit → share.

    Parameters
    ----------
    gross
        Gross payout per policy [Rp], integer, >= 0.
    terms
        The product's terms; ``None`` pays the gross unchanged.
    sum_insured, actual_value
        Per-policy context [Rp] passed to :func:`prepare_terms`.

    Returns
    -------
    deductible : numpy.ndarray
        int64 amount retained by the deductible [Rp]: ``gross - (gross after deductible)``.
        The limit and the share reduce the payout further but are not counted here.
    net : numpy.ndarray
        int64 net payout [Rp], ``0 <= net <= gross`` and ``net <= limit``.

    Examples
    --------
    >>> t = Terms(deductible={"kind": "straight", "amount": 300_000})
    >>> apply_terms(np.array([5_000_000]), t)
    (array([300000]), array([4700000]))
    """
    g = np.asarray(gross)
    if g.dtype.kind not in "iu":
        raise TypeError(f"apply_terms: gross must be integer rupiah, got dtype {g.dtype}")
    g = g.astype(np.int64, copy=False)
    if g.size and g.min() < 0:
        raise ValueError("apply_terms: gross payouts must be >= 0")
    prepared = prepare_terms(terms, g, sum_insured=sum_insured, actual_value=actual_value)
    if prepared.deductible_rule is None:
        after = g
    else:
        after = DEDUCTIBLE_KERNELS[prepared.deductible_rule](g, prepared.deductible_amount)
    retained = g - after
    net = apply_share(apply_limit(after, prepared.limit), prepared.share)
    if np.may_share_memory(net, gross):  # never hand back (a view of) the caller's array
        net = net.copy()
    return retained.astype(np.int64, copy=False), net.astype(np.int64, copy=False)
