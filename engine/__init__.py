"""panen.engine — orchestration and the shared mechanics of panen.

Zonal aggregation, payout curves, policy terms, the ledger, the run orchestrator and the
command line live here. Trigger plugins (``panen.triggers``) depend on the small API in
:mod:`panen.engine.api`; the engine never imports a trigger module directly, it looks
plugins up in the entry-point registry (:mod:`panen.engine.registry`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("panen")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
