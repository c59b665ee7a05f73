"""Merge results files, render reports from them, export a failing item's reproduction:
`python -m reports merge|html|repro …`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from reports import files, merging, reading


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return 2 with one line on stderr when an input is unusable."""
    args = parser().parse_args(argv)
    if args.command == "repro":
        return repro(args)
    clash = files.same_file(args.output, args.files)
    if clash:
        print(f"reports: {args.output}: is the input {clash}; write the output elsewhere",
              file=sys.stderr)
        return 2
    counted = [0]
    try:
        runs, items = merging.merged_items(args.files, texts=args.command == "merge",
                                           typed=True)
        items = _counted(items, counted)
        if args.command == "merge":  # written as it is read: the files are never held whole
            text = merging.merged_chunks(runs, items)
        else:
            text = _page(runs, items, Path(os.path.abspath(args.output)).parent)
        path = files.write_text(args.output, text)
    except reading.ResultsError as exc:
        print(exc, file=sys.stderr)
        return 2
    except RenderError as exc:
        print(f"reports: cannot render the results ({exc})", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"reports: {args.output}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(f"{args.command}: {len(runs)} run(s), {counted[0]} items → {path}")
    return 0


class RenderError(Exception):
    """The page could not be rendered from results that passed the checks."""


def _counted(items, counted: list[int]):
    """Yield the items, counting them."""
    for pair in items:
        counted[0] += 1
        yield pair


def _page(runs: list[dict], items, folder: Path) -> str:
    """Return the report page of the items, its links relative to its `folder` (the results'
    paths start from the working folder); a shape the checks missed is one RenderError."""
    from reports.html import render_items

    try:
        return render_items(runs, (item for item, _ in items), (Path.cwd(), folder))
    except reading.ResultsError:
        raise
    except Exception as exc:  # noqa: BLE001 - a shape the checks missed: one line, no file
        raise RenderError(f"{type(exc).__name__}: {exc}") from None


def parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m reports`."""
    p = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="merge results files (runs side by side) into one")
    merge.add_argument("files", nargs="+", metavar="RUN.json")
    merge.add_argument("-o", "--output", required=True, metavar="MERGED.json")
    html = sub.add_parser("html", help="render results (several files are merged) as HTML")
    html.add_argument("files", nargs="+", metavar="RESULTS.json")
    html.add_argument("-o", "--output", required=True, metavar="REPORT.html")
    rep = sub.add_parser("repro", help="shrink one failing item of a results file and write "
                                       "a standalone script that reproduces it")
    rep.add_argument("file", metavar="RESULTS.json")
    rep.add_argument("item", metavar="ITEM-ID", help="the item's id (or its pytest node id)")
    rep.add_argument("-o", "--output", required=True, metavar="REPRO.py")
    rep.add_argument("--seconds", type=float, default=30.0,
                     help="time the shrinking may take (default 30)")
    return p


def repro(args) -> int:
    """Shrink one item's failure and write its script; 2 with one line when it cannot.

    The one command of `reports` that runs the engine (tests/engine/repro.py): it calls the adapter.
    """
    if not args.seconds > 0:  # as pytest's --repro-seconds
        print(f"reports: --seconds must be more than 0, got {args.seconds:g}", file=sys.stderr)
        return 2
    clash = files.same_file(args.output, [args.file])
    if clash:
        print(f"reports: {args.output}: is the input {clash}; write the script elsewhere",
              file=sys.stderr)
        return 2
    try:
        doc = reading.load(args.file)
    except reading.ResultsError as exc:
        print(exc, file=sys.stderr)
        return 2
    found = [i for i in doc["items"] if args.item in (i.get("id"), i.get("nodeid"))]
    if not found:
        print(f"reports: {args.file}: no item {args.item!r}", file=sys.stderr)
        return 2
    item = found[-1]
    if item.get("outcome") != "failed":
        print(f"reports: {args.item}: {item.get('outcome')}, not failed: nothing to reproduce",
              file=sys.stderr)
        return 2
    from tests.engine import repro as engine  # the engine, only for this command

    runs = {r.get("id"): r for r in doc["runs"]}
    run = runs.get(item.get("run"), {})
    options = (run.get("provenance") or {}).get("options") or {}
    folder = Path(os.path.abspath(args.output)).parent
    try:
        adapter, config, spec = engine.from_results(item, options)
        text, shrunk = engine.export(adapter, config, spec, item["tensor"], str(item["id"]),
                                     args.seconds, folder, engine.found_with_run(run, item))
        path = files.write_text(args.output, text)
    except engine.NotExported as exc:
        print(f"reports: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"reports: {args.output}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the adapter raised while shrinking: one line
        print(f"reports: {args.item}: cannot export: {type(exc).__name__}: "
              f"{engine.first_line(exc)}", file=sys.stderr)
        return 2
    print(f"repro: {item['id']!r}: {shrunk.summary()} → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
