"""The HTML report in a real browser: headless Chromium opens a run with failures, offline."""

from __future__ import annotations

import json
import shutil

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

    open_page(browser, big_report["url"])
    k = big_report["failed"][0]
    item = big_report["doc"]["items"][k]
    canvas = browser.find_element(By.CSS_SELECTOR, f'canvas.heat[data-k="{k}"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
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
