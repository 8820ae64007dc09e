"""What a cover hands the ledger: district payout rates (index covers) or per-policy amounts.

Every cover settles through the one ledger (:func:`panen.engine.settlement.ledger.build_ledger`):

* an **index cover** (a trigger plugin) reduces data to one payout rate per district and
  *cohort* (the set of policies that share a window anchor: the season start, or one
  sowing date) — a :class:`RateTable`. The ledger only gathers from this small table: it
  never builds per-farmer series;
* a **named-peril cover** (a policy wording applied to field loss assessments) decides
  each policy on its own — a :class:`PolicyAmounts`: per policy a gross amount [Rp], a
  status and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RateTable:
    """Payout rates of one product per district and cohort.

    Parameters
    ----------
    product_id
        The product these rates belong to.
    district_ids
        ``(n_district,)`` district keys, as strings.
    cohorts
        ``(n_cohort,)`` ``datetime64[D]`` window anchors. For ``anchor: season_start`` there
        is one cohort, the season start; for ``anchor: sowing_date`` one per sowing date.
    rate
        ``(n_district, n_cohort)`` float64 payout rate [fraction of sum insured, 0..1];
        NaN where the district could not be assessed (see ``flagged``).
    flagged
        ``(n_district, n_cohort)`` bool: True where too little valid data was available;
        such policies are withheld (not paid on garbage), never paid as if rain were zero.
    anchor
        ``"season_start"`` or ``"sowing_date"``: how a policy finds its cohort.
    reason
        Optional ``(n_district, n_cohort)`` text: why a flagged district/cohort could not be
        assessed (``""`` where it was); copied to the ``reason`` of its withheld policies.
    """

    product_id: str
    district_ids: np.ndarray
    cohorts: np.ndarray
    rate: np.ndarray
    flagged: np.ndarray
    anchor: str = "season_start"
    meta: dict = field(default_factory=dict)
    reason: np.ndarray | None = None

    def __post_init__(self) -> None:
        nd, nc = len(self.district_ids), len(self.cohorts)
        if self.rate.shape != (nd, nc) or self.flagged.shape != (nd, nc):
            raise ValueError(
                f"RateTable {self.product_id!r}: rate {self.rate.shape} and flagged "
                f"{self.flagged.shape} must both be (n_district, n_cohort) = ({nd}, {nc})"
            )
        finite = self.rate[np.isfinite(self.rate)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ValueError(f"RateTable {self.product_id!r}: payout rates must lie in [0, 1]")
        if self.reason is not None and np.shape(self.reason) != (nd, nc):
            raise ValueError(f"RateTable {self.product_id!r}: reason {np.shape(self.reason)} must be (n_district, "
                             f"n_cohort) = ({nd}, {nc})")


#: Outcome of a policy under a named-peril cover (before the ledger applies terms).
POLICY_OUTCOMES: tuple[str, ...] = ("paid", "declined", "not_assessed", "no_payout")


@dataclass(frozen=True)
class PolicyAmounts:
    """Per-policy gross amounts of a cover that decides each policy itself (a named-peril cover).

    Parameters
    ----------
    product_id
        The cover's id (the register's ``product_id`` of its policies).
    policy_ids
        ``(n,)`` policy ids [text], each at most once.
    gross
        ``(n,)`` gross amount per policy [Rp, int64, >= 0] (e.g. the sum of its paid plots'
        indemnities).
    outcome
        ``(n,)`` one of :data:`POLICY_OUTCOMES` per policy: ``paid`` (gross > 0),
        ``declined`` (assessed, every claim declined), ``no_payout``.
    reason
        ``(n,)`` text: why a policy was declined (reason codes, ``;``-separated), ``""``
        otherwise.
    sum_insured
        Optional ``(n,)`` sum insured per policy [Rp, int64] as the cover fixes it (AUTP:
        the insured area, capped per farmer, × Rp/ha); ``None``: the register's
        ``sum_insured``, else area × the product's Rp/ha.
    cohort
        The cover's single window anchor [datetime64[D]] (the season start).

    Policies of the cover that are not in ``policy_ids`` were not assessed: the ledger
    gives them gross 0, status ``not_assessed`` and reason ``no_assessment``.
    """

    product_id: str
    policy_ids: np.ndarray
    gross: np.ndarray
    outcome: np.ndarray
    reason: np.ndarray
    cohort: np.datetime64
    sum_insured: np.ndarray | None = None
    anchor: str = "season_start"

    def __post_init__(self) -> None:
        n = len(self.policy_ids)
        for name in ("gross", "outcome", "reason") + (("sum_insured",) if self.sum_insured is not None else ()):
            if len(getattr(self, name)) != n:
                raise ValueError(f"PolicyAmounts {self.product_id!r}: {name} has {len(getattr(self, name))} "
                                 f"entries for {n} policies")
        gross = np.asarray(self.gross)
        if n and (gross.dtype.kind not in "iu" or gross.min() < 0):
            raise ValueError(f"PolicyAmounts {self.product_id!r}: gross amounts must be whole rupiah >= 0")
        bad = set(np.unique(np.asarray(self.outcome, dtype=object)).tolist()) - set(POLICY_OUTCOMES)
        if bad:
            raise ValueError(f"PolicyAmounts {self.product_id!r}: unknown outcome(s) {sorted(bad)}")
        if len(set(np.asarray(self.policy_ids, dtype=object).tolist())) != n:
            raise ValueError(f"PolicyAmounts {self.product_id!r}: a policy id appears more than once")
