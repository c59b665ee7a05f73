"""Measure the results and report sizes, and how fast Chromium opens the report.

    python tests/bench/report_size.py [--out reports/out] [--skip-default] [--skip-wide]

Runs (1) the default matrix, `-n 2 --dist loadgroup`, and (2) a 784-4096-10 net at batch 8
(≈3.2 M entries in W1) with the torch adapters and the planted one-entry bug, each writing
results JSON and the HTML report; then opens each report in headless Chromium three times and
prints sizes, load times (wall time of the navigation, and the page's own loadEventEnd),
console messages and requests. Saves screenshots to OUT/report.png (default matrix) and
OUT/report-wide.png. Also a pytest plugin (`-p report_size`): it adds the case `wide`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIDE = ((784, 4096, 10), 8)
LIMITS = {"default": 3_000_000, "wide": 10_000_000}
"""Bytes each report may take; the default matrix's was 2 MB before its deep case (784-64-32-16-10,
whose W1 heatmap is 50,176 cells a config) added ≈0.6 MB."""


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config) -> None:
    """Add the 784-4096-10 case as `--cases wide` (when loaded with -p report_size)."""
    from tests.engine import matrix

    matrix.CASES["wide"] = WIDE
    matrix.PAIRS["wide"] = (("sigmoid", "sigmoid"),)


def run(name: str, out: Path, args: list[str]) -> float:
    """Run the conformance suite writing OUT/NAME.json and .html; return its wall time."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "tests/test_conformance.py", "-q", "-p",
           "no:cacheprovider", "--results", str(out / f"{name}.json"), "--report",
           str(out / f"{name}.html"), *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"bench: {' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}")
    return time.perf_counter() - start


def browser(out: Path):
    """Start headless Chromium as the browser test does."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--window-size=1400,1000",
                 f"--user-data-dir={out / '.chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def open_timed(driver, page: Path, repeat: int = 3) -> dict:
    """Open the page `repeat` times; return wall and loadEventEnd times, console, requests."""
    walls, loads, console, requests = [], [], [], set()
    for _ in range(repeat):
        driver.get("about:blank")
        driver.get_log("browser"), driver.get_log("performance")
        start = time.perf_counter()
        driver.get(page.resolve().as_uri())
        walls.append(time.perf_counter() - start)
        loads.append(driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
        console += driver.get_log("browser")
        for e in driver.get_log("performance"):
            m = json.loads(e["message"])["message"]
            if m["method"] == "Network.requestWillBeSent":
                requests.add(m["params"]["request"]["url"])
    return {"wall": walls, "load": loads, "console": console, "requests": sorted(requests)}


def report(name: str, out: Path, seconds: float, driver) -> None:
    """Print one run's sizes and load times."""
    js, page = out / f"{name}.json", out / f"{name}.html"
    doc = json.loads(js.read_text())
    entries = sum((i.get("comparison") or {}).get("entries", 0) for i in doc["items"])
    t = open_timed(driver, page)
    print(f"{name}: {len(doc['items'])} items, {entries} entries compared, run {seconds:.1f} s")
    print(f"  results {js.stat().st_size / 1e6:.3f} MB, report {page.stat().st_size / 1e6:.3f} MB"
          f" (limit {LIMITS[name] / 1e6:.0f} MB)")
    print(f"  Chromium open: wall median {statistics.median(t['wall']):.3f} s "
          f"({', '.join(f'{x:.3f}' for x in t['wall'])}); loadEventEnd median "
          f"{statistics.median(t['load']):.3f} s")
    print(f"  console messages: {len(t['console'])}; requests: {t['requests']}")
    shot = out / ("report.png" if name == "default" else f"report-{name}.png")
    driver.save_screenshot(str(shot))
    print(f"  screenshot: {shot}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "out")
    ap.add_argument("--skip-default", action="store_true")
    ap.add_argument("--skip-wide", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {}
    if not args.skip_default:
        runs["default"] = run("default", args.out, ["-n", "2", "--dist", "loadgroup"])
    if not args.skip_wide:
        runs["wide"] = run("wide", args.out, ["-p", "report_size", "--cases", "wide",
                                              "--frameworks", "torch", "--adapter",
                                              "tests.fixtures.planted:OffByOneEntry"])
    driver = browser(args.out)
    try:
        for name, seconds in runs.items():
            report(name, args.out, seconds, driver)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
