"""Command line: ``panen demo | run | backtest | report | validate | triggers``.

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

    r = sub.add_parser("run", help="settle a season: per-policy payouts for every configured product")
    r.add_argument("config", type=Path)
    batch_options(r)
    r.set_defaults(func=_cmd_run)

    d = sub.add_parser("demo", help="generate the synthetic demo region and run the demo batch")
    d.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    d.add_argument("--data", type=Path, default=None, help="where to generate the demo data (default: ../demo_data beside configs/)")
    batch_options(d)
    d.set_defaults(func=_cmd_demo)

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
    return p


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

    from panen.engine.config import SettlementConfig, load_config

    data = args.data or args.config.resolve().parent.parent / "demo_data"
    if not args.quiet:
        print(f"generating the synthetic demo region in {data} ...", file=sys.stderr)
    generate_demo_region(data)
    cfg = load_config(args.config)
    if cfg.settlement is None:
        # the demo records its batch in the settlement store beside its output folder
        # (out/panen-settlement.sqlite), so that running it again shows a rerun is the same
        # batch: the same payments, recorded once, never paid twice
        cfg = dataclasses.replace(cfg, settlement=SettlementConfig())
    return _run(cfg, args)


def _run(cfg, args) -> int:
    from panen.engine.pipeline.run import run_batch

    out = args.out or cfg.output.dir
    if out is None:
        raise ConfigError("no output folder: pass --out DIR or set output.dir in the config")
    progress = not args.quiet and sys.stderr.isatty()
    timeout = _scheduler_timeout(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            res = run_batch(cfg, out, force=args.force, strict=args.strict, scheduler=args.scheduler,
                            progress=progress, scheduler_timeout=timeout,
                            allow_empty=args.allow_empty)
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
