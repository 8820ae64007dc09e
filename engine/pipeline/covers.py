"""Covers: what a run settles — index products and named-peril wordings, behind one interface.

A run config names index products (``products:``, each a term sheet for a trigger plugin)
and optionally a named-peril wording (``adjuster:``, e.g. AUTP). Both become a *cover*:

* it has an ``id`` (the register's ``product_id`` of its policies), an ``anchor``, a sum
  insured per ha and optional policy terms;
* it declares the inputs it needs (:meth:`Cover.inputs`) and the reader hints it gives;
* it knows what it can tell the policy check (:meth:`Cover.rules`).

The pipeline (:mod:`panen.engine.pipeline.steps`) evaluates index covers through their
plugin and adjusts named-peril covers' claims, and then settles *every* cover through the
one ledger: no step after this module asks which kind of cover it has, and nothing asks a
product's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from panen.engine.api import ProductParams, Trigger
from panen.engine.maths.premium import PREMIUM_COLUMNS, PremiumTerms, policy_premiums
from panen.engine.maths.terms import Terms
from panen.engine.registry import get_trigger

__all__ = ["Cover", "IndexCover", "NamedPerilCover", "covers_of"]


class Cover:
    """Base of the two kinds of cover (see the module docstring)."""

    id: str
    anchor: Literal["season_start", "sowing_date"] = "season_start"
    sum_insured_per_ha: int
    terms: Terms | None = None
    #: Whether the cover is decided per district (an index) or per policy (a wording).
    per_policy: bool = False
    #: Multiplier of every policy's sum insured (:attr:`ProductParams.sum_insured_factor`).
    sum_insured_factor: float = 1.0

    def inputs(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def hints(self, name: str) -> dict[str, Any]:
        """Keywords for the reader of input ``name`` (default none)."""
        return {}

    @property
    def reach(self) -> tuple[int, int] | None:
        """Window reach [days after the anchor], or ``None`` (reads whole inputs)."""
        return None

    @property
    def cover_times(self) -> tuple[int, int] | None:
        """Time of day [s] a register ``cover_start``/``cover_end`` date starts/ends cover, or
        ``None`` when the cover does not read them (default)."""
        return None

    @property
    def reads_harvest_date(self) -> bool:
        """Whether the cover reads the register's ``harvest_date`` (default no)."""
        return False

    def prices_premium(self) -> bool:
        """Whether :meth:`premiums` gives amounts (default no)."""
        return False

    def premiums(self, policies: pd.DataFrame) -> pd.DataFrame | None:
        """Premium of each of the cover's policies, or ``None`` when the cover prices none.

        ``policies``: the cover's valid register rows with the ledger's ``sum_insured`` [Rp].
        Returns :data:`panen.engine.maths.premium.PREMIUM_COLUMNS`, one row per policy, in
        order (:func:`panen.engine.maths.premium.policy_premiums`, the one premium rule).
        """
        return None


@dataclass(frozen=True)
class IndexCover(Cover):
    """An index product: a trigger plugin and its validated term sheet."""

    params: ProductParams
    plugin: type[Trigger]
    terms: Terms | None = None
    premium: PremiumTerms | None = None

    @property
    def id(self) -> str:  # type: ignore[override]
        return self.params.id

    @property
    def anchor(self) -> str:  # type: ignore[override]
        return self.params.anchor

    @property
    def sum_insured_per_ha(self) -> int:  # type: ignore[override]
        return int(self.params.sum_insured_per_ha)

    @property
    def reach(self) -> tuple[int, int] | None:
        return self.params.reach

    @property
    def sum_insured_factor(self) -> float:
        return float(self.params.sum_insured_factor)

    def inputs(self) -> tuple[str, ...]:
        return tuple(self.plugin.required_inputs(self.params))

    @property
    def prices_premium(self) -> bool:
        return self.premium is not None and self.premium.rate is not None

    def premiums(self, policies: pd.DataFrame) -> pd.DataFrame | None:
        """The term sheet's ``premium.rate`` on each policy's sum insured; ``None`` without a rate.

        No ``subsidy_share`` on the term sheet: no subsidy (the policyholder pays it all).
        A register ``no_claim_years`` column earns the term sheet's ``no_claim_discount``.
        """
        p = self.premium
        if p is None or p.rate is None:
            return None
        years = policies["no_claim_years"] if "no_claim_years" in policies.columns else None
        return policy_premiums(policies["sum_insured"].to_numpy(np.float64), p.rate, terms=p, no_claim_years=years)

    @property
    def label(self) -> str:
        return f"product {self.id!r} (trigger {self.plugin.name})"


@dataclass(frozen=True)
class NamedPerilCover(Cover):
    """A named-peril policy wording (e.g. AUTP), settled plot by plot from field loss assessments."""

    wording: Any  # panen.engine.perils.adjuster.Wording
    per_policy: bool = True

    @property
    def id(self) -> str:  # type: ignore[override]
        return self.wording.id

    @property
    def sum_insured_per_ha(self) -> int:  # type: ignore[override]
        return int(self.wording.sum_insured_per_ha)

    def inputs(self) -> tuple[str, ...]:
        return ("assessments",)

    @property
    def prices_premium(self) -> bool:
        return True

    def premiums(self, policies: pd.DataFrame) -> pd.DataFrame:
        """The wording's premium (rate, subsidy share) on each policy's insured area, capped per farmer."""
        from panen.engine.perils.adjuster import premium

        money = premium(policies["area_ha"].to_numpy(np.float64), self.wording, farmer_id=policies["farmer_id"])
        n = len(money)
        out = pd.DataFrame({"premium_rate": np.full(n, float(self.wording.premium.rate)),
                            "tariff_flag": np.full(n, "", dtype=object),
                            "gross_premium": money["premium"].to_numpy(np.int64),
                            "no_claim_discount": np.zeros(n, np.int64),
                            "rate_premium": money["premium"].to_numpy(np.int64), "charges": np.zeros(n, np.int64),
                            "premium": money["premium"].to_numpy(np.int64),
                            "subsidy": money["subsidy"].to_numpy(np.int64),
                            "farmer_share": money["farmer_share"].to_numpy(np.int64)})
        return out[list(PREMIUM_COLUMNS)]

    def hints(self, name: str) -> dict[str, Any]:
        # duplicates among assessments are found on the wording's peril codes
        return {"peril_key": self.wording.peril_code} if name == "assessments" else {}

    @property
    def cover_times(self) -> tuple[int, int] | None:
        period = self.wording.cover_period
        return period.times if period.basis == "policy" else None

    @property
    def reads_harvest_date(self) -> bool:
        return self.wording.post_harvest is not None

    @property
    def label(self) -> str:
        return f"named-peril cover {self.id!r}"


def covers_of(config) -> list[Cover]:
    """Every cover a validated run config names: its products in config order, then the wording."""
    out: list[Cover] = [IndexCover(params=p, plugin=get_trigger(p.trigger), terms=config.terms.get(p.id),
                                    premium=config.premiums.get(p.id))
                        for p in config.products]
    if config.adjuster is not None:
        out.append(NamedPerilCover(wording=config.adjuster))
    return out
