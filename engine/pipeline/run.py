"""The seasonal payout batch: one orchestrator that only wires (after pvlib's ModelChain).

:func:`run_batch` calls the public steps of :mod:`panen.engine.pipeline.steps` in order —
open inputs → zones → check the register → district series → evaluate index covers and
adjust named-peril claims → settle every cover through one ledger → compare → write →
manifest — times them, and keeps every intermediate result on the returned
:class:`RunResult`. No maths lives here, and no cover is special-cased by name: index
products are looked up in the trigger registry, inputs in the reader registry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import xarray as xr

from panen.engine import __version__
from panen.engine.api import InputInfo, Season
from panen.engine.config import RunConfig
from panen.engine.errors import InputError, Problem
from panen.engine.infra.atomic import write_table_atomic
from panen.engine.infra.manifest import InputFingerprint, package_versions, sha256_file
from panen.engine.infra.outdir import pause_point
from panen.engine.infra.staging import discard, new_stage, publish
from panen.engine.pipeline import inseason, steps
from panen.engine.pipeline.covers import Cover, NamedPerilCover, covers_of
from panen.engine.pipeline.output import output_folder
from panen.engine.settlement import store as settlement_store

__all__ = ["RunResult", "run_batch"]


@dataclass
class RunResult:
    """What a batch produced, with every intermediate result (also summarised in ``manifest.json``).

    Attributes
    ----------
    out_dir
        Where the outputs were published (``None`` when computed only).
    run_id
        Content hash of config, inputs and version: the same inputs give the same id.
    counts
        Row counts (policies read, valid, rejected, paid, withheld; plots assessed, ...).
    totals
        ``summary.csv``: per cover and district, per cover and a grand total [Rp], with the
        basis-risk metrics when a named-peril cover is compared.
    timings
        Wall time per step [s].
    files
        Output file name → SHA-256.
    products
        Per cover: policies, districts, paid, withheld, sum insured and net payout [Rp]
        (+ premium, subsidy, farmers' share [Rp] of a cover that prices a premium: the
        sums of ``premiums``).
    premiums
        Per policy of every cover that prices a premium (an index term sheet's
        ``premium.rate``, a named-peril wording): ``premiums.csv``
        (:func:`panen.engine.pipeline.steps.premiums`) [Rp].
    basis_risk
        Per index product: the farmer-level basis-risk metrics against the named-peril
        cover (``None`` without one).
    config, season, covers
        The validated config, its season and its covers.
    inputs
        Input name → :class:`~panen.engine.api.InputInfo` (columns, units, time step).
    series
        District series per gridded input: ``mean`` [the input's units] and
        ``valid_fraction`` [0..1] on ``(time, district)``.
    results
        Per index cover, the checked trigger result: ``payout_rate`` [fraction],
        ``flagged``, ``reason`` on ``(district, cohort)``; ``index_value`` [index units],
        ``phase_rate`` [fraction], ``valid_fraction`` [0..1] on ``(phase, district,
        cohort)``, and the plugin's extra variables.
    claims
        Per named-peril cover, the plot-by-plot decisions (``autp_claims.csv``).
    policies, rejects
        Valid register rows and rejected rows (policies and assessments).
    ledger
        One row per policy and cover, money in integer rupiah (``payouts.parquet``).
    payments, comparison, district_index
        ``payments.csv``, ``comparison.csv`` (``None`` without a comparison) and
        ``district_index.csv`` as tables. With the settlement store (every published run
        unless ``settlement: false``), ``payments`` holds this batch's payments only (the
        top-ups of :meth:`~panen.engine.settlement.store.SettlementStore.difference`); a
        compute-only or what-if run holds every payee's full amount.
    recoveries, settlement
        With the settlement store: ``recoveries.csv`` (overpayments) and the manifest's
        ``settlement`` (batch id, kind, totals); ``None`` without one (compute-only, what-if).
    as_of
        In season (``panen run --as-of DATE``): the last day of data used; the ledger then
        holds each cover's guaranteed minimum (:mod:`panen.engine.pipeline.inseason`), and
        ``results`` a ``guaranteed_rate`` per index cover. ``None``: a final settlement.
    on_account
        ``on_account.csv``: on-account (advance) payments per policy, apart from the final
        payouts (:func:`steps.on_account`); ``None`` when no cover has any.
    as_of, projection
        An in-season run's last day of data (``None``: a final run) and, with a
        ``projection:`` section, ``projection.csv``: per district and index product the open
        windows projected with analogue years (:func:`steps.projection`).
    notes, data_quality
        Decisions and warnings of the run; per gridded or series input, the values outside
        its physically possible range that were treated as missing (``valid_range``,
        ``implausible_values``, ``time_steps_affected``, ``first``, ``last``).
    """

    out_dir: Path | None
    run_id: str
    counts: dict[str, int]
    totals: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    products: pd.DataFrame | None = None
    basis_risk: pd.DataFrame | None = None
    config: RunConfig | None = None
    season: Season | None = None
    covers: list[Cover] = field(default_factory=list)
    inputs: dict[str, InputInfo] = field(default_factory=dict)
    series: dict[str, xr.Dataset] = field(default_factory=dict)
    results: dict[str, xr.Dataset] = field(default_factory=dict)
    claims: dict[str, pd.DataFrame] = field(default_factory=dict)
    policies: pd.DataFrame | None = None
    rejects: pd.DataFrame | None = None
    ledger: pa.Table | None = None
    payments: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    district_index: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    data_quality: dict[str, dict] = field(default_factory=dict)
    on_account: pd.DataFrame | None = None
    premiums: pd.DataFrame | None = None
    recoveries: pd.DataFrame | None = None
    settlement: dict[str, Any] | None = None
    as_of: dt.date | None = None
    projection: pd.DataFrame | None = None


def run_batch(config: RunConfig, out_dir: str | Path | None, *, force: bool = False, strict: bool = False,
              scheduler: str | None = None, progress: bool = False,
              scheduler_timeout: float | None = None, allow_empty: bool = False,
              as_of: dt.date | None = None) -> RunResult:
    """Settle one season for every policy and cover in ``config``; write the outputs.

    Parameters
    ----------
    config
        A validated run configuration (:func:`panen.engine.config.load_config`).
    out_dir
        Output folder. It must not exist unless ``force``; outputs are staged in a sibling
        folder and moved into place at the end, so a failed run leaves nothing half-written.
        It is locked for the whole run, and what killed runs left beside it is rolled back
        first (:mod:`panen.engine.infra.outdir`). The published batch is recorded in the
        settlement store (``config.settlement``: on unless the config says ``settlement:
        false``), and ``payments.csv`` pays only what is still owed. ``None``: compute only
        (nothing is written, nothing recorded; the ledger stays in memory).
    force
        Replace an existing output folder — only one a previous panen run wrote (it has
        its ``manifest.json``) or an empty one.
    strict
        Fail (``InputError``, exit code 2) when any policy or assessment row is rejected,
        writing nothing.
    scheduler
        Address of an existing Dask distributed scheduler (``tcp://host:port``); ``None``
        uses the local threaded scheduler.
    progress
        Show progress bars for the long steps (on stderr).
    allow_empty
        Publish even when no policy row is valid (an empty register, or every row
        rejected). By default such a run fails (``InputError``, exit code 2) listing the
        first rejects and writes nothing: a batch that pays nobody is almost always a wrong
        file or a wrong config, not a season without policies.
    scheduler_timeout
        How long to wait for a worker of ``scheduler`` [s] (default
        :data:`~panen.engine.pipeline.steps.DEFAULT_SCHEDULER_TIMEOUT`).
    as_of
        In-season settlement: use the data up to and including this day only (every later
        day unknown, never zero) and settle each cover's guaranteed minimum — the part of
        its payout no later data can lower — through the one ledger. With ``settlement:``
        the batch is an on-account batch (``settlement.on_account_share`` of the guaranteed
        minimum per payee). ``None``: the final settlement on the season's data.
        With a ``projection:`` section the open windows are also projected with analogue
        years (``projection.csv``, :func:`steps.projection`).

    Raises
    ------
    InputError
        Besides bad input: an output folder that must not be written or replaced, one
        another run holds, an unusable scheduler, or an input that changed while the run
        read it (nothing is published).
    """
    if config.inputs.policies is None:
        raise InputError(Problem("inputs.policies (the policy register) is required to settle a season"))
    inseason.check_as_of(as_of, steps.season_of(config))
    steps.check_scheduler(scheduler, scheduler_timeout)
    if out_dir is None:
        return _run(config, None, strict=strict, scheduler=scheduler, progress=progress,
                    scheduler_timeout=scheduler_timeout, recovered=[], allow_empty=allow_empty, as_of=as_of)
    _check_settlement(config, as_of)
    with output_folder(config, out_dir, force=force) as folder, contextlib.ExitStack() as held:
        if config.settlement is None:
            return _run(config, folder.path, strict=strict, scheduler=scheduler, progress=progress,
                        scheduler_timeout=scheduler_timeout, recovered=folder.recovered, allow_empty=allow_empty,
                        as_of=as_of)
        url = config.settlement.url or settlement_store.default_store_path(folder.path)

        def store() -> tuple[settlement_store.SettlementStore, list[str]]:
            opened = held.enter_context(settlement_store.open_store(url))
            # after the folder's own recovery: a batch a killed run left pending is decided
            # against what that run published (committed if the folder holds it, else rolled back)
            return opened, opened.recover(held=folder.path)

        if config.settlement.url is not None or Path(url).exists():
            # a store that exists (or a server) is checked and recovered before anything is read; the
            # default store is created only when a batch is about to be recorded, so a run refused
            # before that (bad input, --strict) leaves no empty store beside the folder
            ready, notes = store()
            return _run(config, folder.path, strict=strict, scheduler=scheduler, progress=progress,
                        scheduler_timeout=scheduler_timeout, recovered=folder.recovered + notes,
                        allow_empty=allow_empty, open_store=lambda: (ready, []), as_of=as_of)
        return _run(config, folder.path, strict=strict, scheduler=scheduler, progress=progress,
                    scheduler_timeout=scheduler_timeout, recovered=folder.recovered, allow_empty=allow_empty,
                    open_store=store, as_of=as_of)


def _run(config: RunConfig, out_dir: Path | None, *, strict: bool, scheduler: str | None, progress: bool,
         scheduler_timeout: float | None, recovered: list[str], allow_empty: bool = False,
         open_store: Callable[[], tuple[settlement_store.SettlementStore, list[str]]] | None = None,
         as_of: dt.date | None = None) -> RunResult:
    t = steps.Timer()
    t_start = time.perf_counter()
    season = steps.season_of(config)
    day = inseason.check_as_of(as_of, season)
    covers = covers_of(config)
    notes: list[str] = list(recovered)

    with t("read_inputs"):
        # the wording decides named-peril money like an input: its content is part of the run id
        fingerprints = steps.fingerprint_inputs(
            config, extra={"adjuster_wording": config.adjuster_path} if config.adjuster_path is not None else None)
        opened = steps.open_inputs(config, covers)
        zoned = steps.zones(covers, opened)
        rules = steps.policy_rules(covers, season, opened, zoned)
    with t("validate_policies"):
        valid, rejects = steps.check_policies(opened, rules, zoned, config.limits)
    claims: dict[str, pd.DataFrame] = {}
    sources: dict[str, Any] = {}
    assessment_rejects = [o.rejects for name, o in opened.items() if o.rejects is not None and len(o.rejects)]
    for c in covers:
        if isinstance(c, NamedPerilCover):
            with t("adjuster"):
                claims[c.id], sources[c.id], _ = steps.adjust_claims(c, opened, valid, season)
    if assessment_rejects:
        rejects = pd.concat([rejects.assign(source="policies")]
                            + [r.assign(source="assessments") for r in assessment_rejects], ignore_index=True)
    if strict:
        steps.raise_if_strict(rejects)
        steps.raise_if_referred(claims, opened, covers)
    if len(valid) == 0 and not allow_empty:
        read = opened[steps.POLICIES].data.n_rows
        head = Problem(f"no policy row is valid ({read:,} read, {len(rejects):,} rejected): nothing to settle. "
                       f"Pass --allow-empty to publish an empty batch.", file=opened[steps.POLICIES].info.path)
        steps.raise_if_strict(rejects, first=head)  # lists the first rejects, when there are any
        raise InputError(head)

    cohorts = {c.id: steps.cohorts_of(c, valid, season) for c in covers}
    quality: dict[str, dict] = {}
    client = steps.connect(scheduler, timeout=scheduler_timeout)
    try:
        with t("zonal_compute"):
            series = steps.district_series(opened, covers, cohorts, client=client, progress=progress, notes=notes,
                                           timeout=scheduler_timeout, quality=quality)
    finally:
        if client is not None:
            client.close()
    if day is not None:  # in season: every day after as_of is unknown, never zero
        series = inseason.as_of_series(series, day, notes)
    with t("evaluate"):
        tables = {n: o.data for n, o in opened.items() if o.kind == "table"}
        results = steps.evaluate(covers, season, cohorts, zoned, series, tables, notes=notes,
                                 insured_area=steps.insured_areas(valid, covers), as_of=day)
        if day is None:
            sources.update(steps.rate_tables(results, covers, zoned))
        else:  # the ledger settles each cover's guaranteed minimum
            sources = inseason.guaranteed_sources(results, covers, zoned, sources, day)
        advance = steps.on_account(results, covers, zoned, valid, rules)

    stage = new_stage(out_dir) if out_dir is not None else None
    try:
        with t("ledger"):
            streamed = stage is not None and "parquet" in config.output.formats
            money = steps.settle(valid, sources, rules, {c.id: c.terms for c in covers},
                                 payments_by=config.output.payments_by, season_id=season.id,
                                 season_end=season.end,
                                 parquet_path=stage / "payouts.parquet" if streamed else None)
            index_table = steps.district_index(results)
        ledger = money.ledger
        with t("premiums"):
            premium_table = steps.premiums(ledger, covers, valid)
            by_product = steps.product_summary(ledger, covers, valid, premium_table)
        projected = None
        if day is not None and config.projection is not None:
            with t("projection"):
                # the ledger holds each policy's guaranteed minimum: the projection's floor, per district
                projected = steps.projection(config, covers, season, cohorts, zoned, series, opened, valid, rules,
                                             as_of=as_of, progress=progress, notes=notes, timeout=scheduler_timeout,
                                             guaranteed=_guaranteed_by_district(ledger))
        counts = _counts(opened, valid, rejects, by_product, zoned, covers, claims, ledger)
        totals, comparison = money.totals, None
        for c in covers:
            if isinstance(c, NamedPerilCover) and ledger.num_rows:
                with t("compare"):
                    compared = steps.compare(ledger, claims[c.id], valid, c)
                if compared is not None:
                    comparison, basis = compared
                    totals = steps.with_basis_risk(totals, basis)
        result = RunResult(out_dir=None, run_id="", counts=counts, totals=totals, timings=t.timings,
                           products=by_product, basis_risk=_basis_rows(totals), config=config, season=season,
                           covers=covers, inputs={n: o.info for n, o in opened.items()}, series=series,
                           results=results, claims=claims, policies=valid, rejects=rejects, ledger=ledger,
                           payments=money.payments, comparison=comparison, district_index=index_table, notes=notes,
                           data_quality=quality, on_account=advance, premiums=premium_table, as_of=as_of,
                           projection=projected)
        result.run_id = _run_id(config, fingerprints, as_of)
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        batch, store = None, None
        if open_store is not None:
            with t("settlement"):
                store, store_notes = open_store()  # opened (and recovered) here at the latest
                notes[len(recovered):len(recovered)] = store_notes  # right after the folder's own recovery
                difference = _difference(store, result, _batch_kind(config, as_of))
            batch = difference.batch(run_id=result.run_id, created_at=created,
                                     inputs={k: v["sha256"] for k, v in _hash_inputs(fingerprints).items()},
                                     out_dir=out_dir)
        if stage is None:
            steps.verify_inputs(fingerprints)
            t.timings["total"] = round(time.perf_counter() - t_start, 3)
            return result
        with t("write"):
            _write(result, stage)
        result.timings["total"] = round(time.perf_counter() - t_start, 3)
        _write_manifest(result, stage, fingerprints, scheduler=scheduler, created=created)
        with t("report"):  # derived from the files above only (panen report OUT_DIR rebuilds it)
            from panen.engine.report.html import write_reports

            write_reports(stage)
        pause_point("staged")
        steps.verify_inputs(fingerprints)  # every input as it was when read, else nothing is published
        if batch is None:
            publish(stage, out_dir)
        else:
            _publish_batch(store, batch, result, stage, out_dir)
    except BaseException:
        if stage is not None:
            discard(stage)
        raise
    result.out_dir = out_dir
    return result


# --------------------------------------------------------------------------- the settlement store
def _batch_kind(config: RunConfig, as_of: dt.date | None) -> str | None:
    """The batch's kind: the config's ``settlement.kind``, else ``on_account`` in season (``--as-of``), else ``final``."""
    if config.settlement is None:
        return None
    if "kind" in config.settlement.model_fields_set:
        return config.settlement.kind
    return "on_account" if as_of is not None else "final"


def _check_settlement(config: RunConfig, as_of: dt.date | None = None) -> None:
    """Refuse what the settlement store cannot record faithfully, before anything is read or locked."""
    if config.settlement is None:
        return
    kind = _batch_kind(config, as_of)
    if as_of is not None and kind != "on_account":
        # a final or a correction settles the whole season's data; in season only the guaranteed part is known
        raise InputError(Problem(f"settlement.kind: {kind} with --as-of: an in-season run pays on account only "
                                 f"(kind: on_account, the default with --as-of); run the {kind} batch without "
                                 f"--as-of", key="settlement.kind"))
    if as_of is None and kind == "on_account":
        raise InputError(Problem("settlement.kind: on_account needs --as-of DATE: an on-account batch pays the "
                                 "guaranteed minimum of the data up to that day", key="settlement.kind"))
    paid_in_instalments = sorted(pid for pid, terms in config.terms.items()
                                 if terms is not None and getattr(terms, "instalments", None) is not None)
    if paid_in_instalments:
        # the store records one payment per payee and batch; an instalment schedule would be lost
        raise InputError(Problem(f"settlement: product(s) {', '.join(paid_in_instalments)} pay in instalments "
                                 f"(terms.instalments), which the settlement store does not record yet; remove "
                                 f"the instalments, or pay them unrecorded with settlement: false "
                                 f"(panen run --no-settlement)", key="settlement"))


def _difference(store: settlement_store.SettlementStore, result: RunResult,
                kind: str = "final") -> settlement_store.Difference:
    """Ask the store what this batch pays: per payee, due (``payments.csv`` of the run) less paid.

    An on-account batch (``kind="on_account"``, in season) is due
    :func:`inseason.on_account_due` per payee: ``settlement.on_account_share`` of the
    guaranteed minimum, or a trigger's advance where larger (``recoverable``). A final
    batch is due the full claim, and the store subtracts what every earlier batch of the
    season paid the payee — on-account batches included — so the final nets against them;
    a final below what was paid on account is a recovery, never a negative payment.

    Sets ``result.payments`` (this batch's payments: the top-ups, with the store's new
    payment ids; an on-account batch adds ``recoverable``), ``result.recoveries``
    (overpayments, never negative payments) and ``result.settlement`` (the manifest's
    ``settlement``).
    """
    cfg = result.config.settlement
    paid = result.payments
    keys = settlement_store.PAYEE_KEY
    flagged = None
    if kind == "on_account":
        due = inseason.on_account_due(paid, result.on_account, result.policies, by=result.config.output.payments_by,
                                      season_id=result.season.id, share=cfg.on_account_share)
        flagged = due[[*keys, "recoverable"]]
        due = due.loc[due["amount"] > 0, [*keys, "amount"]].sort_values(keys, kind="stable").reset_index(drop=True)
    else:
        due = paid.assign(district_id=paid["district_id"].fillna("").astype(str)).groupby(
            keys, sort=True, as_index=False)["amount"].sum()
    due["amount"] = due["amount"].astype(np.int64)
    difference = store.difference(result.season.id, due, kind=kind, corrects=cfg.corrects,
                                  products=[c.id for c in result.covers])
    columns = ["season_id", "product_id", "payee_type", "payee_id", "district_id", "due", "paid", "amount"]
    before = {"paid": "paid_before"}  # what earlier batches paid the payee [Rp]
    result.payments = difference.top_ups[["payment_id", *columns]].rename(columns=before).reset_index(drop=True)
    result.recoveries = difference.recoveries[["recovery_id", *columns]].rename(columns=before).reset_index(drop=True)
    if kind == "on_account":
        # an on-account batch never claws back: a payee already paid more than its due on account (a lower
        # share, a revised advance, a final already paid) keeps it, and the final nets against it. Its due is
        # what the data guarantee, never raised to what was paid, so the same day run again is the same batch
        result.recoveries = result.recoveries.iloc[0:0]
    in_season = {}
    if flagged is not None:  # an advance above the guaranteed minimum may exceed the final: recoverable
        result.payments = result.payments.merge(flagged.astype({"district_id": str}), on=keys, how="left")
        result.payments["recoverable"] = result.payments["recoverable"].fillna(False).astype(bool)
        risky = result.payments["recoverable"].to_numpy()
        in_season = {"as_of": result.as_of.isoformat(), "on_account_share": cfg.on_account_share,
                     "recoverable_payments": int(risky.sum()),
                     "recoverable": int(result.payments.loc[risky, "amount"].sum())}
    result.settlement = {
        "batch_id": difference.batch_id, "kind": difference.kind, "corrects": difference.corrects,
        "url": store.url,  # rendered without its password
        "products": list(difference.products),
        "new": not difference.recorded,
        "due": int(due["amount"].sum()),
        "payments": int(len(result.payments)), "paid": int(result.payments["amount"].sum()),
        "recoveries": int(len(result.recoveries)), "recovered": int(result.recoveries["amount"].sum()),
        **in_season,
    }
    result.notes.append(
        f"settlement: batch {difference.batch_id} ({difference.kind}) pays Rp {result.settlement['paid']:,} in "
        f"{result.settlement['payments']:,} payment(s) of Rp {result.settlement['due']:,} due; "
        f"Rp {result.settlement['recovered']:,} to recover from {result.settlement['recoveries']:,} payee(s)"
        + ("" if result.settlement["new"] else " (this batch was already recorded: nothing is paid twice)"))
    return difference


def _publish_batch(store: settlement_store.SettlementStore, batch: settlement_store.Batch, result: RunResult,
                   stage: Path, out_dir: Path) -> None:
    """Record the batch pending, publish the folder, commit; a failure in between is decided by the folder.

    The order makes a kill at any point recoverable (:meth:`SettlementStore.recover` at the
    next run's start): pending and unpublished → rolled back; published → committed.
    """
    recorded = store.record_pending(batch, result.payments, result.recoveries)
    pause_point("recorded")
    try:
        publish(stage, out_dir)
    except BaseException:
        if recorded.new:
            if settlement_store.published_batch_id(out_dir) == batch.batch_id:
                store.commit(batch.batch_id)
            else:
                store.roll_back(batch.batch_id)
        raise
    pause_point("published_batch")
    store.commit(batch.batch_id)


# --------------------------------------------------------------------------- wiring helpers
def _guaranteed_by_district(ledger: pa.Table) -> pd.DataFrame:
    """``district_id, product_id, guaranteed`` [Rp]: an in-season ledger's net payouts summed per district."""
    frame = ledger.select(["district_id", "product_id", "net_payout"]).to_pandas()
    for c in ("district_id", "product_id"):
        frame[c] = frame[c].astype(str)
    out = frame.groupby(["district_id", "product_id"], as_index=False, sort=True)["net_payout"].sum()
    out["guaranteed"] = out.pop("net_payout").fillna(0).astype(np.int64)
    return out

def _basis_rows(totals: pd.DataFrame) -> pd.DataFrame | None:
    if "pod" not in totals.columns:
        return None
    rows = totals[(totals["level"] == "product") & totals["farmers"].notna()]
    return rows if len(rows) else None


def _counts(opened, valid: pd.DataFrame, rejects: pd.DataFrame, products: pd.DataFrame, zoned: steps.Zones,
            covers: list[Cover], claims: dict[str, pd.DataFrame], ledger: pa.Table) -> dict[str, int]:
    import pyarrow.compute as pc

    per_policy = [c.id for c in covers if c.per_policy]
    districts = zoned.layer if zoned.layer is not None else np.unique(np.concatenate(
        [np.asarray(v, dtype=object) for v in zoned.by_cover.values() if v is not None] or [np.array([], object)]))
    triggered = ledger.filter(pc.fill_null(pc.greater(ledger["payout_rate"], 0), False))["district_id"]
    if pa.types.is_dictionary(triggered.type):
        triggered = pc.cast(triggered, pa.string())
    counts = {
        "policies_read": int(opened[steps.POLICIES].data.n_rows),
        "policies_valid": int(len(valid)),
        "cover_policies": int(valid["product_id"].isin(per_policy).sum()),
        "policies_rejected": int((rejects["source"] == "policies").sum() if "source" in rejects else len(rejects)),
        "ledger_rows": int(ledger.num_rows),
        "districts": int(len(districts)),
        "policies_paid": int(products["policies_paid"].sum()),
        "policies_withheld": int(products["policies_withheld"].sum()),
        "policies_referred": int(products["policies_referred"].sum()),
        "districts_triggered": int(pc.count_distinct(triggered).as_py()),
    }
    if claims:
        every = pd.concat(list(claims.values()), ignore_index=True)
        counts["plots_assessed"] = int(len(every))
        counts["plots_paid"] = int((every["decision"] == "paid").sum())
        counts["plots_referred"] = int((every["decision"] == "referred").sum())
        counts["assessments_rejected"] = int((rejects["source"] == "assessments").sum()) if "source" in rejects else 0
    return counts


def _write(result: RunResult, stage: Path) -> None:
    config = result.config
    for fmt in config.output.formats:
        if fmt == "csv" or not (stage / "payouts.parquet").exists():  # payouts.parquet was streamed by the ledger
            write_table_atomic(result.ledger, stage / f"payouts.{fmt}", fmt)
    write_table_atomic(result.district_index, stage / "district_index.csv", "csv")
    write_table_atomic(result.totals, stage / "summary.csv", "csv")
    write_table_atomic(result.payments, stage / "payments.csv", "csv")
    if result.recoveries is not None:
        write_table_atomic(result.recoveries, stage / "recoveries.csv", "csv")
    write_table_atomic(result.rejects, stage / "rejects.csv", "csv")
    if result.premiums is not None and len(result.premiums):
        write_table_atomic(result.premiums, stage / "premiums.csv", "csv")
    if result.claims:
        from panen.engine.perils.adjuster import write_claims

        write_claims(pd.concat(list(result.claims.values())), stage / "autp_claims.csv")
    if result.comparison is not None:
        write_table_atomic(result.comparison, stage / "comparison.csv", "csv")
    if result.on_account is not None:
        write_table_atomic(result.on_account, stage / "on_account.csv", "csv")
    if result.projection is not None:
        write_table_atomic(result.projection, stage / "projection.csv", "csv")
    fills = steps.station_fills(result.series or {})
    if fills is not None:  # where every station-settled day came from, when not the reference station
        write_table_atomic(fills, stage / "station_fills.csv", "csv")


def _on_account_totals(frame: pd.DataFrame | None, deducted: bool = False) -> dict[str, Any] | None:
    """The manifest's ``on_account``: per product and in total, policies and amount [Rp] (``None``: none).

    ``deducted_from_final``: true for a final or correction batch through the settlement
    store, which subtracts what on-account batches actually paid each payee.
    """
    if frame is None:
        return None
    by = {pid: {"policies": int(len(g)), "policies_paid": int((g["on_account_payout"] > 0).sum()),
                "on_account_payout": int(g["on_account_payout"].sum())}
          for pid, g in frame.groupby("product_id", sort=True)}
    return {"by_product": by, "policies": int(len(frame)),
            "on_account_payout": int(frame["on_account_payout"].sum()),
            "deducted_from_final": deducted}


def _projection_totals(result: RunResult) -> dict[str, Any] | None:
    """The manifest's ``projection``: as-of date, analogue years and per product the sums of ``projection.csv``."""
    frame, cfg = result.projection, result.config.projection
    if frame is None:
        return None
    by = {}
    for pid, g in frame.groupby("product_id", sort=False):
        projectable = bool(g["projectable"].all())
        by[str(pid)] = {"districts": int(len(g)), "projectable": projectable,
                        "districts_projected": int(g["expected_payout"].notna().sum()),
                        # sums over the districts projected (None: the product cannot be projected)
                        "expected_payout": int(g["expected_payout"].fillna(0).sum()) if projectable else None,
                        "guaranteed": int(g["guaranteed"].fillna(0).sum()) if projectable else None}
    return {"as_of": result.as_of.isoformat(), "years": list(cfg.years), "min_years": cfg.min_years,
            "history": dict(cfg.history), "by_product": by}


def _hash_inputs(fingerprints: dict[str, InputFingerprint]) -> dict[str, dict[str, str]]:
    """The manifest's ``inputs``: path, content hash and file count of every configured input,
    as fingerprinted when the run opened it (:func:`steps.fingerprint_inputs`)."""
    return {k: fp.manifest() for k, fp in fingerprints.items() if k != "loss_reference"}


def _run_id(config: RunConfig, fingerprints: dict[str, InputFingerprint], as_of: dt.date | None = None) -> str:
    # content only (not paths): the same config and data give the same run id anywhere;
    # an in-season run's day is part of what it computed
    content = {k: v["sha256"] for k, v in _hash_inputs(fingerprints).items()}
    what = {"config": config.sha256, "inputs": content, "version": __version__}
    if as_of is not None:
        what["as_of"] = as_of.isoformat()
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _write_manifest(result: RunResult, stage: Path, fingerprints: dict[str, InputFingerprint], *,
                    scheduler: str | None, created: str) -> None:
    config = result.config
    files = {f.name: sha256_file(f) for f in sorted(stage.iterdir())}
    result.files = files
    districts = config.inputs.districts
    manifest = {
        "run_id": result.run_id,
        "panen_version": __version__,
        "season": result.season.id,
        "created": created,
        "config": {"path": str(config.path) if config.path else None, "sha256": config.sha256},
        "inputs": _hash_inputs(fingerprints),
        "districts": ({"path": str(districts.path), "id_column": districts.id_column, "layer": districts.layer}
                      if districts is not None else None),
        "adjuster": ({"wording": str(config.adjuster_path), "id": config.adjuster.id,
                      "endorsements": list(config.adjuster.endorsements)} if config.adjuster else None),
        "products": [p.model_dump(mode="json") for p in config.products],
        "covers": [{"id": c.id, "kind": "named_peril" if c.per_policy else "index"} for c in result.covers],
        "counts": result.counts,
        "by_product": json.loads(result.products.to_json(orient="records")),
        "notes": result.notes,
        "data_quality": result.data_quality,
        "as_of": result.as_of.isoformat() if result.as_of is not None else None,
        "on_account": _on_account_totals(result.on_account, deducted=result.settlement is not None
                                         and result.settlement["kind"] != "on_account"),
        "settlement": result.settlement,
        "projection": _projection_totals(result),
        "timings_s": result.timings,
        "outputs": files,
        "environment": {"python": platform.python_version(), **package_versions()},
        "scheduler": scheduler or "local-threads",
    }
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
