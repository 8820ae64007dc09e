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

from panen.engine.api import ProductParams, Trigger
from panen.engine.maths.premium import PremiumTerms
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

    def inputs(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def hints(self, name: str) -> dict[str, Any]:
        """Keywords for the reader of input ``name`` (default none)."""
        return {}

    @property
    def reach(self) -> tuple[int, int] | None:
        """Window reach [days after the anchor], or ``None`` (reads whole inputs)."""
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

    def inputs(self) -> tuple[str, ...]:
        return tuple(self.plugin.required_inputs(self.params))

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

    def hints(self, name: str) -> dict[str, Any]:
        # duplicates among assessments are found on the wording's peril codes
        return {"peril_key": self.wording.peril_code} if name == "assessments" else {}

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
