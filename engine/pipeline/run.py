"""The seasonal payout batch: one orchestrator that only wires (after pvlib's ModelChain).

Steps, in order, each a plain function of data in → data out elsewhere in the package:

1. read the district polygons and the policy register; move bad rows to rejects;
2. open every gridded input a product needs (lazy) and build the zonal weights once;
3. reduce the grid to district series (:func:`panen.engine.maths.zonal.zonal_mean`, dask);
4. evaluate each product's trigger plugin per district and cohort (lazy) and compute;
5. gather district rates into the per-policy ledger, apply terms, round to rupiah;
6. write every output into a staging folder and move it into place in one rename.

No maths lives here, and no product is special-cased: plugins are looked up by name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from panen.engine import __version__
from panen.engine.api import Season, TriggerInputs
from panen.engine.config import RunConfig
from panen.engine.errors import DataQualityError, InputError, Problem
from panen.engine.infra.keys import is_in
from panen.engine.infra.atomic import write_table_atomic
from panen.engine.infra.manifest import hash_input, package_versions, sha256_file
from panen.engine.settlement.ledger import build_ledger, district_totals, payments, reconcile
from panen.datasets.policies import read_policies
from panen.engine.settlement.policies import ProductRules, validate_policies
from panen.engine.settlement.rates import RateTable
from panen.engine.registry import get_trigger
from panen.engine.infra.staging import discard, new_stage, publish
from panen.engine.maths.zonal import build_weights, zonal_mean

__all__ = ["RunResult", "run_batch"]


@dataclass
class RunResult:
    """What a batch produced (also written to ``manifest.json``)."""

    out_dir: Path
    run_id: str
    counts: dict[str, int]
    totals: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    products: pd.DataFrame | None = None
    basis_risk: pd.DataFrame | None = None


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 3)


def run_batch(config: RunConfig, out_dir: str | Path, *, force: bool = False, strict: bool = False,
              scheduler: str | None = None, progress: bool = False) -> RunResult:
    """Settle one season for every policy and product in ``config``; write the outputs.

    Parameters
    ----------
    config
        A validated run configuration (:func:`panen.engine.config.load_config`).
    out_dir
        Output folder. It must not exist unless ``force``; outputs are staged in a sibling
        folder and moved into place at the end, so a failed run leaves nothing half-written.
    force
        Replace an existing output folder.
    strict
        Fail (``InputError``, exit code 2) when any policy row is rejected, writing nothing.
    scheduler
        Address of an existing Dask distributed scheduler (``tcp://host:port``); ``None``
        uses the local threaded scheduler.
    progress
        Show progress bars for the long steps (on stderr).
    """
    from panen.datasets.districts import read_districts

    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not force:
        raise InputError(Problem(f"output folder {out_dir} already exists; pass --force to replace it"))
    t = _Timer()
    t_start = time.perf_counter()
    season = Season(config.season.id, np.datetime64(config.season.start, "D"),
                    np.datetime64(config.season.end, "D"), config.season.harvest_year)
    plugins = {p.id: get_trigger(p.trigger) for p in config.products}

    with t("read_inputs"):
        districts = None
        if config.inputs.districts is not None:
            districts = read_districts(config.inputs.districts.path, id_column=config.inputs.districts.id_column,
                                       layer=config.inputs.districts.layer)
        register = read_policies(config.inputs.policies.path)
        grids: dict[str, xr.DataArray] = {}
        ready_series: dict[str, xr.Dataset] = {}
        tables: dict[str, pd.DataFrame] = {}
        for name in sorted({n for pl in plugins.values() for n in pl.inputs}):
            kind, obj = _open_input(name, getattr(config.inputs, name))
            {"grid": grids, "series": ready_series, "table": tables}[kind][name] = obj
    district_ids = np.asarray(districts["district_id"].astype(str)) if districts is not None else np.array([], str)

    # which sowing dates each product can assess, from the season and the data's time range
    rules = {p.id: ProductRules(sum_insured_per_ha=p.sum_insured_per_ha, anchor=p.anchor,
                                sowing_window=_sowing_window(p, plugins[p.id], season, grids))
             for p in config.products}
    wording = config.adjuster
    if wording is not None:  # the named-peril cover's policies are in the same register
        rules[wording.id] = ProductRules(sum_insured_per_ha=int(wording.sum_insured_per_ha), anchor="season_start")
    with t("validate_policies"):
        valid, rejects = validate_policies(register, district_ids=set(district_ids), products=rules)
        claims_policies = None
        if wording is not None:
            is_cover = (valid["product_id"].astype(str) == wording.id).to_numpy()
            claims_policies, valid = valid[is_cover], valid[~is_cover]
            rules.pop(wording.id)
    claims, assessment_rejects = None, None
    if wording is not None:
        with t("adjuster"):
            from panen.datasets.assessments import read_assessments

            from panen.engine.perils.adjuster import adjust

            frame, assessment_rejects = read_assessments(config.inputs.assessments.path, wording=wording)
            claims = adjust(frame, wording, season_start=config.season.start, season_end=config.season.end,
                            policies=claims_policies)
        if len(assessment_rejects):
            rejects = pd.concat([rejects.assign(source="policies"),
                                 assessment_rejects.assign(source="assessments")], ignore_index=True)
    if strict and len(rejects):
        raise InputError([Problem(f"{r.reason}: {r.message}", file=r.file, row=int(r.row),
                                  column=None if pd.isna(r.column) else r.column)
                          for r in rejects.head(50).itertuples()]
                         + ([Problem(f"... and {len(rejects) - 50} more rejected rows")] if len(rejects) > 50 else []))

    client = _client(scheduler)
    try:
        with t("zonal_weights"):
            series: dict[str, xr.Dataset] = dict(ready_series)
            for name, grid in grids.items():
                window = _needed_time(config, plugins, valid, season, name)
                grid = grid.sel(time=slice(*window)) if window else grid
                weights = build_weights(districts, grid.isel(time=0), id_column="district_id")
                _check_overlap(weights, districts, grid, name, getattr(config.inputs, name).path)
                series[name] = zonal_mean(grid, weights)
        results = {}
        for p in config.products:
            if p.anchor == "sowing_date":
                sow = valid.loc[valid["product_id"] == p.id, "sowing_date"]
                cohorts = np.unique(pd.to_datetime(sow).to_numpy().astype("datetime64[D]"))
            else:
                cohorts = np.array([season.start], dtype="datetime64[D]")
            if cohorts.size == 0:
                cohorts = np.array([season.start], dtype="datetime64[D]")
            inputs = TriggerInputs(season=season, cohorts=cohorts, district_ids=district_ids,
                                   series={n: series[n] for n in plugins[p.id].inputs if n in series},
                                   tables={n: tables[n] for n in plugins[p.id].inputs if n in tables})
            results[p.id] = plugins[p.id]().evaluate(p, inputs).data
        with t("compute"):
            results = _compute(results, client=client, progress=progress)
    finally:
        if client is not None:
            client.close()

    # ---- everything is written into a staging folder, then moved into place; the ledger's
    # Parquet file is written row group by row group while later rows are still being built
    stage = new_stage(out_dir)
    try:
        with t("ledger"):
            tables = {pid: _rate_table(pid, ds, district_ids, next(p.anchor for p in config.products if p.id == pid))
                      for pid, ds in results.items()}
            streamed = "parquet" in config.output.formats
            ledger = build_ledger(valid, tables, rules, config.terms,
                                  parquet_path=stage / "payouts.parquet" if streamed else None)
            totals = district_totals(ledger)
            reconcile(ledger, totals)
            pay = payments(ledger, by=config.output.payments_by, season_id=season.id)
            index_table = _district_index(results)

        counts = {
            "policies_read": int(register.n_rows),
            "policies_valid": int(len(valid) + (len(claims_policies) if claims_policies is not None else 0)),
            "cover_policies": int(len(claims_policies) if claims_policies is not None else 0),
            "policies_rejected": int((rejects["source"] == "policies").sum() if "source" in rejects else len(rejects)),
            "ledger_rows": int(ledger.num_rows if hasattr(ledger, "num_rows") else len(ledger)),
            "districts": int(len(district_ids)),
        }
        led_df = ledger.to_pandas() if hasattr(ledger, "to_pandas") else ledger
        counts["policies_paid"] = int((led_df["net_payout"] > 0).sum())
        counts["policies_withheld"] = int((led_df["status"] == "withheld_missing_data").sum())
        counts["districts_triggered"] = int(led_df.loc[led_df["payout_rate"] > 0, "district_id"].nunique())
        by_product = _product_summary(led_df)
        comparison = None
        if claims is not None and len(led_df):
            from panen.engine.research.compare import basis_risk_summary, compare_farmers

            with t("compare"):
                comparison = compare_farmers(led_df, claims, register=pd.concat([valid, claims_policies]),
                                             autp_product_id=wording.id)
                totals = _with_basis_risk(totals, basis_risk_summary(comparison))
        if claims is not None:
            counts["plots_assessed"] = int(len(claims))
            counts["plots_paid"] = int((claims["decision"] == "paid").sum())
            counts["assessments_rejected"] = int(len(assessment_rejects))
            by_product = pd.concat([by_product, _adjuster_summary(claims, claims_policies, wording)], ignore_index=True)

        with t("write"):
            for fmt in config.output.formats:
                if fmt != "parquet":  # payouts.parquet was written by build_ledger
                    write_table_atomic(ledger, stage / f"payouts.{fmt}", fmt)
            write_table_atomic(index_table, stage / "district_index.csv", "csv")
            write_table_atomic(totals, stage / "summary.csv", "csv")
            write_table_atomic(pay, stage / "payments.csv", "csv")
            write_table_atomic(rejects, stage / "rejects.csv", "csv")
            if claims is not None:
                from panen.engine.perils.adjuster import write_claims

                write_claims(claims, stage / "autp_claims.csv")
            if comparison is not None:
                write_table_atomic(comparison, stage / "comparison.csv", "csv")
        files = {f.name: sha256_file(f) for f in sorted(stage.iterdir())}
        inputs_hashed = _hash_inputs(config)
        # content only (not paths): the same config and data give the same run id anywhere
        content = {k: v["sha256"] for k, v in inputs_hashed.items()}
        run_id = hashlib.sha256(json.dumps({"config": config.sha256, "inputs": content,
                                            "version": __version__}, sort_keys=True).encode()).hexdigest()[:16]
        t.timings["total"] = round(time.perf_counter() - t_start, 3)
        manifest = {
            "run_id": run_id,
            "panen_version": __version__,
            "season": season.id,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "config": {"path": str(config.path) if config.path else None, "sha256": config.sha256},
            "inputs": inputs_hashed,
            "districts": ({"path": str(config.inputs.districts.path), "id_column": config.inputs.districts.id_column,
                           "layer": config.inputs.districts.layer} if config.inputs.districts else None),
            "adjuster": ({"wording": str(config.adjuster_path), "id": config.adjuster.id} if config.adjuster else None),
            "products": [p.model_dump(mode="json") for p in config.products],
            "counts": counts,
            "by_product": by_product.to_dict(orient="records"),
            "timings_s": t.timings,
            "outputs": files,
            "environment": {"python": platform.python_version(), **package_versions()},
            "scheduler": scheduler or "local-threads",
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
        with t("report"):  # derived from the files above only (panen report OUT_DIR rebuilds it)
            from panen.engine.report.html import write_reports

            write_reports(stage)
        publish(stage, out_dir)
    except BaseException:
        discard(stage)
        raise
    basis_rows = totals[totals["level"] == "product"] if "pod" in totals.columns else None
    return RunResult(out_dir=out_dir, run_id=run_id, counts=counts, totals=totals, timings=t.timings, files=files,
                     products=by_product, basis_risk=basis_rows)


# --------------------------------------------------------------------------- helpers (wiring only)
def _product_summary(ledger: pd.DataFrame) -> pd.DataFrame:
    """Per product: policies, districts, districts triggered, policies paid/withheld, money [Rp]."""
    g = ledger.assign(product_id=ledger["product_id"].astype(str), district_id=ledger["district_id"].astype(str))
    rows = []
    for pid, d in g.groupby("product_id", sort=True):
        rows.append({
            "product_id": pid,
            "policies": int(len(d)),
            "districts": int(d["district_id"].nunique()),
            "districts_triggered": int(d.loc[d["payout_rate"] > 0, "district_id"].nunique()),
            "policies_paid": int((d["net_payout"] > 0).sum()),
            "policies_withheld": int((d["status"] == "withheld_missing_data").sum()),
            "sum_insured": int(d["sum_insured"].sum()),
            "net_payout": int(d["net_payout"].sum()),
        })
    return pd.DataFrame(rows)


def _with_basis_risk(totals: pd.DataFrame, basis: pd.DataFrame) -> pd.DataFrame:
    """``summary.csv``: money totals per product and district, beside the basis-risk metrics.

    District rows get their district's metrics; one ``product`` row per product carries the
    product-wide metrics (and its money totals); the ``total`` row stays last.
    """
    metrics = [c for c in basis.columns if c not in totals.columns and c != "index_payout"]
    key = ["product_id", "district_id"]
    b = basis.assign(product_id=basis["product_id"].astype(str), district_id=basis["district_id"].astype(str))
    t = totals.assign(product_id=totals["product_id"].astype(str), district_id=totals["district_id"].astype(str))
    district = t[t["level"] == "district"].merge(b.loc[b["level"] == "district", key + metrics], on=key, how="left")
    money = [c for c in ("policies", "withheld", "area_ha", "sum_insured", "gross_payout", "deductible", "net_payout")
             if c in district.columns]
    product = district.groupby("product_id", sort=True)[money].sum().reset_index()
    product = product.assign(level="product", district_id="").merge(
        b.loc[b["level"] == "product", ["product_id"] + metrics], on="product_id", how="left")
    out = pd.concat([district, product[district.columns], t[t["level"] == "total"]], ignore_index=True)
    return out


def _adjuster_summary(claims: pd.DataFrame, policies: pd.DataFrame, wording) -> pd.DataFrame:
    """The named-peril cover's line in the product summary (policies, paid plots, indemnity, premium)."""
    from panen.engine.perils.adjuster import premium

    prem = premium(policies["area_ha"].to_numpy(float), wording, farmer_id=policies["farmer_id"].astype(str).to_numpy())
    paid = claims[claims["decision"] == "paid"]
    return pd.DataFrame([{
        "product_id": wording.id,
        "policies": int(len(policies)),
        "districts": int(policies["district_id"].astype(str).nunique()),
        "districts_triggered": int(policies.loc[is_in(policies["policy_id"], [paid["policy_id"]]),
                                                "district_id"].nunique()),
        "policies_paid": int(paid["policy_id"].nunique()),
        "policies_withheld": 0,
        "sum_insured": int(prem["insured_area_ha"].sum() * wording.sum_insured_per_ha + 0.5),
        "net_payout": int(paid["indemnity"].sum()),
        "premium": int(prem["premium"].sum()),
        "subsidy": int(prem["subsidy"].sum()),
        "farmer_share": int(prem["farmer_share"].sum()),
    }])


def _open_input(name: str, spec) -> tuple[str, Any]:
    """Open one configured input lazily: ``("grid" | "series" | "table", object)``."""
    if name == "rainfall":
        from panen.datasets.gridded import open_rainfall

        return "grid", open_rainfall(spec.path, variable=spec.variable, units=spec.units,
                                     date_pattern=spec.date_pattern)
    if name == "ndvi":
        from panen.datasets import ndvi

        if str(spec.path).lower().endswith(".csv"):  # AppEEARS points: each point is its own zone
            return "series", ndvi.read_appeears_points(spec.path, qa=spec.qa)
        return "grid", ndvi.open_ndvi(spec.path, qa=spec.qa, cropland_mask=spec.cropland_mask,
                                      variable=spec.variable, qa_variable=spec.qa_variable, scale=spec.scale)
    if name == "yields":
        from panen.datasets.yields import read_yields

        return "table", read_yields(spec.path, district_column=spec.district_column, year_column=spec.year_column,
                                    yield_column=spec.yield_column, season_column=spec.season_column,
                                    units=spec.units, missing_values=tuple(spec.missing_values),
                                    extra_columns=tuple(spec.extra_columns))
    raise InputError(Problem(f"panen does not know how to read input {name!r}"))


def _sowing_window(params, plugin, season: Season, grids: dict[str, xr.DataArray]) -> tuple[dt.date, dt.date] | None:
    """Sowing dates a sowing-anchored product can assess: inside the season, windows inside the data."""
    if params.anchor != "sowing_date":
        return None
    lo, hi = season.start, season.end
    reach = getattr(params, "reach", None)
    for name in plugin.inputs:
        if name in grids and reach is not None:
            times = grids[name]["time"].values.astype("datetime64[D]")
            lo = max(lo, times[0] - np.timedelta64(reach[0], "D"))
            hi = min(hi, times[-1] + np.timedelta64(1, "D") - np.timedelta64(reach[1], "D"))
    return (lo.astype(dt.date), hi.astype(dt.date))


def _needed_time(config: RunConfig, plugins, valid: pd.DataFrame, season: Season, name: str):
    """The time slice of a gridded input the products can touch (so nothing else is read)."""
    lo, hi = None, None
    for p in config.products:
        if name not in plugins[p.id].inputs or getattr(p, "reach", None) is None:
            return None
        start, end = p.reach
        if p.anchor == "sowing_date":
            sow = pd.to_datetime(valid.loc[valid["product_id"] == p.id, "sowing_date"])
            if sow.empty:
                a0 = a1 = season.start
            else:
                a0, a1 = sow.min().to_datetime64().astype("datetime64[D]"), sow.max().to_datetime64().astype("datetime64[D]")
        else:
            a0 = a1 = season.start
        s, e = a0 + np.timedelta64(start, "D"), a1 + np.timedelta64(end - 1, "D")
        lo, hi = (s, e) if lo is None else (min(lo, s), max(hi, e))
    return (str(lo), str(hi)) if lo is not None else None


def _check_overlap(weights, districts, grid: xr.DataArray, name: str, path) -> None:
    """A district set that misses the grid entirely is almost always a CRS mix-up: say so."""
    ncells = np.diff(weights.indptr)
    if len(ncells) and not ncells.any():
        bounds = ", ".join(f"{v:.4g}" for v in districts.total_bounds)
        gb = [float(grid["x"].min()), float(grid["y"].min()), float(grid["x"].max()), float(grid["y"].max())]
        raise DataQualityError(Problem(
            f"no district overlaps the {name} grid: districts span [{bounds}] in CRS {districts.crs}, the grid "
            f"spans [{', '.join(f'{v:.4g}' for v in gb)}] in CRS {grid.rio.crs}. Check the CRS of both files.",
            file=path))


def _client(scheduler: str | None):
    if not scheduler:
        return None
    from distributed import Client

    try:
        return Client(scheduler, timeout="20s")
    except OSError as exc:
        raise InputError(Problem(f"cannot reach the Dask scheduler at {scheduler}: {exc}")) from None


def _compute(results: dict[str, xr.Dataset], *, client, progress: bool,
             optimize_graph: bool = False) -> dict[str, xr.Dataset]:
    """Compute named lazy datasets in one pass (distributed client or local threads), with a progress bar."""
    import dask

    if not results:
        return {}
    keys = list(results)
    # optimize_graph=False: with dask 2026.8, computing a Dataset holding both a variable and
    # a lazy derivative of it (payout_rate and flagged = payout_rate.isnull()) in one call
    # fails after blockwise fusion ("Missing dependency ('clip-…', 0, 0)"). Fusion buys
    # little here: the heavy work is the zonal kernel, one task per time block either way.
    if client is not None:
        futures = client.compute([results[k] for k in keys], optimize_graph=optimize_graph)
        if progress:
            from distributed import progress as dprogress

            dprogress(futures)
            print(file=sys.stderr)
        done = client.gather(futures)
    else:
        ctx = contextlib.nullcontext()
        if progress:
            from dask.diagnostics import ProgressBar

            ctx = ProgressBar(out=sys.stderr)
        with ctx:
            done = dask.compute(*[results[k] for k in keys], scheduler="threads", optimize_graph=optimize_graph)
    return dict(zip(keys, done))


def _rate_table(pid: str, ds: xr.Dataset, district_ids: np.ndarray, anchor: str) -> RateTable:
    ds = ds.transpose("district", "cohort", ...)
    if "district" in ds.coords:
        ds = ds.reindex(district=district_ids)
    return RateTable(product_id=pid, district_ids=np.asarray(district_ids), cohorts=ds["cohort"].values.astype("datetime64[D]"),
                     rate=np.asarray(ds["payout_rate"].values, dtype=float),
                     flagged=np.asarray(ds["flagged"].values, dtype=bool), anchor=anchor)


def _district_index(results: dict[str, xr.Dataset]) -> pd.DataFrame:
    """``district_index.csv``: district_id, product_id, cohort, phase, index_value, payout_rate, valid_fraction."""
    frames = []
    for pid, ds in results.items():
        cols = [c for c in ("index_value", "phase_rate", "valid_fraction") if c in ds]
        df = ds[cols].to_dataframe().reset_index()
        df = df.rename(columns={"district": "district_id", "phase_rate": "payout_rate"})
        df.insert(1, "product_id", pid)
        df["cohort"] = pd.to_datetime(df["cohort"]).dt.strftime("%Y-%m-%d")
        df["flagged"] = df["index_value"].isna()
        frames.append(df[["district_id", "product_id", "cohort", "phase", "index_value", "payout_rate",
                          "valid_fraction", "flagged"]])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out.sort_values(["product_id", "district_id", "cohort", "phase"], kind="stable").reset_index(drop=True)


def _hash_inputs(config: RunConfig) -> dict[str, dict[str, str]]:
    out = {}
    for name in type(config.inputs).model_fields:
        section = getattr(config.inputs, name)
        if section is None:
            continue
        out[name] = hash_input(section.path)
    return out
