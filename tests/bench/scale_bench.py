"""Measure the reports at scale: page sizes, merge and html time and memory, Chromium load.

    python tests/bench/scale_bench.py [--out reports/out/scale] [--items 50000] [--no-browser]

Writes the synthetic results (tests/bench/synthetic.py: 50,000 items over 2 runs and 40 configs)
to OUT/synthetic.json, then runs `python -m reports merge` and `python -m reports html` on it
as child processes, each timed (wall and CPU) with its peak resident memory; prints the page's
size, what a passing item costs it (the page less the page of the same file without its passing
items, per passing item), the size of a 1,440-item study's report (24 configs × 784-16-10 at
batches 1, 8, 32 × 5 seeds) and of a 1,000-config page, and opens the big page in headless
Chromium three times (loadEventEnd and first paint, as tests/bench/report_size.py does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from reports import encoding, files, html  # noqa: E402
from tests.bench import synthetic  # noqa: E402


def timed(args: list[str]) -> tuple[float, float, float]:
    """Run `python -m reports ARGS` under /usr/bin/time; return wall and CPU seconds and peak
    resident MB (a child's high-water mark would start at this process's size)."""
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", sys.executable, "-m", "reports", *args]
    done = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall, user, system, kb = done.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(kb) / 1024


def page_bytes(doc: dict) -> int:
    """Return the size of the page of a document."""
    return len(html.render(doc).encode())


def passing_cost(doc: dict) -> float:
    """Return the page bytes a passing item adds on average."""
    failing = encoding.document(doc["runs"], [i for i in doc["items"] if i["outcome"] != "passed"])
    passed = sum(i["outcome"] == "passed" for i in doc["items"])
    return (page_bytes(doc) - page_bytes(failing)) / passed


def browser_times(page: Path, out: Path, repeat: int = 3) -> None:
    """Open the page in headless Chromium; print loadEventEnd and first paint."""
    sys.path.insert(0, str(Path(__file__).parent))
    import report_size

    driver = report_size.browser(out)
    try:
        loads, paints = [], []
        for _ in range(repeat):
            t = report_size.open_timed(driver, page, repeat=1)
            loads += t["load"]
            paints.append(driver.execute_script(
                "const p = performance.getEntriesByName('first-paint')[0];"
                "return p ? p.startTime / 1000 : null"))
            console = t["console"]
        print(f"  Chromium: loadEventEnd median {statistics.median(loads):.2f} s "
              f"({', '.join(f'{x:.2f}' for x in loads)}); first paint median "
              f"{statistics.median(paints):.2f} s; console messages {len(console)}")
    finally:
        driver.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "out" / "scale")
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    doc = synthetic.build(args.items, 2, 40, 60)
    src = args.out / "synthetic.json"
    files.write_text(src, encoding.dumps(doc))
    print(f"synthetic: {len(doc['items'])} items, results {src.stat().st_size / 1e6:.1f} MB")
    for command, output in (("merge", "merged.json"), ("html", "report.html")):
        wall, cpu, rss = timed([command, str(src), "-o", str(args.out / output)])
        print(f"  {command}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak resident {rss:.0f} MB")
    page = args.out / "report.html"
    print(f"  page {page.stat().st_size / 1e6:.2f} MB (limit 10 MB)")
    small = synthetic.build(4000, 1, 40, 6)
    print(f"  a passing item costs {passing_cost(small):.0f} bytes of page on average "
          "(4,000 items, 40 configs)")
    study = synthetic.build(1440, 1, 24, 0, cases=synthetic.STUDY)
    print(f"1,440-item study report: {page_bytes(study) / 1e6:.2f} MB (limit 2 MB)")
    wide = args.out / "wide.html"
    wide.write_text(html.render(synthetic.build(8000, 1, 1000, 20)), encoding="utf-8")
    print(f"1,000 configs, 8,000 items: page {wide.stat().st_size / 1e6:.2f} MB")
    if not args.no_browser:
        print(f"{page.name}:")
        browser_times(page, args.out)
        print(f"{wide.name}:")
        browser_times(wide, args.out)
    print(json.dumps({"python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
