"""Command line: ``panen demo | run | backtest | report | validate | triggers | payments``.

Exit codes (README, "Using it"): 0 success; 2 invalid config or input, with every problem
listed (also: an output folder that must not be written, one another run holds, an
unusable scheduler, an input changed mid-run); 1 internal failure. Output piped to a
reader that stops early (``| head``) is not a failure: everything is written before
anything is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import sys
import traceback
import warnings
from pathlib import Path

from panen.engine import __version__
from panen.engine.errors import (ConfigError, DataQualityError, InputError, PanenError, PluginError, Problem,
                                 StoreConflict, StoreError)

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``panen`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_INPUT
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a reader that left is answered below
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            print("panen: internal error (please report it with the traceback below)", file=sys.stderr)
            traceback.print_exc()
            return EXIT_INTERNAL
        # the reader of our stdout left (`panen run ... | head`): the outputs were published
        # before the summary was printed; say nothing more, and keep Python from complaining
        # about the unflushed rest at exit
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (ConfigError, InputError, DataQualityError, StoreError) as exc:
        kind = {ConfigError: "invalid config", InputError: "invalid input",
                DataQualityError: "unusable data", StoreError: "settlement store",
                StoreConflict: "settlement store conflict"}[type(exc)]
        print(f"panen: {kind} ({len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}):", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p}", file=sys.stderr)
        return EXIT_INPUT
    except PluginError as exc:
        print(f"panen: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("panen: interrupted; nothing new was published (unless the interruption came after the new output "
              "was in place)", file=sys.stderr)
        return 130
    except PanenError as exc:
        print(f"panen: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception:  # noqa: BLE001
        print("panen: internal error (please report it with the traceback below)", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (a write to it would raise EPIPE)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return False
    try:
        import select

        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def _folder(value: str) -> Path:
    """An output folder argument; an empty one (``--out "$UNSET"``) is refused before anything happens."""
    if not value.strip():
        raise argparse.ArgumentTypeError("the folder name is empty (an unset shell variable?)")
    return Path(value)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and seconds != float("inf")):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {value!r}")
    return seconds


def _day(value: str) -> dt.date:
    """``--as-of YYYY-MM-DD``: a real calendar day (``2024-02-30`` is refused, exit 2)."""
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {value!r}") from None


def _scheduler_timeout(args) -> float | None:
    """``--scheduler-timeout``, else ``PANEN_SCHEDULER_TIMEOUT``, else the engine's default."""
    if getattr(args, "scheduler_timeout", None) is not None:
        return args.scheduler_timeout
    env = os.environ.get("PANEN_SCHEDULER_TIMEOUT", "").strip()
    if not env:
        return None
    try:
        return _seconds(env)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(Problem(str(exc), key="PANEN_SCHEDULER_TIMEOUT")) from None


def _date(text: str):
    """An ISO date (``--as-of``); argparse turns the ValueError into exit 2 naming the option."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="panen", description="Index-based crop insurance engine.")
    p.add_argument("--version", action="version", version=f"panen {__version__}")
    sub = p.add_subparsers(dest="command")

    force_help = ("replace an existing output folder (only one a previous panen run wrote, with its "
                  "manifest.json, or an empty one)")
    timeout_help = ("seconds to wait for a worker of the --scheduler, also when all workers left mid-run "
                    "(default: $PANEN_SCHEDULER_TIMEOUT, else 180)")

    def batch_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", type=_folder, help="output folder (default: output.dir of the config)")
        sp.add_argument("--force", action="store_true", help=force_help)
        sp.add_argument("--strict", action="store_true", help="fail (exit 2) if any policy row is rejected")
        sp.add_argument("--allow-empty", action="store_true",
                        help="publish even when no policy row is valid (by default that fails with exit 2)")
        sp.add_argument("--scheduler", default=os.environ.get("PANEN_SCHEDULER"),
                        help="Dask distributed scheduler address, e.g. tcp://10.0.0.5:8786 "
                             "(default: $PANEN_SCHEDULER, else local threads)")
        sp.add_argument("--scheduler-timeout", type=_seconds, metavar="SECONDS", help=timeout_help)
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        sp.add_argument("--no-settlement", action="store_true",
                        help="a what-if run: pay every payee in full and record nothing in the settlement store "
                             "(as settlement: false; by default every published batch is recorded)")

    r = sub.add_parser("run", help="settle a season: per-policy payouts for every configured product")
    r.add_argument("config", type=Path)
    batch_options(r)
    r.add_argument("--as-of", type=_day, metavar="YYYY-MM-DD", default=None,
                   help="in-season settlement: use the data up to this day only and settle each cover's guaranteed "
                        "minimum (with settlement:, an on-account batch)")
    r.set_defaults(func=_cmd_run)

    d = sub.add_parser("demo", help="generate the synthetic demo region and run the demo batch")
    d.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    d.add_argument("--data", type=Path, default=None, help="where to generate the demo data (default: ../demo_data beside configs/)")
    batch_options(d)
    d.set_defaults(func=_cmd_demo, as_of=None)

    b = sub.add_parser("backtest", help="replay the configured products over historical seasons (per district, "
                                         "per season), with the seasonal batch's engine")
    b.add_argument("config", type=Path)
    b.add_argument("--years", default="1981-2020",
                   help="harvest years to replay, inclusive: YYYY-YYYY or YYYY (default 1981-2020)")
    b.add_argument("--out", type=_folder, help="output folder (default: output.dir of the config + '-backtest')")
    b.add_argument("--force", action="store_true", help=force_help)
    b.add_argument("--sowing-offset", type=int, default=0, metavar="DAYS",
                   help="anchor of 'anchor: sowing_date' products: season start + DAYS (default 0)")
    b.add_argument("--scheduler", default=os.environ.get("PANEN_SCHEDULER"),
                   help="Dask distributed scheduler address (default: $PANEN_SCHEDULER, else local threads)")
    b.add_argument("--scheduler-timeout", type=_seconds, metavar="SECONDS", help=timeout_help)
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.add_argument("--optimise", "--optimize", dest="optimise", action="store_true",
                   help="search strikes and exits of the redesignable products (weather index) against the loss "
                        "reference (also run when the config has a design: section; needs loss_reference:)")
    b.set_defaults(func=_cmd_backtest)

    rp = sub.add_parser("report", help="rebuild report.html and districts.gpkg from a finished run's output folder "
                                        "(reads the outputs only; nothing is recomputed)")
    rp.add_argument("out_dir", type=_folder, metavar="OUT_DIR", help="output folder of `panen run` or `panen backtest`")
    rp.set_defaults(func=_cmd_report)

    v = sub.add_parser("validate", help="check a config and its inputs' headers (files, columns, units, time "
                                         "step); exit 2 listing every problem")
    v.add_argument("config", type=Path)
    v.set_defaults(func=_cmd_validate)

    t = sub.add_parser("triggers", help="list installed trigger plugins and their parameters, and the installed readers")
    t.set_defaults(func=_cmd_triggers)
    _payments_parser(sub)
    return p


def _payments_parser(sub) -> None:
    """``panen payments list | approve | export | returns | cancel``: the batch life cycle in the settlement store."""
    pay = sub.add_parser("payments", help="the settlement store's batches: list, approve, export to a bank file, "
                                          "apply a bank return file, cancel")
    verbs = pay.add_subparsers(dest="verb", metavar="{list,approve,export,returns,cancel}")

    def store_options(sp: argparse.ArgumentParser) -> None:
        where = sp.add_mutually_exclusive_group()
        where.add_argument("--store", metavar="URL|PATH",
                           help="the settlement store: a file path, sqlite:///PATH or postgresql+psycopg://... "
                                "(default: $PANEN_STORE)")
        where.add_argument("--config", type=Path, metavar="CONFIG",
                           help="the store a `panen run CONFIG` uses: its settlement.url, else "
                                "panen-settlement.sqlite beside its output.dir")
        sp.add_argument("--upgrade", action="store_true",
                        help="migrate a store written by an older panen to this panen's schema (one-way)")

    ls = verbs.add_parser("list", help="the batches, with kind, state, status, totals and failed/re-issued counts")
    store_options(ls)
    ls.add_argument("--season", help="only this season's batches")
    ls.set_defaults(func=_cmd_payments_list)
    ap = verbs.add_parser("approve", help="approve a committed draft batch for export")
    ap.add_argument("batch_id", metavar="BATCH")
    store_options(ap)
    ap.set_defaults(func=_cmd_payments_approve)
    ex = verbs.add_parser("export", help="write an approved batch's bank payment file, with the season's failed "
                                         "payments re-issued (again: the same file)")
    ex.add_argument("batch_id", metavar="BATCH")
    ex.add_argument("--out", type=_folder, required=True, metavar="FILE", help="the payment file to write (CSV)")
    store_options(ex)
    ex.set_defaults(func=_cmd_payments_export)
    rt = verbs.add_parser("returns", help="apply a bank or mobile-money return file (payment_id, status, reason): "
                                          "all rows or none")
    rt.add_argument("file", type=Path, metavar="FILE")
    store_options(rt)
    rt.set_defaults(func=_cmd_payments_returns)
    cn = verbs.add_parser("cancel", help="cancel a draft or approved batch never exported: its payments no longer "
                                         "count as paid")
    cn.add_argument("batch_id", metavar="BATCH")
    store_options(cn)
    cn.set_defaults(func=_cmd_payments_cancel)
    pay.set_defaults(func=lambda args: (pay.print_help(), EXIT_INPUT)[1])


def _payments_store(args):
    """The store ``panen payments`` works on: ``--store``, ``--config``'s, or ``$PANEN_STORE``."""
    from panen.engine.settlement.store import open_store

    url = args.store
    if url is None and args.config is not None:
        url = _config_store_url(args.config)
    if url is None:
        url = os.environ.get("PANEN_STORE") or None
    if url is None:
        raise StoreError(Problem("no settlement store named: pass --store URL|PATH or --config CONFIG, or set "
                                 "PANEN_STORE", key="--store"))
    if "://" not in url and not Path(url).exists():
        # an existing store is worked on, never a new one made by a typo
        raise StoreError(Problem(f"no settlement store at {url} (a run with settlement: makes it)", key="--store"))
    return open_store(url, upgrade=args.upgrade)


def _config_store_url(path: Path) -> str:
    """The store ``panen run CONFIG`` uses: ``settlement.url``, else the default beside ``output.dir``.

    Only those two sections are read and checked (a payments officer need not hold the
    run's inputs); relative folders resolve against the config's folder, as in a run.
    """
    import pydantic

    from panen.engine.config import OutputConfig, SettlementConfig
    from panen.engine.infra.yamlio import load_located_yaml
    from panen.engine.settlement.store import default_store_path

    doc = load_located_yaml(path, what="config")
    data = doc.data if isinstance(doc.data, dict) else {}
    sections = {}
    for name, model in (("settlement", SettlementConfig), ("output", OutputConfig)):
        try:
            sections[name] = model.model_validate(data.get(name) or {})
        except pydantic.ValidationError as exc:
            raise ConfigError([Problem(e["msg"], file=doc.path, key=".".join([name, *map(str, e["loc"])]))
                               for e in exc.errors()]) from None
    settlement, output = sections["settlement"], sections["output"]
    if settlement.url:
        return settlement.url
    if output.dir is None:
        raise ConfigError(Problem("the config names no output.dir, so no default settlement store: pass --store",
                                  file=doc.path, key="output.dir"))
    folder = output.dir if output.dir.is_absolute() else doc.path.parent / output.dir
    return str(default_store_path(folder.resolve()))


def _cmd_payments_list(args) -> int:
    with _payments_store(args) as store:
        table = store.batch_statuses(args.season)
    if not len(table):
        print("no batches" + (f" of season {args.season}" if args.season else ""))
        return EXIT_OK
    head = (f"{'season':<10} {'#':>3} {'batch':<16} {'kind':<10} {'state':<9} {'status':<9} {'payments':>8} "
            f"{'amount [Rp]':>15} {'confirmed':>9} {'failed':>6} {'reissued':>8} {'recover [Rp]':>13}  note")
    print(head)
    print("-" * len(head))
    for r in table.to_dict("records"):
        note = []
        if r["corrects"]:
            note.append(f"corrects {r['corrects']}")
        if r["exported_with"]:
            note.append(f"exported with {r['exported_with']}")
        if r["cancelled"]:
            note.append(f"{r['cancelled']:,} cancelled")
        print(f"{r['season_id']:<10} {r['sequence']:>3} {r['batch_id']:<16} {r['kind']:<10} {r['state']:<9} "
              f"{r['status']:<9} {r['payments']:>8,} {r['paid']:>15,} {r['confirmed']:>9,} {r['failed']:>6,} "
              f"{r['reissued']:>8,} {r['recoveries']:>13,}  {'; '.join(note)}")
    return EXIT_OK


def _cmd_payments_approve(args) -> int:
    with _payments_store(args) as store:
        status = store.approve(args.batch_id)
    print(f"batch {args.batch_id}: {status}")
    return EXIT_OK


def _cmd_payments_export(args) -> int:
    from datetime import datetime, timezone

    with _payments_store(args) as store:
        res = store.export(args.batch_id, args.out,
                           created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    what = "exported" if res.new else "already exported; the same file written again"
    print(f"batch {res.batch_id} {what}: {res.payments:,} payment(s), Rp {res.amount:,}, of which "
          f"{res.reissued:,} re-issue(s) of failed payments")
    print(f"{res.path}  sha256 {res.sha256}")
    return EXIT_OK


def _cmd_payments_returns(args) -> int:
    with _payments_store(args) as store:
        res = store.apply_returns(args.file)
    print(f"{args.file}: {res.confirmed:,} payment(s) confirmed, {res.failed:,} failed (re-issued by the next "
          f"export), {res.unchanged:,} unchanged")
    for batch_id in res.batches_confirmed:
        print(f"batch {batch_id}: confirmed")
    return EXIT_OK


def _cmd_payments_cancel(args) -> int:
    with _payments_store(args) as store:
        status = store.cancel(args.batch_id)
    print(f"batch {args.batch_id}: {status}; its payments no longer count as paid")
    return EXIT_OK


def _cmd_report(args) -> int:
    from panen.engine.infra.outdir import OutputLock, recover
    from panen.engine.report.html import write_reports

    out = Path(os.path.abspath(args.out_dir)).resolve()
    if out.parent.is_dir():
        # not while a run publishes into it, and after rolling back what a killed run left
        with OutputLock(out):
            for note in recover(out):
                print(f"panen: {note}", file=sys.stderr)
            paths = write_reports(out)
    else:
        paths = write_reports(out)  # refused: the folder does not exist
    for path in paths.values():
        print(path)
    return EXIT_OK


def _cmd_validate(args) -> int:
    from panen.engine.config import load_config

    from panen.engine.pipeline.covers import IndexCover, covers_of
    from panen.engine.pipeline.steps import check_inputs

    cfg = load_config(args.config)
    infos = check_inputs(cfg)  # every input's header, and each product's check of its inputs
    covers = [f"{p.id} ({p.trigger})" for p in cfg.products]
    if cfg.adjuster is not None:
        covers.append(f"{cfg.adjuster.id} (named-peril wording)")
    print(f"{args.config}: OK — season {cfg.season.id}, {len(covers)} cover(s): " + ", ".join(covers))
    for name, info in sorted(infos.items()):
        what = [info.kind]
        if info.units:
            what.append(info.units)
        if info.frequency:
            what.append({"day": "daily", "dekad": "dekadal", "month": "monthly"}.get(info.frequency, info.frequency))
        if info.time_range is not None:
            what.append(f"{info.time_range[0]}..{info.time_range[1]}")
        if info.zones is not None:
            what.append(f"{len(info.zones)} districts")
        print(f"  inputs.{name}: " + ", ".join(what))
    for c in covers_of(cfg):  # which phases the data can settle, and how (monthly data: totals only)
        if isinstance(c, IndexCover):
            for phase, how in c.plugin.settles(c.params, {n: infos[n] for n in c.inputs() if n in infos}).items():
                print(f"  {c.id}.{phase}: {how}")
    return EXIT_OK


def _cmd_triggers(args) -> int:
    from panen.engine.registry import readers, triggers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = triggers()
        inputs = readers()
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    for name, cls in sorted(table.items()):
        print(f"{name}  ({cls.__module__}.{cls.__qualname__})")
        if cls.description:
            print(f"    {cls.description}")
        print(f"    inputs: {', '.join(cls.inputs) or 'none'}")
        for pname, ptype, desc in cls.parameters():
            print(f"    - {pname}: {ptype}" + (f" — {desc}" if desc else ""))
    print()
    print("readers (the keys under inputs:):")
    for name, cls in sorted(inputs.items()):
        print(f"{name}  ({cls.__module__}.{cls.__qualname__})")
        if cls.description:
            print(f"    {cls.description}")
        for fname, f in cls.Spec.model_fields.items():
            value = f.get_default(call_default_factory=True)
            default = "" if f.is_required() else f" (default {value!r})"
            print(f"    - {fname}" + (f" — {f.description}" if f.description else "") + default)
    return EXIT_OK


def _cmd_run(args) -> int:
    from panen.engine.config import load_config

    cfg = load_config(args.config)
    return _run(cfg, args)


def _cmd_demo(args) -> int:
    from panen.datasets.synthetic import generate_demo_region

    from panen.engine.config import load_config

    data = args.data or args.config.resolve().parent.parent / "demo_data"
    if not args.quiet:
        print(f"generating the synthetic demo region in {data} ...", file=sys.stderr)
    generate_demo_region(data)
    # like every run, the demo records its batches in the settlement store beside its output
    # folder (out/panen-settlement.sqlite): first the in-season on-account batch of what the
    # data up to DEMO_AS_OF already guarantee (into OUT-inseason), then the final batch, which
    # pays only what is still owed. Running it again shows a rerun is the same two batches:
    # the same payments, recorded once, never paid twice
    cfg = load_config(args.config)
    if not args.no_settlement:
        out = Path(args.out or cfg.output.dir)
        _run(cfg, args, out=out.with_name(f"{out.name}-inseason"), as_of=DEMO_AS_OF)
    return _run(cfg, args)


#: The day of the demo's in-season (on-account) run: mid-season of its 2023/24 wet season.
DEMO_AS_OF = dt.date(2024, 1, 15)


def _run(cfg, args, *, out=None, as_of=None) -> int:
    from panen.engine.pipeline.run import run_batch

    out = out or args.out or cfg.output.dir
    as_of = as_of if as_of is not None else getattr(args, "as_of", None)
    if out is None:
        raise ConfigError("no output folder: pass --out DIR or set output.dir in the config")
    if args.no_settlement:  # a what-if run never enters the record of what was paid
        cfg = dataclasses.replace(cfg, settlement=None)
    progress = not args.quiet and sys.stderr.isatty()
    timeout = _scheduler_timeout(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            res = run_batch(cfg, out, force=args.force, strict=args.strict, scheduler=args.scheduler,
                            progress=progress, scheduler_timeout=timeout,
                            allow_empty=args.allow_empty, as_of=as_of)
        finally:
            _print_warnings(caught)
    _print_summary(res)
    return EXIT_OK


def _print_warnings(caught) -> None:
    for w in caught:
        if issubclass(w.category, UserWarning):
            print(f"warning: {w.message}", file=sys.stderr)


def _cmd_backtest(args) -> int:
    from panen.engine.pipeline.backtest import backtest, load_backtest_config, parse_years

    years = parse_years(args.years)  # bad --years: ConfigError, exit 2, before anything is read
    cfg = load_backtest_config(args.config)
    out = args.out
    if out is None:
        if cfg.output.dir is None:
            raise ConfigError("no output folder: pass --out DIR or set output.dir in the config")
        out = cfg.output.dir.parent / f"{cfg.output.dir.name}-backtest"
    progress = not args.quiet and sys.stderr.isatty()
    timeout = _scheduler_timeout(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            res = backtest(cfg, years, out_dir=out, force=args.force, scheduler=args.scheduler, progress=progress,
                           sowing_offset=args.sowing_offset, optimise=args.optimise, scheduler_timeout=timeout)
        finally:
            _print_warnings(caught)
    c = res.counts
    print(f"backtest {years[0]}-{years[1]}: {c['products']} product(s) × {c['districts']} district(s) × "
          f"{c['seasons']} season(s); {c['district_seasons_paid']:,} district-seasons paid, "
          f"{c['district_seasons_flagged']:,} flagged (not assessable)")
    port = res.portfolio
    unit = "Rp" if (port["exposure_basis"] == "register").all() else "Rp per 1M/district"
    print(f"{'product':<12} {'seasons paid':>12} {'mean payout rate':>17} {'max payout rate':>16} "
          f"{'mean payout [' + unit + ']':>22}")
    for pid, d in port.groupby("product_id", sort=True):
        print(f"{pid:<12} {int((d['payout'] > 0).sum()):>12} {d['payout_rate'].mean():>17.2%} "
              f"{d['payout_rate'].max():>16.2%} {d['payout'].mean():>22,.2f}")
    _print_pricing_summary(res)
    print(f"outputs: {res.out_dir}")
    return EXIT_OK


def _print_pricing_summary(res) -> None:
    """Burn cost, gross rate, 1-in-10 payout, POD and HE per product; the chosen designs."""
    s = getattr(res, "summary", None)
    if s is None or not len(s):
        return

    def f(x, fmt):
        return "n/a" if x is None or x != x else fmt.format(x)  # NaN: not computed or undefined

    print()
    unit = "Rp" if res.tail is None or (res.tail["exposure_basis"] == "register").all() else "Rp per 1M/district"
    head = (f"{'product':<12} {'burn cost':>10} {'gross rate':>11} {'1-in-10 payout [' + unit + ']':>32} "
            f"{'POD':>6} {'HE':>6}")
    print(head)
    print("-" * len(head))
    for r in s.to_dict("records"):
        print(f"{r['product_id']:<12} {f(r.get('burn_cost'), '{:.2%}'):>10} "
              f"{f(r.get('gross_premium_rate'), '{:.2%}'):>11} {f(r.get('payout_1in10'), '{:,.0f}'):>32} "
              f"{f(r.get('pod'), '{:.2f}'):>6} {f(r.get('hedging_effectiveness'), '{:.2f}'):>6}")
    if res.design is not None:
        for pid, result in res.design.results.items():
            for c in result.chosen.to_dict("records"):
                phases = ", ".join(f"{n} strike {c[n + '.strike']:g}"
                                   + (f" exit {c[n + '.exit']:g}" if c[n + ".exit"] == c[n + ".exit"] else "")
                                   for n in result.phases.get(pid, []))
                print(f"design {pid} [{c['zone']}]: {phases} → gross rate {c['gross_premium_rate']:.2%}, "
                      f"HE {c['hedging_effectiveness']:.2f}, POD {c['pod']:.2f}")
            for u in result.unresolved.to_dict("records"):
                print(f"design {pid} [{u['zone']}]: none — {u['reason']}")


def _print_summary(res) -> None:
    c = res.counts
    print(f"run {res.run_id}: {c['policies_valid']:,} policies settled, {c['policies_rejected']:,} rejected, "
          f"{c.get('policies_withheld', 0):,} withheld for missing data, {c.get('policies_referred', 0):,} referred "
          f"to a person ({c.get('plots_referred', 0):,} plots)")
    if res.as_of is not None:
        print(f"in season, as of {res.as_of.isoformat()}: the net payouts below are the guaranteed minimum "
              f"(what no later data can lower)")
    header = (f"{'product':<10} {'policies':>9} {'districts':>9} {'triggered':>9} {'paid':>8} {'withheld':>8} "
              f"{'referred':>8} {'sum insured [Rp]':>18} {'net payout [Rp]':>16} {'paid % SI':>10}")
    print(header)
    print("-" * len(header))
    for r in res.products.itertuples():
        ratio = r.net_payout / r.sum_insured if r.sum_insured else 0.0
        print(f"{r.product_id:<10} {r.policies:>9,} {r.districts:>9} {r.districts_triggered:>9} {r.policies_paid:>8,} "
              f"{r.policies_withheld:>8,} {r.policies_referred:>8,} {r.sum_insured:>18,} {r.net_payout:>16,} {ratio:>10.2%}")
    if "premium" in res.products.columns:
        for r in res.products.dropna(subset=["premium"]).itertuples():
            print(f"{r.product_id} premium Rp {int(r.premium):,} = government subsidy Rp {int(r.subsidy):,} "
                  f"+ farmers' share Rp {int(r.farmer_share):,}")
    b = getattr(res, "basis_risk", None)
    if b is not None and len(b):
        print()
        print("index payouts vs AUTP adjusted losses, per farmer (basis risk):")
        head = (f"{'product':<10} {'farmers':>8} {'POD':>6} {'FAR':>6} {'TS':>6} {'unpaid loss':>12} "
                f"{'unpaid [Rp]':>16} {'balance':>8} {'Spearman':>9}")
        print(head)
        print("-" * len(head))
        for r in b.itertuples():
            def f(x, fmt="{:.2f}"):
                return "n/a" if x != x else fmt.format(x)  # NaN: undefined (e.g. no losses)
            print(f"{r.product_id:<10} {int(r.farmers):>8,} {f(r.pod):>6} {f(r.far):>6} {f(r.threat_score):>6} "
                  f"{f(r.unpaid_loss_share, '{:.0%}'):>12} {int(r.unpaid_loss_amount):>16,} {f(r.payout_balance):>8} "
                  f"{f(r.spearman):>9}")
    st = getattr(res, "settlement", None)
    if st:
        print(f"settlement batch {st['batch_id']} ({st['kind']}): pays Rp {st['paid']:,} in {st['payments']:,} "
              f"payment(s) (payments.csv) of Rp {st['due']:,} due; Rp {st['recovered']:,} to recover from "
              f"{st['recoveries']:,} payee(s) (recoveries.csv)")  # the same line for a rerun of the same batch
    print(f"outputs: {res.out_dir}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
