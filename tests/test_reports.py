"""The results and the report: data from real runs, -n 0 equals -n 2, crashes, merges, escaping."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import signal
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import msgspec
import numpy as np
import pytest

from reference.case import TENSORS, tensors
from reference.compare import compare
from reports import encoding, files, html, reading, record, schema, study
from reports.__main__ import main as reports_cli
from tests.engine import matrix
from tests.engine.conformance import _python

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")
HOSTILE = "<img src=x onerror=alert(1)>"
THIRD_PARTY = f'''"""Third-party adapters: HTML in a framework and a message; a dying worker."""
import os

from adapters.example import NumpyAdapter


class Hostile(NumpyAdapter):
    name = "hostile"
    framework = {HOSTILE!r}

    def gradients(self, case, dtype, device):
        if case.sizes == (5, 4, 3) and dtype == "float32":
            raise RuntimeError("</script><script>alert(2)</script> & <b>bold</b>")
        return super().gradients(case, dtype, device)


class Dies(NumpyAdapter):
    name = "dies"

    def gradients(self, case, dtype, device):
        if os.environ.get("PYTEST_XDIST_WORKER") and case.sizes == (1, 1, 1):
            os._exit(3)
        return super().gradients(case, dtype, device)
'''
SMALL = ("--adapter", "adapters.example:adapter", "--adapter",
         "tests.fixtures.planted:OffByOneEntry", "--cases", "chain,small")

pytestmark = pytest.mark.xdist_group("reports")  # one worker runs the shared suite runs once


def run_suite(where: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    """Run the conformance suite in a fresh process, writing NAME.json and NAME.html there."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS", "PYTEST_CURRENT"))}
    cmd = [sys.executable, "-m", "pytest", CONFORMANCE, "-q", "-p", "no:cacheprovider",
           "--results", f"{name}.json", "--report", f"{name}.html", *args]
    return subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=600)


def third_party(where: Path, adapter: str) -> str:
    """Write the third-party adapters' file; return the --adapter spec of one of them."""
    path = where / "third_party.py"
    path.write_text(THIRD_PARTY)
    return f"{path}:{adapter}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Run one small matrix with failures and a hostile adapter, without and with xdist."""
    where = tmp_path_factory.mktemp("runs")
    args = (*SMALL, "--adapter", third_party(where, "Hostile"))
    done = {n: run_suite(where, f"n{n}", "-n", str(n), *args) for n in (0, 2)}
    for proc in done.values():
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    docs = {n: reading.load(where / f"n{n}.json") for n in done}
    return {"where": where, "proc": done, "doc": docs}


def by_id(doc: dict) -> dict[str, dict]:
    return {i["id"]: i for i in doc["items"]}


def expected_ids(adapters: list[str], dtypes: list[str], cases: list[str]) -> set[str]:
    """Return the ids the default pairs of these cases give."""
    specs = [matrix.Spec(*matrix.CASES[c], 0, pair) for c in cases for pair in matrix.PAIRS[c]]
    return {matrix.Item(matrix.Config(a, "cpu", d), s, t).id
            for a in adapters for d in dtypes for s in specs for t in TENSORS}


def test_every_item_is_recorded_with_its_parameters(runs):
    """Each item of the matrix is in the results, with config, spec, tensor and framework."""
    doc = runs["doc"][0]
    assert (doc["schema"], doc["version"]) == (schema.SCHEMA, schema.VERSION)
    items = by_id(doc)
    assert set(items) == expected_ids(["numpy", "planted_off_entry", "hostile"],
                                      ["float32", "float64"], ["chain", "small"])
    item = items["numpy-cpu-float64-tanh-softplus-5x4x3-b3-s0-W2"]
    assert item["config"] == matrix.Config("numpy", "cpu", "float64")._asdict()
    assert item["spec"] == {"sizes": [5, 4, 3], "batch": 3, "seed": 0,
                            "sigmas": ["tanh", "softplus"], "scale": 0, "saturate": 0}
    assert (item["tensor"], item["entry"], item["outcome"]) == ("W2", None, "passed")
    assert (item["framework"], item["framework_version"]) == ("numpy", np.__version__)
    assert item["fingerprint"] == "float64" and item["run"] == doc["runs"][0]["id"]


def test_a_failing_tensor_keeps_its_worst_entry_exactly(runs):
    """The planted entry is named with its index, both values, bound, ratio and bits."""
    item = by_id(runs["doc"][0])["planted_off_entry-cpu-float64-tanh-softplus-5x4x3-b3-s0-W1"]
    assert item["outcome"] == "failed"
    assert re.fullmatch(r"planted_off_entry-cpu-float64 W1: 1 of 20 entries .* ratio \S+",
                        item["reason"])
    assert f"reproduce: {_python()} -m pytest" in item["message"]
    c = item["comparison"]
    assert (c["shape"], c["entries"], c["failing"]) == ([4, 5], 20, 1)
    worst = c["worst"][0]
    assert worst == c["max"] and worst["ratio"] == c["max_ratio"] > 1
    assert worst["got"] != worst["ref"] and worst["bound"] > 0 and len(worst["index"]) == 2
    assert 0 <= c["bits"]["min"] <= c["bits"]["median"] <= c["bits"]["of"] == 53
    codes = base64.b64decode(c["heatmap"]["codes"])
    assert len(codes) == 20 and sum(b > record.PASS_MAX for b in codes) == 1
    got = np.frombuffer(base64.b64decode(c["values"]["got"]), "<f8")
    assert got[worst["index"][0] * 5 + worst["index"][1]] == worst["got"]


def test_outcomes_and_reasons_of_contract_failures(runs):
    """An adapter that raises fails its items, with its message (HTML included) as the reason."""
    items = by_id(runs["doc"][0])
    hostile = [i for i in items.values() if i["config"]["adapter"] == "hostile"]
    assert {i["framework"] for i in hostile} == {HOSTILE}
    failed = [i for i in hostile if i["outcome"] == "failed"]
    assert {i["spec_id"] for i in failed} == {"tanh-softplus-5x4x3-b3-s0"}
    assert all(i["config"]["dtype"] == "float32" and i["comparison"] is None for i in failed)
    assert all("</script><script>alert(2)</script>" in i["reason"] for i in failed)


def test_provenance_is_recorded_once_per_run(runs):
    """Versions, machine, git, date, command line, options and seeds sit on the run."""
    (run,) = runs["doc"][0]["runs"]
    p = run["provenance"]
    assert p["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert p["versions"]["numpy"] == np.__version__ and p["versions"]["pytest"]
    assert p["machine"]["cpu"] and p["devices"]["cpu"] == p["machine"]["cpu"]
    assert p["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", p["git"]["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", p["started"])
    assert "--cases" in p["args"] and p["options"]["cases"] == "chain,small"
    assert p["options"]["adapter"][:2] == list(SMALL[1:4:2])
    assert p["seeds"] == [0] and p["exitstatus"] == 1


def test_each_item_records_what_it_could_catch_and_the_page_shows_it(runs):
    """Every compared item records its sensitivity (the smallest relative change of one entry
    that fails it; float32 items, whether tf32 and bf16 would be seen); the page shows it for
    passing tensors in their config's summary."""
    doc = runs["doc"][0]
    compared = [i for i in doc["items"] if i["comparison"] is not None]
    assert compared
    for i in compared:
        sens = i["details"]["sensitivity"]
        assert sens["entry_change"] > 0
        if i["config"]["dtype"] == "float32" and i["outcome"] == "passed":
            assert sens["tf32"] in ("detectable", "not detectable",
                                    "caught as a wrong gradient, not named"), sens
    page = html.render(doc)
    assert re.search(r"sensitivity: one entry changed by a relative [0-9.e+-]+ fails every one "
                     r"of these tensors; tf32 (detectable|caught as a wrong gradient, not named) "
                     r"in \d+", page)


def test_xdist_records_the_same_results(runs):
    """The same run with -n 0 and -n 2 gives the same items, timings aside."""
    def items(doc):
        return [{k: _untimed(v) if k == "details" else v for k, v in i.items()
                 if k not in ("duration", "run")} for i in doc["items"]]

    assert items(runs["doc"][0]) == items(runs["doc"][2])
    assert runs["doc"][2]["runs"][0]["provenance"]["options"]["numprocesses"] == 2


def _untimed(details: dict) -> dict:
    return {k: v for k, v in details.items() if k != "timing"}


def test_the_paths_written_are_printed(runs):
    """The terminal summary names the results and the report, absolute."""
    out = runs["proc"][2].stdout
    where = runs["where"].resolve()
    assert f"conformance results: {where / 'n2.json'}" in out
    assert f"conformance report: {where / 'n2.html'}" in out



def test_a_file_that_cannot_be_written_fails_the_run_and_keeps_the_other(tmp_path):
    """An unwritable --report path: one line naming it, exit status 4 (usage error) although
    every test passed, and the results file is written all the same."""
    (tmp_path / "taken").write_text("a file, not a folder")
    proc = run_suite(tmp_path, "ok", "--adapter", "adapters.example:adapter", "--cases", "chain",
                     "--report", "taken/report.html")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout
    assert re.search(r"^conformance report: cannot write \S*taken/report\.html: .+$",
                     proc.stdout, re.MULTILINE), proc.stdout
    assert "passed" in proc.stdout and "failed" not in proc.stdout
    assert {i["outcome"] for i in json.loads((tmp_path / "ok.json").read_text())["items"]} == \
        {"passed"}

def test_a_dead_worker_shows_its_items_as_crashed(tmp_path):
    """Items of a worker that died are crashed, whether xdist reported them or never ran them."""
    spec = third_party(tmp_path, "Dies")
    proc = run_suite(tmp_path, "crash", "-n", "2", "--max-worker-restart", "1", "--adapter",
                     "adapters.example:adapter", "--adapter", spec, "--cases", "chain,small",
                     "--dtypes", "float64")
    items = by_id(json.loads((tmp_path / "crash.json").read_text()))
    assert set(items) == expected_ids(["numpy", "dies"], ["float64"], ["chain", "small"]), \
        proc.stdout
    chain = [i for i in items.values() if i["group"].startswith("dies-cpu-float64-sigmoid-")]
    assert {i["outcome"] for i in chain} == {"crashed"}
    reasons = {i["reason"] for i in chain}
    assert any(r.startswith("worker 'gw") and "crashed while running" in r for r in reasons)
    assert {i["outcome"] for i in items.values()} <= {"passed", "crashed"}


def test_items_a_stopped_run_never_reached_are_not_run(tmp_path):
    """With -x, the items after the first failure are in the results as not run."""
    run_suite(tmp_path, "stop", "-x", *SMALL)
    outcomes = [i["outcome"] for i in json.loads((tmp_path / "stop.json").read_text())["items"]]
    assert outcomes.count("failed") == 1 and "not run" in outcomes
    assert outcomes.index("not run") > outcomes.index("failed")


@pytest.mark.parametrize("ratio,code", [
    (0.0, 0), (1e-9, 1), (1e-6, 1), (1.0, 127), (np.nextafter(1.0, 2.0), 128), (1e6, 253),
    (1e9, 254), (np.inf, 255), (np.nan, 255),
])
def test_quantized_ratios_keep_the_bound_exact(ratio, code):
    """One byte per entry on a log scale; ratio 1 and the next float land on either side."""
    assert record.quantize(np.array([ratio]))[0] == code


def test_big_tensors_are_max_pooled_and_keep_their_worst_entries():
    """A 3000 × 300 map pools to ≤ 128 × 1024 cells; the one failing entry stays visible."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(3000, 300))
    bound = np.full_like(ref, 1e-12)
    got = ref + rng.uniform(-1e-13, 1e-13, ref.shape)
    got[2345, 123] = ref[2345, 123] + 5e-12
    s = record.summarize(compare("W1", got, ref, bound, "float64"))
    m = s["heatmap"]
    assert m["rows"] <= record.HEAT_ROWS and m["cols"] <= record.HEAT_COLS
    codes = np.frombuffer(base64.b64decode(m["codes"]), np.uint8).reshape(m["rows"], m["cols"])
    br, bc = m["block"]
    assert list(zip(*np.nonzero(codes > record.PASS_MAX), strict=True)) == [(2345 // br, 123 // bc)]
    assert s["values"] is None and s["worst"][0]["index"] == [2345, 123]
    assert s["worst"][0]["got"] == got[2345, 123] and s["failing"] == 1


def test_small_vectors_keep_every_value_unpooled():
    """A 4096-entry vector is drawn cell by cell with every got, ref and bound kept."""
    ref = np.linspace(-1, 1, 4096)
    s = record.summarize(compare("b1", ref + 1e-17, ref, np.full(4096, 1e-15), "float64"))
    assert (s["heatmap"]["block"], s["heatmap"]["cells"]) == ([1], 4096)
    assert np.array_equal(np.frombuffer(base64.b64decode(s["values"]["ref"]), "<f8"), ref)


@pytest.mark.parametrize("damage,problem", [
    (lambda text: text[: len(text) // 2], r"truncated \(the JSON ends early\)"),
    (lambda text: "{'schema': 1}", r"not JSON \(line 1 column 2\)"),
    (lambda text: "", r"empty, not JSON"),
    (lambda text: text.replace('"version":2', '"version":3', 1),
     r"schema version 3, this suite reads 1 and 2"),
    (lambda text: '{"schema": "something/else"}', r"not a backprop-conformance/results file"),
    (lambda text: text.replace('"version":2', '"version":true', 1),
     r"schema version true, this suite reads 1 and 2"),  # (Python counts True as 1)
    (lambda text: text.replace('"version":2', '"version":2.0', 1),
     r"schema version 2\.0, this suite reads 1 and 2"),
    (lambda text: json.dumps({**json.loads(text), "version": True}, indent=1),
     r"schema version true, this suite reads 1 and 2"),
])
def test_merging_a_bad_file_fails_in_one_line_and_writes_nothing(runs, tmp_path, capsys,
                                                                 damage, problem):
    """Truncated, non-JSON or other-version input: one line naming the file, exit code 2."""
    good = runs["where"] / "n0.json"
    bad = tmp_path / "bad.json"
    bad.write_text(damage(good.read_text()))
    out = tmp_path / "merged.json"
    assert reports_cli(["merge", str(good), str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"reports: {re.escape(str(bad))}: {problem}\n", err), err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]



def test_every_cut_of_a_results_file_reads_as_truncated(tmp_path):
    """Wherever a file is cut (inside a number, a literal, a string or an escape), it reads as
    truncated, and a file with a stray token in the middle does not."""
    doc = encoding.document([{"id": "r", "note": "caf\u00e9 \\ \"q\""}],
                           [{"run": "r", "ratio": -1.5e-300, "ok": True, "bad": False,
                             "none": None, "values": [1, 2.25, -0.0, 3e+40]}])
    for indent in (None, 1):
        text = json.dumps(doc, indent=indent, ensure_ascii=indent is None)
        path = tmp_path / "cut.json"
        for end in range(1, len(text)):
            path.write_text(text[:end], encoding="utf-8")
            with pytest.raises(reading.ResultsError, match=r": truncated \(the JSON ends early\)$"):
                reading.load(path)
    for stray in ('[1 2]', '[1.x]', '{"a": tru}', '["\\u00zz"]', '[nul, 1]'):
        path.write_text(stray)
        with pytest.raises(reading.ResultsError, match=r": not JSON \(line 1 column \d+\)$"):
            reading.load(path)

@pytest.mark.parametrize("layout", ["lines", "whole"])
def test_an_item_listed_twice_is_one_line_for_every_reader(runs, tmp_path, capsys, layout):
    """Merge, the page and a study's comparison would count an item listed twice twice: each
    refuses the file in one line naming the item, in the writer's line layout (the fast
    reader) and in any other (the whole reader)."""
    lines = (runs["where"] / "n0.json").read_text().splitlines(keepends=True)
    text = "".join([lines[0], lines[1], *lines[1:]])  # the first item twice
    if layout == "whole":
        text = json.dumps(json.loads(text), indent=1)
    bad = write_doc(tmp_path / "twice.json", text)
    first = json.loads(lines[1].rstrip(",\n"))
    says = (f"reports: {bad}: malformed: items[1]: {first['nodeid']!r} is listed twice in run "
            f"{first['run']!r}\n")
    for command, out in (("merge", "m.json"), ("html", "m.html")):
        assert reports_cli([command, str(bad), "-o", str(tmp_path / out)]) == 2
        assert capsys.readouterr().err == says
    assert study.main(["compare", str(bad), "-o", str(tmp_path / "study")]) == 2
    assert capsys.readouterr().err == says
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twice.json"]


def test_an_item_collected_twice_is_recorded_once(tmp_path):
    """`--keep-duplicates` with the test file given twice runs each item twice: the results
    list it once, and read back."""
    proc = run_suite(tmp_path, "dup", CONFORMANCE, "--keep-duplicates", "--frameworks=",
                     "--adapter", "adapters.example:adapter", "--cases", "chain", "--dtypes",
                     "float64")
    assert "8 passed" in proc.stdout, proc.stdout[-3000:]
    items = reading.load(tmp_path / "dup.json")["items"]
    assert len(items) == len({i["nodeid"] for i in items}) == 4


@pytest.mark.parametrize("layout", ["lines", "whole"])
def test_a_byte_order_mark_is_read_past(tmp_path, layout):
    """A results file that an editor saved with a UTF-8 byte-order mark reads as without it,
    in either layout (not `not JSON (line 1 column 1)`), and merges."""
    text = encoding.dumps(hostile_doc())
    if layout == "whole":
        text = json.dumps(json.loads(text), indent=1)
    marked = tmp_path / "bom.json"
    marked.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert reading.load(marked) == encoding.jsonable(hostile_doc())
    assert reports_cli(["merge", str(marked), "-o", str(tmp_path / "m.json")]) == 0
    assert reading.load(tmp_path / "m.json")["items"] == encoding.jsonable(hostile_doc())["items"]


def test_a_symlink_loop_is_never_replaced(tmp_path, capsys):
    """A path in a symlink loop is refused in one line and stays a link, from the library,
    `reports html` and pytest's --results alike."""
    (tmp_path / "a.json").symlink_to("b.json")
    (tmp_path / "b.json").symlink_to("a.json")
    with pytest.raises(OSError, match="a symlink loop, not a regular file; left untouched"):
        files.write_text(tmp_path / "a.json", "text")
    assert reports_cli(["html", str(good_file(tmp_path)), "-o", str(tmp_path / "a.json")]) == 2
    assert capsys.readouterr().err == (f"reports: {tmp_path / 'a.json'}: cannot write (a symlink "
                                       "loop, not a regular file; left untouched)\n")
    proc = run_suite(tmp_path, "ok", "--adapter", "adapters.example:adapter", "--cases",
                     "chain", "--results", "a.json")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: --results {tmp_path / 'a.json'}: a symlink loop" in proc.stderr, proc.stderr
    assert all((tmp_path / n).is_symlink() for n in ("a.json", "b.json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "good.json"]


WRITER = """
import os, signal, sys, time
from reports import files, plugin


def text():
    yield "partial"
    if sys.argv[2] == "kill":  # SIGKILL mid-write: no clean-up runs
        os.kill(os.getpid(), signal.SIGKILL)
    print("staged", flush=True)
    time.sleep(600)


if sys.argv[1] == "scratch":  # a recorder's scratch folder (-n N), then SIGKILL or a wait
    print(plugin.Recorder(None).scratch(), flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)
files.write_text(sys.argv[1], text())
"""


def writer(where: Path, *args: str, **extra: str) -> subprocess.Popen:
    """Start a process that writes (or makes a scratch folder), then is killed or waits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.Popen([sys.executable, "-c", WRITER, *args], cwd=where, text=True,
                            env={**env, "PYTHONPATH": str(ROOT), **extra}, stdout=subprocess.PIPE)


def test_the_next_write_sweeps_what_a_killed_writer_left(tmp_path):
    """A writer killed mid-write leaves `.r.json.*.tmp`; the next write of r.json removes it,
    and keeps the temporary file of a writer still at work."""
    out = tmp_path / "r.json"
    with writer(tmp_path, str(out), "kill") as killed:
        assert killed.wait(timeout=60) == -signal.SIGKILL
    left = set(tmp_path.glob(".r.json.*.tmp"))
    assert len(left) == 1
    with writer(tmp_path, str(out), "wait") as live:
        try:
            assert live.stdout.readline() == "staged\n"
            working = set(tmp_path.glob(".r.json.*.tmp")) - left
            files.write_text(out, "whole")
            assert set(tmp_path.glob(".r.json.*.tmp")) == working and len(working) == 1
        finally:
            live.kill()
    assert out.read_text() == "whole"


def test_the_next_run_sweeps_the_scratch_folder_a_killed_run_left(tmp_path):
    """A run with -n N killed before its end leaves its scratch folder `bpc-reports-*`; the next
    run's recorder removes it, and keeps the folder of a run still at work."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with writer(tmp_path, "scratch", "kill", TMPDIR=str(tmp)) as killed:
        assert killed.wait(timeout=60) == -signal.SIGKILL
    assert len(list(tmp.glob("bpc-reports-*"))) == 1
    with writer(tmp_path, "scratch", "wait", TMPDIR=str(tmp)) as live:
        try:
            working = Path(live.stdout.readline().strip())
            env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
            done = subprocess.run(
                [sys.executable, "-m", "pytest", CONFORMANCE, "-q", "-p", "no:cacheprovider",
                 "--adapter", "adapters.example:adapter", "--cases", "chain", "--dtypes",
                 "float64", "-n", "1", "--results", "r.json"],
                cwd=tmp_path, env={**env, "TMPDIR": str(tmp)}, capture_output=True, text=True,
                timeout=600)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            assert list(tmp.glob("bpc-reports-*")) == [working]
        finally:
            live.kill()


def test_merged_runs_keep_provenance_and_sit_side_by_side(runs, tmp_path):
    """Merging keeps every run's provenance and unique ids; the page shows the runs as columns."""
    n0, n2 = (str(runs["where"] / f"n{n}.json") for n in (0, 2))
    merged = tmp_path / "merged.json"
    assert reports_cli(["merge", n0, n2, n0, "-o", str(merged)]) == 0
    doc = reading.load(merged)
    ids = [r["id"] for r in doc["runs"]]
    first, second = (runs["doc"][n]["runs"][0]["id"] for n in (0, 2))
    # ids are the start time to the second: two runs started within one second share one,
    # and the merge tells them apart as it does the repeated file
    assert ids == ([first, second, f"{first}~2"] if second != first else
                   [first, f"{first}~2", f"{first}~3"])
    assert [r["provenance"] for r in doc["runs"]] == [
        runs["doc"][0]["runs"][0]["provenance"], runs["doc"][2]["runs"][0]["provenance"],
        runs["doc"][0]["runs"][0]["provenance"]]
    assert len(doc["items"]) == 3 * len(runs["doc"][0]["items"])
    page = tmp_path / "merged.html"
    assert reports_cli(["html", str(merged), "-o", str(page)]) == 0
    text = page.read_text()
    group = text.split('<article class="group"', 2)[1]
    assert group.count('class="run-col"') == 3 and '<div class="runs multi">' in group
    assert all(i in text for i in ids)


def hostile_doc() -> dict:
    """Return a results document whose every string is HTML that would run if not escaped."""
    h = HOSTILE
    cmp = record.summarize(compare("W1", np.array([[1.0, 2.5]]), np.array([[1.0, 2.0]]),
                                   np.array([[1e-9, 1e-9]]), "float64"))
    item = {"run": h, "nodeid": h, "id": h, "group": h, "config_id": h, "spec_id": h,
            "config": {"adapter": h, "device": h, "dtype": h, h: h},
            "spec": {"sizes": [1, 1, 2], "batch": 1, "seed": 0, "sigma1": h, "sigma2": h},
            "tensor": h, "entry": None, "framework": h, "framework_version": h,
            "outcome": "failed", "reason": h, "message": f"</script>{h}", "fingerprint": h,
            "comparison": cmp, "duration": 0.1}
    return encoding.document([{"id": h, "provenance": {h: h, "argv": [h, "</script>"]}}], [item])


def test_every_string_in_the_page_is_escaped():
    """A hostile adapter, framework, message and provenance render as text, never as markup."""
    page = html.render(hostile_doc())
    assert HOSTILE not in page and "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count("<script") == 2 and page.count("</script>") == 2
    blob = page.split('<script type="application/json" id="data">', 1)[1].split("</script>")[0]
    assert "<" not in blob and ">" not in blob
    assert json.loads(blob)["items"]["0"]["tensor"] == HOSTILE


class Links(HTMLParser):
    """Collects every tag and every attribute that could make a browser fetch something."""

    FETCHING = {"src", "href", "srcset", "action", "data", "poster", "background", "formaction"}

    def __init__(self):
        super().__init__()
        self.tags, self.urls = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [v for k, v in attrs if k in self.FETCHING]


def test_the_page_is_self_contained(runs):
    """No URL to fetch anything: no src, only in-page anchors, no link/img tags, a CSP of 'none'."""
    page = (runs["where"] / "n0.html").read_text()
    links = Links()
    links.feed(page)
    assert links.urls and all(u.startswith("#") for u in links.urls)
    assert not links.tags & {"img", "link", "iframe", "object", "embed", "video", "audio"}
    assert not re.search(r"https?://|//cdn|@import|url\(", page)
    assert "default-src 'none'" in page
    assert "</script><script>alert(2)" not in page and "<img" not in page


def synthetic_doc(sizes: list[tuple], configs: int, rng) -> dict:
    """Return results of `configs` configs over cases of these (sizes, batch), all passing."""
    items = []
    for c in range(configs):
        config = matrix.Config(f"a{c // 2}", "cpu", ("float32", "float64")[c % 2])
        for n, (size, batch) in enumerate(sizes):
            spec = matrix.Spec(size, batch, 0, ("sigmoid",) * (len(size) - 2) + (f"s{n}",))
            for tensor in tensors(len(size) - 1):
                shape = matrix.shape_of(size, tensor)
                ref = rng.normal(size=shape)
                cmp = compare(tensor, ref * (1 + rng.uniform(-1e-7, 1e-7, shape)), ref,
                              np.abs(ref) * 1e-6, config.dtype)
                item = matrix.Item(config, spec, tensor)
                items.append({"run": "r", **record.params(item), "framework": "f",
                              "outcome": "passed", "comparison": record.summarize(cmp)})
    return encoding.document([{"id": "r", "provenance": {}}], items)


def test_the_default_matrix_report_stays_under_1_2_mb():
    """Eight configs × the default matrix's cases (each case once per activation tuple; the
    deep case's 64×784 W1 among them): page under 1.2 MB, results under 3 MB."""
    sizes = [matrix.CASES[name] for name in matrix.CASES for _ in matrix.PAIRS[name]]
    doc = synthetic_doc(sizes, 8, np.random.default_rng(1))
    assert len(doc["items"]) == 8 * sum(2 * (len(size) - 1) for size, _ in sizes)
    assert len(html.render(doc).encode()) <= 1_200_000
    assert len(encoding.dumps(doc).encode()) <= 3_000_000


def test_a_passing_item_costs_under_1_kb_of_page():
    """Passing items are summarised per config: 4,000 of them add under 1 KB each."""
    from tests.bench import synthetic

    doc = synthetic.build(4000, 1, 40, 6)
    failing = encoding.document(doc["runs"], [i for i in doc["items"] if i["outcome"] != "passed"])
    passed = sum(i["outcome"] == "passed" for i in doc["items"])
    cost = (len(html.render(doc).encode()) - len(html.render(failing).encode())) / passed
    assert 0 < cost <= 1000


def test_a_1440_item_study_report_stays_under_2_mb():
    """24 configs × 784-16-10 at three batches × 5 seeds × 4 tensors: the page under 2 MB."""
    from tests.bench import synthetic

    doc = synthetic.build(1440, 1, 24, 0, cases=synthetic.STUDY)
    assert len(doc["items"]) == 1440
    assert len(html.render(doc).encode()) <= 2_000_000


def test_the_matrix_shows_each_cells_margin_and_summaries_keep_the_worst_cell():
    """A passing cell reads `8/8` and its greatest ratio labelled in the one format of margins
    (`5.2e-04 × bound`); a config's summary heatmap is the greatest code of its passing
    tensors cell by cell, and its worst entry is theirs."""
    from tests.bench import synthetic

    doc = synthetic.build(96, 1, 2, 0)  # the second config's items are skipped
    page = html.render(doc)
    cells = re.findall(r'<td class="cell pass"[^>]*><a href="#r0">8/8<small class="margin">'
                       r'([^<]+)<span class="unit"> × bound</span></small>', page)
    assert len(cells) == 6  # 2 seeds × 4 tensors each
    for c in cells:
        assert re.fullmatch(r"\d\.\de[-+]\d\d", c) and float(c) < 1, c
    assert re.search(r'<span class="note">8 passing tensors over 8 cases</span>', page)
    blob = json.loads(page.split('id="data">', 1)[1].split("</script>")[0])
    w1 = [i["comparison"] for i in doc["items"] if i["tensor"] == "W1"
          and i["spec"]["sizes"] == [784, 16, 10] and i["outcome"] == "passed"]
    summary = next(v for k, v in blob["items"].items() if k.startswith("s0.0.")
                   and v["tensor"] == "W1" and v["shape"] == [16, 784])
    greatest = max((record.codes_of(c["heatmap"]) for c in w1), key=lambda a: a.max())
    assert record.codes_of(summary["heatmap"]).max() == greatest.max()
    assert summary["worst"][0]["ratio"] == max(c["max_ratio"] for c in w1)


def test_seeds_share_a_matrix_column():
    """A soak's seeds of one case are one column, labelled with how many seeds it holds."""
    from tests.bench import synthetic

    doc = synthetic.build(4 * 6 * 3, 1, 1, 0)
    page = html.render(doc)
    heads = re.findall(r'<th colspan="1" class="case" title="([^"]+)">([^<]+)<small>([^<]+)'
                       r'</small></th>', page)
    assert heads[0] == ("sigmoid-sigmoid-784x16x10-b1 · 3 seeds", "784-16-10 b1",
                        "sigmoid · sigmoid · 3 seeds") and len(heads) == 6


def test_a_results_file_in_another_key_order_reads_the_same(tmp_path):
    """Items before runs (a foreign writer's order) are read whole, to the same document."""
    doc = json.loads(encoding.dumps(hostile_doc()))
    text = json.dumps({"items": doc["items"], "runs": doc["runs"], "version": 2,
                       "schema": schema.SCHEMA})
    assert reading.load(write_doc(tmp_path / "odd.json", text)) == \
        reading.load(good_file(tmp_path))


def test_one_entry_summaries_equal_the_general_ones():
    """The one-entry summary (`--entries`) is what the general one gives, exactly."""
    for got, ref, bound, dtype in [(1.0, 1.0, 1e-9, "float64"), (1.5, 1.0, 1e-9, "float64"),
                                   (np.nan, 1.0, 1e-9, "float64"), (1 + 1e-12, 1.0, 0.0,
                                                                   "float64"),
                                   (np.float32(0.3), 0.3, 1e-7, "float32")]:
        one, general = (compare("W1", np.array([got]), np.array([ref]), np.array([bound]),
                                dtype) for _ in range(2))
        assert json.dumps(record.summarize(one, (3, 4))) == \
            json.dumps(record._summarize(general, (3, 4)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_entries_of_a_tensors_comparison_summarise_as_one_entry_compared_alone(dtype):
    """An entry taken from a whole tensor's comparison (`Comparison.at`, as entry items take
    theirs) summarises exactly as that entry compared on its own: exact, inside, outside the
    bound, NaN, infinite, a zero bound, every step of the map."""
    ref = np.linspace(-2.0, 3.0, 24).reshape(4, 6)
    bound = np.full(ref.shape, 1e-9)
    got = ref + np.geomspace(1e-14, 1e-6, ref.size).reshape(ref.shape) * [1, -1, 1, -1, 1, -1]
    got[0, 0], got[1, 1], got[2, 2], got[3, 3] = ref[0, 0], np.nan, np.inf, ref[3, 3] + 1e-12
    bound[3, 3] = bound[0, 1] = 0.0
    got = got.astype(dtype)
    whole = compare("W1", got, ref, bound, dtype)
    for index in np.ndindex(ref.shape):
        alone = compare("W1", got[index].reshape(1), ref[index].reshape(1),
                        bound[index].reshape(1), dtype)
        one = whole.at(index)
        assert one.passed == alone.passed
        assert json.dumps(record.summarize(one, index)) == \
            json.dumps(record._summarize(alone, index)), index
    with pytest.raises(IndexError):
        whole.at((4, 0))


def test_a_784_4096_10_report_stays_under_10_mb():
    """Two configs of the 784-4096-10 net (3.2 M entries in W1): page under 10 MB."""
    doc = synthetic_doc([((784, 4096, 10), 8)], 2, np.random.default_rng(2))
    assert len(html.render(doc).encode()) <= 10_000_000


def good_file(where: Path, name: str = "good.json") -> Path:
    """Write a valid results file (the hostile document) and return its path."""
    path = where / name
    path.write_text(encoding.dumps(hostile_doc()))
    return path


def is_fifo(path: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


def test_a_fifo_or_a_folder_at_the_path_is_never_replaced(tmp_path, capsys):
    """Writing to a FIFO or a folder: one line saying what is there, and it stays as it was."""
    fifo, folder = tmp_path / "fifo", tmp_path / "folder"
    os.mkfifo(fifo)
    folder.mkdir()
    for path, kind in ((fifo, "a FIFO"), (folder, "a folder")):
        with pytest.raises(OSError, match=f"^.*{kind}, not a regular file; left untouched$"):
            files.write_text(path, "text")
    assert reports_cli(["html", str(good_file(tmp_path)), "-o", str(fifo)]) == 2
    assert re.fullmatch(rf"reports: {fifo}: cannot write \(a FIFO, not a regular file; left "
                        r"untouched\)\n", capsys.readouterr().err)
    assert is_fifo(fifo) and list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "folder", "good.json"]


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    """A symlinked path stays a symlink; its target gets the text. A symlink to a FIFO is a
    FIFO's path: refused."""
    (tmp_path / "target.json").write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to("target.json")
    assert files.write_text(link, "new") == link
    assert link.is_symlink() and (tmp_path / "target.json").read_text() == "new"
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_fifo").symlink_to("fifo")
    with pytest.raises(OSError, match="a FIFO, not a regular file"):
        files.write_text(tmp_path / "to_fifo", "text")
    assert is_fifo(tmp_path / "fifo")


def test_several_files_are_staged_first_and_renamed_under_the_folders_lock(tmp_path,
                                                                          monkeypatch):
    """Both temporary files exist before the first rename, and every rename happens while
    the folder is locked, so two runs cannot interleave their results and reports."""
    seen, real_replace = [], os.replace

    def replace(src, dst):
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        seen.append(sorted(p.name for p in tmp_path.glob(".*.tmp")))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    os.mkfifo(tmp_path / "fifo")
    written, errors = files.write_texts({tmp_path / "a.json": "a", tmp_path / "b.html": "b",
                                           tmp_path / "fifo": "c"})
    assert written == [tmp_path / "a.json", tmp_path / "b.html"]
    assert [(p, e.strerror) for p, e in errors] == [
        (tmp_path / "fifo", "a FIFO, not a regular file; left untouched")]
    assert len(seen) == 2 and len(seen[0]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.html", "fifo"]


@pytest.mark.parametrize("command", ["html", "merge"])
def test_an_output_that_is_an_input_is_refused(tmp_path, capsys, command):
    """`html R.json -o R.json` (or the same file by another path) writes nothing, exit 2."""
    good = good_file(tmp_path)
    before = good.read_bytes()
    (tmp_path / "alias.json").symlink_to(good)
    for output in (good, tmp_path / "alias.json", tmp_path / "." / "good.json"):
        assert reports_cli([command, str(good), "-o", str(output)]) == 2
        err = capsys.readouterr().err
        assert re.fullmatch(rf"reports: {re.escape(str(output))}: is the input .*; write the "
                            r"output elsewhere\n", err), err
    assert good.read_bytes() == before


def forged(damage, version: int = 1) -> dict:
    """Return the hostile document (valid) with one change, as a version 1 file (worst entries
    as objects) or a version 2 one (packed)."""
    doc = json.loads(encoding.dumps(hostile_doc()) if version == 2 else
                     json.dumps({**encoding.jsonable(hostile_doc()), "version": 1}))
    damage(doc)
    return doc


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


SHAPES = [
    (lambda d: d["runs"][0].update(id=["a"]), r"runs\[0\]\.id: expected a string"),
    (lambda d: d["runs"][0].update(id=7), r"runs\[0\]\.id: expected a string"),
    (lambda d: d["runs"].append(dict(d["runs"][0])), r"runs\[1\]\.id: .* appears twice"),
    (lambda d: d["runs"][0].update(provenance=[1]), r"runs\[0\]\.provenance: expected an obj"),
    (lambda d: d["items"].append(3), r"items\[1\]: expected an object"),
    (lambda d: d["items"][0].update(run=["x"]), r"items\[0\]\.run: expected a run id"),
    (lambda d: d["items"][0].update(run="other"), r"items\[0\]\.run: 'other' names no run"),
    (lambda d: d["items"][0].update(config=[1, 2]), r"items\[0\]\.config: expected an object"),
    (lambda d: d["items"][0].update(reason=["x"]), r"items\[0\]\.reason: expected a string"),
    (lambda d: d["items"][0].update(entry=[10**12, 0]), r"items\[0\]\.entry: expected null"),
    (lambda d: d["items"][0].update(entry=[-1]), r"items\[0\]\.entry: expected null"),
    (lambda d: d["items"][0].update(entry=[0, 1]),
     r"items\[0\]\.comparison\.worst\[1\]\.index: \[0, 0\] is not the item's entry \[0, 1\]"),
    (lambda d: d["items"].extend([{**d["items"][0], "entry": [9000, 0], "comparison": None},
                                  {**d["items"][0], "entry": [0, 9000], "comparison": None}]),
     r"entries of tensor .* span more than \d+ cells"),
    (lambda d: d["items"].extend([{**d["items"][0], "entry": [1], "comparison": None},
                                  {**d["items"][0], "entry": [0, 1], "comparison": None}]),
     r"entry \[0, 1\] of tensor .*: another entry has 1 indices"),
    (lambda d: d["items"][0]["comparison"].pop("bits"),
     r"items\[0\]\.comparison\.bits: expected an obj"),
    (lambda d: d["items"][0]["comparison"].update(max_ratio=[1]),
     r"items\[0\]\.comparison\.max_ratio: expected a number"),
    (lambda d: d["items"][0]["comparison"]["worst"][0].update(ratio="big"),
     r"items\[0\]\.comparison\.worst\[0\]\.ratio: expected a number"),
    (lambda d: d["items"][0]["comparison"]["heatmap"].update(codes="!!"),
     r"items\[0\]\.comparison\.heatmap\.codes: expected base64"),
    (lambda d: d["items"][0]["comparison"]["heatmap"].update(cells=99),
     r"items\[0\]\.comparison\.heatmap\.codes: expected base64 of one byte a cell"),
    (lambda d: d["items"][0].update(details=json.loads(deep(40))),
     r"nested more than 32 levels deep"),
]


SHAPES_2 = [
    (lambda d: d["items"][0]["comparison"]["worst"].update(numbers="AAAA"),
     r"items\[0\]\.comparison\.worst\.numbers: expected base64 of 10 float64 numbers"),
    (lambda d: d["items"][0]["comparison"]["worst"].update(index=[[0, -1], [0, 0]]),
     r"items\[0\]\.comparison\.worst\.index\[0\]: expected a list of indices"),
    (lambda d: d["items"][0]["comparison"]["worst"].pop("index"),
     r"items\[0\]\.comparison\.worst\.index: expected a list"),
    (lambda d: d["items"][0]["comparison"]["heatmap"].update(codes="!!"),
     r"items\[0\]\.comparison\.heatmap\.codes: expected base64"),
    (lambda d: d["items"][0]["comparison"]["bits"].update(of=[1]),
     r"items\[0\]\.comparison\.bits\.of: expected a number"),
    (lambda d: d["items"][0]["comparison"]["worst"].update(x=json.loads(deep(40))),
     r"nested more than 32 levels deep"),
]


@pytest.mark.parametrize("damage,problem", SHAPES_2, ids=range(len(SHAPES_2)))
def test_version_2_files_are_checked_as_strictly(tmp_path, capsys, damage, problem):
    """Packed worst entries (version 2) are checked field by field like version 1's."""
    good = good_file(tmp_path)
    bad = write_doc(tmp_path / "bad.json", forged(damage, version=2))
    assert reports_cli(["merge", str(good), str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"reports: {re.escape(str(bad))}: malformed: {problem}.*\n", err), err
    assert not (tmp_path / "out").exists()


def described(struct) -> dict[str, str]:
    """Return the fields of a schema struct whose type says in words what it must be."""
    fields = msgspec.inspect.type_info(struct).fields
    return {f.name: f.type.extra_json_schema["description"] for f in fields
            if isinstance(f.type, msgspec.inspect.Metadata)
            and "description" in (f.type.extra_json_schema or {})}


@pytest.mark.parametrize("where,struct", [
    ("", schema.Item), ("comparison.", schema.Comparison), ("comparison.bits.", schema.Bits),
    ("comparison.heatmap.", schema.Heatmap), ("comparison.worst.", schema.Packed)],
    ids=["item", "comparison", "bits", "heatmap", "worst"])
def test_a_wrong_field_is_named_in_the_schemas_words(tmp_path, where, struct):
    """Each field the schema describes, given a value of no kind it takes, is refused in one
    line: its path and the description its type carries (one definition, no second list)."""
    assert len(described(struct)) >= 3 or struct is schema.Packed
    for name, what in described(struct).items():
        doc = json.loads(encoding.dumps(hostile_doc()))
        parent = doc["items"][0]
        for key in where.split(".")[:-1]:
            parent = parent[key]
        parent[name] = True
        with pytest.raises(reading.ResultsError) as err:
            reading.load(write_doc(tmp_path / "bad.json", encoding.dumps(doc)))
        assert str(err.value).endswith(f": malformed: items[0].{where}{name}: expected {what}")


def test_version_1_and_2_files_merge_into_version_2(tmp_path):
    """A version 1 file and a version 2 file merge; the result reads back to both items."""
    v1 = write_doc(tmp_path / "v1.json", forged(lambda d: None, version=1))
    v2 = good_file(tmp_path, "v2.json")
    assert reports_cli(["merge", str(v1), str(v2), "-o", str(tmp_path / "m.json")]) == 0
    merged = json.loads((tmp_path / "m.json").read_text())
    assert merged["version"] == 2 and len(merged["items"]) == 2
    assert all(isinstance(i["comparison"]["worst"], dict) for i in merged["items"])
    back = reading.load(tmp_path / "m.json")
    assert back["items"][0]["comparison"] == back["items"][1]["comparison"] == \
        encoding.jsonable(hostile_doc())["items"][0]["comparison"]
    assert reports_cli(["html", str(v1), str(v2), "-o", str(tmp_path / "m.html")]) == 0


def write_doc(path: Path, doc_or_text) -> Path:
    path.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return path


@pytest.mark.parametrize("damage,problem", SHAPES, ids=range(len(SHAPES)))
@pytest.mark.parametrize("command", ["html", "merge"])
def test_valid_json_of_the_wrong_shape_is_one_line_and_writes_nothing(tmp_path, capsys,
                                                                      command, damage, problem):
    """Ids that are lists or ints, items that are not objects, forged entries, wrong types:
    one line naming the file and the field, exit 2, no output."""
    good = good_file(tmp_path)
    bad = write_doc(tmp_path / "bad.json", forged(damage))
    out = tmp_path / "out"
    assert reports_cli([command, str(good), str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"reports: {re.escape(str(bad))}: malformed: {problem}.*\n", err), err
    assert not out.exists()


def test_deep_nesting_is_one_line(tmp_path, capsys):
    """100,000 nested lists are refused in one line, not a RecursionError."""
    text = encoding.dumps(hostile_doc()).replace('"details":{}', f'"details":{deep(100_000)}')
    bad = write_doc(tmp_path / "deep.json", text.replace('"duration"', f'"x":{deep(100_000)},'
                                                         '"duration"'))
    assert reports_cli(["html", str(bad), "-o", str(tmp_path / "out.html")]) == 2
    assert re.fullmatch(rf"reports: {re.escape(str(bad))}: malformed: nested too deeply to "
                        r"read\n", capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.json"]


def test_the_hostile_document_reads_back_and_renders(tmp_path):
    """The checks accept what the writer writes (the forged cases above are the only change)."""
    assert reading.load(good_file(tmp_path)) == encoding.jsonable(hostile_doc())
    assert reports_cli(["html", str(tmp_path / "good.json"), "-o", str(tmp_path / "g.html")]) == 0


def test_a_huge_reason_is_capped_on_the_page():
    """A 5 MB one-line reason and message (an older or foreign writer's) are cut with a
    marker (the page shows a compared tensor's message, its reason only where nothing was
    compared)."""
    doc = hostile_doc()
    doc["items"][0].update(reason="x" * 5_000_000, message="y" * 5_000_000)
    doc["items"].append({**doc["items"][0], "reason": "x" * 5_000_000, "comparison": None})
    page = html.render(doc)
    assert len(page) < 200_000
    assert f"… [{5_000_000 - record.MESSAGE_CHARS} more characters cut]" in page
    assert f"… [{5_000_000 - record.REASON_CHARS} more characters cut]" in page


@pytest.mark.parametrize("layout", ["lines", "version 1"])
def test_a_passing_tensor_without_worst_entries_renders(tmp_path, layout):
    """A foreign writer's passing item that lists no worst entries (a tensor of no entries)
    is summarised without them, from either reader's path."""
    doc = encoding.jsonable(hostile_doc())
    item = doc["items"][0]
    item.update(outcome="passed", message=None, reason=None)
    item["comparison"].update(worst=[], max=None, entries=0, failing=0, max_ratio=None)
    path = tmp_path / "empty.json"
    path.write_text(encoding.dumps(doc) if layout == "lines" else
                    json.dumps({**doc, "version": 1}))
    assert reports_cli(["html", str(path), "-o", str(tmp_path / "e.html")]) == 0
    assert "passed" in (tmp_path / "e.html").read_text()


def test_merged_runs_are_named_by_what_differs_between_them():
    """Two runs that differ in a framework's version are named by it (versions first, then
    devices, then the rest); runs that differ in nothing that names them are R1, R2; the
    names head the run columns and the run filter of the merged page."""
    from reports import labels
    from tests.bench import synthetic

    doc = synthetic.build(96, 2, 2, 0)
    for r, version in zip(doc["runs"], ("2.12.0", "2.13.0"), strict=True):
        r["provenance"]["versions"]["torch"] = version
        r["provenance"]["started"] = f"2026-11-29T0{version[-3]}:00:00Z"  # differs, names none
    page = html.render(doc)
    for name in ("torch 2.12.0, hostname host1", "torch 2.13.0, hostname host2"):
        assert f'<input type="checkbox" checked value="{name}" data-dim="run">' in page
        assert f">{name}</span>" in page
    assert labels.run_names([{"started": "a", "versions.torch": "1"},
                             {"started": "b", "versions.torch": "1"}]) == ["R1", "R2"]
    assert labels.run_names([{"devices.cuda": "H100"}, {}]) == ["cuda H100", "no cuda"]


def test_bits_of_agreement_leave_out_entries_whose_reference_is_below_their_bound():
    """An entry whose reference is ~0 (below its bound) agrees to 0 bits under any rounding:
    it is left out of the least and median bits, and counted as such; the page says so."""
    ref = np.array([[1.0, 1e-12], [2.0, -3.0]])
    got = ref + np.array([[1e-16, 1e-12], [0.0, 0.0]])
    bound = np.full((2, 2), 1e-9)
    cmp = compare("W1", got, ref, bound, "float64")
    bits = record.summarize(cmp)["bits"]
    assert bits["below"] == 1 and bits["min"] > 40 and float(cmp.bits.min()) < 1
    one = compare("W1", got[:1, 1:], ref[:1, 1:], bound[:1, 1:], "float64")
    assert record.summarize(one, entry=(0, 1))["bits"] == {"min": None, "median": None,
                                                          "of": 53, "below": 1}


@pytest.mark.parametrize("reading,arithmetic", [
    ("float32", "float32"), ("tf32 in 1 of 5 products: backward layer 2", "tf32"),
    ("bfloat16 (outputs rounded too, as under autocast) in 2 of 5 products: ∂W1, ∂W2",
     "bfloat16"),
    ("wrong gradient: 3 entries", None), ("float64, σ of layer 1 in float32", None),
    ("every entry is 0.1× the reference: the cost is averaged over the 10 outputs (C/n_L)",
     None)])
def test_a_reading_is_an_arithmetic_or_a_diagnosis(reading, arithmetic):
    """Only an arithmetic and where it ran is an arithmetic; anything more names a cause, and
    a config's row puts it under diagnosis, never under arithmetic."""
    from reports import labels

    assert labels.arithmetic_of(reading) == arithmetic
    row = labels.split_readings([reading, "float64"], "float64")
    assert (row["diagnosis"] == "") == (arithmetic is not None)


def test_a_case_is_named_short_and_says_what_its_id_abbreviates():
    """`784-16-10 b32` over its activations; `w2e-12` reads `params × 2⁻¹²` and `z25`
    `|z| in (25, 28)`; the full id is kept for hovering."""
    from reports import labels

    for spec, short, sub in [
        (matrix.Spec((784, 16, 10), 32, 0, ("relu", "sigmoid")), "784-16-10 b32",
         "relu · sigmoid"),
        (matrix.Spec((16, 8, 4), 4, 0, ("tanh", "tanh"), scale=12), "16-8-4 b4",
         "tanh · tanh · params × 2⁻¹²"),
        (matrix.Spec((16, 8, 4), 4, 0, ("sigmoid", "softplus"), saturate=25), "16-8-4 b4",
         "sigmoid · softplus · |z| in (25, 28)")]:
        label = labels.case_label(record.plain(spec), spec.id)
        assert label == {"short": short, "sub": sub, "full": spec.id}


def test_a_known_bug_is_named_by_its_cause_in_the_row_and_the_verdict():
    """A config's diagnosis names the known bug, not the factor that led to it; the failing
    call's verdict says it in a sentence, the factor after it."""
    from reports import labels

    reading = ("every entry is 0.1× the reference: the cost is averaged over the 10 outputs "
               "(C/n_L)")
    row = labels.split_readings([reading, reading, "wrong gradient: 2 entries"], "float32")
    assert row["diagnosis"] == "the cost is averaged over the 10 outputs in 2 calls; wrong gradient"
    assert reading in row["full"]  # the formula on hover
    assert labels.verdict(reading, "float32", None)["text"] == (
        "A known bug: the cost is averaged over the 10 outputs (C/n_L) (every entry is 0.1× "
        "the reference).")
