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
from typing import Any

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


#: Outcome of a policy under a named-peril cover (before the ledger applies terms), by code.
POLICY_OUTCOMES: tuple[str, ...] = ("paid", "no_payout", "declined", "not_assessed", "referred")


@dataclass(frozen=True)
class PolicyAmounts:
    """Per-policy gross amounts of a cover that decides each policy itself (a named-peril cover).

    Parameters
    ----------
    product_id
        The cover's id (the register's ``product_id`` of its policies).
    policy_ids
        ``(n,)`` policy ids (an Arrow string array, or anything ``pyarrow.array`` takes),
        each at most once.
    gross
        ``(n,)`` gross amount per policy [Rp, int64, >= 0] (e.g. the sum of its paid plots'
        indemnities).
    outcome
        ``(n,)`` int8 codes into :data:`POLICY_OUTCOMES`: ``paid`` (gross > 0),
        ``no_payout``, ``declined`` (assessed, every claim declined), ``not_assessed``,
        ``referred`` (nothing paid yet, a claim awaits a person's review).
    reason
        ``(n,)`` text (an Arrow string or dictionary array): why a policy was declined or
        not assessed (reason codes, ``;``-separated), empty or null otherwise.
    cohort
        The cover's single window anchor [datetime64[D]] (the season start).
    sum_insured
        Optional ``(n,)`` sum insured per policy [Rp, int64] as the cover fixes it (AUTP:
        the insured area, capped per farmer, × Rp/ha) — then every policy of the cover must
        be listed; ``None``: the register's ``sum_insured``, else area × the product's Rp/ha.

    rows
        Optional ``(n,)`` row of each policy in the valid-policies table given to the ledger
        (the frame's integer index): a hint that spares matching the ids by hashing. The
        ledger checks that the ids at those rows are these ids and matches by id otherwise.

    Policies of the cover absent from ``policy_ids`` were not assessed: the ledger gives
    them gross 0, status ``not_assessed`` and reason ``no_assessment``.
    """

    product_id: str
    policy_ids: Any
    gross: np.ndarray
    outcome: np.ndarray
    reason: Any
    cohort: np.datetime64
    sum_insured: np.ndarray | None = None
    anchor: str = "season_start"
    rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        import pyarrow as pa

        ids = self.policy_ids if isinstance(self.policy_ids, (pa.Array, pa.ChunkedArray)) else pa.array(
            [str(x) for x in np.asarray(self.policy_ids, dtype=object).tolist()], pa.string())
        reason = self.reason if isinstance(self.reason, (pa.Array, pa.ChunkedArray)) else pa.array(
            [None if x is None else str(x) for x in np.asarray(self.reason, dtype=object).tolist()], pa.string())
        object.__setattr__(self, "policy_ids", ids)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "gross", np.asarray(self.gross))
        object.__setattr__(self, "outcome", np.asarray(self.outcome, dtype=np.int8))
        n = len(ids)
        for name in ("gross", "outcome", "reason") + (("sum_insured",) if self.sum_insured is not None else ()):
            if len(getattr(self, name)) != n:
                raise ValueError(f"PolicyAmounts {self.product_id!r}: {name} has {len(getattr(self, name))} "
                                 f"entries for {n} policies")
        if n and (self.gross.dtype.kind not in "iu" or self.gross.min() < 0):
            raise ValueError(f"PolicyAmounts {self.product_id!r}: gross amounts must be whole rupiah >= 0")
        if n and (self.outcome.min() < 0 or self.outcome.max() >= len(POLICY_OUTCOMES)):
            raise ValueError(f"PolicyAmounts {self.product_id!r}: outcome codes must index POLICY_OUTCOMES")
        if n and ids.null_count:
            raise ValueError(f"PolicyAmounts {self.product_id!r}: a policy id is missing")
        if n:
            from panen.engine.settlement.policies import _occurrences  # the register's hash kernel (numba)

            counts, _ = _occurrences(ids, np.ones(n, bool))
            if (counts > 1).any():
                raise ValueError(f"PolicyAmounts {self.product_id!r}: policy id "
                                 f"{ids[int(np.argmax(counts > 1))].as_py()!r} appears more than once")
