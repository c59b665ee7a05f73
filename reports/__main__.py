"""Merge results files and render reports from them: `python -m reports merge|html …`."""

from __future__ import annotations

import argparse
import sys

from reports import results


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return 2 with one line on stderr when an input is unusable."""
    args = parser().parse_args(argv)
    clash = results.same_file(args.output, args.files)
    if clash:
        print(f"reports: {args.output}: is the input {clash}; write the output elsewhere",
              file=sys.stderr)
        return 2
    try:
        doc = results.merge([results.load(p) for p in args.files])
    except results.ResultsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "merge":
        text = results.dumps(doc)
    else:
        from reports.html import render

        try:
            text = render(doc)
        except Exception as exc:  # noqa: BLE001 - a shape the checks missed: one line, no file
            print(f"reports: cannot render the results ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
            return 2
    try:
        path = results.write_text(args.output, text)
    except OSError as exc:
        print(f"reports: {args.output}: cannot write ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(f"{args.command}: {len(doc['runs'])} run(s), {len(doc['items'])} items → {path}")
    return 0


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
    return p


if __name__ == "__main__":
    sys.exit(main())
