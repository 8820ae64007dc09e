"""Trigger plugins come from the ``panen.triggers`` entry-point group, built-ins included."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from panen.engine.cli import main
from panen.engine.registry import get_trigger, triggers
from panen.engine.errors import PluginError


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch):
    """Install a tiny third-party distribution (module + dist-info with entry points) on sys.path."""

    def make(entry_points: str, module_src: str) -> None:
        (tmp_path / "tinyplug.py").write_text(textwrap.dedent(module_src))
        info = tmp_path / "tinyplug-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        monkeypatch.syspath_prepend(str(tmp_path))
        triggers.cache_clear()

    yield make
    sys.modules.pop("tinyplug", None)
    triggers.cache_clear()


TINY = """
    from typing import Literal
    import xarray as xr
    from panen.engine.api import ProductParams, Trigger, TriggerResult

    class FlatParams(ProductParams):
        trigger: Literal["flat"] = "flat"
        rate: float

    class FlatTrigger(Trigger):
        name = "flat"
        Params = FlatParams
        description = "pays the same rate everywhere"

        def evaluate(self, params, inputs):
            r = xr.DataArray([[params.rate] * len(inputs.cohorts)] * len(inputs.district_ids),
                             dims=("district", "cohort"), coords={"district": inputs.district_ids})
            return TriggerResult(xr.Dataset({"payout_rate": r, "flagged": r.isnull()}))
"""


def test_builtin_weather_trigger_is_registered_through_the_entry_point_group():
    from panen.triggers.weather import WeatherIndexTrigger

    assert triggers()["weather_index"] is WeatherIndexTrigger


def test_third_party_plugin_is_found_listed_and_usable(plugin_dist, capsys):
    plugin_dist("[panen.triggers]\nflat = tinyplug:FlatTrigger\n", TINY)
    cls = get_trigger("flat")
    params = cls.Params(id="f", trigger="flat", sum_insured_per_ha=1000, rate=0.25)
    assert params.rate == 0.25
    assert main(["triggers"]) == 0
    out = capsys.readouterr().out
    assert "flat  (tinyplug.FlatTrigger)" in out and "- rate: float" in out and "weather_index" in out


def test_broken_plugin_is_warned_about_and_skipped(plugin_dist):
    plugin_dist("[panen.triggers]\nbroken = tinyplug:DoesNotExist\n", TINY)
    with pytest.warns(RuntimeWarning, match="'broken'.*failed to load"):
        table = triggers()
    assert "broken" not in table and "weather_index" in table


def test_unknown_trigger_names_the_installed_ones():
    with pytest.raises(PluginError, match="installed: .*weather_index"):
        get_trigger("nope")
