"""District payout rates: the hand-over between a trigger plugin and the ledger.

A trigger reduces gridded data to one payout rate per district and *cohort* (the set of
policies that share a window anchor: the season start, or one sowing date). The ledger
only gathers from this small table: it never builds per-farmer series.
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
    """

    product_id: str
    district_ids: np.ndarray
    cohorts: np.ndarray
    rate: np.ndarray
    flagged: np.ndarray
    anchor: str = "season_start"
    meta: dict = field(default_factory=dict)

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
