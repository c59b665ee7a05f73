"""The HTML report in a real browser: headless Chromium opens a run with failures, offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reports import reading
from tests.test_reports import HOSTILE, SMALL, run_suite, third_party

pytestmark = pytest.mark.xdist_group("report_browser")
CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--window-size=1400,1000")


def chromium() -> tuple[str, str]:
    """Return the Chromium binary and its driver, or skip saying which is missing."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver))
                               if p is None)
        pytest.skip(f"{missing} not found (Debian: apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Start headless Chromium with console and network logging, a fresh profile, no network."""
    binary, driver = chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """Run a small matrix with a planted wrong entry and a hostile adapter; return the page."""
    chromium()  # skip before spending the run
    where = tmp_path_factory.mktemp("report")
    proc = run_suite(where, "run", *SMALL, "--adapter", third_party(where, "Hostile"))
    assert proc.returncode == 1, proc.stdout[-3000:]
    doc = reading.load(where / "run.json")
    return {"url": (where / "run.html").resolve().as_uri(), "doc": doc}


def open_page(browser, url: str) -> dict:
    """Load the page; return its console messages and every URL it requested."""
    browser.get_log("browser"), browser.get_log("performance")  # drop what came before
    browser.get(url)
    requests = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            requests.append(message["params"].get("request", message["params"])["url"])
    return {"console": browser.get_log("browser"), "requests": requests}


def shown(browser, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return [e for e in browser.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]


def test_opens_offline_without_console_errors(browser, report):
    """The page logs nothing to the console and requests only itself (its load time is
    measured by tests/bench/report_size.py, not asserted here)."""
    loaded = open_page(browser, report["url"])
    assert loaded["console"] == []
    assert loaded["requests"] == [report["url"]]
    drawn = browser.execute_script(
        "return [...document.querySelectorAll('canvas.heat')].map((c) => c.dataset.k)")
    failed = {str(k) for k, i in enumerate(report["doc"]["items"])
              if i["comparison"] and i["outcome"] == "failed"}
    assert failed and failed <= set(drawn)  # passing ones: their configs' summaries only
    assert all(k in failed or k.startswith("s") for k in drawn)


def test_failing_entries_are_visible(browser, report):
    """The wrong entry shows in its tensor's worst-entries table, and its matrix cell is red."""
    open_page(browser, report["url"])
    failing = [i for i in report["doc"]["items"] if i["comparison"] and i["outcome"] == "failed"]
    assert failing
    rows = " ".join(e.text for e in shown(browser, "tr.failing"))
    for item in failing:
        worst = item["comparison"]["worst"][0]
        assert f"W1[{', '.join(map(str, worst['index']))}] {worst['got']!r}" in rows
    assert len(shown(browser, "td.cell.fail")) == 3  # 2 cases of the planted bug, 1 hostile


def test_hovering_a_failing_cell_shows_its_values(browser, report):
    """Hovering the failing entry's heatmap cell names its index, both values and the ratio."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page(browser, report["url"])
    items = report["doc"]["items"]
    k, item = next((k, i) for k, i in enumerate(items) if i["outcome"] == "failed"
                   and i["comparison"] and i["comparison"]["shape"] == [4, 5])
    row, col = item["comparison"]["worst"][0]["index"]
    canvas = browser.find_element(By.CSS_SELECTOR, f'canvas.heat[data-k="{k}"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    w, h = canvas.size["width"], canvas.size["height"]
    ActionChains(browser).move_to_element_with_offset(
        canvas, int((col + 0.5) * w / 5 - w / 2), int((row + 0.5) * h / 4 - h / 2)).perform()
    tip = browser.find_element(By.ID, "tip").text
    assert tip.startswith(f"W1[{row}, {col}]") and "OUTSIDE its bound" in tip
    assert f"got {item['comparison']['worst'][0]['got']!r}" in tip


def test_filters_change_what_is_shown(browser, report):
    """The failing calls show every tensor; unticking 'passed' leaves the failed ones only;
    unticking a framework hides its rows."""
    open_page(browser, report["url"])
    items = report["doc"]["items"]
    failing = {i["group"] for i in items if i["outcome"] == "failed"}
    assert len(shown(browser, "div.item")) == sum(i["group"] in failing for i in items)
    box = browser.find_element("css selector", '#filters input[data-dim="status"][value="passed"]')
    box.click()
    visible = shown(browser, "div.item")
    assert len(visible) == sum(i["outcome"] == "failed" for i in items)
    assert all("failed" in e.get_attribute("class").split() for e in visible)
    rows = len(shown(browser, "tr.mrow"))
    hostile = browser.execute_script(
        "return [...document.querySelectorAll('#filters input[data-dim=framework]')]"
        ".find((b) => b.value === arguments[0])", HOSTILE)
    hostile.click()
    assert len(shown(browser, "tr.mrow")) < rows
    assert len(shown(browser, "div.item")) == sum(
        i["outcome"] == "failed" and i["framework"] != HOSTILE for i in items)


def test_hostile_strings_render_as_text(browser, report):
    """The framework `<img src=x onerror=…>` and an error message with </script> show as text."""
    from selenium.common.exceptions import NoAlertPresentException

    loaded = open_page(browser, report["url"])
    text = browser.execute_script("return document.body.innerText")
    assert HOSTILE in text and "</script><script>alert(2)</script>" in text
    assert browser.execute_script("return document.getElementsByTagName('img').length") == 0
    assert browser.execute_script("return document.scripts.length") == 2
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - the access is the check
    assert loaded["console"] == []


@pytest.fixture(scope="module")
def big_report(tmp_path_factory) -> dict:
    """Render the synthetic 50,000-item results (tests/bench/synthetic.py) as one page."""
    chromium()
    from reports import html
    from tests.bench import synthetic

    doc = synthetic.build(50_000, 2, 40, 60)
    page = tmp_path_factory.mktemp("big") / "big.html"
    page.write_text(html.render(doc), encoding="utf-8")
    failed = [k for k, i in enumerate(doc["items"]) if i["outcome"] == "failed"]
    return {"url": page.resolve().as_uri(), "doc": doc, "failed": failed}


def test_a_50000_item_page_opens_without_console_errors(browser, big_report):
    """The page opens offline, logs nothing, and keeps a heatmap only for what failed and for
    each config's summary (its load time is measured by tests/bench/report_size.py)."""
    loaded = open_page(browser, big_report["url"])
    assert loaded["console"] == [] and loaded["requests"] == [big_report["url"]]
    assert len(shown(browser, "tr.mrow")) == 40
    canvases = browser.execute_script("return document.querySelectorAll('canvas.heat').length")
    assert canvases < len(big_report["doc"]["items"]) / 20


def test_a_failing_item_of_50000_shows_its_heatmap_and_worst_entries(browser, big_report):
    """A failed item's canvas is drawn when scrolled to, and its worst entries are listed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, big_report["url"])
    k = big_report["failed"][0]
    item = big_report["doc"]["items"][k]
    canvas = browser.find_element(By.CSS_SELECTOR, f'canvas.heat[data-k="{k}"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    WebDriverWait(browser, 30).until(  # drawn when it comes near: later on a busy machine
        lambda b: b.execute_script("return 'rings' in arguments[0].dataset", canvas))
    assert browser.execute_script("return arguments[0].width", canvas) >= \
        item["comparison"]["heatmap"]["cols"]
    card = canvas.find_element(By.XPATH, "./ancestor::div[contains(@class, 'item')]")
    worst = item["comparison"]["worst"][0]
    assert f"{item['tensor']}[{', '.join(map(str, worst['index']))}]" in card.text
    assert browser.get_log("browser") == []


def test_filters_and_summaries_of_50000_items_stay_usable(browser, big_report):
    """Typing part of a config's name keeps its rows; unticking 'passed' leaves the failed
    items; a config's summary opens with its heatmaps and its calls' table."""
    from selenium.webdriver.common.by import By

    open_page(browser, big_report["url"])
    box = browser.find_element(By.ID, "config-filter")
    box.send_keys("jax-cuda")
    rows = shown(browser, "tr.mrow")
    assert rows and all("jax-cuda" in r.get_attribute("data-config") for r in rows)
    box.clear()
    box.send_keys(" ")  # an input event with the filter empty again
    assert len(shown(browser, "tr.mrow")) == 40
    browser.find_element(By.CSS_SELECTOR,
                         '#filters input[data-dim="status"][value="passed"]').click()
    items = shown(browser, "article.group div.item")
    assert items and all(e.get_attribute("data-status") in ("failed", "xfailed") for e in items)
    browser.find_element(By.CSS_SELECTOR,
                         '#filters input[data-dim="status"][value="passed"]').click()
    link = browser.find_element(By.CSS_SELECTOR, "tr.mrow th.config a")
    browser.execute_script("arguments[0].click()", link)
    config = browser.find_element(By.ID, link.get_attribute("href").split("#")[1])
    assert config.get_attribute("open") is not None
    canvas = config.find_element(By.CSS_SELECTOR, "canvas.heat")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    assert browser.execute_script("return arguments[0].width", canvas) > 0
    calls = config.find_element(By.CSS_SELECTOR, "details.calls")
    browser.execute_script("arguments[0].open = true", calls)
    assert len(calls.find_elements(By.CSS_SELECTOR, "tbody tr")) > 100
    assert browser.get_log("browser") == []


SHOTS = Path(__file__).resolve().parents[1] / "reports" / "out" / "browser"
"""Where the screenshots at 1,400 px go (git-ignored), for a person to look at."""
MARGIN = r"(exact|\d\.\de[-+]\d\d × bound|inf × bound|nan × bound|–)"


def screenshot(browser, name: str) -> None:
    """Save what the 1,400 px window shows as reports/out/browser/NAME.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.get_window_size()["width"] == 1400
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """Run the seed's case with planted tf32 operands, a mean-reduced loss and one entry off,
    beside a correct adapter; return the page."""
    chromium()
    where = tmp_path_factory.mktemp("planted")
    proc = run_suite(where, "run", "--adapter", "adapters.example:adapter", *(
        a for bug in ("RoundedOperands", "MeanLoss", "OffByOneEntry")
        for a in ("--adapter", f"tests.fixtures.planted:{bug}")), "--cases", "seed,small")
    assert proc.returncode == 1, proc.stdout[-3000:]
    return {"url": (where / "run.html").resolve().as_uri(), "doc": reading.load(where / "run.json")}


def _drawn(browser) -> list[dict]:
    """Scroll each failing call's heatmap into view (they are drawn lazily); return its rings,
    worst cell, and whether its axes and key were put beside it."""
    from selenium.webdriver.support.ui import WebDriverWait

    keys = browser.execute_script("return [...document.querySelectorAll("
                                  "'article.group canvas.heat')].map((c) => c.dataset.k)")
    out = []
    for k in keys:
        canvas = browser.find_element("css selector", f'canvas.heat[data-k="{k}"]')
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
        WebDriverWait(browser, 30).until(  # drawn when it comes near: later on a busy machine
            lambda b, c=canvas: b.execute_script("return 'rings' in arguments[0].dataset", c))
        out.append(browser.execute_script("""
            const c = arguments[0], wrap = c.parentElement;
            return {k: c.dataset.k, rings: JSON.parse(c.dataset.rings || 'null'),
                    worst: c.dataset.worst, framed: wrap.classList.contains('framed'),
                    axes: wrap.querySelectorAll('.ax-x span').length,
                    key: wrap.querySelectorAll('.key canvas').length}""", canvas))
    return out


def test_heatmaps_have_axes_a_key_and_markers_that_never_stack(browser, planted):
    """Every drawn heatmap sits between its axes with a key beside it; its rings (failing cells
    too small to see) never overlap, and are left off where failing cells are many; a failing
    tensor's worst entry is marked."""
    open_page(browser, planted["url"])
    heatmaps = _drawn(browser)
    items = planted["doc"]["items"]
    failing = {str(k) for k, i in enumerate(items) if i["outcome"] == "failed"
               and i["comparison"]}
    assert failing <= {h["k"] for h in heatmaps}
    for h in heatmaps:
        assert h["framed"] and h["axes"] == 3 and h["key"] == 1, h
        rings = h["rings"]
        assert rings is not None and len(rings) <= 32, h
        for n, (x0, y0) in enumerate(rings):
            for x1, y1 in rings[n + 1:]:
                assert (x1 - x0) ** 2 + (y1 - y0) ** 2 >= 12 ** 2, h  # two radii apart
        if h["k"] in failing:
            assert h["worst"] is not None, h
    tf32 = next(k for k, i in enumerate(items) if i["config"]["adapter"] == "planted_tf32"
                and i["tensor"] == "W1" and i["spec"]["sizes"] == [784, 16, 10])
    assert items[tf32]["comparison"]["failing"] > 1000  # many failing cells: no rings at all
    assert next(h for h in heatmaps if h["k"] == str(tf32))["rings"] == []
    canvas = browser.find_element("css selector", f'canvas.heat[data-k="{tf32}"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    screenshot(browser, "tf32-heatmap")


def test_summary_cells_are_labelled_and_cases_named_short(browser, planted):
    """Each matrix cell shows passed/total over its margin in one format (`5.2e-04 × bound`),
    each case column a short name with the full id on hover; the matrix fits 1,400 px."""
    import re

    open_page(browser, planted["url"])
    screenshot(browser, "matrix")
    cells = browser.execute_script(
        "return [...document.querySelectorAll('td.cell:not(.empty)')].map((c) => c.innerText)")
    assert cells
    for text in cells:
        count, margin = text.split("\n")
        assert re.fullmatch(r"\d+/\d+( ✗)?", count) and re.fullmatch(MARGIN, margin), text
    heads = browser.execute_script("return [...document.querySelectorAll('th.case')].map("
                                   "(h) => [h.innerText, h.title])")
    for text, title in heads:
        assert len(text.split("\n")[0]) <= 16 and title.startswith(text.split("\n")[1].split(
            " · ")[0]), (text, title)
    assert browser.execute_script(
        "const t = document.querySelector('table.matrix').getBoundingClientRect();"
        "return t.right <= document.documentElement.clientWidth")


def test_a_clicked_cell_lands_its_call_below_the_sticky_bar(browser, planted):
    """Clicking a failing cell scrolls its adapter call's title into view, under the sticky
    filter bar, not behind it."""
    open_page(browser, planted["url"])
    link = browser.find_element("css selector", "td.cell.fail a")
    target = link.get_attribute("href").split("#")[1]
    link.click()
    top, bar = browser.execute_script(
        "return [document.getElementById(arguments[0]).getBoundingClientRect().top,"
        " document.getElementById('filters').getBoundingClientRect().bottom]", target)
    assert bar <= top < bar + 60, (bar, top)
    screenshot(browser, "failing-call")


def test_a_failing_call_reads_in_plain_words_with_its_numbers_folded(browser, planted):
    """A failing call's verdict is one plain sentence (the arithmetic, or a wrong gradient);
    the statistics behind it and each tensor's details stay folded until asked for; the
    failures are listed one line per adapter call."""
    open_page(browser, planted["url"])
    verdicts = [e.text for e in shown(browser, "article.group .verdict > p")]
    assert any(v.startswith("The errors are those of tf32") for v in verdicts)
    assert any(v.startswith("A wrong gradient: 1 entry is outside its bound") for v in verdicts)
    assert not shown(browser, ".verdict pre") and not shown(browser, "details.details dl")
    assert "share" not in " ".join(verdicts)
    groups = {i["group"] for i in planted["doc"]["items"] if i["outcome"] == "failed"}
    assert len(shown(browser, "#failures li.item-link")) == len(groups)


@pytest.fixture(scope="module")
def study_page_url(tmp_path_factory) -> str:
    """Render the study page of the synthetic 40-config results, failures included."""
    chromium()
    from reports import encoding, study_page
    from tests.bench import synthetic

    page = tmp_path_factory.mktemp("study") / "study.html"
    page.write_text(study_page.render(encoding.jsonable(synthetic.build(4_000, 2, 40, 6))),
                    encoding="utf-8")
    return page.resolve().as_uri()


def test_the_study_configs_table_fits_1400_px_and_lines_are_labelled(browser, study_page_url):
    """At 1,400 px the configs table shows every column without scrolling sideways; each plot
    labels its lines at their ends without two labels overlapping."""
    open_page(browser, study_page_url)
    screenshot(browser, "study")
    wide = browser.execute_script(
        "const t = document.querySelector('table.configs');"
        "return [t.scrollWidth, t.parentElement.clientWidth, t.getBoundingClientRect().right,"
        " document.documentElement.clientWidth]")
    assert wide[0] <= wide[1] and wide[2] <= wide[3], wide
    plots = browser.execute_script(
        "return [...document.querySelectorAll('svg.plot')].map((s) => [...s.querySelectorAll("
        "'text.end')].map((t) => { const b = t.getBBox(); return [b.y, b.y + b.height]; }))")
    assert plots and all(plots)
    for labels in plots:
        spans = sorted(labels)
        assert all(b[0] >= a[1] - 1 for a, b in zip(spans, spans[1:], strict=False)), spans
