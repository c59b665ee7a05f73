"""The results file's line layout: written one item a line, read a line at a time with a fast
check (reports/schema.py) that accepts nothing the full check refuses, so that errors, loads
and pages are what they were; other layouts, and hand-edited files, still read."""

from __future__ import annotations

import copy
import gc
import json
import math
import random
import re

import numpy as np
import pytest

from reference.compare import compare
from reports import encoding, html, merging, reading, record, schema
from reports.__main__ import main as reports_cli
from tests.bench import synthetic
from tests.test_reports import HOSTILE, SHAPES_2, deep, forged, hostile_doc


def entries_doc() -> dict:
    """Return a run with one whole tensor and the six entry items (`--entries`) of another,
    one of them failing."""
    doc = synthetic.build(4, 1, 1, 0)
    runs = [{**doc["runs"][0], "id": "entries"}]
    base = {**doc["items"][0], "run": "entries"}
    ref = np.arange(6.0).reshape(2, 3) / 7
    items = [base]
    for n, ix in enumerate(np.ndindex(2, 3)):
        got = ref[ix] * (1.5 if n == 4 else 1.0)
        cmp = record.summarize(compare("W9", np.array([got]), np.array([ref[ix]]),
                                       np.array([1e-12]), "float64"), ix)
        items.append({**base, "tensor": "W9", "entry": list(ix), "id": f"W9{list(ix)}",
                      "outcome": "failed" if n == 4 else "passed", "comparison": cmp})
    return encoding.document(runs, items)


def line_items(path) -> list[tuple[dict, str | None, bool]]:
    """Return what the line reader yields for a file: (item, text, passed the fast check)."""
    reader = reading._Lines.open(path, {})
    assert reader is not None, "not read as the line layout"
    try:
        ids = {r["id"] for r in reader.head()["runs"]}
        return list(reader.items(ids))
    finally:
        reader.close()


def write(path, text: str):
    path.write_bytes(text.encode("utf-8"))
    return path


def compact(doc: dict) -> str:
    """Return a document as one line (an older writer's layout, or a foreign one)."""
    return json.dumps(encoding.jsonable({**doc, "items": [encoding.packed(i)
                                                          for i in doc["items"]]}),
                      separators=(",", ":"))


@pytest.fixture(scope="module")
def docs() -> dict:
    return {"hostile": hostile_doc(), "entries": entries_doc(),
            "synthetic": synthetic.build(400, 2, 8, 3)}


def test_dumps_writes_one_item_a_line_and_stays_json(docs):
    """The head on the first line, then one item a line, then the end with keys after items."""
    doc = {**docs["synthetic"], "partial": "interrupted"}
    text = encoding.dumps(doc)
    lines = text.split("\n")
    assert lines[0].startswith('{"schema":"backprop-conformance/results","version":2,"runs":[')
    assert lines[0].endswith('"items":[') and lines[-1] == '],"partial":"interrupted"}'
    assert len(lines) == len(doc["items"]) + 2
    assert all(line.startswith('{"run":') and line.endswith("},") for line in lines[1:-2])
    assert json.loads(text) == json.loads(compact(doc))
    assert encoding.dumps(encoding.document([], [])) == \
        '{"schema":"backprop-conformance/results","version":2,"runs":[],"items":[\n]}'


@pytest.mark.parametrize("name", ["hostile", "entries", "synthetic"])
def test_the_line_layout_is_read_by_the_fast_path_to_the_same_document(tmp_path, docs, name):
    """Every item the writer writes passes the fast check (with its text kept for merges); the
    document read is the one a one-line file of it reads to."""
    doc = docs[name]
    lines = write(tmp_path / "lines.json", encoding.dumps(doc))
    one = write(tmp_path / "one.json", compact(doc))
    read = line_items(lines)
    assert len(read) == len(doc["items"]) and all(checked for _, _, checked in read)
    assert [json.loads(text) for _, text, _ in read] == [i for i, _, _ in read]
    assert reading._Lines.open(one, {}) is None  # no line breaks: the incremental reader
    assert reading.load(lines) == reading.load(one) == encoding.jsonable(doc)


def test_the_fast_path_shares_its_decoded_heatmap_codes(tmp_path, docs):
    """A heatmap read by the line reader carries its codes decoded (the page decodes them once);
    it is still the plain dict, and codes_of gives what decoding the text gives."""
    for item, _, _ in line_items(write(tmp_path / "r.json", encoding.dumps(docs["synthetic"]))):
        heat = item["comparison"]["heatmap"] if item["comparison"] else None
        if heat is not None:
            assert isinstance(heat, reading.Heatmap) and type(heat.raw) is bytes
            assert heat == dict(heat) and json.loads(json.dumps(heat)) == dict(heat)
            plain = record.codes_of(dict(heat))
            assert np.array_equal(record.codes_of(heat), plain) and plain.size == heat["cells"]


def test_the_page_is_the_same_whichever_layout_it_is_read_from(tmp_path, docs):
    for name in ("entries", "synthetic"):
        lines = write(tmp_path / f"{name}.json", encoding.dumps(docs[name]))
        one = write(tmp_path / f"{name}-one.json", compact(docs[name]))
        page = html.render_files([lines])
        assert page == html.render_files([one]) == html.render(docs[name])
        assert "W9[1, 1]" in page or name != "entries"


def test_merge_copies_each_line_and_writes_the_line_layout(tmp_path, docs):
    """A merge of line layout files writes each item's line as it was (runs renamed aside)."""
    a = write(tmp_path / "a.json", encoding.dumps(docs["synthetic"]))
    b = write(tmp_path / "b.json", encoding.dumps(docs["entries"]))
    out = tmp_path / "m.json"
    assert reports_cli(["merge", str(a), str(b), "-o", str(out)]) == 0
    merged = out.read_text().split("\n")
    source = a.read_text().split("\n")[1:-1] + b.read_text().split("\n")[1:-1]
    assert [m.rstrip(",") for m in merged[1:-1]] == [s.rstrip(",") for s in source]
    assert merged[-1] == "]}" and all(checked for _, _, checked in line_items(out))
    again = tmp_path / "m2.json"
    assert reports_cli(["merge", str(a), str(a), "-o", str(again)]) == 0  # renamed: re-written
    back = reading.load(again)
    assert len(back["items"]) == 2 * len(docs["synthetic"]["items"])
    assert {i["run"] for i in back["items"][-5:]} <= {r["id"] for r in back["runs"][2:]}


V2_SHAPES = [*SHAPES_2, *[
    (lambda d: d["items"][0].update(run="other"), r"items\[0\]\.run: 'other' names no run"),
    (lambda d: d["items"][0].update(config=[1, 2]), r"items\[0\]\.config: expected an object"),
    (lambda d: d["items"][0].update(reason=["x"]), r"items\[0\]\.reason: expected a string"),
    (lambda d: d["items"][0].update(entry=[-1]), r"items\[0\]\.entry: expected null"),
    (lambda d: d["items"][0].update(entry=[0, 1]),
     r"items\[0\]\.comparison\.worst\.index\[1\]: \[0, 0\] is not the item's entry \[0, 1\]"),
    (lambda d: d["items"][0].update(duration=True), r"items\[0\]\.duration: expected a number"),
    (lambda d: d["items"][0]["comparison"].update(entries=-1),
     r"items\[0\]\.comparison\.entries: expected a count"),
    (lambda d: d["items"][0]["comparison"]["heatmap"].update(cells=99),
     r"items\[0\]\.comparison\.heatmap\.codes: expected base64 of one byte a cell"),
    (lambda d: d["items"][0]["comparison"]["heatmap"].update(block=[0]),
     r"items\[0\]\.comparison\.heatmap\.block: expected a list of positive sizes"),
    (lambda d: d["items"][0]["comparison"]["values"].update(got="AAA"),
     r"items\[0\]\.comparison\.values: expected null or base64"),
    (lambda d: d["items"].append(3), r"items\[1\]: expected an object"),
    (lambda d: d["items"][0].update(details=json.loads(deep(40))),
     r"nested more than 32 levels deep"),
]]


@pytest.mark.parametrize("damage,problem", V2_SHAPES, ids=range(len(V2_SHAPES)))
def test_an_item_the_fast_check_refuses_gets_the_message_it_always_got(tmp_path, capsys,
                                                                       damage, problem):
    """In the line layout, a bad item is refused with the one line a one-line file gets."""
    doc = forged(damage, version=2)
    lines = write(tmp_path / "lines.json", "".join(encoding.lines(
        {k: doc[k] for k in ("schema", "version", "runs")},
        (json.dumps(i, separators=(",", ":")) for i in doc["items"]))))
    one = write(tmp_path / "one.json", json.dumps(doc))
    errors = []
    for path in (lines, one):
        assert reports_cli(["merge", str(path), "-o", str(tmp_path / "out.json")]) == 2
        errors.append(capsys.readouterr().err.replace(str(path), "FILE"))
    assert errors[0] == errors[1]
    assert re.fullmatch(rf"reports: FILE: malformed: {problem}.*\n", errors[0]), errors[0]
    assert not (tmp_path / "out.json").exists()


def mutations(value, rng: random.Random, n: int):
    """Yield n copies of a JSON value, each with one thing changed somewhere inside it: a value
    replaced by another of some other shape, a key dropped, or a key added."""
    others = [None, True, False, 0, -1, 7, 2 ** 70, 1.5, -0.0, "", "x", "inf", "nan", "AAAA",
              "AA==", "AAA", "!!", [], {}, [0], [[0]], [0, 0], [-1], [True], [1.5], {"x": 1},
              json.loads(deep(6)), {"a": {"b": {"c": {"d": {"e": 1}}}}}]
    for _ in range(n):
        out = copy.deepcopy(value)
        paths = list(_paths(out))
        parent, key = rng.choice(paths)
        action = rng.random()
        if isinstance(parent, dict) and action < 0.15:
            parent.pop(key)
        elif isinstance(parent, dict) and action < 0.25:
            parent[rng.choice(["extra", "max", "numbers", "codes", "cells"])] = rng.choice(others)
        else:
            parent[key] = copy.deepcopy(rng.choice(others))
        yield out


def _paths(value):
    """Yield (container, key) of every place in a JSON value."""
    stack = [value]
    while stack:
        v = stack.pop()
        for k, c in (v.items() if isinstance(v, dict) else enumerate(v)):
            yield v, k
            if isinstance(c, dict | list):
                stack.append(c)


def full_check_passes(item, run_ids: set) -> bool:
    """Say whether the full check (what the reader does to an item the fast check refuses: the
    depth, the types with unknown keys dropped, the rules) passes an item."""
    return schema.item_problem(item, run_ids, "items[0]") is None


def test_the_fast_check_accepts_nothing_the_full_check_refuses(docs):
    """Thousands of items, each changed in one place: whatever the fast check passes, the
    full check passes too (and most changed items are refused by both)."""
    rng = random.Random(12)
    passed = refused = 0
    for name in ("hostile", "entries", "synthetic"):
        doc = json.loads(encoding.dumps(docs[name]))
        ids = {r["id"] for r in doc["runs"]}
        for item in doc["items"][:6]:
            assert full_check_passes(item, ids) and schema.passes(
                schema.decode(json.dumps(item).encode()), ids)
            for changed in mutations(item, rng, 500):
                try:
                    fast = schema.passes(schema.decode(json.dumps(changed).encode()), ids)
                except Exception:  # noqa: BLE001 - any refusal: the full check decides
                    fast = False
                slow = full_check_passes(changed, ids)
                assert slow or not fast, json.dumps(changed)[:2000]
                passed += fast
                refused += not slow
    assert passed > 1000 and refused > 1000


def test_one_limit_bounds_entry_indices_and_their_spans():
    """The types' bound on an index is the limit the reader puts on an entry items' span."""
    assert reading.MAX_ENTRY_CELLS == schema.MAX_ENTRY_CELLS
    item = {"run": "r", "entry": [schema.MAX_ENTRY_CELLS - 1]}
    assert schema.item_problem(item, {"r"}, "items[0]") is None
    assert schema.item_problem({**item, "entry": [schema.MAX_ENTRY_CELLS]}, {"r"}, "items[0]") \
        == "items[0].entry: expected null or a list of indices"


def edited(path, edit) -> str:
    """Return the lines of a file (head, items, end) after an edit of its list of lines."""
    lines = path.read_text().split("\n")
    edit(lines)
    return "\n".join(lines)


HAND_EDITS = {
    "items joined on a line": lambda ls: ls.__setitem__(slice(2, 4), [ls[2] + ls[3]]),
    "an item re-indented": lambda ls: ls.__setitem__(
        3, json.dumps(json.loads(ls[3].rstrip(",")), indent=2) + ","),
    "blank lines": lambda ls: ls.insert(4, "   "),
    "CRLF line ends": lambda ls: ls.__setitem__(slice(None), [x + "\r" for x in ls[:-1]]
                                                + ls[-1:]),
    "a comma at the start of the next line": lambda ls: ls.__setitem__(
        slice(4, 6), [ls[4].rstrip(","), "," + ls[5]]),
    "the end on the last item's line": lambda ls: ls.__setitem__(slice(-2, None),
                                                                 [ls[-2] + ls[-1]]),
    "a key after the items": lambda ls: ls.__setitem__(-1, '],\n"note": "hand"\n}'),
    "a head over two lines": lambda ls: ls.__setitem__(0, ls[0].replace('"runs":', '\n"runs":')),
}


@pytest.mark.parametrize("edit", HAND_EDITS, ids=list(HAND_EDITS))
def test_a_hand_edited_file_reads_the_same(tmp_path, docs, edit):
    """Whatever a hand edit does to the lines, the file reads to the same items: the line reader
    hands the rest of the file to the incremental reader where a line is not one item."""
    path = write(tmp_path / "r.json", encoding.dumps(docs["synthetic"]))
    want = reading.load(path)
    write(path, edited(path, HAND_EDITS[edit]))
    if "head" not in edit:  # the line reader reads up to the edit and hands over there
        checked = [c for _, _, c in line_items(path)]
        assert checked[0] and all(checked) == (edit in ("CRLF line ends", "a key after the items"))
    extra: dict = {}
    runs, items = reading.read(path, extra)
    assert [reading._unpacked_item(i) for i, _ in items] == want["items"]
    assert runs == want["runs"] and extra == ({"note": "hand"} if "after" in edit else {})


def test_a_nan_literal_line_reads_as_the_incremental_reader_reads_it(tmp_path, docs):
    """A line msgspec refuses (NaN, 1e400) is read by json like the rest of the file around it;
    its text is rewritten by a merge, the lines after it still pass the fast check."""
    path = write(tmp_path / "r.json", edited(
        write(tmp_path / "src.json", encoding.dumps(docs["synthetic"])),
        lambda ls: ls.__setitem__(2, ls[2].replace('"duration":0.0123', '"duration":NaN'))))
    read = line_items(path)
    assert read[1][0]["duration"] == "nan" and read[1][1] is None and not read[1][2]
    assert all(checked for _, _, checked in read[2:])
    out = tmp_path / "m.json"
    assert reports_cli(["merge", str(path), "-o", str(out)]) == 0
    assert '"duration":"nan"' in out.read_text().split("\n")[2]
    big = write(tmp_path / "big.json", path.read_text().replace('"duration":NaN',
                                                                '"duration":1e400', 1))
    assert reading.load(big)["items"][1]["duration"] == float("inf")


BAD_EDITS = [
    (lambda ls: ls.__setitem__(3, ls[3].rstrip(",")), r"not JSON \(line 5 column 1\)"),
    (lambda ls: ls.__setitem__(-2, ls[-2] + ","), r"not JSON \(line \d+ column 1\)"),
    (lambda ls: ls.__setitem__(3, ls[3][:-30] + ","), r"not JSON \(line 4 column \d+\)"),
    (lambda ls: ls.__setitem__(3, ls[3].replace('"nodeid":', '"run":"x","nodeid":', 1)),
     r"malformed: items\[2\]\.run: 'x' names no run of the file"),
    (lambda ls: ls.__setitem__(3, ls[3].replace('"run":', '"run":7,"run":', 1)), None),
]


@pytest.mark.parametrize("edit,problem", BAD_EDITS, ids=range(len(BAD_EDITS)))
def test_a_broken_line_is_one_line_like_a_whole_read_says(tmp_path, capsys, docs, edit,
                                                          problem):
    """A missing or extra comma, an item cut short, a repeated key: the error a whole read of
    the file gives (none where the last of a repeated key is good: JSON readers keep it)."""
    src = write(tmp_path / "src.json", encoding.dumps(docs["synthetic"]))
    bad = write(tmp_path / "bad.json", edited(src, edit))
    if problem is None:
        assert len(reading.load(bad)["items"]) == len(docs["synthetic"]["items"])
        return
    assert reports_cli(["html", str(bad), "-o", str(tmp_path / "out.html")]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"reports: {re.escape(str(bad))}: {problem}\n", err), err
    with pytest.raises(reading.ResultsError) as whole:
        reading._load_whole(bad) if "malformed" not in problem else reading.load(bad)
    assert str(whole.value) + "\n" == err


def test_every_cut_of_a_line_layout_file_reads_as_truncated(tmp_path):
    """Wherever a line layout file is cut (at a line's end too), it reads as truncated."""
    doc = encoding.document([{"id": "r"}], [{"run": "r", "x": [1, 2.5]}, {"run": "r", "y": "é"},
                                           {"run": "r"}])
    text = encoding.dumps(doc)
    path = tmp_path / "cut.json"
    for end in range(1, len(text)):
        write(path, text[:end])
        with pytest.raises(reading.ResultsError, match=r": truncated \(the JSON ends early\)$"):
            reading.load(path)


def test_version_1_and_foreign_heads_are_read_by_the_incremental_reader(tmp_path, docs):
    """A head that is not version 2 in the writer's form (version 1, a repeated key) is left
    to the incremental reader, which reads it as before."""
    items = [json.dumps(i) for i in encoding.jsonable(docs["hostile"])["items"]]
    runs = docs["hostile"]["runs"]
    v1 = write(tmp_path / "v1.json", "".join(encoding.lines(
        {"schema": schema.SCHEMA, "version": 1, "runs": runs}, items)))
    assert reading._Lines.open(v1, {}) is None
    assert reading.load(v1)["items"] == encoding.jsonable(docs["hostile"])["items"]
    twice = write(tmp_path / "twice.json", "".join(encoding.lines(
        {"schema": schema.SCHEMA, "version": 2, "runs": []}, items)).replace(
        '"runs":[]', f'"runs":[],"runs":{json.dumps(runs)}', 1))
    assert reading._Lines.open(twice, {}) is None
    assert reading.load(twice)["items"] == encoding.jsonable(docs["hostile"])["items"]


def test_the_incremental_reader_alone_reads_the_line_layout(tmp_path, docs, monkeypatch):
    path = write(tmp_path / "r.json", encoding.dumps(docs["entries"]))
    want = reading.load(path)
    monkeypatch.setattr(reading._Lines, "open", classmethod(lambda cls, *args, **kw: None))
    assert reading._Lines.open(path, {}) is None
    assert reading.load(path) == want


def test_a_line_that_is_not_utf_8_is_one_line(tmp_path, capsys, docs):
    path = write(tmp_path / "r.json", encoding.dumps(docs["synthetic"]))
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b'"reason":null', b'"reason":"\xff"', 1)
    path.write_bytes(b"\n".join(lines))
    assert reports_cli(["merge", str(path), "-o", str(tmp_path / "m.json")]) == 2
    assert capsys.readouterr().err == f"reports: {path}: not JSON (not UTF-8 text)\n"


def test_hostile_strings_survive_the_fast_path(tmp_path):
    path = write(tmp_path / "h.json", encoding.dumps(hostile_doc()))
    item = line_items(path)[0][0]
    assert item["reason"] == HOSTILE and item["config"][HOSTILE] == HOSTILE


def test_merge_and_the_page_take_checked_items_typed(tmp_path, docs):
    """With typed=True a checked whole-tensor item comes as its schema.Item (no dicts built),
    whose dict() is the item a plain read gives; entry items come as dicts; merging them
    (runs renamed or not, texts or not) writes what a plain read would."""
    path = write(tmp_path / "e.json", encoding.dumps(docs["entries"]))
    plain = [i for i, _ in reading.read(path)[1]]
    typed = [i for i, _ in reading.read(path, typed=True)[1]]
    assert [type(i) is reading.Typed for i in typed] == [i["entry"] is None for i in plain]
    assert [i.dict() if type(i) is reading.Typed else i for i in typed] == plain
    assert isinstance(typed[0].item, schema.Item) and typed[0].item.tensor == plain[0]["tensor"]
    for texts in (True, False):
        runs, items = merging.merged_items([path, path], texts=texts, typed=True)
        merged = write(tmp_path / "m.json", "".join(merging.merged_chunks(runs, items)))
        back = reading.load(merged)
        assert [i["run"] for i in back["items"]] == ["entries"] * 7 + ["entries~2"] * 7
        assert [{**i, "run": "entries"} for i in back["items"]] == 2 * [
            reading._unpacked_item(i) for i in plain]


def test_the_page_of_renamed_runs_is_the_same_from_either_layout(tmp_path, docs):
    lines = write(tmp_path / "s.json", encoding.dumps(docs["synthetic"]))
    one = write(tmp_path / "one.json", compact(docs["synthetic"]))
    page = html.render_files([lines, lines])
    assert page == html.render_files([one, one]) and "synthetic-2~2" in page


def test_a_page_leaves_no_cycles_to_collect(tmp_path, docs):
    """The page is built with the garbage collector paused: what it builds must be freed by
    reference counts alone (with 50,000 items, collecting a cyclic page took 0.7 s at exit)."""
    path = write(tmp_path / "s.json", encoding.dumps(docs["synthetic"]))
    html.render_files([path])  # templates compiled, caches filled
    gc.collect()
    assert gc.isenabled()
    html.render_files([path])
    html.render(docs["synthetic"])
    assert gc.collect() < 100  # (Jinja's own few, whatever the number of items)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["duration", "details", "max_ratio", "key"])
def test_an_item_with_a_non_finite_number_is_written_as_before(docs, value, where):
    """The fast writer writes a non-finite float as null; such an item must take the strict
    path, which writes "nan", "inf" or "-inf", wherever the number sits."""
    item = copy.deepcopy(docs["synthetic"]["items"][0])
    if where == "duration":
        item["duration"] = value
    elif where == "details":
        item["details"] = {"deep": [{"x": [1.0, value]}]}
    elif where == "max_ratio":
        item["comparison"]["max_ratio"] = value
    else:
        item["details"] = {1.5: value}  # a key msgspec will not write: json's path
    text = encoding.dumps_item(item)
    assert text == json.dumps(encoding.jsonable(encoding.packed(item)), allow_nan=False,
                              separators=(",", ":"), ensure_ascii=False)


def test_the_fast_writer_writes_what_json_reads_back_the_same(docs):
    """Every item of three documents, and odd but finite values, read back equal through the
    fast writer; numpy floats, huge ints and a string holding a non-finite float's bytes too."""
    odd = {"tiny": 5e-324, "big": 1.7976931348623157e308, "neg0": -0.0, "int": 2 ** 70,
           "np": np.float64(0.1), "text": "\x00\x7f\xcb\x7f\xf8 é \u2028 \"q\\\"",
           "nested": [[[]]], "none": None}
    items = [*docs["hostile"]["items"], *docs["entries"]["items"], *docs["synthetic"]["items"],
             {**docs["synthetic"]["items"][0], "details": odd}]
    for item in items:
        text = encoding.dumps_item(item)
        assert "\n" not in text
        assert json.loads(text) == json.loads(
            json.dumps(encoding.jsonable(encoding.packed(item)), allow_nan=False))
