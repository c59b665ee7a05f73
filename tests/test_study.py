"""The study command: it runs, two shards merge to the unsharded items, the page is safe."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reports import encoding, reading, study, study_page
from reports.html import csp_hash

ROOT = Path(__file__).resolve().parents[1]
SMALL = ("--frameworks=", "--adapter", "adapters.example:adapter", "--sizes", "5x4x3,5x8x3",
         "--batches", "1,3", "--seeds", "2", "--timing", "1")
"""64 items: the NumPy example adapter, 2 dtypes × 2 sizes × 2 batches × 2 seeds × 4 tensors."""
HOSTILE = '<img src=x onerror=alert(1)>"\'&'
pytestmark = pytest.mark.xdist_group("study")  # one worker runs the module's studies once


def run_study(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m reports.study` on the small matrix in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    cmd = [sys.executable, "-m", "reports.study", *SMALL, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict:
    """Run the small study unsharded (with two xdist workers) and as two shards (without)."""
    where = tmp_path_factory.mktemp("study")
    done = {"one": run_study("-n", "2", "-o", str(where / "one")),
            "two": run_study("--shards", "2", "-n", "0", "-o", str(where / "two"))}
    for proc in done.values():
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    docs = {k: reading.load(where / k / "results.json") for k in done}
    return {"where": where, "proc": done, "doc": docs}


class Tags(HTMLParser):
    """Collect every start tag with its attributes, and the text of <style>."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.style, self._in_style = "", False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def tags_of(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    return parser


def test_the_study_streams_progress_and_writes_its_outputs(studies):
    """One run: a header, pytest's progress lines, results, the standard report and the page."""
    out = studies["proc"]["one"].stdout
    assert re.search(r"^== study: python -m pytest .*--adapter=adapters.example:adapter.* -n 2 "
                     r"--dist loadgroup", out, re.M)
    assert re.search(r"\[100%\]$", out, re.M) and "64 passed" in out
    assert re.search(r"^  numpy-cpu-float32 +32 passed +0 failed +float32", out, re.M)
    doc = studies["doc"]["one"]
    assert len(doc["items"]) == 64 and {i["outcome"] for i in doc["items"]} == {"passed"}
    assert all(i["details"]["timing"]["repeats"] == 1 for i in doc["items"])
    where = studies["where"] / "one"
    assert "backprop-conformance report" in (where / "report.html").read_text()
    assert "backprop-conformance study" in (where / "study.html").read_text()


def test_two_shards_merge_to_the_unsharded_items(studies):
    """Sharded 2 ways and merged, the study has the same items, run ids and timing aside."""
    out, two = studies["proc"]["two"].stdout, studies["doc"]["two"]
    assert re.search(r"^== shard 1/2: .*--shard 1/2$", out, re.M)
    assert re.search(r"^== shard 2/2: .*--shard 2/2$", out, re.M)
    shards = [reading.load(studies["where"] / "two" / f"shard-{i}-of-2.json") for i in (1, 2)]
    ids = [{i["id"] for i in s["items"]} for s in shards]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    assert [r["provenance"]["options"]["shard"] for r in two["runs"]] == ["1/2", "2/2"]
    assert study.content(two) == study.content(studies["doc"]["one"])


def test_compare_merges_existing_results_files(studies, tmp_path):
    """`compare` renders the outputs from the shards' files, merged on the fly."""
    files = [str(studies["where"] / "two" / f"shard-{i}-of-2.json") for i in (1, 2)]
    assert study.main(["compare", *files, "-o", str(tmp_path)]) == 0
    merged = reading.load(tmp_path / "results.json")
    assert study.content(merged) == study.content(studies["doc"]["one"])
    assert (tmp_path / "study.html").read_text().count("<svg class=\"plot\"") == 6


def test_compare_stops_on_an_unusable_file(tmp_path, capsys):
    """A truncated results file stops `compare` with one line and exit status 2."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "backprop-conformance/results", "runs": [')
    assert study.main(["compare", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert "truncated" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_page_has_a_row_per_config_plots_and_timing(studies):
    """The page shows each config's row and the error and timing plots, one network to an
    axis: the batch plots one per net (5-4-3, 5-8-3), the width plots one per batch; each line
    labelled at its end, coloured by framework and dashed by dtype."""
    page = (studies["where"] / "one" / "study.html").read_text()
    rows = re.findall(r'<tr class="config">\s*<th class="mono" title="[^"]*">([^<]+)</th>', page)
    assert rows == ["numpy-cpu-float32", "numpy-cpu-float64"]
    assert page.count('<svg class="plot"') == 6 and page.count("<polyline") == 12
    for title in ("error against batch size, 5x4x3", "error against batch size, 5x8x3",
                  "error against width n1, 5-n1-3 b1", "error against width n1, 5-n1-3 b3",
                  "gradient time against batch size, 5x4x3"):
        assert f"<b>{title}</b>" in page
    assert page.count("<circle") == 3 * 16  # one dot per adapter call, in each kind of plot
    assert page.count('<text class="end"') == 12  # each line's label
    colours = set(re.findall(r'<polyline points="[^"]+" fill="none" stroke="([^"]+)"', page))
    dashes = set(re.findall(r'stroke-width="1.8" stroke-dasharray="([^"]*)"', page))
    assert len(colours) == 1 and dashes == {"", "6 3"}  # one framework, two dtypes
    assert page.count('<span class="note">as asked</span>') == 2
    assert re.search(r"5x8x3 b3</th>", page) and "ms <span" in page
    assert "CUDA times are synchronised" in page


def test_the_page_needs_no_network(studies):
    """No src or href leaves the page, nothing is loaded, and the CSP admits only its style."""
    page = (studies["where"] / "one" / "study.html").read_text()
    parsed = tags_of(page)
    links = [v for _, attrs in parsed.tags for k, v in attrs.items() if k in ("src", "href")]
    assert not [v for v in links if re.match(r"\s*(https?:|//)", v or "")]
    assert not {t for t, _ in parsed.tags} & {"script", "link", "img", "iframe", "object"}
    csp = next(a["content"] for t, a in parsed.tags if a.get("http-equiv") ==
               "Content-Security-Policy")
    assert "default-src 'none'" in csp and csp_hash(parsed.style) in csp


def item(adapter: str, dtype: str, batch: int, n1: int, seed: int, **extra) -> dict:
    """Return a hand-built results item of one tensor, W1, passed unless told otherwise."""
    spec = {"sizes": [784, n1, 10], "batch": batch, "seed": seed, "sigma1": "sigmoid",
            "sigma2": "sigmoid"}
    spec_id = f"sigmoid-sigmoid-784x{n1}x10-b{batch}-s{seed}"
    base = {
        "run": "r1", "id": f"{adapter}-cpu-{dtype}-{spec_id}-W1", "tensor": "W1",
        "config": {"adapter": adapter, "device": "cpu", "dtype": dtype, "precision": "default"},
        "spec": spec, "spec_id": spec_id, "framework": "numpy", "framework_version": "2",
        "outcome": "passed", "fingerprint": dtype,
        "details": {"precision_resolved": "default: highest",
                    "timing": {"repeats": 3, "median_s": 1e-3 * batch, "min_s": 9e-4 * batch,
                               "max_s": 2e-3 * batch}},
        "comparison": {"max_ratio": 0.01 * batch, "bits": {"min": 20.0, "median": 23.0,
                                                           "of": 24}},
    }
    return {**base, **extra}


def hostile_doc() -> dict:
    """Return results whose every string a page shows is hostile, with odd numbers too."""
    details = {"precision_resolved": HOSTILE, "timing": {"repeats": 1, "median_s": "inf"}}
    items = [item("a", "float32", b, n1, s) for b in (1, 8) for n1 in (16, 64) for s in (0, 1)]
    items += [
        item(HOSTILE, HOSTILE, 2, 16, 0, framework=HOSTILE, framework_version=HOSTILE,
             fingerprint=HOSTILE, spec_id=HOSTILE, details=details,
             comparison={"max_ratio": "inf", "bits": {"min": HOSTILE}}),
        item("a", "float32", 4, 16, 0, outcome="skipped", comparison=None, details={},
             fingerprint=None),
    ]
    prov = {"machine": {"hostname": HOSTILE}, "devices": {"cpu": HOSTILE},
            "git": {"commit": HOSTILE}, "options": {"numprocesses": HOSTILE}}
    return encoding.document([{"id": "r1", "provenance": prov}], items)


def test_the_page_escapes_every_string():
    """Hostile adapter names, versions, fingerprints and hosts appear as text only."""
    page = study_page.render(hostile_doc())
    assert "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert not {t for t, _ in tags_of(page).tags} & {"img", "script"}
    rows = re.findall(r'<tr class="config">', page)
    assert len(rows) == 2 and page.count('<svg class="plot"') == 6  # nets 784-16-10, 784-64-10
    assert '<td class="num bad">inf</td>' in page  # a non-finite ratio fails, shown as such
    assert "1 skipped" in page


def test_configs_group_items_and_summarise_them():
    """A config's row: its outcomes, bits, greatest ratio and one point per adapter call."""
    doc = hostile_doc()
    configs = study_page.view(doc)["configs"]
    a = next(c for c in configs if c["adapter"] == "a")
    assert (a["passed"], a["failed"], a["other"]) == (8, 0, {"skipped": 1})
    assert (a["bits_min"], a["bits_median"], a["bits_of"]) == (20.0, 23.0, 24.0)
    assert a["max_ratio"] == 0.08 and a["resolved"] == "highest"
    assert a["fingerprints"] == "float32" and len(a["groups"]) == 9
    worst = study_page._series(a, lambda g: g["case"][2], study_page._ratio_of, max)
    assert worst["line"] == [(1, 0.01), (8, 0.08)]



def test_the_console_summary_counts_every_outcome():
    """The line printed per config counts skipped items too, so all-skipped is not all-zero."""
    line = next(ln for ln in study.summary(hostile_doc()).splitlines() if "a-cpu-float32" in ln)
    assert re.search(r"8 passed +0 failed +float32 +greatest ratio 0\.08, 1 skipped$", line), line

def test_a_single_width_is_said_not_drawn():
    """A study of one width gets a sentence in place of an error-against-width plot."""
    items = [item("a", "float32", b, 16, 0) for b in (1, 8)]
    page = study_page.render(encoding.document([{"id": "r1", "provenance": {}}], items))
    assert page.count('<svg class="plot"') == 2
    assert "error against width n1: one width n1 only (16)" in page


def test_many_batches_and_frameworks_keep_their_tick_labels_apart():
    """Batches 1…64 for twelve configs: the x-axis labels never overlap, the ends are kept."""
    items = [item(f"fw{f}", "float32", b, 16, 0) for f in range(12) for b in range(1, 65)]
    page = study_page.render(encoding.document([{"id": "r1", "provenance": {}}], items))
    svg = page.split('<svg class="plot"', 2)[1]
    y = study_page.HEIGHT - study_page.BOTTOM + 16
    labels = re.findall(rf'<text x="([\d.]+)" y="{y}" text-anchor="middle">([^<]+)</text>', svg)
    xs = [(float(x), text) for x, text in labels]
    assert xs[0][1] == "1" and xs[-1][1] == "64" and 6 <= len(xs) < 64
    for (x0, t0), (x1, t1) in zip(xs, xs[1:], strict=False):
        assert x1 - x0 >= study_page.TICK_CHAR * (len(t0) + len(t1)) / 2 + study_page.TICK_GAP


def test_the_commands_pytest_runs():
    """Options pass through as given; one shard or K shards get their own results files."""
    args = study.study_parser().parse_args(
        ["--frameworks", "", "--adapter", "x:y", "--all-idioms", "--batches", "1,8",
         "--shard", "2/3", "-n", "0", "-o", "/tmp/o"])
    [(shard, path)] = study.plan(args)
    assert (shard, path) == ((2, 3), Path("/tmp/o/shard-2-of-3.json"))
    cmd = study.pytest_command(args, ["-k", "sigmoid"], shard, path)
    assert cmd[4:9] == ["--frameworks=", "--adapter=x:y", "--all-idioms", "--batches=1,8",
                        "--timing=3"]
    assert "-n" not in cmd and cmd[-4:] == ["--shard", "2/3", "-k", "sigmoid"]
    strict = study.study_parser().parse_args(["--deterministic", "--adapter-timeout", "30"])
    cmd = study.pytest_command(strict, [], None, Path("x.json"))
    assert "--deterministic" in cmd and "--adapter-timeout=30.0" in cmd
    many = study.study_parser().parse_args(["--shards", "3", "-n", "2"])
    assert [s for s, _ in study.plan(many)] == [(1, 3), (2, 3), (3, 3)]
    assert "--dist" in study.pytest_command(many, [], (1, 3), Path("x.json"))


def test_usage_errors(tmp_path, capsys):
    """Both --shards and --shard is a usage error; so is a matrix pytest refuses."""
    with pytest.raises(SystemExit) as stop:
        study.main(["--shards", "2", "--shard", "1/2"])
    assert stop.value.code == 2
    status = study.main(["--frameworks", "nosuch", "-n", "0", "-o", str(tmp_path)])
    out = capsys.readouterr()
    assert status == 4 and "nothing merged" in out.err and "nosuch" in out.out


def test_content_ignores_runs_and_timing_only():
    """Two runs' items compare equal when only run ids, durations and timing differ."""
    a, b = hostile_doc(), json.loads(json.dumps(hostile_doc()))
    for i in b["items"]:
        i.update(run="r2", duration=9.0)
        if isinstance(i["details"], dict):
            i["details"].pop("timing", None)
    assert study.content(a) == study.content(b)
    b["items"][0]["outcome"] = "failed"
    assert study.content(a) != study.content(b)


SLOW = '''"""An adapter that marks where it is, then waits to be interrupted (on float32)."""
import os
import pathlib
import time

from adapters.example import NumpyAdapter


class Slow(NumpyAdapter):
    name = "slow"

    def gradients(self, case, dtype, device):
        if dtype == "float32":
            pathlib.Path(os.environ["SLOW_MARK"]).touch()
            time.sleep(600)
        return super().gradients(case, dtype, device)
'''


def earlier_study(folder: Path) -> dict[str, bytes]:
    """Put an earlier study's three files into the folder; return their contents."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in study.PAGES:
        (folder / name).write_text(f"earlier {name}")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def interrupted_study(where: Path, output: Path) -> subprocess.CompletedProcess:
    """Run a study whose float32 group waits, and press Ctrl-C (SIGINT to its process group,
    as a terminal does) once the float64 groups are done."""
    (where / "slow.py").write_text(SLOW)
    mark = where / "mark"
    mark.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    cmd = [sys.executable, "-m", "reports.study", "--frameworks=", "--adapter",
           f"{where / 'slow.py'}:Slow", "--cases", "chain", "--dtypes", "float64,float32",
           "--timing", "0", "-n", "0", "-o", str(output)]
    with subprocess.Popen(cmd, cwd=ROOT, env={**env, "SLOW_MARK": str(mark)}, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True) as proc:
        while not mark.exists() and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_ctrl_c_keeps_what_finished_and_never_the_earlier_study(tmp_path):
    """Interrupted into an empty folder, the finished items are saved there (the rest not
    run); interrupted again, the earlier study stays whole and the new items go beside it."""
    out = tmp_path / "out"
    first = interrupted_study(tmp_path, out)
    assert first.returncode == 2 and "Traceback" not in first.stderr, first.stderr
    assert "study: interrupted; keeping the items finished" in first.stderr
    doc = reading.load(out / "results.json")
    assert doc["partial"].startswith("interrupted")
    outcomes = [i["outcome"] for i in doc["items"]]
    assert outcomes == ["passed"] * 4 + ["not run"] * 4
    assert sorted(contents(out)) == sorted(study.PAGES)
    before = contents(out)
    second = interrupted_study(tmp_path, out)
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
    assert contents(out) == before
    beside = reading.load(tmp_path / "out.interrupted" / "results.json")
    assert [i["outcome"] for i in beside["items"]] == outcomes
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mark", "out", "out.interrupted", "slow.py"]  # no scratch folder left


def test_a_study_that_fails_leaves_the_earlier_study_whole(tmp_path, capsys):
    """A typo in the matrix: pytest refuses it, and the earlier study's files are untouched."""
    out = tmp_path / "out"
    before = earlier_study(out)
    assert study.main(["--frameworks", "nosuch", "-n", "0", "-o", str(out)]) == 4
    assert f"nothing merged, {out} left as it was" in capsys.readouterr().err
    assert contents(out) == before and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_file_as_the_output_folder_is_one_line(tmp_path, capsys):
    """`study -o FILE` and `compare … -o FILE`: one line, exit 2, the file as it was."""
    path = tmp_path / "file"
    path.write_text("mine")
    good = tmp_path / "good.json"
    good.write_text(encoding.dumps(hostile_doc()))
    for argv in (["-o", str(path)], ["compare", str(good), "-o", str(path)]):
        assert study.main(argv) == 2
        assert capsys.readouterr().err == (f"study: {path}: not a folder; give a folder to "
                                           "write the study into\n")
    assert path.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "good.json"]


def test_compare_refuses_its_input_as_output_and_bad_shapes(tmp_path, capsys):
    """`compare DIR/results.json -o DIR` would overwrite its input; a file of the wrong shape
    stops it before anything is written, so the outputs never mix two studies."""
    out = tmp_path / "out"
    before = earlier_study(out)
    (out / "results.json").write_text(encoding.dumps(hostile_doc()))
    before = contents(out)
    assert study.main(["compare", str(out / "results.json"), "-o", str(out)]) == 2
    assert "its results.json is the input" in capsys.readouterr().err
    bad = hostile_doc()
    bad["runs"][0]["id"] = ["a list"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert study.main(["compare", str(out / "results.json"), str(tmp_path / "bad.json"), "-o",
                       str(tmp_path / "new")]) == 2
    assert capsys.readouterr().err == (f"reports: {tmp_path / 'bad.json'}: malformed: "
                                       "runs[0].id: expected a string\n")
    assert contents(out) == before and not (tmp_path / "new").exists()


def deep_item(adapter: str, dtype: str, sizes: list[int], seed: int, bits: float,
              ratio: float) -> dict:
    """Return a hand-built results item of one tensor of a net of these sizes."""
    spec = {"sizes": sizes, "batch": 8, "seed": seed, "sigmas": ["tanh"] * (len(sizes) - 1)}
    spec_id = "-".join(spec["sigmas"]) + f"-{'x'.join(map(str, sizes))}-b8-s{seed}"
    return {**item(adapter, dtype, 8, 64, seed), "spec": spec, "spec_id": spec_id,
            "id": f"{adapter}-cpu-{dtype}-{spec_id}-W1",
            "comparison": {"max_ratio": ratio, "bits": {"min": bits, "median": bits + 2,
                                                        "of": 24 if dtype == "float32" else 53}}}


def test_the_page_plots_error_and_bits_against_depth():
    """A study over depths 2…4 draws the greatest ratio and the least bits of agreement against
    depth, a line per config through its worst call; the width plot keeps 2-layer nets only."""
    items = [deep_item(a, dt, [784, *[64] * (L - 1), 10], s, bits=30.0 - L - s, ratio=0.1 * L)
             for a in ("a", "b") for dt in ("float32", "float64") for L in (2, 3, 4)
             for s in (0, 1)]
    page = study_page.render(encoding.document([{"id": "r1", "provenance": {}}], items))
    for title in ("error against depth", "bits of agreement against depth"):
        assert f"<b>{title}, 784-…-10 b8, width 64</b>" in page
    assert "least bits of agreement" in page and "depth L (layers)" in page
    assert "error against width n1: one width n1 only (64)" in page
    assert "error against batch size: one batch size only (8)" in page
    configs = study_page.view(encoding.jsonable(encoding.document([{"id": "r1"}], items)))
    a32 = next(c for c in configs["configs"] if c["label"] == "a-cpu-float32")
    depth = lambda g: g["case"][3]  # noqa: E731
    assert study_page._series(a32, depth, study_page._bits_of, min)["line"] == [
        (2, 27.0), (3, 26.0), (4, 25.0)]
    assert study_page._series(a32, depth, study_page._ratio_of, max)["line"] == [
        (2, 0.2), (3, 0.30000000000000004), (4, 0.4)]


def test_depths_make_the_sizes_of_a_depth_study(tmp_path):
    """--depths 2-4 --width 32 hands pytest 784x32x10,784x32x32x10,784x32x32x32x10; with
    --sizes too it is a usage error."""
    assert study.depth_sizes((2, 4), 32) == "784x32x10,784x32x32x10,784x32x32x32x10"
    assert study.depth_sizes((1, 1), 8) == "784x10"
    with pytest.raises(SystemExit):
        study.main(["--depths", "2-4", "--sizes", "4x3x2", "-o", str(tmp_path)])
    with pytest.raises(SystemExit):
        study.main(["--depths", "4-2", "-o", str(tmp_path)])


def test_a_depth_study_runs_through_pytest_and_plots_depth(tmp_path):
    """The README's depth study, narrowed to the NumPy example, depths 1…3 of width 4: every
    layer's tensors are checked, and the page plots error and bits against depth."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    cmd = [sys.executable, "-m", "reports.study", "--frameworks=", "--adapter",
           "adapters.example:adapter", "--depths", "1-3", "--width", "4", "--batches", "2",
           "--activations", "tanh,tanh-relu,tanh-relu-sigmoid", "--timing", "0", "-n", "0",
           "-o", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "--sizes=784x10,784x4x10,784x4x4x10" in done.stdout
    doc = reading.load(tmp_path / "results.json")
    assert len(doc["items"]) == 2 * (2 + 4 + 6)
    assert {i["outcome"] for i in doc["items"]} == {"passed"}
    assert "numpy-cpu-float64-tanh-relu-sigmoid-784x4x4x10-b2-s0-W3" in {
        i["id"] for i in doc["items"]}
    page = (tmp_path / "study.html").read_text()
    assert page.count('<svg class="plot"') == 2  # error and bits against depth
    for title in ("error against depth", "bits of agreement against depth"):
        assert f"<b>{title}, 784-…-10 b2, width 4</b>" in page  # the 784-10 net joins them


def test_a_study_reads_adapters_from_where_it_was_started(tmp_path):
    """Started outside the checkout, a study finds `my_adapter.py:adapter` and `other:Other`
    where pytest started there would: in the working directory, not in the checkout."""
    shutil.copy(ROOT / "adapters" / "example.py", tmp_path / "my_adapter.py")
    (tmp_path / "other.py").write_text("from adapters.example import NumpyAdapter\n\n\n"
                                       "class Other(NumpyAdapter):\n    name = 'other'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    cmd = [sys.executable, "-m", "reports.study", "--frameworks=", "--adapter",
           "my_adapter.py:adapter", "--adapter", "other:Other", "--cases", "chain", "--dtypes",
           "float64", "--timing", "0", "-n", "0", "-o", "out"]
    done = subprocess.run(cmd, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    items = reading.load(tmp_path / "out" / "results.json")["items"]
    assert {(i["config"]["adapter"], i["outcome"]) for i in items} == {("numpy", "passed"),
                                                                        ("other", "passed")}


def test_two_versions_of_a_framework_get_two_colours_and_networks_never_share_an_axis():
    """A merge of two runs that differ in torch's version, each on its own default network:
    each version has its colour (in the key and on its lines), and each network its own batch
    plot, so no line zig-zags between nets."""
    items = [{**item("a", dt, b, n1, 0), "framework": "torch",
              "framework_version": version}
             for version, n1 in (("2.12.0", 16), ("2.13.0", 32)) for dt in ("float32", "float64")
             for b in (1, 8)]
    page = study_page.render(encoding.document([{"id": "r1", "provenance": {}}], items))
    assert "torch 2.12.0" in page and "torch 2.13.0" in page
    plots = re.findall(r'<b>(error against batch size, [^<]+)</b>', page)
    assert plots == ["error against batch size, 784x16x10", "error against batch size, 784x32x10"]
    for svg in page.split('<svg class="plot"')[1:3]:
        assert len(set(re.findall(r'<polyline points="[^"]+" fill="none" stroke="([^"]+)"',
                                  svg))) == 1  # one version, one network per plot
    colours = set(re.findall(r'<polyline points="[^"]+" fill="none" stroke="([^"]+)"', page))
    assert len(colours) == 2
