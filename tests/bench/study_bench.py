"""Measure a study sharded against unsharded: wall times, content equality, a screenshot.

    python tests/bench/study_bench.py [--out reports/out] [--shards 2] [-- study options]

Runs `python -m reports.study` twice with the same matrix, `--shards 1` into OUT/study and
`--shards K` into OUT/study-sharded, prints both wall times and whether the merged results equal
the unsharded ones item by item (ignoring run ids, provenance, durations and timing), then
opens the sharded study.html in headless Chromium, offline, and saves OUT/study.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from reports import reading  # noqa: E402
from reports.study import content  # noqa: E402

MATRIX = ("--frameworks", "torch,jax", "--dtypes", "float32,float64", "--precisions",
          "default,highest,high", "--batches", "1,8,32", "--seeds", "5", "--sizes", "784x16x10",
          "--timing", "3")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1500,1900")


def run_study(out: Path, shards: int, matrix: list[str]) -> float:
    """Run one study; return its wall time in seconds."""
    cmd = [sys.executable, "-m", "reports.study", *matrix, "--shards", str(shards), "-o",
           str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - start


def differences(a: dict, b: dict) -> list[str]:
    """Return what differs between two studies' items, one line each (empty when equal)."""
    ca, cb = content(a), content(b)
    lines = [f"only in the first: {k}" for k in sorted(ca.keys() - cb.keys())]
    lines += [f"only in the second: {k}" for k in sorted(cb.keys() - ca.keys())]
    for k in sorted(ca.keys() & cb.keys()):
        fields = [f for f in ca[k].keys() | cb[k].keys() if ca[k].get(f) != cb[k].get(f)]
        if fields:
            lines.append(f"{k}: {', '.join(sorted(fields))} differ")
    return lines


def screenshot(page: Path, png: Path) -> None:
    """Open the page in headless Chromium with a fresh profile; save a full-page screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    profile = tempfile.mkdtemp(prefix="study-profile-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        browser.get(page.resolve().as_uri())
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1500, min(max(height + 120, 800), 6000))
        browser.save_screenshot(str(png))
        print(f"console: {json.dumps(browser.get_log('browser'))}")
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> int:
    """Run both studies, compare them, take the screenshot."""
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "out")
    p.add_argument("--shards", type=int, default=2)
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    matrix = extra or list(MATRIX)
    walls = {"unsharded": run_study(args.out / "study", 1, matrix),
             f"{args.shards} shards": run_study(args.out / "study-sharded", args.shards, matrix)}
    one, many = (reading.load(args.out / d / "results.json") for d in ("study", "study-sharded"))
    diff = differences(one, many)
    for name, seconds in walls.items():
        print(f"wall time, {name}: {seconds:.1f} s")
    print(f"items: {len(one['items'])} unsharded, {len(many['items'])} sharded; "
          f"{'equal' if not diff else f'{len(diff)} differ'}")
    print("\n".join(diff[:20]))
    screenshot(args.out / "study-sharded" / "study.html", args.out / "study.png")
    print(f"screenshot: {args.out / 'study.png'}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
