"""Framework comparison studies: run a matrix through pytest in shards, merge, compare on a page.

    python -m reports.study --frameworks torch,jax --precisions default,highest,high \\
        --batches 1,8,32 --seeds 5 --timing 3 --shards 2 -o reports/out/study
    python -m reports.study --shard 1/2 -o out/   # one shard, e.g. on another machine
    python -m reports.study compare out/shard-*.json -o reports/out/study
    python -m reports.study --depths 2-8 --width 64 --batches 8 --seeds 3 -o reports/out/depth

The output folder gets results.json (merged), report.html (the standard report) and study.html
(the comparison page), and with --shards K the shards' files. A study runs in a scratch folder
beside it and moves its files in only when complete, so a failed study leaves an earlier one
whole; Ctrl-C keeps the items finished (the rest `not run`), in the output folder when it holds
no earlier study, else in DIR.interrupted beside it. Failing items are the study's findings,
not an error: the exit status is 0 when every shard ran and wrote its results, 2 on a usage
error or Ctrl-C, else pytest's own.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reports import encoding, merging, reading
from reports.files import same_file, write_texts

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT / "tests" / "test_conformance.py"
DEFAULT_OUT = ROOT / "reports" / "out" / "study"
PASSED_THROUGH = ("frameworks", "adapter", "all_idioms", "require_frameworks", "devices", "dtypes",
                  "precisions", "pairs", "activations", "cases", "sizes", "batches", "seeds",
                  "timing", "deterministic", "adapter_timeout")
"""The conformance options (tests/engine/options.py) a study hands to pytest as given."""
RAN = (0, 1, 5)
"""pytest exit statuses of a shard that ran: all passed, some failed, none in this shard."""
INTERRUPTED = 2
"""The exit status of an interrupted study: pytest's own."""
PAGES = ("results.json", "report.html", "study.html")
"""What a study writes into its output folder, besides its shards' results files."""


def main(argv: list[str] | None = None) -> int:
    """Run a study, one shard of it, or (`compare FILES…`) render results already written."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        return compare(compare_parser().parse_args(argv[1:]))
    argv, extra = split_extra(argv)
    parser = study_parser()
    args = parser.parse_args(argv)
    if args.shards < 1:
        parser.error("--shards must be 1 or more")
    if args.shard is not None and args.shards != 1:
        parser.error("give --shards K (run all K here) or --shard I/K (run one), not both")
    args.adapter = [adapter_spec(a, Path.cwd()) for a in args.adapter] if args.adapter else None
    if args.depths is not None:
        if args.sizes is not None:
            parser.error("--depths sets --sizes; give one")
        if args.width < 1:
            parser.error("--width must be 1 or more")
        args.sizes = depth_sizes(args.depths, args.width)
    try:
        return study(args, extra)
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's results were saved
        print("study: interrupted twice; nothing saved", file=sys.stderr)
        return INTERRUPTED


def split_extra(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split off what follows `--`: more pytest arguments, e.g. `-- -k sigmoid`."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def study_parser() -> argparse.ArgumentParser:
    """Return the parser of `python -m reports.study [options] [-- pytest args]`."""
    p = argparse.ArgumentParser(
        prog="python -m reports.study", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__)
    m = p.add_argument_group("the matrix (passed to pytest as the conformance options)")
    m.add_argument("--frameworks", help="e.g. torch,jax ('' for none, with --adapter)")
    m.add_argument("--adapter", action="append", metavar="PKG.MODULE:OBJECT",
                   help="also study this adapter (repeatable); a path/to/file.py or a module "
                        "is found from the working directory, as pytest started here finds it")
    m.add_argument("--all-idioms", action="store_true", help="add the slow idioms (eager JAX)")
    m.add_argument("--require-frameworks", action="store_true",
                   help="fail, not skip, items of a framework or device that is missing")
    for name, example in (("devices", "cpu,cuda"), ("dtypes", "float32,float64"),
                          ("precisions", "default,highest,high"), ("pairs", "all"),
                          ("activations", "relu-relu-sigmoid"), ("cases", "seed,small"),
                          ("sizes", "784x16x10,784x64x32x10"), ("batches", "1,8,32")):
        m.add_argument(f"--{name}", help=f"e.g. {example}")
    m.add_argument("--depths", type=depths_arg, metavar="A-B",
                   help="a depth study: networks of A…B layers, 784-W-…-W-10 with W = --width "
                        "(sets --sizes), e.g. 2-8")
    m.add_argument("--width", type=int, default=64, metavar="W",
                   help="hidden units per layer of --depths (default 64)")
    m.add_argument("--seeds", type=int, metavar="N", help="seeds 0…N−1")
    m.add_argument("--timing", type=int, default=3, metavar="R",
                   help="time each adapter call R more times after a warm-up (default 3; 0: off)")
    m.add_argument("--deterministic", action="store_true",
                   help="fail an item whose calls differ at all, even within the bound")
    m.add_argument("--adapter-timeout", type=float, metavar="SECONDS",
                   help="fail a group whose adapter call takes longer (pytest's default: 600)")
    r = p.add_argument_group("how it runs")
    r.add_argument("-n", "--workers", default="auto",
                   help="pytest-xdist workers per shard (default auto; 0: no xdist)")
    r.add_argument("--shards", type=int, default=1, metavar="K",
                   help="run as K pytest invocations, one --shard i/K each, then merge them")
    r.add_argument("--shard", metavar="I/K", type=shard_arg,
                   help="run only shard I of K and write its results, to merge later with "
                        "`python -m reports.study compare`")
    r.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help=f"output folder (default {DEFAULT_OUT.relative_to(ROOT)})")
    return p


def compare_parser() -> argparse.ArgumentParser:
    """Return the parser of `python -m reports.study compare RESULTS.json… -o DIR`."""
    p = argparse.ArgumentParser(
        prog="python -m reports.study compare",
        description="Merge results files (shards, machines, runs) and write results.json, "
                    "report.html and the comparison page study.html into DIR.")
    p.add_argument("files", nargs="+", type=Path, metavar="RESULTS.json")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, metavar="DIR")
    return p


def shard_arg(value: str) -> tuple[int, int]:
    """Parse `I/K` with 1 ≤ I ≤ K."""
    i, _, k = value.partition("/")
    if not (i.isdigit() and k.isdigit() and 1 <= int(i) <= int(k)):
        raise argparse.ArgumentTypeError(f"{value!r}: expected I/K with 1 ≤ I ≤ K, e.g. 1/2")
    return int(i), int(k)


def depths_arg(value: str) -> tuple[int, int]:
    """Parse `A-B` (or `A`) with 1 ≤ A ≤ B."""
    a, _, b = value.partition("-")
    b = b or a
    if not (a.isdigit() and b.isdigit() and 1 <= int(a) <= int(b)):
        raise argparse.ArgumentTypeError(f"{value!r}: expected A-B with 1 ≤ A ≤ B, e.g. 2-8")
    return int(a), int(b)


def depth_sizes(depths: tuple[int, int], width: int, inputs: int = 784,
                outputs: int = 10) -> str:
    """Return the --sizes of a depth study: 784x64x10, 784x64x64x10, … (L − 1 hidden layers)."""
    return ",".join("x".join(map(str, [inputs, *[width] * (L - 1), outputs]))
                    for L in range(depths[0], depths[1] + 1))


def adapter_spec(spec: str, where: Path) -> str:
    """Return an --adapter spec as pytest started in `where` reads it: a relative
    path/to/file.py made absolute, since the study's pytest runs in the checkout (a dotted
    module is found there through PYTHONPATH: `run_streamed`)."""
    module, sep, attr = spec.rpartition(":")
    if sep and module.endswith(".py") and not Path(module).is_absolute():
        return f"{where / module}:{attr}"
    return spec


def conformance_args(args: argparse.Namespace) -> list[str]:
    """Return the conformance options the study was given, as pytest arguments."""
    out = []
    for name in PASSED_THROUGH:
        value, flag = getattr(args, name), "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        else:
            for v in value if isinstance(value, list) else [value]:
                out.append(f"{flag}={v}")
    return out


def pytest_command(args: argparse.Namespace, extra: list[str], shard: tuple[int, int] | None,
                   results_path: Path) -> list[str]:
    """Return the pytest command of one shard (or of the whole study when shard is None)."""
    cmd = [sys.executable, "-m", "pytest", str(CONFORMANCE), *conformance_args(args),
           "--results", str(results_path), "--tb=no", "-rN"]
    if args.workers != "0":
        cmd += ["-n", str(args.workers), "--dist", "loadgroup"]
    if shard is not None:
        cmd += ["--shard", f"{shard[0]}/{shard[1]}"]
    if sys.stdout.isatty():
        cmd.append("--color=yes")
    return cmd + extra


def shard_path(output: Path, shard: tuple[int, int]) -> Path:
    """Return where one shard's results go: DIR/shard-I-of-K.json."""
    return output / f"shard-{shard[0]}-of-{shard[1]}.json"


def plan(args: argparse.Namespace, folder: Path | None = None
         ) -> list[tuple[tuple[int, int] | None, Path]]:
    """Return the shards this invocation runs, each with its results file in the folder (by
    default the output folder; a study runs them in its scratch folder)."""
    out = (args.output if folder is None else folder).resolve()
    if args.shard is not None:
        return [(args.shard, shard_path(out, args.shard))]
    if args.shards == 1:
        return [(None, out / "results.json")]
    return [((i, args.shards), shard_path(out, (i, args.shards)))
            for i in range(1, args.shards + 1)]


def study(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the study in a scratch folder beside the output folder and move its files in only
    when it is complete: a failed or interrupted study leaves an earlier one as it was."""
    try:
        scratch = scratch_folder(args.output)
    except OSError as exc:
        print(f"study: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        return run_shards(args, extra, scratch)
    except KeyboardInterrupt:
        return keep_partial(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def scratch_folder(output: Path) -> Path:
    """Return a new empty folder beside the output folder (same file system, so its files
    rename into place); raise OSError when the output cannot be a folder."""
    output = output.resolve()
    if output.exists() and not output.is_dir():
        raise OSError(errno.ENOTDIR, "not a folder; give a folder to write the study into")
    output.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))


def run_shards(args: argparse.Namespace, extra: list[str], scratch: Path) -> int:
    """Run the planned shards one after another, then merge and render unless one shard only."""
    shards, walls = plan(args, scratch), []
    if args.timing and args.workers not in ("0", "1"):
        print(f"study: timing with -n {args.workers}: the workers share the cores, so the times "
              "are a loaded machine's, often many times slower; -n 0 times cleanly", flush=True)
    for shard, path in shards:
        cmd = pytest_command(args, extra, shard, path)
        name = "study" if shard is None else f"shard {shard[0]}/{shard[1]}"
        start = time.perf_counter()
        status = run_streamed(cmd, name, {str(scratch): str(args.output)})
        walls.append(time.perf_counter() - start)
        if status == INTERRUPTED and path.is_file():  # pytest alone got the Ctrl-C
            return keep_partial(args, scratch)
        if status not in RAN or not path.is_file():
            print(f"study: {name} stopped (pytest exit status {status}); nothing merged, "
                  f"{args.output} left as it was", file=sys.stderr)
            return status or 1
        print(f"== {name}: {walls[-1]:.1f} s", flush=True)
    if args.shard is not None:
        status = install(args.output, {}, {p.name: p.read_text("utf-8") for _, p in shards})
        if status == 0:
            print(f"merge it with the other shards: python -m reports.study compare "
                  f"{args.output}/shard-*-of-{args.shard[1]}.json -o DIR")
        return status
    print(f"study: {len(shards)} pytest run(s), {sum(walls):.1f} s in all")
    return merged(args.output, [p for _, p in shards], args.shards > 1)


def merged(output: Path, files: list[Path], keep_files: bool, partial: str | None = None) -> int:
    """Merge the shards' results and write the study's outputs (the shards' files too when
    there are several) into the output folder."""
    try:
        doc = merging.merge([reading.load(p) for p in files])
    except reading.ResultsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if partial:
        doc["partial"] = partial
    return finish(doc, output, {p.name: p.read_text("utf-8") for p in files} if keep_files
                  else {})


def keep_partial(args: argparse.Namespace, scratch: Path) -> int:
    """Keep what an interrupted study finished: in the output folder when it holds no earlier
    study, else in a folder beside it (NAME.interrupted), so the earlier study stays whole."""
    files = [p for p in sorted(scratch.glob("*.json")) if _loads(p)]
    if not files:
        print(f"study: interrupted before any results were written; {args.output} left as "
              "it was", file=sys.stderr)
        return INTERRUPTED
    names = ([p.name for p in files] if args.shard is not None
             else ["results.json", *PAGES[1:], *(p.name for p in files)])
    home = args.output.resolve()
    if any((home / n).exists() for n in names):
        home = home.with_name(home.name + ".interrupted")
    print(f"study: interrupted; keeping the items finished (the rest are 'not run' or missing) "
          f"in {home}", file=sys.stderr)
    if args.shard is not None:
        install(home, {}, {p.name: p.read_text("utf-8") for p in files})
        return INTERRUPTED
    merged(home, files, args.shards > 1 or len(files) > 1,
           partial="interrupted: only the items finished before Ctrl-C")
    return INTERRUPTED


def _loads(path: Path) -> bool:
    try:
        reading.load(path)
    except reading.ResultsError:
        return False
    return True


def run_streamed(cmd: list[str], name: str, shown: dict[str, str] | None = None) -> int:
    """Run one pytest command, streaming its output line by line under a header that names
    the folders as the user knows them (`shown`: the scratch folder, removed at the end, as the
    output folder its files move to). On Ctrl-C (which pytest gets too) let pytest write what
    it finished, then raise KeyboardInterrupt."""
    shown = shown or {}
    print(f"== {name}: {_as_shown(shlex.join(['python', *cmd[1:]]), shown)}", flush=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    env["PYTHONUNBUFFERED"] = "1"
    # pytest runs in the checkout; `python -m pytest` started here would import an adapter's
    # module from here too (sys.path[0]), so here goes on its path, after the checkout
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *filter(None, [env.get("PYTHONPATH")])])
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        try:
            _stream(proc, shown)
        except KeyboardInterrupt:
            _stream(proc, shown)  # pytest is writing its results; a second Ctrl-C abandons them
            proc.wait()
            raise
    return proc.returncode


def _stream(proc: subprocess.Popen, shown: dict[str, str]) -> None:
    for line in proc.stdout:
        sys.stdout.write(_as_shown(line, shown))
        sys.stdout.flush()


def _as_shown(text: str, shown: dict[str, str]) -> str:
    """Return text with each scratch folder named as the folder its files end up in."""
    for scratch, output in shown.items():
        text = text.replace(scratch, output)
    return text


def compare(args: argparse.Namespace) -> int:
    """Merge existing results files and write the study's outputs from them."""
    problem = _output_problem(args.output, args.files)
    if problem:
        print(f"study: {args.output}: {problem}", file=sys.stderr)
        return 2
    return merged(args.output, args.files, False)


def _output_problem(output: Path, inputs: list[Path]) -> str | None:
    """Say why the output folder cannot take the outputs of these inputs, None if it can."""
    if output.exists() and not output.is_dir():
        return "not a folder; give a folder to write the study into"
    for name in PAGES:
        clash = same_file(output / name, inputs)
        if clash:
            return f"its {name} is the input {clash}; write the outputs elsewhere"
    return None


def finish(doc: dict, output: Path, extra: dict[str, str] | None = None) -> int:
    """Write results.json, report.html and study.html (and any extra files) into the folder,
    all rendered first, then renamed into place together; print a summary."""
    from reports import html, study_page  # Jinja2 only when a page is written

    try:
        texts = {name: render(doc) for name, render in zip(
            PAGES, (encoding.dumps, html.render, study_page.render), strict=True)}
    except Exception as exc:  # noqa: BLE001 - a shape the checks missed: one line, no files
        print(f"study: cannot render the results ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return 2
    status = install(output, texts, extra or {})
    if status == 0:
        print(summary(doc))
        print(f"study: {len(doc['runs'])} run(s), {len(doc['items'])} items → "
              f"{(output / 'study.html').resolve()}")
    return status


def install(output: Path, texts: dict[str, str], extra: dict[str, str]) -> int:
    """Write the files into the output folder as one (see reports.files.write_texts); 2 on failure,
    with one line."""
    _, errors = write_texts({output / n: t for n, t in {**extra, **texts}.items()})
    for path, exc in errors:
        print(f"study: {path}: cannot write ({exc.strerror or exc})", file=sys.stderr)
    return 2 if errors else 0


def summary(doc: dict) -> str:
    """Return one line per config: outcomes, effective precision, greatest ratio."""
    from reports.study_page import view

    lines = []
    for c in view(encoding.jsonable(doc))["configs"]:
        ratio = "–" if c["max_ratio"] is None else f"{c['max_ratio']:.3g}"
        other = "".join(f", {k} {o}" for o, k in sorted(c["other"].items()))
        reading = c["dtype"] if c["asked"] else c["arithmetic"]
        if c["diagnosis"]:
            reading = c["diagnosis"] if reading == "–" else f"{reading}, {c['diagnosis']}"
        lines.append(f"  {c['label']:<36} {c['passed']:>5} passed {c['failed']:>5} failed  "
                     f"{reading:<16} greatest ratio {ratio}{other}")
    return "\n".join(lines)


def content(doc: dict) -> dict[str, dict]:
    """Return the items by id without what differs between runs of one study.

    Left out: run ids, durations and timing; and the `@group` suffix that pytest-xdist's
    loadgroup adds to node ids (and so to messages), so `-n 0` and `-n 2` compare equal.
    """
    out = {}
    for item in doc["items"]:
        key = item.get("id") or item.get("nodeid")
        if key in out:
            raise ValueError(f"item {key!r} appears twice; compare one study at a time")
        suffix = f"]@{item.get('group')}"
        kept = {k: v.replace(suffix, "]") if isinstance(v, str) else v
                for k, v in item.items() if k not in ("run", "duration")}
        details = kept.get("details")
        if isinstance(details, dict):
            kept["details"] = {k: v for k, v in details.items() if k != "timing"}
        out[key] = kept
    return out


if __name__ == "__main__":
    sys.exit(main())
