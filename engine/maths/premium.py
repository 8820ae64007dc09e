"""Premium: the one rule from a premium rate to the rupiah a policyholder and the government pay.

**This is the one place a premium is computed** — for an index product's term sheet in the
seasonal run, for a named-peril wording (AUTP) and for the backtest's priced rates alike.
Per policy, in this fixed order::

    rate [fraction]  -> tariff band (clamp, flag)                          (OJK rate band)
    gross_premium    = round_half_up(sum_insured × rate)                   [Rp]
    no_claim_discount = round_half_up(gross_premium × discount(no_claim_years))   [Rp]
    rate_premium     = gross_premium − no_claim_discount                   [Rp]
    subsidy          = round_half_up(rate_premium × subsidy_share)         [Rp]
    charges          = policy_fee + stamp_duty                             [Rp per policy]
    premium          = rate_premium + charges                              [Rp]  (what is billed)
    farmer_share     = premium − subsidy                                   [Rp]  (what the policyholder pays)

so ``gross_premium − no_claim_discount + charges == premium == subsidy + farmer_share``
exactly, per policy and therefore in every total. Each amount is rounded once, half up
(:func:`panen.engine.maths.terms.round_rupiah`, the ledger's one rounding rule); the
remainders (``rate_premium``, ``farmer_share``) absorb the rounding.

Rules and their sources
-----------------------
*Rate on the sum insured, no-claim discount, policy fee and stamp duty.* The worked example
of a motor policy (the source document's car-insurance example): sum insured
Rp 175,000,000 at 0.63 % = Rp 1,102,500, plus policy fee (*biaya polis*) Rp 25,000 and
stamp duty (*bea meterai*) Rp 12,000 = Rp 1,139,500; renewed at Rp 160,000,000 with a 10 %
no-claim discount: 0.63 % × 160,000,000 = 1,008,000 − 10 % = Rp 907,200, + 37,000 =
Rp 944,200. The discount is taken off the rate premium only; the fee and the duty are
charged in full (the example adds the same Rp 37,000 to the discounted premium).

*Fees and stamp duty are neither discounted nor subsidised.* They are not premium: the
policy fee is the insurer's administration charge for issuing the policy document and the
stamp duty is a tax on the document (Undang-Undang No. 10 Tahun 2020 tentang Bea Meterai,
Pasal 3 and 9: due on documents stating an amount, owed by the party receiving the
document, i.e. the policyholder). The AUTP subsidy is a share of the *premium* ("bantuan
premi", Permentan No. 40/2015 on agricultural insurance facilitation, and the AUTP
Pedoman Teknis: the government pays 80 % of the premium of Rp 180,000/ha), so the
government share is computed on ``rate_premium`` and every charge falls to the
policyholder (``farmer_share``). AUTP itself charges none (``policy_fee = stamp_duty = 0``),
which keeps its 180,000 = 144,000 + 36,000 per ha.

*No-claim discount.* A schedule of discounts by the number of consecutive claim-free years
before the policy period (the register's ``no_claim_years``): ``[0.10, 0.15, 0.20]`` gives
10 % after one claim-free year, 15 % after two and 20 % after three or more (the last entry
holds beyond the schedule); zero years, or no schedule, gives none. A policy whose register
row has no ``no_claim_years`` earns no discount: the discount is earned by a claim record the
insured shows, and a new policy has none (the renewal of the example is the case with one).

*Tariff band.* OJK (Otoritas Jasa Keuangan) sets lower and upper bounds of premium rates
for lines it regulates (e.g. SE OJK No. 6/SEOJK.05/2017 on property and motor-vehicle
premium rates: *batas bawah* and *batas atas* per category and region). A computed rate
(a backtest's loaded burn cost) outside a product's band is clamped to the band and flagged
(``below_floor`` / ``above_ceiling``) so that every output shows which premiums were set by
the regulator's band rather than by the data. A term sheet's own fixed ``rate`` outside
its own band is a config error (a rate that could not be filed), not clamped.

Config shape (``products[].premium`` of a term sheet; README "Config reference")::

    premium:
      rate: 0.03                 # premium rate on the sum insured [fraction]
      subsidy_share: 0.8         # government share of the rate premium [fraction]; default 0
      policy_fee: 0              # biaya polis [Rp per policy]
      stamp_duty: 0              # bea meterai [Rp per policy]
      no_claim_discount: []      # discount after 1, 2, ... claim-free years [fraction each]
      tariff: {floor: 0.02, ceiling: 0.05}   # OJK rate band [fraction]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from panen.engine.maths.terms import round_rupiah

__all__ = [
    "PREMIUM_COLUMNS",
    "PremiumTerms",
    "TARIFF_FLAGS",
    "TariffBand",
    "apply_tariff",
    "no_claim_discount_rate",
    "policy_premiums",
    "split_subsidy",
]

#: Flags of :func:`apply_tariff`: inside the band (empty), clamped up, clamped down.
TARIFF_FLAGS: tuple[str, ...] = ("", "below_floor", "above_ceiling")
#: Columns of :func:`policy_premiums`, in order (money in integer rupiah).
PREMIUM_COLUMNS: tuple[str, ...] = ("premium_rate", "tariff_flag", "gross_premium", "no_claim_discount",
                                    "rate_premium", "charges", "premium", "subsidy", "farmer_share")

_MAX_RUPIAH = 2**53  # integers at or above this are not exact in float64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TariffBand(_Strict):
    """``tariff:`` — the regulator's (OJK) lower and upper bound of the premium rate [fraction]."""

    floor: float | None = Field(None, ge=0, lt=1, description="lowest rate allowed [fraction of sum insured]")
    ceiling: float | None = Field(None, gt=0, le=1, description="highest rate allowed [fraction of sum insured]")

    @model_validator(mode="after")
    def _ordered(self) -> TariffBand:
        if self.floor is None and self.ceiling is None:
            raise ValueError("a tariff band needs a floor, a ceiling or both")
        if self.floor is not None and self.ceiling is not None and self.floor > self.ceiling:
            raise ValueError(f"tariff floor {self.floor} is above its ceiling {self.ceiling}")
        return self


class PremiumTerms(_Strict):
    """``premium:`` of a term sheet — rate, subsidy, per-policy charges, no-claim discount, tariff band.

    Every key is optional: a term sheet without ``rate`` prices no premium in the seasonal
    run (its backtest still prices one from the burn cost, with this subsidy share and band).
    """

    rate: float | None = Field(None, gt=0, le=1, description="premium rate on the sum insured [fraction] "
                                                             "(AUTP 0.03)")
    subsidy_share: float | None = Field(
        None, ge=0, le=1, description="government share of the rate premium [fraction] (AUTP 0.8); none: 0 in the "
                                      "seasonal run, pricing.subsidy_share in the backtest")
    policy_fee: int = Field(0, ge=0, lt=_MAX_RUPIAH, description="biaya polis [Rp per policy]; not discounted, "
                                                                 "not subsidised")
    stamp_duty: int = Field(0, ge=0, lt=_MAX_RUPIAH, description="bea meterai [Rp per policy]; not discounted, "
                                                                 "not subsidised")
    no_claim_discount: list[float] = Field(
        default_factory=list, max_length=50,
        description="discount on the rate premium after 1, 2, ... claim-free years [fraction each, < 1]; the last "
                    "entry holds beyond the list")
    tariff: TariffBand | None = Field(None, description="OJK rate band: computed rates outside are clamped and "
                                                        "flagged")

    @model_validator(mode="after")
    def _consistent(self) -> PremiumTerms:
        if any(not 0 <= d < 1 for d in self.no_claim_discount):
            raise ValueError(f"no_claim_discount entries must lie in [0, 1); got {self.no_claim_discount}")
        if self.rate is not None and self.tariff is not None:
            lo, hi = self.tariff.floor, self.tariff.ceiling
            if (lo is not None and self.rate < lo) or (hi is not None and self.rate > hi):
                raise ValueError(f"rate {self.rate} is outside the tariff band [{lo if lo is not None else 0}, "
                                 f"{hi if hi is not None else 1}]")
        return self


# --------------------------------------------------------------------------- kernels
def apply_tariff(rate: float | np.ndarray | Sequence[float], band: TariffBand | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Clamp premium rates into the regulator's band and flag the ones clamped.

    Parameters
    ----------
    rate
        Premium rate(s) [fraction of sum insured]; NaN (not priced) stays NaN, unflagged.
    band
        The product's tariff band, or ``None`` (no band: nothing clamped).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The clamped rates [fraction] (float64) and one flag per rate (object array of
        :data:`TARIFF_FLAGS`: ``""``, ``"below_floor"``, ``"above_ceiling"``).

    References
    ----------
    OJK rate bands (*batas bawah* / *batas atas*), e.g. SE OJK No. 6/SEOJK.05/2017.

    Examples
    --------
    >>> r, f = apply_tariff([0.01, 0.03, 0.09], TariffBand(floor=0.02, ceiling=0.05))
    >>> r.tolist(), f.tolist()
    ([0.02, 0.03, 0.05], ['below_floor', '', 'above_ceiling'])
    """
    r = np.array(rate, dtype=np.float64, ndmin=1)
    flag = np.full(r.shape, "", dtype=object)
    if band is None:
        return r, flag
    if band.floor is not None:
        low = r < band.floor
        flag[low] = "below_floor"
        r = np.where(low, band.floor, r)
    if band.ceiling is not None:
        high = r > band.ceiling
        flag[high] = "above_ceiling"
        r = np.where(high, band.ceiling, r)
    return r, flag


def no_claim_discount_rate(no_claim_years: np.ndarray | Sequence[float] | pd.Series | None,
                           schedule: Sequence[float], n: int) -> np.ndarray:
    """Discount [fraction] each policy earns from its claim-free years.

    Parameters
    ----------
    no_claim_years
        ``(n,)`` consecutive claim-free years before the period [years, whole, ≥ 0]; NaN or
        NA (no record) earns nothing; ``None``: no policy has a record.
    schedule
        Discount after 1, 2, ... claim-free years [fraction each]; the last entry holds
        beyond the schedule. Empty: no discount.
    n
        Number of policies.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 discount rates [fraction, 0..1).

    Examples
    --------
    >>> no_claim_discount_rate([0, 1, 2, 5, float("nan")], [0.10, 0.15], 5).tolist()
    [0.0, 0.1, 0.15, 0.15, 0.0]
    """
    out = np.zeros(n, np.float64)
    if no_claim_years is None or not len(schedule):
        return out
    years = pd.to_numeric(pd.Series(no_claim_years), errors="raise").astype("Float64").to_numpy(
        np.float64, na_value=np.nan)
    if years.shape != (n,):
        raise ValueError(f"no_claim_discount_rate: {years.shape[0]} claim-free year counts for {n} policies")
    known = np.isfinite(years)
    if (years[known] < 0).any() or (years[known] != np.floor(years[known])).any():
        raise ValueError("no_claim_discount_rate: claim-free years must be whole numbers >= 0")
    table = np.concatenate([[0.0], np.asarray(schedule, np.float64)])
    step = np.minimum(np.where(known, years, 0), len(schedule)).astype(np.int64)
    return table[step]


def split_subsidy(rate_premium: np.ndarray | int, subsidy_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Government subsidy on a rate premium and the policyholder's remainder [Rp].

    ``subsidy = round_half_up(rate_premium × subsidy_share)``; the remainder
    ``rate_premium − subsidy`` absorbs the rounding, so the two add up exactly.

    References
    ----------
    Permentan No. 40/2015 and the AUTP Pedoman Teknis: the government pays 80 % of the
    premium (Rp 144,000 of Rp 180,000/ha), the farmer 20 % (Rp 36,000).

    Examples
    --------
    >>> s, f = split_subsidy(180_000, 0.8)
    >>> int(s), int(f)
    (144000, 36000)
    """
    if not 0.0 <= subsidy_share <= 1.0:
        raise ValueError(f"split_subsidy: subsidy_share must lie in [0, 1]; {subsidy_share} given")
    money = np.asarray(rate_premium, dtype=np.int64)
    subsidy = np.asarray(round_rupiah(money.astype(np.float64) * subsidy_share), dtype=np.int64)
    return subsidy, money - subsidy


def policy_premiums(sum_insured: np.ndarray | Sequence[float] | pd.Series,
                    rate: float | np.ndarray | Sequence[float], *, terms: PremiumTerms | None = None,
                    subsidy_share: float | None = None,
                    no_claim_years: np.ndarray | Sequence[float] | pd.Series | None = None) -> pd.DataFrame:
    """Premium of every policy: rate × sum insured, no-claim discount, charges, subsidy split.

    The order and rounding are the module's (see its docstring): tariff band, gross
    premium, no-claim discount on it, subsidy on the discounted rate premium, then the
    per-policy charges (policy fee and stamp duty), which the policyholder pays in full.

    Parameters
    ----------
    sum_insured
        ``(n,)`` sum insured per policy [Rp], finite, ≥ 0.
    rate
        Premium rate [fraction of sum insured]: one for all policies or ``(n,)``; finite,
        ≥ 0. Clamped into ``terms.tariff`` (and flagged) when outside it.
    terms
        The product's :class:`PremiumTerms` (charges, discount schedule, band, subsidy
        share); ``None``: none of them.
    subsidy_share
        Government share of the rate premium [fraction]; overrides ``terms.subsidy_share``.
        Neither given: 0 (the policyholder pays the whole premium).
    no_claim_years
        ``(n,)`` claim-free years per policy [years], or ``None`` (see
        :func:`no_claim_discount_rate`).

    Returns
    -------
    pandas.DataFrame
        ``(n,)`` rows, :data:`PREMIUM_COLUMNS`: ``premium_rate`` [fraction, after the
        band], ``tariff_flag``, and int64 [Rp] ``gross_premium, no_claim_discount,
        rate_premium, charges, premium, subsidy, farmer_share``.

    References
    ----------
    The source document's car-insurance example (module docstring); Permentan No. 40/2015
    (AUTP premium subsidy); UU No. 10/2020 (bea meterai); OJK rate bands.

    Examples
    --------
    >>> t = PremiumTerms(policy_fee=25_000, stamp_duty=12_000, no_claim_discount=[0.10])
    >>> p = policy_premiums([175_000_000, 160_000_000], 0.0063, terms=t, no_claim_years=[0, 1])
    >>> p["premium"].tolist()
    [1139500, 944200]
    """
    t = terms if terms is not None else PremiumTerms()
    si = np.asarray(sum_insured, dtype=np.float64).reshape(-1)
    n = si.shape[0]
    r = np.broadcast_to(np.asarray(rate, dtype=np.float64), (n,)) if np.ndim(rate) == 0 \
        else np.asarray(rate, dtype=np.float64)
    if r.shape != (n,):
        raise ValueError(f"policy_premiums: {r.shape[0]} rates for {n} policies")
    if not (np.isfinite(si).all() and np.isfinite(r).all()) or (si < 0).any() or (r < 0).any():
        raise ValueError("policy_premiums: sums insured and rates must be finite and >= 0")
    share = subsidy_share if subsidy_share is not None else (t.subsidy_share or 0.0)
    r, flag = apply_tariff(r, t.tariff) if n else (r.astype(np.float64), np.empty(0, dtype=object))
    gross = np.asarray(round_rupiah(si * r), dtype=np.int64).reshape(-1)
    discount_rate = no_claim_discount_rate(no_claim_years, t.no_claim_discount, n)
    discount = np.asarray(round_rupiah(gross.astype(np.float64) * discount_rate), dtype=np.int64).reshape(-1)
    rate_premium = gross - discount
    subsidy, _ = split_subsidy(rate_premium, share)
    charges = np.full(n, int(t.policy_fee) + int(t.stamp_duty), dtype=np.int64)
    premium = rate_premium + charges
    return pd.DataFrame({"premium_rate": r, "tariff_flag": flag, "gross_premium": gross,
                         "no_claim_discount": discount, "rate_premium": rate_premium, "charges": charges,
                         "premium": premium, "subsidy": subsidy, "farmer_share": premium - subsidy},
                        columns=list(PREMIUM_COLUMNS))
