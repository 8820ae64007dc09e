"""Reports people can read, built from a finished run's output folder: ``report.html`` and
``districts.gpkg``.

Everything here reads the files a run (or a backtest) wrote — ``manifest.json``,
``payouts.parquet`` (or ``.csv``), ``district_index.csv``, ``summary.csv``, ``rejects.csv``,
``autp_claims.csv``, ``backtest.csv``, ``portfolio.csv`` and, from a backtest with pricing,
a loss reference or trigger design, ``pricing.csv``, ``tail.csv``, ``basis_risk.csv``,
``design_chosen.csv``, ``design_frontier.csv`` and ``plots/tradeoff_<product>.png``, from an in-season
run with a projection ``projection.csv`` — and the
district polygons the run used. Nothing is recomputed: every money figure is a sum of ledger rows, every rate and
index a value the run wrote. ``panen report OUT_DIR`` rebuilds both files at any time.

``report.html`` is one self-contained file: styles inline, figures as base64 PNG data URIs,
no script, no web font, no network. It opens offline in any browser and prints cleanly.
Headline numbers carry ``data-key``/``data-value`` attributes (integer rupiah, exact) so a
machine can check them against the ledger.

Definitions used in the report and the GIS layer
------------------------------------------------
district payout rate
    Sum-insured-weighted mean of the policies' ``payout_rate`` over the district's assessed
    policies (status other than ``withheld_missing_data``):
    ``Σ(payout_rate × sum_insured) / Σ sum_insured`` [fraction of sum insured]. For a
    season-anchored product every policy of a district has the district's rate, so this is
    the district rate; for a sowing-date product it averages the cohorts as insured. A
    district whose policies are all withheld has no rate (hatched on maps).
district index
    Per phase, the sum-insured-weighted mean of ``index_value`` over the district's cohorts
    (a plain mean where the district has no policies); flagged cohorts (no index) do not
    count.
distance to strike
    Where the term sheet states a strike and an exit for a phase (``phases[].strike/exit``,
    or ``payout.strike_z/exit_z``): ``(index − strike) / (strike − exit)``. 0 is the strike,
    −1 the exit (full phase payout); negative values are on the paying side, whatever the
    direction of the cover. Products without a fixed strike (area yield: the threshold is
    district-specific) are mapped by their index value.
province
    The districts layer's ``province_id`` column if it has one, else the first two digits of
    a BPS district code (``3212`` or ``32.12`` → ``32``). Without either, no roll-up.

References
----------
Layout follows the outputs listed in README.md ("Outputs").
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from panen.engine.infra.atomic import fixed_gpkg_date

from panen.engine.errors import InputError, Problem
from panen.engine.infra.keys import as_text

__all__ = [
    "RunOutputs",
    "read_outputs",
    "write_report",
    "write_gpkg",
    "write_reports",
    "district_rates",
    "district_index_means",
    "phase_thresholds",
    "province_ids",
    "province_rollup",
    "TABLE_ROWS",
    "PHASE_DISTRICTS",
    "LABEL_MAX",
]

#: Table rows shown before the rest is folded away (``<details>``) or left to the CSV file.
TABLE_ROWS = 20
#: Rows folded into a ``<details>`` block at most; beyond that the CSV file is the full table.
DETAILS_MAX = 500
#: Districts drawn in the phase charts (those with the largest net payout).
PHASE_DISTRICTS = 12
#: Maps label districts with their id only up to this many districts.
LABEL_MAX = 60
#: Districts drawn in a one-cohort index chart.
DOT_DISTRICTS = 40

WITHHELD = "withheld_missing_data"
REFERRED = "referred"  # a named-peril policy awaiting a person's review: no money yet
_MONEY = ("sum_insured", "gross_payout", "deductible", "net_payout")


# =========================================================================== reading
@dataclass
class RunOutputs:
    """A finished run's outputs, as read from its folder (``None`` where a file is absent)."""

    out_dir: Path
    manifest: dict[str, Any]
    payouts: pd.DataFrame | None = None
    district_index: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    rejects: pd.DataFrame | None = None
    claims: pd.DataFrame | None = None
    backtest: pd.DataFrame | None = None
    portfolio: pd.DataFrame | None = None
    pricing: pd.DataFrame | None = None
    tail: pd.DataFrame | None = None
    basis_risk: pd.DataFrame | None = None
    design_chosen: pd.DataFrame | None = None
    design_frontier: pd.DataFrame | None = None
    projection: pd.DataFrame | None = None
    districts: Any = None  # geopandas.GeoDataFrame with district_id, or None
    notes: list[str] = field(default_factory=list)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def derived(self, name: str, compute) -> Any:
        """A table derived from the outputs, computed once per read (the report and the GIS
        layer both need the district rates, the cohort weights and the index means)."""
        if name not in self._memo:
            self._memo[name] = compute()
        return self._memo[name]

    @property
    def adjuster_id(self) -> str | None:
        adj = self.manifest.get("adjuster") or {}
        return adj.get("id")

    @property
    def product_ids(self) -> list[str]:
        """Index products in term-sheet order (those in the ledger, or in the backtest)."""
        listed = [p["id"] for p in self.manifest.get("products") or []]
        seen: set[str] = set()
        for frame in (self.payouts, self.district_index, self.backtest):
            if frame is not None and len(frame):
                seen |= set(frame["product_id"].astype(str).unique())
        return [p for p in listed if p in seen] + sorted(seen - set(listed))

    def product(self, product_id: str) -> dict[str, Any]:
        return next((p for p in self.manifest.get("products") or [] if p.get("id") == product_id), {})


def _read_csv(path: Path, ids: Iterable[str] = ("district_id", "product_id", "farmer_id", "policy_id")) -> pd.DataFrame:
    head = pd.read_csv(path, nrows=0)
    dtype = {c: str for c in ids if c in head.columns}
    return pd.read_csv(path, dtype=dtype, keep_default_na=True)


def _iso_dates(col: pd.Series) -> pd.Series:
    """Dates (date objects, datetimes or ISO text) as ``YYYY-MM-DD`` text. Arrow's date cast
    took 0.4 s for 4 million cohorts where ``to_datetime(astype(str)).strftime`` took 7.5 s."""
    import pyarrow as pa

    try:
        arr = pa.array(col, from_pandas=True)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            raise TypeError("text")
        text = arr.cast(pa.date32()).cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        return pd.to_datetime(col.astype(str)).dt.strftime("%Y-%m-%d")
    return pd.Series(text.to_pandas().array, index=col.index).astype("str")


def read_outputs(out_dir: str | os.PathLike[str], *, districts: bool = True) -> RunOutputs:
    """Read a finished run's (or backtest's) output folder.

    Parameters
    ----------
    out_dir
        Folder written by ``panen run`` / ``panen backtest``.
    districts
        Also read the district polygons the run used (see :func:`_read_district_layer`).

    Raises
    ------
    InputError
        The folder does not exist, has no readable ``manifest.json`` naming a run, or holds
        neither a ledger (``payouts.parquet``/``.csv``) nor a backtest table.
    """
    out_dir = Path(out_dir)
    mpath = out_dir / "manifest.json"
    if not out_dir.is_dir():
        raise InputError(Problem("not a panen output folder: the folder does not exist", file=out_dir))
    if not mpath.is_file():
        raise InputError(Problem("not a panen output folder: no manifest.json", file=out_dir))
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(Problem(f"not a panen output folder: manifest.json is unreadable ({exc})", file=mpath)) from None
    if not isinstance(manifest, dict) or "run_id" not in manifest or "panen_version" not in manifest:
        raise InputError(Problem("not a panen output folder: manifest.json has no run_id/panen_version", file=mpath))

    o = RunOutputs(out_dir=out_dir, manifest=manifest)
    if (out_dir / "payouts.parquet").is_file():
        import pyarrow.parquet as pq

        # the report sums the ledger by cover, district, farmer and cohort: it never needs the
        # policy ids (the heaviest column) nor the groups and reasons
        names = pq.read_schema(out_dir / "payouts.parquet").names
        o.payouts = pd.read_parquet(out_dir / "payouts.parquet",
                                    columns=[c for c in names if c not in ("policy_id", "group_id", "reason")])
    elif (out_dir / "payouts.csv").is_file():
        o.payouts = _read_csv(out_dir / "payouts.csv")
    if (out_dir / "backtest.parquet").is_file():
        o.backtest = pd.read_parquet(out_dir / "backtest.parquet")
    elif (out_dir / "backtest.csv").is_file():
        o.backtest = _read_csv(out_dir / "backtest.csv")
    if o.payouts is None and o.backtest is None:
        raise InputError(Problem("not a panen output folder: neither payouts.parquet/payouts.csv nor backtest.csv",
                                 file=out_dir))
    for attr, name in (("district_index", "district_index.csv"), ("summary", "summary.csv"),
                       ("rejects", "rejects.csv"), ("claims", "autp_claims.csv"), ("portfolio", "portfolio.csv"),
                       ("pricing", "pricing.csv"), ("tail", "tail.csv"), ("basis_risk", "basis_risk.csv"),
                       ("design_chosen", "design_chosen.csv"), ("design_frontier", "design_frontier.csv"),
                       ("projection", "projection.csv")):
        if (out_dir / name).is_file():
            setattr(o, attr, _read_csv(out_dir / name))
    for frame in (o.payouts, o.district_index, o.summary, o.backtest, o.portfolio, o.pricing, o.tail,
                  o.basis_risk, o.design_chosen, o.design_frontier, o.projection):
        if frame is not None:
            for c in ("district_id", "product_id", "status", "farmer_id"):
                if c in frame.columns:
                    frame[c] = as_text(frame[c])  # Arrow casts: astype(str) took 1–2 s a column at 4M rows
    if o.payouts is not None and "cohort" in o.payouts.columns:
        o.payouts["cohort"] = _iso_dates(o.payouts["cohort"])
    if districts:
        o.districts = _read_district_layer(manifest, o.notes)
    return o


def _district_source(manifest: dict[str, Any]) -> tuple[str | None, str, Any]:
    """``(path, id_column, layer)`` of the run's district layer.

    ``manifest["districts"]`` when the run recorded it; else the run config named in the
    manifest (relative paths resolve against its folder); else the hashed input path with
    the default id column ``district_id``.
    """
    spec = manifest.get("districts")
    if isinstance(spec, dict) and spec.get("path"):
        return spec["path"], spec.get("id_column") or "district_id", spec.get("layer")
    cfg_path = (manifest.get("config") or {}).get("path")
    if cfg_path and Path(cfg_path).is_file():
        try:
            from panen.engine.infra.yamlio import load_located_yaml

            cfg = load_located_yaml(cfg_path).data or {}
            d = (cfg.get("inputs") or {}).get("districts") or {}
            if d.get("path"):
                p = Path(d["path"])
                p = p if p.is_absolute() else Path(cfg_path).parent / p
                return str(p), d.get("id_column") or "district_id", d.get("layer")
        except Exception:  # noqa: BLE001 - a config that no longer parses: fall through
            pass
    inp = (manifest.get("inputs") or {}).get("districts") or {}
    return inp.get("path"), "district_id", None


def _sha256_input(path: Path) -> str:
    """The manifest's hash of one input path (:func:`panen.engine.infra.manifest.sha256_tree`)."""
    from panen.engine.infra.manifest import sha256_tree

    return sha256_tree([path])


def _read_district_layer(manifest: dict[str, Any], notes: list[str]):
    """The run's district polygons, or ``None`` (with a note) when they cannot be read."""
    from panen.engine.registry import get_reader

    reader = get_reader("districts")()
    path, id_column, layer = _district_source(manifest)
    if not path:
        notes.append("The run has no district layer: maps and the GIS layer are left out.")
        return None
    if not Path(path).exists():
        notes.append(f"The district layer {path} is no longer there: maps and the GIS layer are left out.")
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            opened = reader.open(reader.Spec(path=path, id_column=id_column, layer=layer))
            if opened.kind != "polygons":
                notes.append("The run's district layer is a list of ids without geometry: maps and the GIS layer "
                             "are left out.")
                return None
            gdf = opened.data
        except InputError as exc:
            notes.append(f"The district layer could not be read ({exc}): maps and the GIS layer are left out.")
            return None
    for w in caught:
        notes.append(f"District layer: {w.message}")
    recorded = ((manifest.get("inputs") or {}).get("districts") or {}).get("sha256")
    if recorded:
        if _sha256_input(Path(path)) != recorded:
            notes.append(f"The district layer {path} has changed since the run (SHA-256 differs); maps use the "
                         "current file.")
    return gdf


# =========================================================================== pure tables
def district_rates(payouts: pd.DataFrame) -> pd.DataFrame:
    """Per product and district: the sum-insured-weighted payout rate of assessed policies.

    Returns ``product_id, district_id, policies, assessed, sum_insured_assessed, payout_rate``;
    ``payout_rate`` is NaN where every policy was withheld for missing data.
    """
    p = payouts[["product_id", "district_id", "status", "sum_insured", "payout_rate"]]
    ok = (p["status"] != WITHHELD) & p["payout_rate"].notna()
    w = p.assign(assessed=ok.astype(int), si=p["sum_insured"].where(ok, 0).astype(float),
                 rs=(p["payout_rate"].fillna(0) * p["sum_insured"]).where(ok, 0.0))
    g = w.groupby(["product_id", "district_id"], sort=True).agg(
        policies=("status", "size"), assessed=("assessed", "sum"), sum_insured_assessed=("si", "sum"),
        rs=("rs", "sum")).reset_index()
    g["payout_rate"] = np.where(g["assessed"] > 0, g["rs"] / g["sum_insured_assessed"].where(g["sum_insured_assessed"] > 0),
                                np.nan)
    zero_si = (g["assessed"] > 0) & (g["sum_insured_assessed"] <= 0)
    g.loc[zero_si, "payout_rate"] = 0.0
    return g.drop(columns="rs")


def phase_thresholds(product: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """``{phase: (strike, exit)}`` for the phases whose term sheet states both.

    Asked of the product's trigger plugin (:meth:`panen.engine.api.Trigger.thresholds`) on
    the term sheet recorded in the manifest; empty when the plugin is not installed where
    the report is rebuilt, or the recorded term sheet no longer validates.
    """
    from pydantic import ValidationError

    from panen.engine.errors import PluginError
    from panen.engine.registry import get_trigger

    try:
        plugin = get_trigger(str(product.get("trigger")))
        return plugin.thresholds(plugin.Params.model_validate(product))
    except (PluginError, ValidationError):
        return {}


def _cohort_weights(payouts: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["product_id", "district_id", "cohort", "weight"]
    if payouts is None or "cohort" not in payouts.columns:
        return pd.DataFrame(columns=cols)
    return (payouts.groupby(["product_id", "district_id", "cohort"], sort=False)["sum_insured"].sum()
            .rename("weight").astype(float).reset_index())


def district_index_means(district_index: pd.DataFrame, payouts: pd.DataFrame | None = None, *,
                         weights: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per product, district and phase: the district index (see the module docstring).

    Returns ``product_id, district_id, phase, index_value, cohorts, cohorts_flagged,
    min_valid_fraction``.
    """
    di = district_index
    if not len(di):
        return pd.DataFrame(columns=["product_id", "district_id", "phase", "index_value", "cohorts",
                                     "cohorts_flagged", "min_valid_fraction"])
    weights = _cohort_weights(payouts) if weights is None else weights
    di = di.merge(weights, on=["product_id", "district_id", "cohort"], how="left")
    di["weight"] = di["weight"].fillna(0.0)
    valid = di["index_value"].notna()
    di["wx"] = (di["index_value"] * di["weight"]).where(valid, 0.0)
    di["w"] = di["weight"].where(valid, 0.0)
    di["x"] = di["index_value"].where(valid, 0.0)
    di["n"] = valid.astype(int)
    flagged = di["flagged"].astype(str).str.lower().isin(["true", "1"]) if di["flagged"].dtype != bool else di["flagged"]
    di["f"] = flagged.astype(int)
    g = di.groupby(["product_id", "district_id", "phase"], sort=True).agg(
        wx=("wx", "sum"), w=("w", "sum"), x=("x", "sum"), n=("n", "sum"), cohorts=("cohort", "nunique"),
        cohorts_flagged=("f", "sum"), min_valid_fraction=("valid_fraction", "min")).reset_index()
    g["index_value"] = np.where(g["w"] > 0, g["wx"] / g["w"].where(g["w"] > 0),
                                np.where(g["n"] > 0, g["x"] / g["n"].where(g["n"] > 0), np.nan))
    return g[["product_id", "district_id", "phase", "index_value", "cohorts", "cohorts_flagged", "min_valid_fraction"]]


_BPS = re.compile(r"^\s*(\d{2})\.?\d{2}\s*$")


def province_ids(district_ids: pd.Series, districts=None) -> pd.Series | None:
    """Province of each district id: the layer's ``province_id``, else the BPS code prefix.

    Returns ``None`` when neither is available for every district.
    """
    ids = district_ids.astype(str)
    if districts is not None and "province_id" in districts.columns:
        lut = dict(zip(districts["district_id"].astype(str), districts["province_id"].astype(str)))
        prov = ids.map(lut)
        if prov.notna().all():
            return prov
    m = ids.str.extract(_BPS)[0]
    return m if m.notna().all() and len(m) else None


def province_rollup(summary: pd.DataFrame, districts=None) -> pd.DataFrame | None:
    """``summary.csv``'s district rows summed per province and product (money to the rupiah).

    Returns ``province_id, product_id, districts, districts_paid, policies, withheld, area_ha,
    sum_insured, gross_payout, deductible, net_payout, payout_share`` (net / sum insured), or
    ``None`` when provinces cannot be told (see :func:`province_ids`).
    """
    d = summary[summary["level"] == "district"].copy()
    if not len(d):
        return None
    prov = province_ids(d["district_id"], districts)
    if prov is None:
        return None
    d["province_id"] = prov.to_numpy()
    d["paid"] = (d["net_payout"] > 0).astype(int)
    cols = [c for c in ("policies", "withheld", "area_ha") + _MONEY if c in d.columns]
    g = d.groupby(["province_id", "product_id"], sort=True).agg(
        districts=("district_id", "nunique"), districts_paid=("paid", "sum"), **{c: (c, "sum") for c in cols}).reset_index()
    for c in _MONEY:
        if c in g.columns:
            g[c] = g[c].astype("int64")
    g["payout_share"] = g["net_payout"] / g["sum_insured"].where(g["sum_insured"] > 0)
    return g


# =========================================================================== formatting
def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _isnan(v: Any) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v)) or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _fmt(v: Any, kind: str) -> str:
    if _isnan(v):
        return "—"
    if kind in ("int", "money"):
        return f"{int(v):,}"
    if kind == "area":
        return f"{float(v):,.2f}"
    if kind == "pct":
        return f"{float(v) * 100:.2f} %"
    if kind == "rate":
        return f"{float(v):.4f}"
    if kind == "float":
        return f"{float(v):,.3g}" if abs(float(v)) < 1000 else f"{float(v):,.0f}"
    if kind == "sha":
        return str(v)
    return str(v)


def _raw(v: Any, kind: str) -> str:
    """Machine-readable value for ``data-value``: exact integers, round-trip floats."""
    if _isnan(v):
        return ""
    if kind in ("int", "money"):
        return str(int(v))
    if kind in ("area", "pct", "rate", "float"):
        return repr(float(v))
    return str(v)


@dataclass(frozen=True)
class Col:
    """One table column: source key, header, kind (text|int|money|area|pct|rate|float)."""

    key: str
    header: str
    kind: str = "text"


def _row_html(row: dict[str, Any], cols: list[Col], data_key: Callable[[dict, Col], str | None] | None = None,
              cls: str = "") -> str:
    cells = []
    for c in cols:
        v = row.get(c.key)
        if c.kind == "text":
            cells.append(f"<td>{_esc(_fmt(v, c.kind))}</td>")
            continue
        key = data_key(row, c) if data_key else None
        attrs = f' data-value="{_esc(_raw(v, c.kind))}"' + (f' data-key="{_esc(key)}"' if key else "")
        cells.append(f'<td class="num"{attrs}>{_esc(_fmt(v, c.kind))}</td>')
    return f"<tr{' class=' + chr(34) + cls + chr(34) if cls else ''}>{''.join(cells)}</tr>"


def _table(df: pd.DataFrame, cols: list[Col], *, limit: int | None = TABLE_ROWS, csv_name: str | None = None,
           caption: str | None = None, data_key=None, totals: list[dict[str, Any]] | None = None,
           what: str = "rows", narrow: bool = False) -> str:
    """An HTML table: the first ``limit`` rows, the rest folded (``<details>``) or left to the CSV."""
    cols = [c for c in cols if c.key in df.columns or (totals and any(c.key in t for t in totals))]
    head = "".join(f'<th{" class=num" if c.kind != "text" else ""}>{_esc(c.header)}</th>' for c in cols)
    records = df.to_dict(orient="records")
    shown = records if limit is None else records[:limit]
    rest = [] if limit is None else records[limit:]
    body = "".join(_row_html(r, cols, data_key) for r in shown)
    foot = "".join(_row_html(t, cols, data_key, cls="total") for t in totals or [])
    cap = f"<caption>{caption}</caption>" if caption else ""
    tcls = ' class="narrow"' if narrow else ""
    out = [f'<div class="table-wrap"><table{tcls}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
           + (f"<tfoot>{foot}</tfoot>" if foot else "") + "</table></div>"]
    link = f' (full table: <a href="{_esc(csv_name)}">{_esc(csv_name)}</a>)' if csv_name else ""
    if rest and len(rest) <= DETAILS_MAX:
        more = "".join(_row_html(r, cols, data_key) for r in rest)
        out.append(f'<details><summary>{len(rest):,} more {what}{link}</summary><div class="table-wrap"><table>'
                   f"<thead><tr>{head}</tr></thead><tbody>{more}</tbody></table></div></details>")
    elif rest:
        out.append(f'<p class="more">… and {len(rest):,} more {what}' + (link or "") + ".</p>")
    return "".join(out)


def _png(fig) -> str:
    """A matplotlib Figure as a ``data:image/png;base64`` URI (deterministic: no metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_html(uri: str, alt: str, caption: str = "", cls: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="{cls}"><img src="{uri}" alt="{_esc(alt)}">{cap}</figure>'


# =========================================================================== figures
def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import colormaps, colors
    from matplotlib.figure import Figure

    return Figure, colormaps, colors


def _district_paths(geoms) -> list:
    """One compound matplotlib Path per district (all its polygons and holes): drawn at once."""
    import shapely
    from matplotlib.path import Path as MplPath

    paths = []
    for geom in geoms:
        verts, codes = [], []
        polys = shapely.get_parts(geom) if geom is not None else []
        for poly in polys:
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            for ring in (poly.exterior, *poly.interiors):
                xy = np.asarray(ring.coords)[:, :2]
                if len(xy) < 3:
                    continue
                c = np.full(len(xy), MplPath.LINETO, dtype=np.uint8)
                c[0], c[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
                verts.append(xy)
                codes.append(c)
        paths.append(MplPath(np.concatenate(verts), np.concatenate(codes)) if verts
                     else MplPath(np.zeros((1, 2)), [MplPath.MOVETO]))
    return paths


@dataclass
class _MapFrame:
    ids: np.ndarray
    paths: list
    points: np.ndarray
    bounds: tuple[float, float, float, float]
    aspect: float
    ratio: float


def _map_frame(districts) -> _MapFrame:
    """Districts simplified for drawing (invisible at report resolution), as paths, once."""
    import shapely

    minx, miny, maxx, maxy = (float(v) for v in districts.total_bounds)
    span = max(maxx - minx, maxy - miny) or 1.0
    geoms = shapely.simplify(np.asarray(districts.geometry.values), span / 2500, preserve_topology=True)
    geographic = bool(districts.crs is not None and districts.crs.is_geographic)
    aspect = 1.0 / max(math.cos(math.radians((miny + maxy) / 2)), 0.2) if geographic else 1.0
    width, height = (maxx - minx) or 1.0, ((maxy - miny) or 1.0) * aspect
    pts = shapely.get_coordinates(districts.geometry.representative_point().values)
    return _MapFrame(ids=districts["district_id"].astype(str).to_numpy(), paths=_district_paths(geoms), points=pts,
                     bounds=(minx, miny, maxx, maxy), aspect=aspect, ratio=width / height)


def _map_figure(frame: _MapFrame, panels: list[tuple[str, pd.Series]], *, cmap, norm, cbar_label: str,
                flagged: list[set[str]] | None = None, extend: str = "neither",
                flag_label: str = "flagged: missing data"):
    """Choropleth small multiples sharing one colour scale.

    ``panels``: ``(title, values indexed by district_id)``; NaN = no value. ``flagged``: per
    panel, districts drawn hatched (withheld / flagged for missing data). Edges thin out and
    labels (district ids) disappear as the district count grows.
    """
    import matplotlib.patheffects as pe
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Patch

    Figure, _, _ = _mpl()
    n = len(panels)
    ratio = frame.ratio
    ncols = 1 if ratio > 1.8 else min(n, 3 if ratio > 0.9 else 4)
    nrows = math.ceil(n / ncols)
    # manual layout in inches (constrained layout costs a second draw pass per figure)
    width, margin, gap, title_h, cbar_h = 10.0, 0.1, 0.25, 0.3, 0.8
    pw = (width - 2 * margin - (ncols - 1) * gap) / ncols
    ph = pw / ratio
    if ph > 6.5:
        ph, pw = 6.5, 6.5 * ratio
    height = nrows * (ph + title_h) + cbar_h + 0.1
    fig = Figure(figsize=(width, height), dpi=100)
    x0 = (width - ncols * pw - (ncols - 1) * gap) / 2
    axes = []
    for i in range(n):
        r, c = divmod(i, ncols)
        bottom = height - (r + 1) * (ph + title_h)
        axes.append(fig.add_axes((( x0 + c * (pw + gap)) / width, bottom / height, pw / width, ph / height)))
    nd = len(frame.ids)
    many = nd > LABEL_MAX
    lw = 0.1 if nd > 300 else (0.2 if many else 0.45)
    minx, miny, maxx, maxy = frame.bounds
    padx, pady = 0.01 * (maxx - minx), 0.01 * (maxy - miny)
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        title, values = panels[i]
        v = pd.Series(frame.ids).map(values).astype(float).to_numpy()
        has = ~np.isnan(v)
        face = np.ones((nd, 4))
        face[has] = cmap(norm(v[has]))
        ax.add_collection(PathCollection(frame.paths, facecolors=face, edgecolors="0.35", linewidths=lw))
        fl = np.isin(frame.ids, list(flagged[i] if flagged else ()))
        if fl.any():  # hatch over the colour where some value remains, over grey where none does
            ax.add_collection(PathCollection([p for p, f in zip(frame.paths, fl) if f],
                                             facecolors=np.where(has[fl][:, None], (0, 0, 0, 0), (0.85, 0.85, 0.85, 1)),
                                             edgecolors="0.25", linewidths=lw, hatch="////"))
        ax.set_xlim(minx - padx, maxx + padx)
        ax.set_ylim(miny - pady, maxy + pady)
        ax.set_aspect(frame.aspect)
        ax.set_title(title, fontsize=10, loc="left")
        if not many:
            for did, (x, y) in zip(frame.ids, frame.points):
                ax.annotate(did, (x, y), fontsize=5.5, ha="center", va="center", color="0.1",
                            path_effects=[pe.withStroke(linewidth=1.5, foreground="white")])
        handles = [Patch(facecolor="white", edgecolor="0.35", label="no policies / no value")]
        if fl.any():
            handles.append(Patch(facecolor="0.85", edgecolor="0.25", hatch="////", label=flag_label))
        ax.legend(handles=handles, loc="lower left", fontsize=7, frameon=False)
    cax = fig.add_axes((0.2, 0.5 / height, 0.6, 0.14 / height))
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal", label=cbar_label,
                 extend=extend)
    cax.tick_params(labelsize=8)
    cax.xaxis.label.set_size(9)
    return fig


def _rate_maps(o: RunOutputs, frame: _MapFrame, rates: pd.DataFrame) -> list[str]:
    """One figure: a payout-rate choropleth per product, on one colour scale."""
    _, colormaps, colors = _mpl()
    vmax = max(0.1, math.ceil(float(np.nan_to_num(rates["payout_rate"].max(), nan=0.0)) * 10) / 10)
    norm = colors.Normalize(0, vmax)
    panels, flagged, notes = [], [], []
    for pid in o.product_ids:
        r = rates[rates["product_id"] == pid]
        values = r.set_index("district_id")["payout_rate"]
        panels.append((f"{pid}: payout rate", values))
        flagged.append(set(r.loc[r["assessed"] < r["policies"], "district_id"]))
        notes.append(f"{_esc(pid)} {int((values > 0).sum())} of {len(values)}")
    if not panels:
        return []
    fig = _map_figure(frame, panels, cmap=colormaps["YlOrRd"], norm=norm, flagged=flagged,
                      flag_label="policies withheld for missing data",
                      cbar_label="payout rate [fraction of sum insured; sum-insured-weighted over assessed policies]")
    return [_figure_html(_png(fig), "maps of payout rate per district, one per product",
                         "Payout rate per district, one map per product on the same colour scale. Districts paid: "
                         + "; ".join(notes) + " (of the districts with policies). Hatched: policies withheld for missing "
                         "data (grey: all of them; coloured: the rate of the others); white: no policies.",
                         cls="map")]


#: Distance-to-strike colours: the paying side (< 0) in reds, the safe side pale blue.
_STRIKE_COLOURS = ["#67000d", "#cb181d", "#fc9272", "#fff5f0", "#f7fbff", "#c6dbef", "#6baed6"]


def _anomaly_maps(o: RunOutputs, frame, means: pd.DataFrame) -> list[str]:
    Figure, colormaps, colors = _mpl()
    out = []
    for pid in o.product_ids:
        m = means[means["product_id"] == pid]
        if not len(m):
            continue
        th = phase_thresholds(o.product(pid))
        phases = _phase_order(o, pid, m["phase"].unique())
        flagged_all = set(m.loc[m["cohorts_flagged"] > 0, "district_id"])
        if th and all(ph in th for ph in phases):
            panels, flagged = [], []
            for ph in phases:
                s, e = th[ph]
                mm = m[m["phase"] == ph].set_index("district_id")["index_value"]
                panels.append((f"{pid} · {ph}: strike {s:g}, exit {e:g}", (mm - s) / (s - e)))
                mp = m[m["phase"] == ph]
                flagged.append(set(mp.loc[mp["cohorts_flagged"] > 0, "district_id"]))
            norm = colors.TwoSlopeNorm(vmin=-1.0, vcenter=0.0, vmax=2.0)
            cmap = colors.LinearSegmentedColormap.from_list(
                "strike", list(zip([0, 0.2, 0.4, 0.5, 0.5, 0.75, 1.0], _STRIKE_COLOURS)))
            fig = _map_figure(frame, panels, cmap=cmap, norm=norm, flagged=flagged, extend="both",
                              cbar_label="distance to strike: (index − strike) / (strike − exit);  0 = strike, "
                                         "−1 = exit, < 0 pays")
            cap = (f"<b>{_esc(pid)}</b> — where each district's index stood against the term sheet, per phase "
                   f"(sum-insured-weighted over cohorts). Red: on the paying side of the strike; dark red: at or "
                   f"beyond the exit; blue: on the safe side (darker = further). Hatched: a cohort flagged "
                   f"for missing data (grey: no index at all).")
        else:
            ph = phases[0]
            mm = m[m["phase"] == ph].set_index("district_id")["index_value"]
            lo, hi = np.nanpercentile(mm, [2, 98]) if mm.notna().any() else (0.0, 1.0)
            norm = colors.Normalize(lo, hi if hi > lo else lo + 1)
            fig = _map_figure(frame, [(f"{pid} · {ph}: index value", mm)], cmap=colormaps["viridis"], norm=norm,
                              flagged=[flagged_all], extend="both",
                              cbar_label="index value (district mean over cohorts, in the index's own units)")
            cap = (f"<b>{_esc(pid)}</b> — the realised index per district. The term sheet states no fixed strike "
                   f"for this product (its trigger is district-specific), so the index is shown as it is.")
        out.append(_figure_html(_png(fig), f"map of the index against its strike, product {pid}", cap, cls="map"))
    return out


def _phase_order(o: RunOutputs, pid: str, present: Iterable[str]) -> list[str]:
    present = [str(p) for p in present]
    listed = [str(ph.get("name")) for ph in o.product(pid).get("phases") or [] if isinstance(ph, dict)]
    return [p for p in listed if p in present] + sorted(set(present) - set(listed))


def _top_districts(o: RunOutputs, pid: str, n: int) -> tuple[list[str], int]:
    """The ``n`` districts of a product with the largest net payout (then id), and how many there are."""
    if o.payouts is not None:
        g = o.payouts[o.payouts["product_id"] == pid].groupby("district_id")["net_payout"].sum()
    else:
        g = pd.Series(dtype=float)
    allids = sorted(set(g.index) | set(o.district_index.loc[o.district_index["product_id"] == pid, "district_id"]))
    g = g.reindex(allids, fill_value=0)
    order = sorted(allids, key=lambda d: (-float(g[d]), d))
    return order[:n], len(allids)


def _phase_charts(o: RunOutputs) -> list[str]:
    Figure, colormaps, colors = _mpl()
    di = o.district_index
    out = []
    weights = o.derived("cohort_weights", lambda: _cohort_weights(o.payouts))
    for pid in o.product_ids:
        d = di[di["product_id"] == pid].copy()
        if not len(d):
            continue
        th = phase_thresholds(o.product(pid))
        phases = _phase_order(o, pid, d["phase"].unique())
        d["flag"] = d["flagged"].astype(str).str.lower().isin(["true", "1"])
        if d["cohort"].nunique() > 1:
            top, total = _top_districts(o, pid, PHASE_DISTRICTS)
            w = weights[weights["product_id"] == pid]
            insured = set(zip(w["district_id"], w["cohort"]))
            for ph in phases:
                kind = next((str(p.get("index")) for p in o.product(pid).get("phases") or []
                             if isinstance(p, dict) and str(p.get("name")) == ph and p.get("index")), "")
                fig = _cohort_panels(Figure, d[d["phase"] == ph], top, th.get(ph), insured,
                                     f"{pid} · {ph}" + (f" ({kind})" if kind else ""), names=_district_names(o))
                note = (f"the {len(top)} of {total} districts with the largest net payout" if total > len(top)
                        else f"all {total} districts")
                s = th.get(ph)
                cap = (f"<b>{_esc(pid)} · {_esc(ph)}</b> — index per sowing-date cohort, {note}. "
                       + (f"Dashed: strike {s[0]:g}; dotted: exit {s[1]:g}; shaded: the paying side. " if s else "")
                       + "Filled markers: cohorts with policies in the district (red when the phase paid); "
                         "grey ×: flagged for missing data (no index).")
                out.append(_figure_html(_png(fig), f"index by cohort for product {pid}, phase {ph}", cap))
        else:
            for ph in phases:
                fig, shown, total = _dot_chart(Figure, colormaps, o, pid, d[d["phase"] == ph], th.get(ph), ph)
                note = (f"the {shown} of {total} districts with the largest net payout" if total > shown
                        else f"all {total} districts")
                s = th.get(ph)
                cap = (f"<b>{_esc(pid)} · {_esc(ph)}</b> — season index per district, {note}, coloured by the "
                       f"phase payout rate. " + (f"Dashed: strike {s[0]:g}; dotted: exit {s[1]:g}." if s else
                                                 "No fixed strike in the term sheet (district-specific trigger)."))
                out.append(_figure_html(_png(fig), f"index by district for product {pid}", cap))
    return out


def _shade(ax, s: tuple[float, float] | None, horizontal: bool = True) -> None:
    if not s:
        return
    strike, exit_ = s
    line = ax.axhline if horizontal else ax.axvline
    span = ax.axhspan if horizontal else ax.axvspan
    line(strike, color="#d95f02", ls="--", lw=1)
    line(exit_, color="#7f0000", ls=":", lw=1)
    span(min(strike, exit_), max(strike, exit_), color="#fdd0a2", alpha=0.35, lw=0)


def _cohort_panels(Figure, d: pd.DataFrame, top: list[str], s, insured: set, title: str,
                   names: dict[str, str] | None = None):
    """Small multiples, one per district: index by sowing-date cohort against strike and exit."""
    import matplotlib.dates as mdates

    ncols = min(4, max(1, len(top)))
    nrows = math.ceil(len(top) / ncols)
    height = 1.75 * nrows + 0.9
    fig = Figure(figsize=(10, height), dpi=100)
    fig.subplots_adjust(left=0.07, right=0.99, top=1 - 0.5 / height, bottom=0.45 / height, hspace=0.45, wspace=0.12)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)).ravel()
    d = d.assign(date=mdates.date2num(pd.to_datetime(d["cohort"]).to_numpy()))
    vals = d.loc[d["district_id"].isin(top), "index_value"]
    lo = float(np.nanmin(vals)) if vals.notna().any() else 0.0
    hi = float(np.nanmax(vals)) if vals.notna().any() else 1.0
    if s:
        lo, hi = min(lo, *s), max(hi, *s)
    pad = 0.08 * ((hi - lo) or 1.0)
    for ax, did in zip(axes, top):
        x = d[d["district_id"] == did].sort_values("date")
        _shade(ax, s)
        ax.plot(x["date"], x["index_value"], color="0.6", lw=0.8)
        mask = np.array([(did, c) in insured for c in x["cohort"]], dtype=bool)
        paid = mask & (x["payout_rate"].fillna(0).to_numpy() > 0)
        ax.plot(x["date"][mask & ~paid], x["index_value"][mask & ~paid], "o", ms=2.5, color="#08306b")
        ax.plot(x["date"][paid], x["index_value"][paid], "o", ms=2.8, color="#cb181d")
        fl = x["flag"].to_numpy()
        if fl.any():
            ax.plot(x["date"][fl], np.full(fl.sum(), lo - pad * 0.5), "x", ms=3, color="0.45")
        name = (names or {}).get(did, "")
        ax.set_title(f"{did} {name[:24]}".strip(), fontsize=8, loc="left", pad=2)
        ax.tick_params(labelsize=6.5, length=2)
        ax.grid(alpha=0.25, lw=0.5)
        ax.label_outer()
    for ax in axes[len(top):]:
        ax.set_visible(False)
    axes[0].set_ylim(lo - pad, hi + pad)
    span = float(d["date"].max() - d["date"].min()) if len(d) else 0.0
    axes[0].xaxis.set_major_locator(mdates.MonthLocator(interval=max(1, math.ceil(span / 30 / 4)))
                                    if span > 45 else mdates.DayLocator(interval=max(1, math.ceil(span / 4))))
    axes[0].xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    fig.suptitle(f"{title}: index by sowing date", fontsize=10, x=0.01, ha="left")
    return fig


def _dot_chart(Figure, colormaps, o: RunOutputs, pid: str, d: pd.DataFrame, s, phase: str):
    from matplotlib.colors import Normalize

    top, total = _top_districts(o, pid, DOT_DISTRICTS)
    x = d[d["district_id"].isin(top)].groupby("district_id").agg(
        index_value=("index_value", "mean"), rate=("payout_rate", "max"), flag=("flag", "any")).reset_index()
    x = x.sort_values(["index_value", "district_id"], na_position="first").reset_index(drop=True)
    fig = Figure(figsize=(10, 0.16 * len(x) + 1.3), dpi=100, layout="constrained")
    ax = fig.subplots()
    _shade(ax, s, horizontal=False)
    y = np.arange(len(x))
    cmap = colormaps["YlOrRd"]
    ok = x["index_value"].notna().to_numpy()
    sc = ax.scatter(x.loc[ok, "index_value"], y[ok], c=x.loc[ok, "rate"].fillna(0), cmap=cmap,
                    norm=Normalize(0, max(0.1, float(np.nan_to_num(x["rate"].max(), nan=0)))), s=22,
                    edgecolor="0.2", linewidth=0.4, zorder=3)
    if (~ok).any():
        left = np.nanmin(x["index_value"]) if ok.any() else 0.0
        ax.plot(np.full((~ok).sum(), left), y[~ok], "x", color="0.45", label="flagged: no index")
        ax.legend(fontsize=7, loc="lower right")
    names = _district_names(o)
    ax.set_yticks(y, [f"{d} {names.get(d, '')[:22]}".strip() for d in x["district_id"]], fontsize=6)
    ax.set_ylim(-0.8, len(x) - 0.2)
    ax.grid(axis="x", alpha=0.3, lw=0.5)
    ax.set_xlabel(f"{phase} index value", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    fig.colorbar(sc, ax=ax, label="payout rate", shrink=0.8, pad=0.01)
    ax.set_title(f"{pid} · {phase}: index by district", fontsize=10, loc="left")
    return fig, len(x), total


def _comparison_figure(o: RunOutputs) -> str | None:
    Figure, _, _ = _mpl()
    s = o.summary
    if s is None or "autp_indemnity" not in s.columns:
        return None
    d = s[(s["level"] == "district") & s["autp_indemnity"].notna()]
    pids = [p for p in o.product_ids if p in set(d["product_id"])]
    if not pids:
        return None
    n = len(pids)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    height = 3.3 * nrows + 0.3
    fig = Figure(figsize=(10, height), dpi=100)
    fig.subplots_adjust(left=0.07, right=0.99, top=1 - 0.3 / height, bottom=0.55 / height, wspace=0.3, hspace=0.35)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    hi = max(float(d["autp_indemnity"].max()), float(d["net_payout"].max()), 1.0) / 1e6 * 1.05
    for ax, pid in zip(axes, pids):
        x = d[d["product_id"] == pid]
        ax.plot([0, hi], [0, hi], color="0.6", lw=0.8, ls="--", label="index = AUTP")
        ax.scatter(x["autp_indemnity"] / 1e6, x["net_payout"] / 1e6, s=14, color="#2171b5", alpha=0.8,
                   edgecolor="white", linewidth=0.3, zorder=3)
        if len(x) <= 40:
            for _, r in x.iterrows():
                ax.annotate(r["district_id"], (r["autp_indemnity"] / 1e6, r["net_payout"] / 1e6), fontsize=5.5,
                            xytext=(2, 2), textcoords="offset points", color="0.3")
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.set_aspect("equal")
        ax.set_title(f"{pid}", fontsize=10, loc="left")
        ax.set_xlabel("AUTP indemnity [Rp million]", fontsize=8)
        ax.set_ylabel("index net payout [Rp million]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    for ax in axes[n:]:
        ax.set_visible(False)
    return _figure_html(_png(fig), "scatter of district index payout against AUTP indemnity",
                        "Per district: index net payout against the AUTP indemnity of the same farmers "
                        "(summary.csv). Points above the dashed line: the index paid more than the named-peril "
                        "adjuster; below: less (unpaid loss).")


def _backtest_figures(o: RunOutputs) -> list[str]:
    Figure, colormaps, _ = _mpl()
    bt = o.backtest
    rows = bt.drop_duplicates(["product_id", "district_id", "season"])
    out = []
    for pid in o.product_ids:
        d = rows[rows["product_id"] == pid]
        if not len(d):
            continue
        wide = d.pivot(index="district_id", columns="season", values="payout_rate").sort_index()
        nd, ns = wide.shape
        fig = Figure(figsize=(10, min(max(2.6, 0.13 * nd + 1.4), 24)), dpi=100, layout="constrained")
        ax = fig.subplots()
        cmap = colormaps["YlOrRd"].with_extremes(bad="0.82")
        im = ax.imshow(np.ma.masked_invalid(wide.to_numpy(np.float64)), aspect="auto", cmap=cmap, vmin=0, vmax=1,
                       interpolation="nearest")
        step = max(1, math.ceil(ns / 40))
        ax.set_xticks(range(0, ns, step), [str(c) for c in wide.columns[::step]], rotation=90, fontsize=6.5)
        if nd <= 80:
            ax.set_yticks(range(nd), wide.index.tolist(), fontsize=5.5)
        else:
            ax.set_yticks([])
        ax.set_xlabel("season (harvest year)", fontsize=8)
        ax.set_ylabel(f"district ({nd})", fontsize=8)
        ax.set_title(f"{pid}: season payout rate by district and year", fontsize=10, loc="left")
        fig.colorbar(im, ax=ax, label="payout rate", shrink=0.8, pad=0.01)
        out.append(_figure_html(_png(fig), f"heat map of backtest payout rate, product {pid}",
                                f"<b>{_esc(pid)}</b> — backtest payout rate per district (rows) and season "
                                f"(columns). Grey: flagged, not assessable."))
    return out


# =========================================================================== sections
_CSS = """
:root{--ink:#1d2733;--muted:#5b6b7b;--line:#dde3ea;--accent:#0b5d7a;--bg:#f6f8fa;--warn:#a14a00}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
main{max-width:1120px;margin:0 auto;padding:28px 32px 64px}
header.top{border-bottom:3px solid var(--accent);padding-bottom:12px;margin-bottom:20px}
h1{font-size:26px;margin:0 0 4px;font-weight:650;letter-spacing:-.01em}
h2{font-size:20px;margin:40px 0 10px;padding-top:6px;border-top:1px solid var(--line);font-weight:620}
h3{font-size:16px;margin:24px 0 8px;font-weight:600}
p,li{max-width:80ch}.sub{color:var(--muted);margin:0}
a{color:var(--accent)}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
nav.toc{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px 18px;margin:16px 0}
nav.toc ol{margin:4px 0;padding-left:20px;columns:2}nav.toc li{margin:2px 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:10px 0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px;margin:14px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:10px 14px;background:var(--bg)}
.card .label{color:var(--muted);font-size:13px}.card .value{font-size:19px;font-weight:640;font-variant-numeric:tabular-nums;white-space:nowrap}
.card .note{color:var(--muted);font-size:12px}
.table-wrap{overflow-x:auto;margin:8px 0}
table{border-collapse:collapse;font-size:13px;width:100%}table.narrow{width:auto;min-width:40%}
caption{text-align:left;color:var(--muted);font-size:12.5px;padding:2px 0 6px}
th,td{padding:4px 9px;border-bottom:1px solid var(--line);vertical-align:top;text-align:left}
th{background:var(--bg);font-weight:600;white-space:nowrap;border-bottom:2px solid var(--line)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fbfcfd}tfoot tr.total td{font-weight:650;border-top:2px solid var(--line)}
details{margin:4px 0 10px}summary{cursor:pointer;color:var(--accent)}p.more{color:var(--muted);font-size:13px}
figure{margin:14px 0 22px}figure img{max-width:100%;height:auto;display:block;border:1px solid var(--line);border-radius:4px}
figcaption{color:var(--muted);font-size:13px;margin-top:6px;max-width:100ch}
.note-box{border-left:4px solid var(--warn);background:#fff7ef;padding:8px 14px;margin:10px 0;font-size:14px}
.ok-box{border-left:4px solid #2e7d32;background:#f1f8f2;padding:8px 14px;margin:10px 0;font-size:14px}
footer{margin-top:48px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:10px}
@media print{main{max-width:none;padding:0}nav.toc{display:none}h2{break-before:auto}figure{break-inside:avoid}details{display:block}}
"""

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="panen $version">
<title>$title</title>
<style>$css</style>
</head>
<body>
<main>
$body
<footer>Built by panen $version from the output folder of run <span class="mono">$run_id</span>; nothing was
recomputed. Rebuild with <code>panen report OUT_DIR</code>.</footer>
</main>
</body>
</html>
""")


@dataclass
class _Section:
    id: str
    title: str
    body: str


def _header(o: RunOutputs) -> str:
    m = o.manifest
    backtest = m.get("kind") == "backtest"
    season = m.get("season") or (m.get("season_template") or {}).get("id") or "?"
    title = (f"Backtest {m.get('years', ['?', '?'])[0]}–{m.get('years', ['?', '?'])[-1]}" if backtest
             else f"Season {season}") + " — panen report"
    prods = ", ".join(f"{_esc(p.get('id'))} ({_esc(p.get('trigger'))})" for p in m.get("products") or [])
    if o.adjuster_id:
        prods += f"; named-peril cover {_esc(o.adjuster_id)} (AUTP adjuster)"
    cfg = m.get("config") or {}
    total = (m.get("timings_s") or {}).get("total")
    facts = [
        ("Season" if not backtest else "Season template", _esc(season)),
        ("Products", prods or "—"),
        ("Run id", f'<span class="mono">{_esc(m.get("run_id"))}</span>'),
        ("Run created", _esc(m.get("created"))),
        ("Run time", f"{total:,.1f} s" if isinstance(total, (int, float)) else "—"),
        ("panen version", _esc(m.get("panen_version"))),
        ("Config", f'<span class="mono">{_esc(cfg.get("path"))}</span><br>SHA-256 '
                   f'<span class="mono">{_esc(cfg.get("sha256"))}</span>'),
    ]
    if backtest:
        facts.insert(1, ("Years", _esc("–".join(map(str, m.get("years") or [])))))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    src = pd.DataFrame([{"input": k, "path": v.get("path"), "files": v.get("files"), "sha256": v.get("sha256")}
                        for k, v in (m.get("inputs") or {}).items()])
    sources = ""
    if len(src):
        rows = "".join(f"<tr><td>{_esc(r.input)}</td><td class=mono>{_esc(r.path)}</td><td class=num>{_esc(r.files)}</td>"
                       f"<td class=mono>{_esc(r.sha256)}</td></tr>" for r in src.itertuples())
        sources = ('<h3>Data sources</h3><div class="table-wrap"><table><thead><tr><th>input</th><th>path</th>'
                   f'<th class=num>files</th><th>SHA-256</th></tr></thead><tbody>{rows}</tbody></table></div>')
    notes = "".join(f'<div class="note-box">{_esc(n)}</div>' for n in o.notes)
    sub = ("Historical replay of the configured products" if backtest else
           "Seasonal settlement of index-based crop insurance") + f" · run <span class=mono>{_esc(m.get('run_id'))}</span>"
    return (f'<header class="top"><h1>{_esc(title)}</h1><p class="sub">{sub}</p></header>'
            f'<dl class="facts">{dl}</dl>{sources}{notes}'), title


def _card(label: str, value: Any, kind: str, key: str, note: str = "", unit: str = "") -> str:
    v = _fmt(value, kind)
    shown = f"{unit} {v}".strip() if not _isnan(value) else v
    return (f'<div class="card"><div class="label">{_esc(label)}</div>'
            f'<div class="value" data-key="{_esc(key)}" data-value="{_esc(_raw(value, kind))}">{_esc(shown)}</div>'
            + (f'<div class="note">{note}</div>' if note else "") + "</div>")


def _district_names(o: RunOutputs) -> dict[str, str]:
    """District names from the layer's ``name``, ``nama`` or ``district_name`` column, if any."""
    g = o.districts
    if g is None:
        return {}
    col = next((c for c in ("name", "nama", "district_name") if c in g.columns), None)
    return {} if col is None else dict(zip(g["district_id"].astype(str), g[col].astype(str)))


def _by_product_manifest(o: RunOutputs) -> dict[str, dict[str, Any]]:
    return {str(r.get("product_id")): r for r in o.manifest.get("by_product") or []}


def _headline(o: RunOutputs) -> _Section:
    p = o.payouts
    bym = _by_product_manifest(o)
    # one grouped pass over the ledger, on integer codes (a boolean filter per cover copied
    # it once per cover; grouping by text factorised 10M strings each time)
    p_code, p_names = pd.factorize(p["product_id"])
    f_code, f_names = pd.factorize(p["farmer_id"])
    flags = pd.DataFrame({"product": p_code, "paid": (p["net_payout"] > 0).to_numpy(),
                          "withheld": (p["status"] == WITHHELD).to_numpy(),
                          "referred": (p["status"] == REFERRED).to_numpy()})
    for c in (*_MONEY, "area_ha"):
        if c in p.columns:
            flags[c] = p[c].to_numpy()
    g = flags.groupby("product", sort=False)
    sums = g[[c for c in (*_MONEY, "area_ha", "paid", "withheld", "referred") if c in flags.columns]].sum()
    sums.index = np.asarray(p_names, dtype=object)[sums.index.to_numpy()]
    sizes = pd.Series(np.bincount(p_code, minlength=len(p_names)), index=np.asarray(p_names, dtype=object))
    pairs = pd.unique(p_code.astype(np.int64) * max(len(f_names), 1) + np.where(f_code < 0, 0, f_code))
    farmers = pd.Series(np.bincount(pairs // max(len(f_names), 1), minlength=len(p_names)),
                        index=np.asarray(p_names, dtype=object))
    paying = p["payout_rate"].to_numpy(dtype=float, na_value=np.nan) > 0
    d_code = pd.factorize(p["district_id"])[0]
    trig_pairs = pd.unique(p_code[paying].astype(np.int64) * (int(d_code.max()) + 1 if len(d_code) else 1)
                           + d_code[paying])
    triggered = pd.Series(np.bincount(trig_pairs // (int(d_code.max()) + 1 if len(d_code) else 1),
                                      minlength=len(p_names)), index=np.asarray(p_names, dtype=object))
    rows = []
    for pid in o.product_ids:
        trigger = o.product(pid).get("trigger", "") or ("named peril (policy wording)" if pid == o.adjuster_id else "")
        # a product whose every policy was rejected has no ledger rows: zeros, not a crash
        s = sums.loc[pid] if pid in sums.index else pd.Series(0, index=sums.columns)
        r = {"product_id": pid, "trigger": trigger, "policies": int(sizes.get(pid, 0)),
             "farmers": int(farmers.get(pid, 0)), "area_ha": round(float(s["area_ha"]), 2) if "area_ha" in s else None,
             **{c: int(s[c]) for c in _MONEY},
             "policies_paid": int(s["paid"]), "policies_withheld": int(s["withheld"]),
             "policies_referred": int(s["referred"]), "districts_triggered": int(triggered.get(pid, 0))}
        for c in ("premium", "subsidy", "farmer_share"):
            r[c] = bym.get(pid, {}).get(c)
        r["payout_share"] = r["net_payout"] / r["sum_insured"] if r["sum_insured"] else None
        rows.append(r)
    table = pd.DataFrame(rows)
    total = {"product_id": "all covers", "trigger": "", "policies": len(p), "farmers": len(f_names),
             "area_ha": round(float(p["area_ha"].sum()), 2) if "area_ha" in p else None,
             **{c: int(sums[c].sum()) for c in _MONEY},
             "policies_paid": int(sums["paid"].sum()), "policies_withheld": int(sums["withheld"].sum()),
             "policies_referred": int(sums["referred"].sum()), "districts_triggered": int(len(np.unique(d_code[paying])))}
    total["payout_share"] = total["net_payout"] / total["sum_insured"] if total["sum_insured"] else None
    for c in ("premium", "subsidy", "farmer_share"):  # over the covers that price a premium
        priced = [r[c] for r in rows if r[c] is not None and not _isnan(r[c])]
        total[c] = int(sum(priced)) if priced else None

    adj = o.adjuster_id
    autp = None
    if adj:
        a = bym.get(adj, {})
        indemnity = a.get("net_payout")
        if o.claims is not None:
            indemnity = int(o.claims.loc[o.claims["decision"] == "paid", "indemnity"].sum())
        autp = {"net_payout": indemnity, "premium": a.get("premium"), "subsidy": a.get("subsidy"),
                "farmer_share": a.get("farmer_share"), "sum_insured": a.get("sum_insured")}
        autp["payout_share"] = indemnity / autp["sum_insured"] if indemnity is not None and autp["sum_insured"] else None

    cards = [
        _card("Farmers insured", total["farmers"], "int", "farmers"),
        _card("Policies settled, all covers", total["policies"], "int", "policies",
              f"{total['policies_paid']:,} paid · {total['policies_withheld']:,} withheld for missing data"
              + (f" · {total['policies_referred']:,} referred to a person" if total["policies_referred"] else "")),
        _card("Sum insured, all covers", total["sum_insured"], "money", "sum_insured", unit="Rp"),
        _card("Net payout, all covers", total["net_payout"], "money", "net_payout",
              f"{_fmt(total['payout_share'], 'pct')} of sum insured · gross Rp {total['gross_payout']:,}, "
              f"deductibles Rp {total['deductible']:,}", unit="Rp"),
    ]
    if autp is not None:
        cards.append(_card(f"Indemnity, named-peril cover ({adj})", autp["net_payout"], "money", f"{adj}.indemnity",
                           f"{_fmt(autp['payout_share'], 'pct')} of its sum insured", unit="Rp"))
        if autp["premium"] is not None and not _isnan(autp["premium"]):
            cards.append(_card(f"Premium, named-peril cover ({adj})", autp["premium"], "money", f"{adj}.premium",
                               f"subsidy Rp {_fmt(autp['subsidy'], 'money')} · farmer share Rp "
                               f"{_fmt(autp['farmer_share'], 'money')}", unit="Rp"))
    cover = [Col("product_id", "product"), Col("trigger", "trigger"), Col("policies", "policies", "int"),
             Col("farmers", "farmers", "int"), Col("area_ha", "area [ha]", "area"),
             Col("sum_insured", "sum insured [Rp]", "money"), Col("premium", "premium [Rp]", "money"),
             Col("subsidy", "subsidy [Rp]", "money"), Col("farmer_share", "farmer share [Rp]", "money")]
    paid = [Col("product_id", "product"), Col("gross_payout", "gross [Rp]", "money"),
            Col("deductible", "deductible [Rp]", "money"), Col("net_payout", "net payout [Rp]", "money"),
            Col("payout_share", "net / sum insured", "pct"), Col("policies_paid", "policies paid", "int"),
            Col("policies_withheld", "withheld", "int"), Col("policies_referred", "referred", "int"),
            Col("districts_triggered", "districts paid", "int")]
    key = lambda r, c: f"{r['product_id'] if r['product_id'] != 'all covers' else 'total'}.{c.key}"  # noqa: E731
    totals = [total]
    tab = ("<h3>Cover</h3>" + _table(
        table, cover, limit=None, data_key=key, totals=totals,
        caption="Per product, summed from the ledger (payouts.parquet). Premiums where the run prices them (an "
                "index term sheet's premium rate, the named-peril wording — AUTP: 80 % government subsidy, 20 % "
                "farmer share), summed from premiums.csv; the total is over the covers priced.")
           + "<h3>Payouts</h3>" + _table(
        table, paid, limit=None, data_key=key, totals=totals,
        caption="Gross = rate × sum insured, rounded to the rupiah; net = after the policy terms (deductible, "
                "limit, share). A named-peril cover's gross is the indemnity of the plots the adjuster paid "
                "(autp_claims.csv); every cover settles through the same ledger."))
    note = (f"<p>Every figure is a sum of ledger rows, to the rupiah. {_esc(adj)} is the conventional named-peril "
            "cover the index products are compared with.</p>" if autp is not None else
            "<p>Every figure is a sum of ledger rows, to the rupiah.</p>")
    return _Section("headline", "Headline figures", f'<div class="cards">{"".join(cards)}</div>{tab}{note}')


def _district_table(o: RunOutputs, rates: pd.DataFrame) -> _Section | None:
    s = o.summary
    if s is None:
        return None
    d = s[s["level"] == "district"].merge(rates[["product_id", "district_id", "payout_rate"]],
                                          on=["product_id", "district_id"], how="left")
    d = d.sort_values(["net_payout", "product_id", "district_id"], ascending=[False, True, True])
    names = _district_names(o)
    if names:
        d["name"] = d["district_id"].map(names)
    cols = [Col("product_id", "product"), Col("district_id", "district"), Col("name", "name"),
            Col("policies", "policies", "int"), Col("withheld", "withheld", "int"),
            Col("sum_insured", "sum insured [Rp]", "money"), Col("payout_rate", "payout rate", "rate"),
            Col("net_payout", "net payout [Rp]", "money"), Col("autp_indemnity", "AUTP indemnity [Rp]", "money")]
    paid = int((d["net_payout"] > 0).sum())
    body = (f"<p>{len(d):,} district × product rows, {paid:,} with a payout; largest net payout first. "
            "Payout rate: sum-insured-weighted over the district's assessed policies. Gross payouts and "
            "deductibles per district are in summary.csv.</p>"
            + _table(d, cols, csv_name="summary.csv", what="district rows"))
    return _Section("districts", "Districts", body)


def _basis_section(o: RunOutputs) -> _Section | None:
    s = o.summary
    parts = []
    fig = _comparison_figure(o)
    if fig:
        parts.append(fig)
    if s is not None and "hits" in s.columns:
        prod = s[s["level"] == "product"]
        cols = [Col("product_id", "product"), Col("farmers", "farmers", "int"), Col("hits", "hits", "int"),
                Col("misses", "misses", "int"), Col("false_alarms", "false alarms", "int"),
                Col("correct_negatives", "correct negatives", "int"), Col("pod", "POD", "rate"),
                Col("far", "FAR", "rate"), Col("threat_score", "threat score", "rate"),
                Col("unpaid_loss_share", "unpaid loss share", "pct"),
                Col("unpaid_loss_amount", "unpaid loss [Rp]", "money"), Col("payout_balance", "payout balance", "rate"),
                Col("spearman", "Spearman ρ", "rate"), Col("autp_indemnity", "AUTP indemnity [Rp]", "money")]
        parts.append("<h3>Basis risk per product</h3>" + _table(
            prod, cols, limit=None, caption="Farmer level, the AUTP adjuster's decision taken as the loss: hit = both "
            "paid; miss = AUTP paid, the index did not; false alarm = the index paid, AUTP did not. POD = hits / "
            "(hits + misses); FAR = false alarms / (hits + false alarms); payout balance = index payout / AUTP "
            "indemnity; Spearman ρ between farmers' index payout and AUTP indemnity."))
    c = o.claims
    if c is not None and len(c):
        area_col = "insured_area_ha" if "insured_area_ha" in c.columns else "plot_area_ha"
        c = c.assign(area=c[area_col] if area_col in c.columns else np.nan)
        g = c.groupby(["decision", "reason"], sort=True).agg(
            plots=("decision", "size"), area=("area", "sum"), indemnity=("indemnity", "sum")).reset_index()
        g = g.sort_values(["decision", "plots"], ascending=[False, False])
        parts.append("<h3>AUTP claim decisions</h3>" + _table(
            g, [Col("decision", "decision"), Col("reason", "reason"), Col("plots", "plots", "int"),
                Col("area", "insured area [ha]", "area"), Col("indemnity", "indemnity [Rp]", "money")],
            csv_name="autp_claims.csv", caption="Every assessed plot has one decision and a reason code. Referred: "
            "the peril name matches nothing in the wording; not paid, not declined, for a person to resolve."))
    if not parts:
        return None
    return _Section("basis", "Index against AUTP (basis risk)", "".join(parts))


def _province_section(o: RunOutputs) -> _Section | None:
    if o.summary is None:
        return None
    g = province_rollup(o.summary, o.districts)
    if g is None:
        return _Section("provinces", "Provinces", "<p>No province roll-up: the districts layer has no "
                        "<code>province_id</code> column and the district ids are not BPS codes.</p>")
    source = ("the districts layer's <code>province_id</code>" if o.districts is not None
              and "province_id" in o.districts.columns else "the first two digits of the BPS district code")
    cols = [Col("province_id", "province"), Col("product_id", "product"), Col("districts", "districts", "int"),
            Col("districts_paid", "districts paid", "int"), Col("policies", "policies", "int"),
            Col("withheld", "withheld", "int"), Col("sum_insured", "sum insured [Rp]", "money"),
            Col("gross_payout", "gross [Rp]", "money"), Col("net_payout", "net payout [Rp]", "money"),
            Col("payout_share", "net / sum insured", "pct")]
    body = (f"<p>summary.csv's district rows summed per province (province = {source}); "
            f"{g['province_id'].nunique()} provinces.</p>" + _table(g, cols, what="province rows"))
    return _Section("provinces", "Provinces", body)


def _quality_section(o: RunOutputs) -> _Section:
    parts = []
    dq = o.manifest.get("data_quality") or {}
    rows = [{"input": name, "valid_range": f"{q['valid_range'][0]:g} .. {q['valid_range'][1]:g}",
             "implausible_values": q.get("implausible_values", 0), "time_steps_affected": q.get("time_steps_affected", 0),
             "when": f"{q['first']} .. {q['last']}" if q.get("first") else ""}
            for name, q in sorted(dq.items()) if q.get("valid_range") is not None]
    if rows:
        bad = sum(r["implausible_values"] for r in rows)
        parts.append("<h3>Physically impossible values</h3><p>" + (
            f"{bad:,} gridded value(s) lay outside the physically possible range of their input (a fill value the "
            "file did not declare, a negative rain, an NDVI beyond ±1): each was treated as missing, never as "
            "data, and the districts' valid fractions fell accordingly." if bad else
            "Every value of the gridded inputs lay inside its physically possible range.") + "</p>"
            + _table(pd.DataFrame(rows), [Col("input", "input"), Col("valid_range", "valid range"),
                                          Col("implausible_values", "values treated as missing", "int"),
                                          Col("time_steps_affected", "time steps affected", "int"),
                                          Col("when", "first .. last")], what="inputs"))
    di = o.district_index
    if di is not None and len(di):
        flag = di["flagged"].astype(str).str.lower().isin(["true", "1"])
        f = di[flag]
        if len(f):
            withheld = pd.DataFrame(columns=["product_id", "district_id", "withheld_policies", "withheld_sum_insured"])
            if o.payouts is not None:
                w = o.payouts[o.payouts["status"] == WITHHELD]
                withheld = w.groupby(["product_id", "district_id"]).agg(
                    withheld_policies=("status", "size"), withheld_sum_insured=("sum_insured", "sum")).reset_index()
            total_cohorts = di.groupby(["product_id", "district_id"])["cohort"].nunique().rename("cohorts")
            g = f.groupby(["product_id", "district_id"]).agg(
                cohorts_flagged=("cohort", "nunique"), phases=("phase", lambda s: ", ".join(sorted(set(map(str, s))))),
                min_valid_fraction=("valid_fraction", "min")).reset_index()
            g = g.merge(total_cohorts.reset_index(), on=["product_id", "district_id"], how="left")
            g = g.merge(withheld, on=["product_id", "district_id"], how="left")
            g[["withheld_policies", "withheld_sum_insured"]] = g[["withheld_policies", "withheld_sum_insured"]].fillna(0)
            g = g.sort_values(["withheld_policies", "cohorts_flagged"], ascending=False)
            parts.append(
                f"<h3>Districts flagged for missing data</h3><p>{len(g)} district × product pairs had a phase window "
                "without enough valid data: no index, so their policies are withheld (listed, not paid, not "
                "rejected). Minimum valid fraction: the smallest share of the district's area with data over the "
                "flagged windows.</p>"
                + _table(g, [Col("product_id", "product"), Col("district_id", "district"),
                             Col("cohorts_flagged", "cohorts flagged", "int"), Col("cohorts", "of cohorts", "int"),
                             Col("phases", "phases"), Col("min_valid_fraction", "min valid fraction", "rate"),
                             Col("withheld_policies", "policies withheld", "int"),
                             Col("withheld_sum_insured", "sum insured withheld [Rp]", "money")],
                         csv_name="district_index.csv", what="flagged districts"))
        else:
            parts.append('<div class="ok-box">No district was flagged for missing data.</div>')
    r = o.rejects
    if r is not None and len(r):
        r = r.copy()
        if "source" not in r.columns:
            r["source"] = "policies"
        rows = []
        for (src, reason), d in r.groupby(["source", "reason"], sort=True, dropna=False):
            ex = []
            for e in d.head(3).to_dict(orient="records"):
                where = [f"row {e.get('row')}"] + ([f"column {e['column']}"] if not _isnan(e.get("column")) else [])
                ident = "" if _isnan(e.get("policy_id")) else f" ({e['policy_id']})"
                ex.append(f"{', '.join(where)}{ident}: {e.get('message', '')}")
            rows.append({"source": src, "reason": reason, "rows": len(d), "examples": " · ".join(ex)})
        g = pd.DataFrame(rows).sort_values("rows", ascending=False)
        parts.append(f"<h3>Rejected rows</h3><p>{len(r):,} input rows could not be processed; each is in "
                     "rejects.csv with its file, row, column and reason.</p>"
                     + _table(g, [Col("source", "source"), Col("reason", "reason"), Col("rows", "rows", "int"),
                                  Col("examples", "examples (first 3)")], csv_name="rejects.csv", what="reasons"))
    elif r is not None:
        parts.append('<div class="ok-box">No input row was rejected.</div>')
    counts = o.manifest.get("counts") or {}
    if counts:
        ctab = pd.DataFrame([{"count": k.replace("_", " "), "value": v} for k, v in counts.items()])
        parts.append("<h3>Row counts</h3>" + _table(ctab, [Col("count", "what"), Col("value", "rows", "int")],
                                                     limit=None, narrow=True))
    return _Section("quality", "Data quality", "".join(parts))


def _backtest_section(o: RunOutputs) -> _Section | None:
    if o.backtest is None or not len(o.backtest):
        return None
    parts = _backtest_figures(o)
    if o.portfolio is not None and len(o.portfolio):
        port = o.portfolio
        rows = []
        for pid, d in port.groupby("product_id", sort=True):
            rows.append({"product_id": pid, "seasons": len(d), "seasons_paid": int((d["payout"] > 0).sum()),
                         "mean_rate": d["payout_rate"].mean(), "max_rate": d["payout_rate"].max(),
                         "mean_payout": d["payout"].mean(), "basis": ", ".join(sorted(set(map(str, d["exposure_basis"]))))})
        parts.append("<h3>Portfolio by product</h3>" + _table(
            pd.DataFrame(rows), [Col("product_id", "product"), Col("seasons", "seasons", "int"),
                                 Col("seasons_paid", "seasons paid", "int"), Col("mean_rate", "mean payout rate", "pct"),
                                 Col("max_rate", "max payout rate", "pct"), Col("mean_payout", "mean payout", "float"),
                                 Col("basis", "exposure basis")], csv_name="portfolio.csv"))
    return _Section("backtest", "Backtest", "".join(parts))


# =========================================================================== backtest analysis
def _safe_name(text: str) -> str:
    """The file-name form of a product id used by ``panen backtest`` for its plots."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "product"


def _file_links(o: RunOutputs, names: Iterable[str]) -> str:
    """A line linking the CSV files behind a section (those present in the folder)."""
    have = [n for n in names if (o.out_dir / n).is_file()]
    if not have:
        return ""
    return ('<p class="more">Full tables: ' + ", ".join(f'<a href="{_esc(n)}">{_esc(n)}</a>' for n in have)
            + ".</p>")


def _plot_html(o: RunOutputs, name: str, alt: str, caption: str) -> str:
    """A PNG the backtest wrote under ``plots/``, embedded as a data URI ("" if absent)."""
    path = o.out_dir / "plots" / name
    if not path.is_file():
        return ""
    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return _figure_html(uri, alt, caption)


def _pricing_maps(o: RunOutputs, frame: _MapFrame) -> list[str]:
    """Per product, burn cost and gross premium rate per district, side by side on one scale."""
    _, colormaps, colors = _mpl()
    pr = o.pricing
    out = []
    for pid in sorted(set(pr["product_id"].dropna()), key=lambda p: (p not in o.product_ids, str(p))):
        d = pr[pr["product_id"] == pid].set_index("district_id")
        burn = pd.to_numeric(d.get("burn_cost"), errors="coerce") if "burn_cost" in d else None
        gross = pd.to_numeric(d.get("gross_premium_rate"), errors="coerce") if "gross_premium_rate" in d else None
        panels = [(f"{pid}: {t}", v) for t, v in (("burn cost", burn), ("gross premium rate", gross)) if v is not None]
        if not panels:
            continue
        top = max(float(np.nan_to_num(v.max(), nan=0.0)) for _, v in panels)
        norm = colors.Normalize(0, max(0.05, math.ceil(top * 20) / 20))
        fig = _map_figure(frame, panels, cmap=colormaps["YlOrRd"], norm=norm,
                          cbar_label="rate [fraction of sum insured per season]")
        n = int(burn.notna().sum()) if burn is not None else 0
        out.append(_figure_html(_png(fig), f"burn-cost map and gross-premium-rate map per district, product {pid}",
                                f"<b>{_esc(pid)}</b> — burn cost (mean season payout rate over the backtest, "
                                f"flagged seasons left out) and gross premium rate (with loadings) per district, "
                                f"on one colour scale; {n} districts priced. White: not priced.", cls="map"))
    return out


def _pricing_section(o: RunOutputs, frame: _MapFrame | None) -> _Section | None:
    if o.pricing is None and o.tail is None:
        return None
    parts = []
    if o.pricing is not None and len(o.pricing):
        if frame is not None:
            parts.extend(_pricing_maps(o, frame))
        else:
            parts.append('<div class="note-box">No pricing maps: the district layer could not be read.</div>')
        pr = o.pricing.sort_values(["product_id", "burn_cost", "district_id"], ascending=[True, False, True])
        for c in ("premium", "subsidy", "farmer_share", "exposure"):
            if c in pr.columns:
                pr[c] = pd.to_numeric(pr[c], errors="coerce").round()
        names = _district_names(o)
        if names:
            pr = pr.assign(name=pr["district_id"].map(names))
        basis = ", ".join(sorted(set(map(str, pr["exposure_basis"].dropna())))) if "exposure_basis" in pr else ""
        cols = [Col("product_id", "product"), Col("district_id", "district"), Col("name", "name"),
                Col("seasons", "seasons", "int"), Col("burn_cost", "burn cost", "pct"),
                Col("standard_error", "standard error", "pct"), Col("frequency", "payout frequency", "pct"),
                Col("gross_premium_rate", "gross premium rate", "pct"), Col("credibility_z", "credibility Z", "rate"),
                Col("credibility_rate", "credibility rate", "pct"), Col("exposure", "exposure [Rp]", "money"),
                Col("premium", "premium [Rp]", "money"), Col("subsidy", "subsidy [Rp]", "money"),
                Col("farmer_share", "farmer share [Rp]", "money")]
        if "tariff_flag" in pr.columns:  # the rate the premium is on, after the tariff band (OJK floor/ceiling)
            pr["tariff_flag"] = pr["tariff_flag"].fillna("")
            cols[8:8] = [Col("premium_rate", "premium rate (tariff band)", "pct"), Col("tariff_flag", "tariff")]
        parts.append("<h3>Premium per district</h3>" + _table(
            pr, cols, csv_name="pricing.csv", what="district rows",
            caption=f"Per product × district, highest burn cost first; exposure basis: {_esc(basis or '—')}. "
            "Credibility rate: the Bühlmann–Straub blend of the district's burn cost and the product's, weight Z."))
    if o.tail is not None and len(o.tail):
        t = o.tail.copy()
        money = ["sum_insured", "mean_payout", "max_payout", "payout_1in5", "payout_1in10", "payout_1in20", "pml"]
        for c in money:
            if c in t.columns:
                t[c] = pd.to_numeric(t[c], errors="coerce").round()
        if "pml_return_period" in t.columns:
            t["pml_label"] = [f"PML (1 in {int(r)}) [Rp]" if not _isnan(r) else "" for r in t["pml_return_period"]]
        cols = [Col("product_id", "product"), Col("exposure_basis", "exposure basis"),
                Col("districts", "districts", "int"), Col("sum_insured", "sum insured [Rp]", "money"),
                Col("seasons", "seasons", "int"), Col("seasons_incomplete", "seasons left out", "int"),
                Col("mean_payout", "mean payout [Rp]", "money"), Col("payout_1in5", "1 in 5 [Rp]", "money"),
                Col("payout_1in10", "1 in 10 [Rp]", "money"), Col("payout_1in20", "1 in 20 [Rp]", "money"),
                Col("pml", "PML [Rp]", "money"), Col("pml_rate", "PML / sum insured", "pct"),
                Col("max_payout", "largest payout [Rp]", "money"), Col("max_season", "in season")]
        rp = sorted({int(r) for r in t.get("pml_return_period", pd.Series(dtype=float)).dropna()})
        parts.append("<h3>Portfolio tail</h3>" + _table(
            t, cols, limit=None, csv_name="tail.csv",
            data_key=lambda row, c: f"tail.{row['product_id']}.{c.key}",
            caption="Empirical 1-in-N year portfolio payout per product over the complete seasons (a season with a "
            "flagged district is left out); PML: probable maximum loss"
            + (f" at 1 in {', '.join(map(str, rp))} years" if rp else "")
            + ". — : too few seasons for that return period."))
    if not parts:
        return None
    parts.append(_file_links(o, ("pricing.csv", "tail.csv")))
    return _Section("pricing", "Pricing and tail risk", "".join(parts))


def _basis_risk_section(o: RunOutputs) -> _Section | None:
    b = o.basis_risk
    if b is None or not len(b):
        return None
    scope = b["scope"].astype(str) if "scope" in b.columns else pd.Series("product", index=b.index)
    cols = [Col("product_id", "product"), Col("district_id", "district"), Col("seasons", "seasons", "int"),
            Col("hits", "hits", "int"), Col("misses", "misses", "int"), Col("false_alarms", "false alarms", "int"),
            Col("correct_negatives", "correct negatives", "int"), Col("pod", "POD", "rate"),
            Col("far", "FAR", "rate"), Col("threat_score", "threat score", "rate"),
            Col("unpaid_loss_share", "unpaid loss share", "pct"), Col("payout_balance", "payout balance", "rate"),
            Col("spearman", "Spearman ρ", "rate"), Col("hedging_effectiveness", "hedging effectiveness", "rate")]
    parts = ["<p>The index against the realised loss (loss_reference.csv), per district and season: hit = loss and "
             "payout; miss = loss, no payout; false alarm = payout, no loss. POD = hits / (hits + misses); FAR = "
             "false alarms / (hits + false alarms); hedging effectiveness: the reduction in the variance of the "
             "farmer's net loss the cover buys at its premium (bootstrap intervals in basis_risk.csv).</p>"]
    prod = b[scope == "product"]
    if len(prod):
        parts.append("<h3>Per product</h3>" + _table(prod, [c for c in cols if c.key != "district_id"], limit=None))
    dist = b[scope == "district"]
    if len(dist):
        dist = dist.sort_values(["product_id", "misses", "district_id"], ascending=[True, False, True])
        parts.append(f"<h3>Per district</h3><p>{len(dist):,} product × district rows, most missed loss years "
                     "first.</p>" + _table(dist, cols, csv_name="basis_risk.csv", what="district rows"))
    for pid in o.product_ids or sorted(set(b["product_id"].dropna())):
        parts.append(_plot_html(o, f"loss_vs_payout_{_safe_name(pid)}.png", f"loss against payout, product {pid}",
                                f"<b>{_esc(pid)}</b> — realised loss against index payout per district and season "
                                "(plots/loss_vs_payout_" + _esc(_safe_name(pid)) + ".png)."))
    parts.append(_file_links(o, ("basis_risk.csv", "loss_reference.csv")))
    return _Section("basisrisk", "Basis risk against the loss reference", "".join(parts))


def _design_section(o: RunOutputs) -> _Section | None:
    ch = o.design_chosen
    if ch is None and o.design_frontier is None:
        return None
    parts = ["<p>The strike/exit search on the redesignable products, through each product's own trigger "
             "curves: every candidate design priced on the "
             "backtest; the trade-off curve plots premium against protection, the frontier the designs no other "
             "beats on both, the chosen one the best feasible design.</p>"]
    pids = sorted(set((ch if ch is not None else o.design_frontier)["product_id"].dropna()),
                  key=lambda p: (p not in o.product_ids, o.product_ids.index(p) if p in o.product_ids else 0, p))
    ref = ch if ch is not None else o.design_frontier
    terms = [c for c in ref.columns if "." in c]
    cols = ([Col("product_id", "product"), Col("zone", "zone"), Col("candidate", "candidate", "int")]
            + [Col(c, c.replace(".", " "), "float") for c in terms]
            + [Col("burn_cost", "burn cost", "pct"), Col("gross_premium_rate", "gross premium rate", "pct"),
               Col("payout_frequency", "payout frequency", "pct"), Col("pod", "POD", "rate"),
               Col("missed_loss_year_share", "missed loss years", "pct"),
               Col("payout_in_worst_share", "paid in worst seasons", "pct"),
               Col("hedging_effectiveness", "hedging effectiveness", "rate"), Col("feasible", "feasible"),
               Col("reason", "reason")])
    for pid in pids:
        parts.append(f"<h3>{_esc(pid)}</h3>")
        parts.append(_plot_html(o, f"tradeoff_{_safe_name(pid)}.png", f"trade-off curve of the trigger design, "
                                f"product {pid}", f"<b>{_esc(pid)}</b> — trade-off of the trigger design "
                                f"(plots/tradeoff_{_esc(_safe_name(pid))}.png)."))
        if ch is not None and len(ch[ch["product_id"] == pid]):
            parts.append(_table(ch[ch["product_id"] == pid], cols, csv_name="design_chosen.csv",
                                caption=f"Chosen design (term sheet: design_{_esc(_safe_name(pid))}.yaml).",
                                data_key=lambda row, c: f"design.{row['product_id']}.{row.get('zone')}.{c.key}"))
        fr = o.design_frontier
        if fr is not None and len(fr[fr["product_id"] == pid]):
            parts.append(_table(fr[fr["product_id"] == pid], cols, csv_name="design_frontier.csv", caption="Designs on the frontier.",
                                what="designs on the frontier"))
    parts.append(_file_links(o, ("design_chosen.csv", "design_frontier.csv", "design_candidates.csv")))
    return _Section("design", "Trigger design", "".join(parts))


# =========================================================================== in season: projection
#: Districts drawn in a product's projection fan chart (those with the largest expected payout).
FAN_DISTRICTS = 40
_PROJECTION_MONEY = ("expected_payout", "q10", "q50", "q90", "guaranteed", "sum_insured")


def _projection_frame(o: RunOutputs) -> pd.DataFrame:
    """``projection.csv`` with its money as nullable integers and ``projectable`` as a bool."""
    pr = o.projection.copy()
    for c in (*_PROJECTION_MONEY, "years"):
        if c in pr.columns:
            pr[c] = pd.to_numeric(pr[c], errors="coerce").round().astype("Int64")
    pr["projectable"] = pr["projectable"].astype(str).str.lower().isin(["true", "1"])
    pr["reason"] = pr["reason"].fillna("").astype(str) if "reason" in pr.columns else ""
    return pr


def _projection_map(o: RunOutputs, frame: _MapFrame, pr: pd.DataFrame, pids: list[str]) -> str:
    """One figure: expected payout per district, one panel per projected product, on one scale [Rp]."""
    _, colormaps, colors = _mpl()
    top = float(np.nan_to_num(pd.to_numeric(pr["expected_payout"], errors="coerce").max(), nan=0.0)) / 1e6
    norm = colors.Normalize(0, max(0.1, top))
    panels, flagged = [], []
    for pid in pids:
        r = pr[pr["product_id"] == pid]
        panels.append((f"{pid}: expected payout", r.set_index("district_id")["expected_payout"].astype(float) / 1e6))
        flagged.append(set(r.loc[r["expected_payout"].isna(), "district_id"]))
    fig = _map_figure(frame, panels, cmap=colormaps["YlOrRd"], norm=norm, flagged=flagged,
                      flag_label="too few usable analogue years",
                      cbar_label="expected net payout over the analogue years [million Rp]")
    return _figure_html(_png(fig), "maps of the expected payout per district, one per projected product",
                        "Expected net payout per district if one of the analogue years' weather follows the as-of "
                        "date (mean over the usable analogue years), one map per projected product on one colour "
                        "scale. Hatched: too few usable analogue years (no projection); white: no policies.",
                        cls="map")


def _fan_chart(o: RunOutputs, pr: pd.DataFrame, pid: str) -> str | None:
    """Per district of a product: the 10–90 % range of the projected payout, its median, mean and guaranteed floor."""
    Figure, _, _ = _mpl()
    r = pr[(pr["product_id"] == pid) & pr["expected_payout"].notna()]
    nothing = int(((r["q90"] == 0) & (r["guaranteed"] == 0) & (r["expected_payout"] == 0)).sum())
    r = r[(r["q90"] > 0) | (r["guaranteed"] > 0) | (r["expected_payout"] > 0)]
    if not len(r):
        return None
    r = r.sort_values(["expected_payout", "district_id"], ascending=[False, True], key=None)
    shown = r.head(FAN_DISTRICTS).iloc[::-1]
    n = len(shown)
    fig = Figure(figsize=(9.0, 1.0 + 0.28 * n), dpi=100)
    ax = fig.add_axes((0.16, 0.9 / (1.0 + 0.28 * n), 0.8, 1 - 1.3 / (1.0 + 0.28 * n)))
    y = np.arange(n)
    q10, q50, q90 = (shown[c].astype(float).to_numpy() / 1e6 for c in ("q10", "q50", "q90"))
    mean, floor = shown["expected_payout"].astype(float).to_numpy() / 1e6, shown["guaranteed"].astype(float).to_numpy() / 1e6
    ax.barh(y, q90 - q10, left=q10, height=0.6, color="#fdae6b", label="10–90 % of analogue years")
    ax.scatter(q50, y, marker="|", s=160, color="#7f2704", label="median (50 %)", zorder=3)
    ax.scatter(mean, y, marker="D", s=18, color="#08519c", label="expected (mean)", zorder=4)
    ax.scatter(floor, y, marker="^", s=22, color="#238b45", label="guaranteed minimum", zorder=4)
    names = _district_names(o)
    ax.set_yticks(y, [f"{d} {names.get(d, '')}".strip() for d in shown["district_id"]], fontsize=7)
    ax.set_xlabel("projected net payout [million Rp]", fontsize=9)
    ax.set_xlim(left=0)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="0.9", lw=0.6)
    ax.set_title(f"{pid}: projected payout per district", fontsize=10, loc="left")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    note = (f"the {n} of {len(r)} projected districts with a payout in some analogue year with the largest "
            f"expected payout" if len(r) > n else f"the {n} projected districts with a payout in some analogue year")
    if nothing:
        note += f" ({nothing} more pay nothing in any analogue year)"
    return _figure_html(_png(fig), f"fan chart of the projected payout per district, product {pid}",
                        f"<b>{_esc(pid)}</b> — projected net payout per district over the analogue years, {note}: "
                        "bar from the 10 % to the 90 % quantile, tick at the median, diamond at the mean, "
                        "triangle at the guaranteed minimum (no analogue year pays less).")


def _inseason_section(o: RunOutputs, frame: _MapFrame | None) -> _Section | None:
    """The in-season page: expected payout map, guaranteed payouts, a fan chart per district (projection.csv)."""
    if o.projection is None:
        return None
    pr = _projection_frame(o)
    meta = o.manifest.get("projection") or {}
    years = meta.get("years") or []
    span = f"{years[0]}–{years[-1]}" if len(years) == 2 else "?"
    names = _district_names(o)
    if names:
        pr["name"] = pr["district_id"].map(names)
    parts = [f"<p>Data up to <b>{_esc(meta.get('as_of', '?'))}</b>. Every day of an open window after it is filled "
             f"with the weather of each analogue year {_esc(span)} for the same day of the season (as FEWS NET's "
             "extended WRSI completes a season with the historical record), the product is evaluated once per "
             "analogue year by its own trigger and settled through the ledger. p(payout): share of the usable "
             "analogue years with a net payout; expected: their mean; 10/50/90 %: quantiles of the district's "
             "projected net payout; guaranteed: what no later data can lower. Money in rupiah, from "
             "projection.csv.</p>"]
    key = lambda row, c: f"projection.{row['product_id']}.{row['district_id']}.{c.key}"  # noqa: E731
    pids = [p for p in dict.fromkeys(pr["product_id"]) if pr.loc[pr["product_id"] == p, "projectable"].any()]
    for pid in dict.fromkeys(pr["product_id"]):
        if pid not in pids:
            why = pr.loc[pr["product_id"] == pid, "reason"].iloc[0]
            parts.append(f'<div class="note-box">{_esc(pid)}: {_esc(why)}</div>')
    if pids and frame is not None:
        parts.append(_projection_map(o, frame, pr, pids))
    elif pids:
        parts.append('<div class="note-box">No projection map: the district layer could not be read.</div>')
    sure = pr[pr["guaranteed"].fillna(0) > 0].sort_values(["guaranteed", "product_id", "district_id"],
                                                            ascending=[False, True, True])
    cols = [Col("product_id", "product"), Col("district_id", "district"), Col("name", "name"),
            Col("guaranteed", "guaranteed [Rp]", "money"), Col("expected_payout", "expected [Rp]", "money"),
            Col("p_payout", "p(payout)", "pct")]
    parts.append(f"<h3>Districts with a guaranteed payout</h3><p>{len(sure):,} district × product rows: a payout no "
                 "later data can lower.</p>" + (_table(sure, cols, csv_name="projection.csv", what="district rows")
                                                if len(sure) else ""))
    for pid in pids:
        fan = _fan_chart(o, pr, pid)
        if fan is not None:
            parts.append(fan)
    rows = pr[pr["projectable"]].sort_values(["product_id", "expected_payout", "district_id"],
                                             ascending=[True, False, True], na_position="last")
    cols = [Col("product_id", "product"), Col("district_id", "district"), Col("name", "name"),
            Col("years", "analogue years", "int"), Col("p_payout", "p(payout)", "pct"),
            Col("expected_rate", "expected rate", "pct"), Col("expected_payout", "expected [Rp]", "money"),
            Col("q10", "10 % [Rp]", "money"), Col("q50", "50 % [Rp]", "money"), Col("q90", "90 % [Rp]", "money"),
            Col("guaranteed", "guaranteed [Rp]", "money"), Col("reason", "note")]
    if len(rows):
        parts.append("<h3>Projection per district</h3>" + _table(rows, cols, csv_name="projection.csv",
                                                                  data_key=key, what="district rows"))
    parts.append(_file_links(o, ("projection.csv",)))
    return _Section("inseason", "In season: projection", "".join(parts))


# =========================================================================== entry points
def write_report(out_dir: str | os.PathLike[str], *, outputs: RunOutputs | None = None) -> Path:
    """Build ``report.html`` in a finished run's output folder, from its outputs only.

    Parameters
    ----------
    out_dir
        The output folder of ``panen run`` (or ``panen backtest``).
    outputs
        Already-read outputs (:func:`read_outputs`), to share one read with :func:`write_gpkg`.

    Returns
    -------
    pathlib.Path
        The written ``report.html`` (written to a temp file, then renamed into place).

    Raises
    ------
    InputError
        ``out_dir`` is not a panen output folder.
    """
    o = outputs or read_outputs(out_dir)
    out_dir = Path(out_dir)
    header, title = _header(o)
    sections: list[_Section] = []
    rates = o.derived("rates", lambda: district_rates(o.payouts)) if o.payouts is not None else None
    if o.payouts is not None:
        sections.append(_headline(o))
    frame = _map_frame(o.districts) if o.districts is not None else None
    if rates is not None and frame is not None:
        sections.append(_Section("maps", "Payout maps", "".join(_rate_maps(o, frame, rates))))
    if o.district_index is not None and len(o.district_index):
        means = o.derived("means", lambda: district_index_means(o.district_index, o.payouts,
                                                                weights=o.derived("cohort_weights",
                                                                                  lambda: _cohort_weights(o.payouts))))
        if frame is not None:
            sections.append(_Section(
                "index", "Index against the strike",
                "<p>Each product's index per district, measured against its term sheet: how far the season "
                "went towards (or past) the strike.</p>" + "".join(_anomaly_maps(o, frame, means))))
        sections.append(_Section("phases", "Index through the season", "".join(_phase_charts(o))))
    inseason = _inseason_section(o, frame)
    if inseason is not None:
        sections.append(inseason)
    if o.payouts is not None:
        for sec in (_basis_section(o), _district_table(o, rates), _province_section(o)):
            if sec is not None:
                sections.append(sec)
    sections.append(_quality_section(o))
    bt = _backtest_section(o)
    if bt is not None:
        sections.append(bt)
    for sec in (_pricing_section(o, frame), _basis_risk_section(o), _design_section(o)):
        if sec is not None:
            sections.append(sec)
    files = {f.name for f in out_dir.iterdir() if f.is_file() and not f.name.startswith(".")} | {"report.html"}
    if o.districts is not None and o.payouts is not None:
        files.add("districts.gpkg")
    files = sorted(files)
    sections.append(_Section("files", "Files in this folder",
                             "<ul>" + "".join(f'<li><a href="{_esc(f)}">{_esc(f)}</a></li>' for f in files) + "</ul>"))

    toc = '<nav class="toc"><b>Contents</b><ol>' + "".join(
        f'<li><a href="#{s.id}">{_esc(s.title)}</a></li>' for s in sections) + "</ol></nav>"
    body = header + toc + "".join(f'<section id="{s.id}"><h2>{_esc(s.title)}</h2>{s.body}</section>' for s in sections)
    page = _PAGE.substitute(title=_esc(title), css=_CSS, body=body, version=_esc(o.manifest.get("panen_version")),
                            run_id=_esc(o.manifest.get("run_id")))
    return _write_atomic(out_dir / "report.html", page.encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _field(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower() or "x"


def write_gpkg(out_dir: str | os.PathLike[str], *, outputs: RunOutputs | None = None) -> Path | None:
    """Write ``districts.gpkg``: one layer per index product, district polygons with results.

    Each layer keeps the district layer's own attribute columns and CRS and adds, per
    district: ``policies, withheld, area_ha, sum_insured, gross_payout, deductible,
    net_payout`` [Rp] and the basis-risk metrics from ``summary.csv`` (0 / empty where the
    district has no policies); ``payout_rate`` (sum-insured-weighted over assessed policies,
    see the module docstring); ``payout_share`` (net payout / sum insured); per phase
    ``index_<phase>`` (district index) and, where the term sheet states a strike,
    ``strike_distance_<phase>``; ``cohorts``, ``cohorts_flagged`` and ``flagged`` (a
    cohort had no index for missing data).

    Returns
    -------
    pathlib.Path or None
        The written file, or ``None`` when the run has no ledger or no readable district
        layer (nothing to map).
    """
    o = outputs or read_outputs(out_dir)
    out_dir = Path(out_dir)
    if o.payouts is None or o.districts is None:
        return None
    base = o.districts
    rates = o.derived("rates", lambda: district_rates(o.payouts))
    means = o.derived("means", lambda: district_index_means(
        o.district_index, o.payouts, weights=o.derived("cohort_weights", lambda: _cohort_weights(o.payouts)))) \
        if o.district_index is not None else None
    s = o.summary
    tmp = out_dir / f".districts.tmp-{os.getpid()}.gpkg"
    tmp.unlink(missing_ok=True)
    try:
        for pid in o.product_ids:
            g = base.copy()
            g.columns = [c if c == base.geometry.name else str(c) for c in g.columns]
            add = pd.DataFrame({"district_id": g["district_id"].astype(str)})
            if s is not None:
                sd = s[(s["level"] == "district") & (s["product_id"] == pid)].drop(columns=["level", "product_id"])
                add = add.merge(sd, on="district_id", how="left")
            r = rates[rates["product_id"] == pid][["district_id", "payout_rate"]]
            add = add.merge(r, on="district_id", how="left")
            if "sum_insured" in add.columns:
                add["payout_share"] = add["net_payout"] / add["sum_insured"].where(add["sum_insured"] > 0)
            for c in ("policies", "withheld") + _MONEY:
                if c in add.columns:
                    add[c] = add[c].fillna(0).astype("int64")
            if means is not None:
                m = means[means["product_id"] == pid]
                th = phase_thresholds(o.product(pid))
                for ph in _phase_order(o, pid, m["phase"].unique()):
                    mm = m[m["phase"] == ph].set_index("district_id")["index_value"]
                    add[f"index_{_field(ph)}"] = add["district_id"].map(mm).astype(float)
                    if ph in th:
                        st, ex = th[ph]
                        add[f"strike_distance_{_field(ph)}"] = (add[f"index_{_field(ph)}"] - st) / (st - ex)
                cf = m.groupby("district_id").agg(cohorts=("cohorts", "max"), cohorts_flagged=("cohorts_flagged", "max"))
                add["cohorts"] = add["district_id"].map(cf["cohorts"]).fillna(0).astype("int64")
                add["cohorts_flagged"] = add["district_id"].map(cf["cohorts_flagged"]).fillna(0).astype("int64")
                add["flagged"] = add["cohorts_flagged"] > 0
            add = add.drop(columns="district_id")
            clash = [c for c in add.columns if c in g.columns]
            g = g.drop(columns=clash)
            for c in add.columns:
                g[c] = add[c].to_numpy()
            with fixed_gpkg_date():  # byte-identical on rebuild
                g.to_file(tmp, layer=str(pid), driver="GPKG", engine="pyogrio")
        dest = out_dir / "districts.gpkg"
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def write_reports(out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Rebuild ``report.html`` and ``districts.gpkg`` from a finished run's outputs (one read).

    Returns ``{"report": path, "gpkg": path}`` (``gpkg`` absent when there is nothing to map).
    """
    o = read_outputs(out_dir)
    paths = {"report": write_report(out_dir, outputs=o)}
    gp = write_gpkg(out_dir, outputs=o)
    if gp is not None:
        paths["gpkg"] = gp
    return paths
