"""Plugin registries: triggers (``panen.triggers``) and readers (``panen.readers``), looked up once.

Built-in plugins are registered through the same entry-point groups as third-party ones
(``pyproject.toml``), like xarray's ``xarray.backends``. A plugin that fails to import is
warned about and skipped — one broken plugin never takes the program down — and two
plugins claiming the same name warn, the first one found (sorted by distribution name,
then entry-point value, so the choice is deterministic) winning.
"""

from __future__ import annotations

import functools
import warnings
from importlib.metadata import entry_points

from panen.engine.api import Reader, Trigger
from panen.engine.errors import PluginError

__all__ = ["GROUP", "READER_GROUP", "get_reader", "get_trigger", "readers", "triggers"]

GROUP = "panen.triggers"
READER_GROUP = "panen.readers"


def _scan(group: str, base: type, what: str) -> dict[str, type]:
    found: dict[str, type] = {}
    eps = sorted(entry_points(group=group), key=lambda ep: ((ep.dist.name if ep.dist else ""), ep.value))
    for ep in eps:
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break panen
            warnings.warn(f"{what} plugin {ep.name!r} ({ep.value}) failed to load and is skipped: {exc}",
                          RuntimeWarning, stacklevel=3)
            continue
        if not (isinstance(obj, type) and issubclass(obj, base)):
            warnings.warn(f"{what} plugin {ep.name!r} ({ep.value}) is not a panen.engine.api.{base.__name__} "
                          f"subclass; skipped", RuntimeWarning, stacklevel=3)
            continue
        name = getattr(obj, "name", ep.name)
        if name in found and found[name] is not obj:
            warnings.warn(f"two {what} plugins are named {name!r}: keeping {found[name].__module__}, "
                          f"ignoring {ep.value}", RuntimeWarning, stacklevel=3)
            continue
        found[name] = obj
    return found


@functools.cache
def triggers() -> dict[str, type[Trigger]]:
    """All installed trigger plugins by name (cached; call ``triggers.cache_clear()`` to rescan)."""
    return _scan(GROUP, Trigger, "trigger")


@functools.cache
def readers() -> dict[str, type[Reader]]:
    """All installed reader plugins by input name (cached; ``readers.cache_clear()`` rescans)."""
    return _scan(READER_GROUP, Reader, "reader")


def _lookup(table: dict[str, type], name: str, what: str) -> type:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        raise PluginError(f"no {what} is installed (installed: {known})") from None


def get_trigger(name: str) -> type[Trigger]:
    """The plugin class registered as ``name``; :class:`PluginError` listing the known names otherwise."""
    return _lookup(triggers(), name, f"trigger plugin named {name!r}")


def get_reader(name: str) -> type[Reader]:
    """The reader registered for input ``name``; :class:`PluginError` listing the known inputs otherwise."""
    return _lookup(readers(), name, f"reader for input {name!r}")
