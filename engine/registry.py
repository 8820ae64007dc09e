"""Trigger plugin registry: the ``panen.triggers`` entry-point group, looked up once.

Built-in triggers are registered through the same entry-point group as third-party ones
(``pyproject.toml``), like xarray's ``xarray.backends``. A plugin that fails to import is
warned about and skipped — one broken plugin never takes the program down — and two
plugins claiming the same name warn, the first one found (sorted by distribution name,
then entry-point value, so the choice is deterministic) winning.
"""

from __future__ import annotations

import functools
import warnings
from importlib.metadata import entry_points

from panen.engine.api import Trigger
from panen.engine.errors import PluginError

GROUP = "panen.triggers"


@functools.cache
def triggers() -> dict[str, type[Trigger]]:
    """All installed trigger plugins by name (cached; call ``triggers.cache_clear()`` to rescan)."""
    found: dict[str, type[Trigger]] = {}
    eps = sorted(entry_points(group=GROUP), key=lambda ep: ((ep.dist.name if ep.dist else ""), ep.value))
    for ep in eps:
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break panen
            warnings.warn(f"trigger plugin {ep.name!r} ({ep.value}) failed to load and is skipped: {exc}",
                          RuntimeWarning, stacklevel=2)
            continue
        if not (isinstance(obj, type) and issubclass(obj, Trigger)):
            warnings.warn(f"trigger plugin {ep.name!r} ({ep.value}) is not a panen.engine.api.Trigger subclass; skipped",
                          RuntimeWarning, stacklevel=2)
            continue
        name = getattr(obj, "name", ep.name)
        if name in found and found[name] is not obj:
            warnings.warn(f"two trigger plugins are named {name!r}: keeping {found[name].__module__}, "
                          f"ignoring {ep.value}", RuntimeWarning, stacklevel=2)
            continue
        found[name] = obj
    return found


def get_trigger(name: str) -> type[Trigger]:
    """The plugin class registered as ``name``; :class:`PluginError` listing the known names otherwise."""
    table = triggers()
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        raise PluginError(f"no trigger plugin named {name!r} is installed (installed: {known})") from None
