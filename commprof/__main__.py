"""Command line: ``python -m commprof report TRACE_DIR`` and ``python -m commprof demo``.

Exit codes: 0 done (warnings allowed), 2 the input cannot be used (one line on stderr), 1 a bug.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .errors import InputError, NoUsableTraces
from .formats.files import COMPARE, COMPARE_DIR, COMPARE_HTML, DEMO_DIR, HTML, MERGED, REPORT_DIR
from .render import FORMATS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m commprof",
                                description="Find, explain and fix the communication overhead of "
                                            "PyTorch distributed training.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report", help="analyze a folder of per-rank traces and write a report")
    r.add_argument("trace_dir", help="folder with one Kineto trace per rank (or one trace file)")
    r.add_argument("-o", "--out", help=f"output folder (default: TRACE_DIR/{REPORT_DIR})")
    r.add_argument("--format", default="text,json,html,perfetto",
                   help="comma-separated: " + ", ".join(f"{f.name} ({f.help})" for f in FORMATS.values()))
    r.add_argument("--steps", help="ProfilerStep numbers to analyze, A:B (A inclusive, B exclusive) or N")
    r.add_argument("--ranks", help="ranks to load, e.g. 0,1,4-7")
    r.add_argument("--cycle", type=int, default=None, metavar="N",
                   help="a folder of several profiler cycles per rank (repeating schedule, tensorboard_trace_handler, "
                        "torchtitan's iteration_N folders): analyze cycle N (1 = first; default: the last complete "
                        "one)")
    r.add_argument("--per-rank", action="store_true",
                   help="ranks that cannot have run together: per-rank figures only, no cross-rank figure "
                        "(instead of refusing them)")
    r.add_argument("--max-bytes", type=int, default=None,
                   help="refuse trace files that are (or decompress to) more bytes than this (default 8 GiB)")
    r.add_argument("--link-gbps", type=float, default=None,
                   help="peak link bandwidth per GPU, GB/s one direction (e.g. 25 for 200 Gbit/s InfiniBand); "
                        "default: the NVLink/PCIe figure of a known GPU")
    r.add_argument("--step-ms", type=float, default=None,
                   help="the training step's time outside the profiler, ms (e.g. from your training log): calibrates "
                        "the what-ifs of plain torch.profiler traces, which cannot record it")
    r.add_argument("--drift-pct", type=float, default=None, metavar="PCT", help=DRIFT_HELP)
    r.add_argument("--comm-kernel", action="append", default=[], metavar="[OP=]REGEX",
                   help="GPU kernels that move data between ranks beyond the built-in table (NCCL, DeepEP, NVSHMEM, "
                        "symmetric memory, custom all-reduce, userbuffers, MSCCL++, oneCCL): a regular expression "
                        "searched in kernel names, optionally prefixed with the operation, e.g. "
                        "'all_to_all=my_ep::dispatch'; repeat for more")
    r.add_argument("--whatif", action="append", default=[], choices=["fsdp", "ddp"],
                   help="show a what-if in the text report even when the run does not call for it: fsdp (a DDP run "
                        "-> FSDP2: memory and step time under fully_shard), ddp (an FSDP2 run -> DDP)")
    r.add_argument("--perfetto-max-mb", type=float, default=64.0,
                   help=f"leave {MERGED} out when it would be larger than this many MB of JSON (default 64; 0: no "
                        "limit)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="parse the ranks' files on a Dask cluster (scheduler address, e.g. tcp://host:8786; "
                        "needs the [dask] extra and the same paths on the workers)")
    _compare_args(sub.add_parser("compare", help="compare two runs: did the change help, as much as predicted?"))
    d = sub.add_parser("demo", help="train a small DDP model on CPU (gloo, 2 processes), trace it and report")
    d.add_argument("--out", default=DEMO_DIR, help=f"folder for the traces (default: ./{DEMO_DIR})")
    d.add_argument("--nproc", type=int, default=2, help="number of processes (default 2)")
    from .workloads.demo import CLI_STEPS

    d.add_argument("--steps", type=int, default=CLI_STEPS,
                   help=f"training steps (default {CLI_STEPS}; steps 2-4 are profiled, the steps after them measure "
                        "the run's noise and calibrate the what-ifs)")
    return p


DRIFT_HELP = ("the standard deviation of a run's mean step from run to run on your platform, %% of the step (default "
              "5, measured on a small shared CPU host): the band of the traced settings spans the difference of two "
              "such runs (2 x 1.41 x PCT), as does compare's verdict on one run per setting")


def _compare_args(c: argparse.ArgumentParser) -> None:
    """``compare``'s arguments."""
    c.add_argument("before", help="folder of the run before the change; FOLDER@N: its profiler cycle N")
    c.add_argument("after", help="folder of the run after the change; FOLDER@N: its profiler cycle N (two cycles of "
                                 "one run: compare DIR@1 DIR@2)")
    c.add_argument("-o", "--out", help=f"output folder (default: AFTER/{COMPARE_DIR})")
    c.add_argument("--format", default="text,json,html", help=f"comma-separated: text, json ({COMPARE}), html "
                                                                f"({COMPARE_HTML})")
    c.add_argument("--step-ms", type=float, nargs=2, default=None, metavar=("BEFORE_MS", "AFTER_MS"),
                   help="the step times outside the profiler, where the files do not record them (plain traces)")
    c.add_argument("--also-before", action="append", default=[], metavar="FOLDER",
                   help="another run of BEFORE's setting (repeatable): the verdict then measures the drift between "
                        "runs instead of assuming it")
    c.add_argument("--also-after", action="append", default=[], metavar="FOLDER",
                   help="another run of AFTER's setting (repeatable)")
    c.add_argument("--confidence", type=float, default=0.95, help="of the verdict's interval (default 0.95)")
    c.add_argument("--drift-pct", type=float, default=None, metavar="PCT",
                   help="with one run per setting: " + DRIFT_HELP)


def _drift(pct: float | None) -> float:
    from .analysis.uncertainty.maths import RUN_DRIFT_SD_PCT

    if pct is None:
        return RUN_DRIFT_SD_PCT
    if not 0 <= pct <= 100:
        raise InputError(f"--drift-pct {pct}", "the drift is a percentage of the step in [0, 100]")
    return pct


def parse_steps(spec: str | None) -> tuple[int, ...] | None:
    """``"3:6"`` -> (3, 4, 5); ``"4"`` -> (4,); ``None`` -> all steps."""
    if not spec:
        return None
    if ":" in spec:
        a, b = spec.split(":", 1)
        lo = int(a) if a.strip() else 0
        hi = int(b) if b.strip() else 1 << 31
        if hi <= lo:
            raise ValueError(f"A:B is the steps A to B - 1, so B must be above A ({spec} has none)")
        return tuple(range(lo, min(hi, lo + 1_000_000)))
    return (int(spec),)


def cycle_spec(spec: str) -> tuple[Path, int | None]:
    """``"DIR@2"`` -> (DIR, 2): profiler cycle 2 of the folder; a path that exists as written is taken whole."""
    head, sep, tail = spec.rpartition("@")
    if sep and tail.isdigit() and not Path(spec).exists():
        return Path(head), int(tail)
    return Path(spec), None


def parse_ranks(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def cmd_report(args: argparse.Namespace) -> int:
    from . import analyze
    from .engine import load
    from .reader.decode.jsonio import DEFAULT_MAX_BYTES
    from .render import text
    from .render.write import write_outputs

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InputError(args.format, f"unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    try:
        steps = parse_steps(args.steps)
    except ValueError as e:
        why = str(e) if str(e).startswith("A:B") else "--steps must be N or A:B with integers"
        raise InputError(args.steps, why) from None
    try:
        ranks = parse_ranks(args.ranks) if args.ranks else None
    except ValueError:
        raise InputError(args.ranks, "--ranks must look like 0,1,4-7") from None
    drift = _drift(args.drift_pct)
    trace_dir = Path(args.trace_dir)
    mon = _monitor(trace_dir)
    from .analysis.production.diagnosis import analyze_monitor

    if mon is not None and not _has_traces(trace_dir):
        return _monitor_only(analyze_monitor(mon), Path(args.out) if args.out else trace_dir / REPORT_DIR, formats)
    # the map step computes the per-rank analyses for the same steps (commprof.analysis.perrank)
    kwargs = dict(ranks=ranks, max_bytes=args.max_bytes or DEFAULT_MAX_BYTES, steps=steps,
                  comm_kernels=args.comm_kernel, cycle=args.cycle, per_rank=args.per_rank)
    try:
        run = _load_run(load, trace_dir, kwargs, args)
    except NoUsableTraces as e:
        if mon is None:
            raise
        # a note or metrics file beside the monitor's: the monitor's report still stands, the files named
        skipped = tuple(f"skipped {line}, not read as a trace" for line in e.skipped)
        for line in skipped:
            print(f"commprof: {line}", file=sys.stderr)
        mon = dataclasses.replace(mon, warnings=(*mon.warnings, *skipped))
        return _monitor_only(analyze_monitor(mon), Path(args.out) if args.out else trace_dir / REPORT_DIR, formats)
    if args.link_gbps is not None and not args.link_gbps > 0:
        raise InputError(args.link_gbps, "--link-gbps must be a positive number of GB/s")
    if args.step_ms is not None and not args.step_ms > 0:
        raise InputError(args.step_ms, "--step-ms must be a positive number of milliseconds")
    rep = analyze(run, steps=steps, link_gbps=args.link_gbps, step_ms=args.step_ms, whatif=args.whatif,
                  drift_pct=drift)
    default_out = (trace_dir if trace_dir.is_dir() else trace_dir.parent) / REPORT_DIR
    notes: list[str] = []
    written = write_outputs(rep, Path(args.out) if args.out else default_out, formats,
                            perfetto_max_bytes=int(args.perfetto_max_mb * 1e6) if args.perfetto_max_mb > 0 else None,
                            notes=notes)
    for line in notes:
        print(f"commprof: {in_flags(line)}", file=sys.stderr)
    if "text" in formats:
        sys.stdout.write(text.render(rep, written, color=sys.stdout.isatty()))
    return 0


def _load_run(load, trace_dir: Path, kwargs: dict, args: argparse.Namespace):
    if not args.dask:
        return _load_with_progress(load, trace_dir, kwargs, args.quiet)
    client = _dask_client(args.dask)
    try:
        return _load_with_progress(load, trace_dir, dict(kwargs, executor=client.get_executor()), args.quiet)
    finally:
        client.close()


def _has_traces(path: Path) -> bool:
    from .reader.discover import is_trace_name

    return path.is_file() or any(p.is_file() and is_trace_name(p.name) for p in path.iterdir())


def _monitor(path: Path):
    """The monitor's files in the folder, if it has any."""
    from .reader.monitor import is_monitor_folder, read_monitor

    if not is_monitor_folder(path):
        return None
    return read_monitor(path)


def _monitor_only(mon, out: Path, formats: list[str]) -> int:
    """A folder with the monitor's files and no traces: the hang verdict and the slow ranks."""
    from .render.families import monitor as render
    from .render.write import write_monitor_only

    written = write_monitor_only(mon, out, formats)
    if "text" in formats:
        sys.stdout.write(render.text_only(mon, written))
    return 0


def _dask_client(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--dask", "needs Dask: pip install 'commprof[dask]'") from None
    try:
        return Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as e:
        raise InputError(address, f"no Dask scheduler reachable there ({type(e).__name__}: {e})") from None


def _load_with_progress(load, path: Path, kwargs: dict, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return load(path, **kwargs)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("parsing traces"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), transient=True) as prog:
        task = prog.add_task("", total=None)

        def cb(done: int, total: int, name: str) -> None:
            prog.update(task, completed=done, total=total, description=name[:40])

        return load(path, progress=cb, **kwargs)


def cmd_compare(args: argparse.Namespace) -> int:
    """Analyze two runs and compare them."""
    from . import analyze, load
    from .analysis.compare import compare, shares_something
    from .render import compare as out
    from .render.write import write_comparison

    formats = {f.strip() for f in args.format.split(",") if f.strip()}
    if not formats or formats - {"text", "json", "html"}:
        raise InputError(args.format, "--format takes text, json and html")
    steps_ms = args.step_ms or (None, None)
    if any(x is not None and not x > 0 for x in steps_ms):
        raise InputError(args.step_ms, "--step-ms takes two positive numbers of milliseconds")
    reps = []
    drift = _drift(args.drift_pct)
    for spec, ms in ((args.before, steps_ms[0]), (args.after, steps_ms[1])):
        path, cycle = cycle_spec(spec)
        if not path.exists():
            raise InputError(path, "no such file or folder")
        reps.append(analyze(load(path, cycle=cycle), step_ms=ms, drift_pct=drift))
    before, after = reps
    if not shares_something(before, after):
        raise InputError(f"{args.before} and {args.after}", "the two runs share nothing to compare (no rank number "
                                                            "and no collective operation in common)")
    if not 0.5 <= args.confidence < 1:
        raise InputError(f"--confidence {args.confidence}", "the confidence is a fraction in [0.5, 1)")
    also = []
    for specs in (args.also_before, args.also_after):
        runs = []
        for spec in specs:
            path, cycle = cycle_spec(spec)
            if not path.exists():
                raise InputError(path, "no such file or folder")
            runs.append(load(path, cycle=cycle))
        also.append(runs)
    comp = compare(before, after, also[0], also[1], args.confidence, drift)
    after_dir = cycle_spec(args.after)[0]
    target = Path(args.out) if args.out else (after_dir if after_dir.is_dir() else after_dir.parent) / COMPARE_DIR
    written = write_comparison(comp, target, formats)
    if "text" in formats:
        sys.stdout.write(out.text(comp, written))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train the demo workload (DDP over gloo), trace it, and report."""
    from . import analyze, load
    from .render import text
    from .render.write import write_outputs
    from .workloads.demo import DEFAULTS, launch

    out, nproc, steps = Path(args.out), args.nproc, args.steps
    if nproc < 1 or steps < 5:
        raise InputError(f"--nproc {nproc} --steps {steps}", "the demo needs --nproc >= 1 and --steps >= 5")
    print(f"commprof demo: training a {DEFAULTS['layers']}-layer MLP with DDP over gloo in {nproc} CPU "
          f"processes for {steps} steps (steps 2-4 profiled) ...", file=sys.stderr, flush=True)
    launch(out, nproc=nproc, steps=steps)
    rep = analyze(load(out))
    written = write_outputs(rep, out / REPORT_DIR, ["json", "html", "perfetto"])
    sys.stdout.write(text.render(rep, written, color=sys.stdout.isatty()))
    print(f"\nnext: python -m commprof report {out}   (or open {out / REPORT_DIR / HTML})")
    return 0


# the library's errors and notes name its parameters; the command line names its flags
_FLAGS = (("comm_kernels=", "--comm-kernel"), ("cycle=", "--cycle "), ("per_rank=True", "--per-rank"),
          ("max_bytes=", "--max-bytes"), ("perfetto_max_bytes=", "--perfetto-max-mb"), ("out_dir=", "-o"))


def in_flags(line: str) -> str:
    """A library message in the command line's words."""
    import re

    return re.sub(r"(?<![\w.])(" + "|".join(re.escape(p) for p, _f in _FLAGS) + ")", lambda m: dict(_FLAGS)[m[1]],
                  line)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "report":
            return cmd_report(args)
        if args.cmd == "demo":
            return cmd_demo(args)
        return cmd_compare(args)  # argparse allows no other command
    except InputError as e:
        where = in_flags(e.path) if e.path in dict(_FLAGS) else e.path  # a file's name stays as it is
        print(f"commprof: error: {where}: {in_flags(e.problem)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("commprof: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
