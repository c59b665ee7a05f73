"""Render results as one self-contained HTML page (Jinja2, autoescaped).

A failing item keeps its full detail on the page (heatmap, worst entries, exact values). The
passing items are summarised: per config, run and tensor shape, one heatmap that is the
greatest of theirs cell by cell, and their ten worst entries; each adapter call's per-tensor
numbers ride in the embedded data and are shown when a config is opened. Items are read one at
a time (`render_files`), so a file of 50,000 items is never held whole.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import json
import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import jinja2
import numpy as np
from markupsafe import Markup

from reports import encoding, labels, merging, reading, record
from reports.encoding import jsonable
from reports.schema import OUTCOMES

TEMPLATES = Path(__file__).parent / "templates"
RED = ("failed", "error", "crashed")
"""Outcomes that turn a matrix cell red."""
DETAILED = (*RED, "xfailed", "xpassed")
"""Outcomes whose items keep their full detail on the page."""
SHOWN_WORST = 10
SUMMARY_ROWS, SUMMARY_COLS, SUMMARY_CELLS_1D = 16, 128, 2048
"""A summary heatmap (passing items of a config) is pooled to at most this many cells."""
LISTED_FAILURES = 200


def render(doc: dict, links: tuple | None = None) -> str:
    """Return the page for a results document (one run or a merge)."""
    return render_items(doc["runs"], (jsonable(i) for i in doc["items"]), links)


def render_files(paths: list, links: tuple | None = None) -> str:
    """Return the page for results files, merged, reading their items one at a time."""
    runs, items = merging.merged_items(paths, texts=False, typed=True)
    return render_items(runs, (item for item, _ in items), links)


def render_items(runs: list[dict], items: Iterable[dict], links: tuple | None = None) -> str:
    """Return the page for runs and their items (an iterable, consumed once). `links`: (the
    folder the results' relative paths start from, the page's folder), so that a link to an
    exported script is relative to the page; None: the paths as they are."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(num=num, exact=exact, where=where, token=token, brief=brief,
                       margin=labels.margin)
    page = Page(runs, links)
    with _no_gc():
        for k, item in enumerate(items):
            page.add(k, item)
        model = page.view()
        static = {n: Markup((TEMPLATES / n).read_text(encoding="utf-8")) for n in ("report.css",
                                                                                 "report.js")}
        return env.get_template("report.html.j2").render(
            **model, css=static["report.css"], js=static["report.js"],
            data=script_json(model["blob"]), script_hash=csp_hash(static["report.js"]),
            style_hash=csp_hash(static["report.css"]))


@contextlib.contextmanager
def _no_gc():
    """Pause the cyclic garbage collector while the page is built: its many small dicts and
    lists hold no cycles (refcounting frees them), and with 50,000 items the collector's full
    passes, each over everything the page holds so far, took a third of the time; what it would
    have found is collected when it resumes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def csp_hash(text: str) -> str:
    """Return the CSP source that allows exactly this inline script or style, and nothing else."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def script_json(value) -> Markup:
    """Return JSON safe inside <script>: no '<', '>' or '&' survive to close or open a tag."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def num(value, digits: int = 3) -> str:
    """Format a recorded number ('inf' strings included) with a few significant digits."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}g}"


def exact(value) -> str:
    """Format a value with the fewest digits that read back as the same float64."""
    return repr(value) if isinstance(value, float) else num(value)


def brief(value) -> str:
    """Format a recorded detail compactly: floats to 3 digits, dicts as `k=v`, lists joined."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={brief(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(brief, value))
    return num(value) if isinstance(value, float) else str(value)


def where(index) -> str:
    """Format an entry's index as `[3, 701]`."""
    return "[" + ", ".join(map(str, index or [])) + "]"


def token(outcome: str) -> str:
    """Return an outcome as a CSS/data token: `not run` → `not-run`."""
    return str(outcome).replace(" ", "-")


def ratio_of(value) -> float:
    """Return a recorded ratio as a float for ordering ('inf' and 'nan' above everything)."""
    if value is None:
        return -1.0
    return float("inf") if isinstance(value, str) else float(value)


def _worse(a, b):
    """Return the greater of two recorded ratios (None when neither is known)."""
    if a is None:
        return b
    if type(a) is float and type(b) is float:  # the common case, as ratio_of orders it
        return a if a >= b else b
    return a if b is None or ratio_of(a) >= ratio_of(b) else b


def _least(a, b):
    """Return the lesser of two recorded numbers (None when neither is known)."""
    if type(a) is float and type(b) is float:  # the common case
        return a if a <= b else b
    if not isinstance(a, int | float):
        return b if isinstance(b, int | float) else None
    return a if not isinstance(b, int | float) or a <= b else b


ROW_FACTS = ("n", "label", "framework", "dtype", "device", "summary")
"""What a group keeps of its row (a config): the page's header of it, and its summary."""


class Page:
    """Gathers items one at a time into the matrix, the failing groups and the summaries."""

    def __init__(self, runs: list[dict], links: tuple | None = None):
        self.links = links
        self.runs = [_run_view(n, r) for n, r in enumerate(runs)]
        names = labels.run_names([labels.flatten(r["provenance"]) for r in self.runs])
        for r, name in zip(self.runs, names, strict=True):
            r["label"] = name
        self.run_of = {r["id"]: r for r in self.runs}
        self.rows: dict[str, dict] = {}
        self.cols: dict[str, dict] = {}  # cases (specs), each a column of the calls' tables
        self.columns: dict[str, dict] = {}  # the matrix's columns: cases less their seed
        self.cells: dict[tuple[str, str], dict] = {}
        self.groups: list[dict] = []
        self.failures: list[dict] = []
        self.n_failures = 0
        self.totals = [Counter() for _ in self.runs]
        self.values: dict[str, set] = {"framework": set(), "dtype": set(), "device": set()}
        self.dims = tuple(self.values.values())
        self.entries: dict[tuple, list] = {}  # (group n, run n, tensor) → its entry items
        self.places: dict[tuple, tuple] = {}  # (config id, spec id) → (config, spec, place)

    def add(self, k: int, item) -> None:
        """Take one item: count it, place it in its cell; keep it whole only if it is shown
        (`_detailed`) or one entry of a tensor (`--entries`). Of any other, only its line of
        numbers is kept (`_lite_card`, in case its group is shown) and its comparison goes to its
        config's summary. An item is a dict, or a reading.Typed (what the line reader checked,
        read by its fields: `_add_typed`)."""
        if type(item) is reading.Typed:
            self._add_typed(k, item)
            return
        get = item.get
        config, spec = get("config") or {}, get("spec") or {}
        framework = str(get("framework") or "unknown")
        row, col, group, cell = self._place(get("config_id"), get("spec_id"), config, spec,
                                            framework)
        outcome = get("outcome")
        if outcome not in OUTCOMES:
            outcome = "crashed"
        details = get("details")
        if not isinstance(details, dict):
            details = {}
        det = details.get("determinism")
        if get("entry") is not None or outcome in DETAILED or (
                isinstance(det, dict) and det.get("differing")):  # _detailed, without a view
            self._add_whole(_item_view(k, item, self.run_of), group, cell)
            return
        cmp = get("comparison")
        if isinstance(cmp, dict) and isinstance(cmp.get("heatmap"), dict):
            bits = cmp.get("bits") or {}
            stats = (cmp.get("entries"), cmp.get("shape") or [], cmp.get("failing"),
                     cmp.get("max_ratio"), bits.get("min"), bits.get("of"))
        else:
            cmp = stats = None
        run = self.run_of[item["run"]]
        _noted(row, cell, run["n"], get("note"))
        tensor = str(get("tensor", "?"))
        self._add_brief(k, run, group, cell, outcome, (
            framework, str(config.get("dtype", "?")), str(config.get("device", "?"))), tensor,
            get("fingerprint"), get("id") or get("nodeid"), get("framework_version"),
            get("reason"), stats)
        if cmp:
            row["summary"].add(run["n"], tensor, details, cmp, col["label"])

    def _add_typed(self, k: int, typed: reading.Typed) -> None:
        """Take an item the line reader checked, as `add` takes its dict, but from the fields
        of its schema.Item; one that keeps its detail is made the dict first."""
        it = typed.item
        outcome = it.outcome if it.outcome in OUTCOMES else "crashed"
        details = it.details if it.details is not None else {}
        det = details.get("determinism")
        if outcome in DETAILED or (isinstance(det, dict) and det.get("differing")):
            self.add(k, typed.dict())  # (an entry item never comes typed)
            return
        config, spec = it.config or {}, it.spec or {}
        framework = str(it.framework or "unknown")
        row, col, group, cell = self._place(it.config_id, it.spec_id, config, spec, framework)
        cmp = it.comparison
        stats = None if cmp is None else (cmp.entries, cmp.shape, cmp.failing, cmp.max_ratio,
                                          cmp.bits.min, cmp.bits.of)
        run = self.run_of[it.run]
        _noted(row, cell, run["n"], it.note)
        tensor = str(it.tensor)  # (a typed item has one)
        self._add_brief(k, run, group, cell, outcome, (
            framework, str(config.get("dtype", "?")), str(config.get("device", "?"))), tensor,
            it.fingerprint, it.id or it.nodeid, it.framework_version, it.reason, stats)
        if cmp is not None:
            row["summary"].add_typed(run["n"], tensor, details, cmp, col["label"])

    def _add_brief(self, k: int, run: dict, group: dict, cell: dict, outcome: str, dims: tuple,
                   tensor: str, fingerprint, item_id, framework_version, reason,
                   stats: tuple | None) -> None:
        """Count a passing item (one whose detail is not shown) and keep its brief card."""
        run_n = run["n"]
        pr = group["per_run"][run_n]
        self._count(run_n, outcome, dims, pr, cell["per_run"][run_n],
                    stats[3] if stats else None, stats[4] if stats else None, fingerprint,
                    tensor)
        pr["cards"].append((k, item_id, dims[0], framework_version, run, outcome, tensor,
                            record.capped(reason, record.REASON_CHARS), fingerprint, stats))

    def _add_whole(self, i: dict, group: dict, cell: dict) -> None:
        """Take an item that keeps its detail (it failed, or its calls differed) or is one
        entry of a tensor, as its view (`_item_view`)."""
        i["anchor"] = group["anchor"]
        run_n = i["run"]["n"]
        pr = group["per_run"][run_n]
        cmp = i["cmp"]
        self._count(run_n, i["outcome"], (i["framework"], i["dtype"], i["device"]), pr,
                    cell["per_run"][run_n], cmp.get("max_ratio") if cmp else None,
                    (cmp.get("bits") or {}).get("min") if cmp else None, i["fingerprint"],
                    i["tensor"])
        shown = _detailed(i)
        if shown and cell["anchor"] is None:
            cell["anchor"] = group["anchor"]
        if shown:
            if cmp:
                i["cmp"] = cmp = encoding.unpacked(cmp)
                i["worst"] = cmp["worst"][:SHOWN_WORST]
            group["detailed"] = True
            if i["outcome"] in RED:
                self.n_failures += 1
                if len(self.failures) < LISTED_FAILURES:
                    self.failures.append(i)
        if i["entry"] is not None:
            self.entries.setdefault((group["n"], run_n, i["tensor"]), []).append(_entry_lite(i))
            return
        pr["cards"].append(i)

    def _count(self, run_n: int, outcome: str, dims: tuple, pr: dict, cpr: dict, ratio, bits,
               fingerprint, tensor: str) -> None:
        """Count an item in its run's totals, its group's and matrix cell's counts, its
        tensor's line of the config's calls, and the filters' values."""
        self.totals[run_n][outcome] += 1
        frameworks, dtypes, devices = self.dims
        frameworks.add(dims[0])
        dtypes.add(dims[1])
        devices.add(dims[2])
        pr["counts"][outcome] += 1
        cpr["counts"][outcome] += 1
        cpr["max_ratio"], cpr["bits_min"] = _worse(cpr["max_ratio"], ratio), _least(
            cpr["bits_min"], bits)
        if fingerprint:
            pr["fingerprints"][str(fingerprint)] = True
            cpr["fingerprints"][str(fingerprint)] = True
        t = pr["tensors"].get(tensor)
        if t is None:  # [tensor, {outcome: count}, greatest ratio, least bits]
            t = pr["tensors"][tensor] = [tensor, {}, None, None]
        t[1][outcome] = t[1].get(outcome, 0) + 1
        t[2], t[3] = _worse(t[2], ratio), _least(t[3], bits)

    def _place(self, config_id, spec_id, config: dict, spec: dict,
               framework: str) -> tuple[dict, dict, dict, dict]:
        """Return an item's row (its config), column (its case), group (its adapter call) and
        matrix cell, remembered by its config and spec ids (their objects checked equal): most
        items share them with the item before, and keying and labelling them is most of the
        work."""
        ids = (config_id, spec_id)
        seen = self.places.get(ids)
        if seen is not None and seen[0] == config and seen[1] == spec:
            return seen[2]
        i = _labels(config, spec, config_id, spec_id, framework)
        row, col = self._row(i), self._col(i)
        group = self._group(row, col)
        placed = row, col, group, self._cell(row, i)
        self.places[ids] = (config, spec, placed)
        return placed

    def _row(self, i: dict) -> dict:
        row = self.rows.get(i["row_key"])
        if row is None:
            row = self.rows[i["row_key"]] = {
                "n": len(self.rows), "label": i["row_label"], "config": i["config"],
                "framework": i["framework"], "dtype": i["dtype"], "device": i["device"],
                "cells": {}, "matrix": {}, "summary": Summary(len(self.runs))}
        return row

    def _col(self, i: dict) -> dict:
        col = self.cols.get(i["col_key"])
        if col is None:
            col = self.cols[i["col_key"]] = {"label": i["col_label"], "n": len(self.cols),
                                             "case": labels.case_label(i["spec"], i["col_label"])}
        return col

    def _cell(self, row: dict, i: dict) -> dict:
        """Return the matrix cell of an item: its config and its case less the seed (a soak's
        seeds share a column)."""
        spec = i["spec"]
        seedless = {k: v for k, v in spec.items() if k != "seed"} if "seed" in spec else spec
        key = _key(seedless, (SEEDLESS.sub("", i["col_label"]), "seedless"))
        column = self.columns.get(key)
        if column is None:
            column = self.columns[key] = {"n": len(self.columns), "label": i["col_label"],
                                          "seeds": {}, "case": labels.case_label(
                                              spec, i["col_label"])}
        column["seeds"][str(spec.get("seed"))] = True
        cell = row["matrix"].get(column["n"])
        if cell is None:
            cell = row["matrix"][column["n"]] = {"anchor": None, "per_run": [
                {"run": r, "counts": Counter(), "max_ratio": None, "bits_min": None,
                 "fingerprints": {}} for r in self.runs]}
        return cell

    def _group(self, row: dict, col: dict) -> dict:
        key = (id(row), col["n"])
        group = self.cells.get(key)
        if group is None:
            n = len(self.groups)
            group = self.cells[key] = {  # its row's facts, not the row: no cycle to collect
                "n": n, "anchor": f"g{n}", "row": {k: row[k] for k in ROW_FACTS}, "col": col,
                "detailed": False,
                "per_run": [{"run": r, "cards": [], "counts": Counter(), "fingerprints": {},
                             "tensors": {}} for r in self.runs]}
            row["cells"][col["n"]] = group
            self.groups.append(group)
        return group

    def view(self) -> dict:
        """Return what the template needs: runs, the matrix, the detail groups, the filters."""
        self._entry_cards()
        blob: dict = {}
        cols = list(self.cols.values())
        columns = [_column(c) for c in self.columns.values()]
        for row in self.rows.values():
            row["cells"] = [row["cells"].get(c["n"]) for c in cols]
            row["matrix"] = [row["matrix"].get(c["n"]) for c in columns]
            row["runs"] = row["summary"].view(row["n"], blob)
            present = [c for c in row["matrix"] if c]
            for cell in present:
                for pr in cell["per_run"]:
                    _finish_cell(pr)
            row["fingerprints"] = " / ".join(dict.fromkeys(
                f for c in present for pr in c["per_run"] for f in pr["fingerprints"])) or "–"
            row["reading"] = labels.split_readings(
                [f for c in present for pr in c["per_run"] for f in pr["fingerprints"]],
                row["dtype"])
            row["statuses"] = sorted({token(o) for c in present for pr in c["per_run"]
                                      for o in pr["counts"]})
        for g in self.groups:
            for pr in g["per_run"]:
                _finish_cell(pr)
        detailed = [g for g in self.groups if g["detailed"]]
        for g in detailed:  # only these are on the page: their passing items' cards, in full
            for pr in g["per_run"]:
                pr["cards"] = [_lite_card(c) if type(c) is tuple else c for c in pr["cards"]]
                pr["repro"] = _repro(pr["cards"], self.links)
                pr["verdict"] = _verdict(pr, g["row"]["dtype"])
                for c in pr["cards"]:
                    if c.get("cmp") and _detailed(c):
                        blob[str(c["k"])] = _heat(c)
        rows = list(self.rows.values())
        return {
            "runs": self.runs, "multi": len(self.runs) > 1, "rows": rows, "cols": columns,
            "groups": detailed, "totals": self._totals(), "filters": self._filters(),
            "failures": _failure_groups(self.failures), "n_failures": self.n_failures,
            "listed": LISTED_FAILURES, "diagnosed": any(r["reading"]["diagnosis"] for r in rows),
            "provenance": _provenance(self.runs),
            "blob": {"items": blob, "cases": [c["label"] for c in cols],
                     "runs": [r["label"] for r in self.runs],
                     "calls": [_calls(row) for row in rows]},
        }

    def _entry_cards(self) -> None:
        """Put each tensor's entry items (`--entries`) together as one card."""
        for (n, run_n, tensor), members in self.entries.items():
            group = self.groups[n]
            card = _entries_card(members, f"e{n}.{run_n}.{tensor}")
            group["per_run"][run_n]["cards"].append(card)
            if card["outcome"] not in DETAILED and card["cmp"]:
                group["row"]["summary"].add(run_n, card["tensor"], card["details"], card["cmp"],
                                            group["col"]["label"])
                card.update(_lite(card))

    def _totals(self) -> list[dict]:
        return [{"run": run, "counts": [(o, c[o]) for o in OUTCOMES if c[o]],
                 "total": sum(c.values())} for run, c in zip(self.runs, self.totals, strict=True)]

    def _filters(self) -> list[dict]:
        """Return the filter dimensions and the values each takes in this document."""
        out = [{"dim": d, "title": d, "values": sorted(v)} for d, v in self.values.items()]
        present = {o for c in self.totals for o in c}
        out.append({"dim": "status", "title": "status",
                    "values": [token(o) for o in OUTCOMES if o in present]})
        if len(self.runs) > 1:
            out.append({"dim": "run", "title": "run", "values": [r["label"] for r in self.runs]})
        return out


class Summary:
    """One config's passing tensors per run and shape: the greatest code of each heatmap cell,
    the worst entries of all of them, and how many there were."""

    def __init__(self, runs: int):
        self.parts: list[dict[tuple, dict]] = [{} for _ in range(runs)]

    def add(self, run_n: int, tensor: str, details: dict, cmp: dict, case: str) -> None:
        """Add a passing tensor's comparison (as read: a dict)."""
        heat = cmp.get("heatmap")
        if not isinstance(heat, dict):
            return
        bits = cmp.get("bits") or {}
        self._add(run_n, (tensor, tuple(cmp.get("shape") or ()), heat["layout"], heat["rows"],
                          heat["cols"], tuple(heat["block"])), heat, record.codes_of(heat),
                  cmp.get("shape") or [], cmp.get("entries"), cmp.get("max_ratio"),
                  bits.get("min"), (bits.get("of"), bits.get("below")), details, cmp.get("worst"),
                  encoding.first_entry, case)

    def add_typed(self, run_n: int, tensor: str, details: dict, cmp, case: str) -> None:
        """Add a passing tensor's comparison as the line reader decoded it (schema.Comparison:
        the heatmap's codes as bytes)."""
        heat, bits = cmp.heatmap, cmp.bits
        self._add(run_n, (tensor, tuple(cmp.shape), heat.layout, heat.rows, heat.cols,
                          tuple(heat.block)), heat, np.frombuffer(heat.codes, dtype=np.uint8),
                  cmp.shape, cmp.entries, cmp.max_ratio, bits.min, (bits.of, bits.below), details,
                  cmp.worst,
                  _first_typed, case)

    def _add(self, run_n: int, key: tuple, heat, codes: np.ndarray, shape: list, entries,
             ratio, bits_min, bits_of: tuple, details: dict, worst, first_of, case: str) -> None:
        bits_of, below = bits_of
        s = self.parts[run_n].get(key)
        if s is None:
            s = self.parts[run_n][key] = {
                "tensor": key[0], "shape": list(shape), "heat": _heat_fields(heat),
                "codes": codes.copy(), "items": 0, "cases": {}, "entries": 0, "max_ratio": None,
                "bits": None, "of": bits_of, "below": 0, "worst": [], "change": None,
                "seen": Counter()}
        else:
            np.maximum(s["codes"], codes, out=s["codes"])
        s["items"] += 1
        s["cases"][case] = True
        s["entries"] += entries or 0
        s["max_ratio"] = _worse(s["max_ratio"], ratio)
        s["bits"] = _least(s["bits"], bits_min)
        s["below"] += below if isinstance(below, int) else 0
        _sensitivity(s, details.get("sensitivity"))
        # one entry an item, its worst: the summary's worst entries come from ten tensors
        kept = s["worst"]
        if worst and (len(kept) < SHOWN_WORST or ratio_of(ratio) > ratio_of(kept[-1]["ratio"])):
            first = first_of(worst)  # None: a tensor without entries lists none
            if first is not None:
                s["worst"] = sorted([*kept, {**first, "case": case}],
                                    key=lambda e: ratio_of(e["ratio"]), reverse=True)[:SHOWN_WORST]

    def view(self, row_n: int, blob: dict) -> list[list[dict]]:
        """Return, per run, the summary cards; put their heatmaps in the page's data."""
        out = []
        for run_n, parts in enumerate(self.parts):
            cards = []
            for j, s in enumerate(parts.values()):
                k = f"s{row_n}.{run_n}.{j}"
                heat = record.repooled(s["heat"], s["codes"], SUMMARY_ROWS, SUMMARY_COLS,
                                       SUMMARY_CELLS_1D)
                blob[k] = {"tensor": s["tensor"], "entry": None, "shape": s["shape"],
                           "heatmap": heat, "values": None, "worst": s["worst"]}
                cards.append({"k": k, "tensor": s["tensor"], "shape": s["shape"],
                              "count": s["items"], "cases": len(s["cases"]),
                              "entries": s["entries"], "max_ratio": s["max_ratio"],
                              "max": s["worst"][0] if s["worst"] else None,
                              "bits": s["bits"], "of": s["of"], "below": s["below"],
                              "change": s["change"],
                              "seen": dict(s["seen"])})
            out.append(cards)
        return out


def _first_typed(worst) -> dict | None:
    """Return the first of packed worst entries as the line reader decoded them."""
    return encoding.first_packed(worst.index, worst.numbers)


def _heat_fields(heat) -> dict:
    """Return what a summary keeps of its first heatmap's layout (a dict, or as decoded)."""
    if isinstance(heat, dict):
        return heat
    return {"layout": heat.layout, "block": heat.block, "rows": heat.rows, "cols": heat.cols,
            "cells": heat.cells}


def _noted(row: dict, cell: dict, run_n: int, note) -> None:
    """Keep a passing item's note (`more precise than asked: …`) with its config's row and its
    matrix cell: the page marks both beside the arithmetic read."""
    if isinstance(note, str) and note:
        row.setdefault("notes", {})[note] = True
        cell["per_run"][run_n].setdefault("notes", {})[note] = True


def _sensitivity(s: dict, sens) -> None:
    """Keep what the summarised items could have caught: the largest of their smallest failing
    single-entry changes (the least sensitive item), and how many saw each reduced arithmetic."""
    if not isinstance(sens, dict):
        return
    change = sens.get("entry_change")
    if isinstance(change, int | float):
        s["change"] = change if s["change"] is None else max(s["change"], change)
    for arithmetic in ("tf32", "bfloat16"):
        said = sens.get(arithmetic)
        if isinstance(said, str):
            label = _SEEN.get((arithmetic, said))
            if label is None:
                label = f"{arithmetic} {said.split(' (')[0]}"
                if len(_SEEN) < 4096:
                    _SEEN[arithmetic, said] = label
            s["seen"][label] += 1


_SEEN: dict[tuple[str, str], str] = {}
"""Labels of what a reduced arithmetic did, by what items said of it (a few hundred texts)."""


def _run_view(n: int, run: dict) -> dict:
    """Return a run with a short label (`R1`) for narrow columns."""
    return {"id": str(run["id"]), "n": n, "label": f"R{n + 1}",
            "provenance": run.get("provenance") or {}}


def _item_view(k: int, item: dict, run_of: dict) -> dict:
    """Return an item with what the page shows of it; tolerate absent keys (older writers)."""
    outcome = item.get("outcome") if item.get("outcome") in OUTCOMES else "crashed"
    config, spec = item.get("config") or {}, item.get("spec") or {}
    cmp = item.get("comparison")
    cmp = cmp if isinstance(cmp, dict) and isinstance(cmp.get("heatmap"), dict) else None
    return {
        "k": k, "id": item.get("id") or item.get("nodeid"),
        "framework_version": item.get("framework_version"), "run": run_of[item["run"]],
        "outcome": outcome,
        **_labels(config, spec, item.get("config_id"), item.get("spec_id"),
                  str(item.get("framework") or "unknown")),
        "tensor": str(item.get("tensor", "?")), "entry": item.get("entry"), "cmp": cmp,
        "worst": [],
        "reason": record.capped(item.get("reason"), record.REASON_CHARS),
        "message": record.capped(item.get("message"), record.MESSAGE_CHARS),
        "fingerprint": item.get("fingerprint"),
        "details": item.get("details") if isinstance(item.get("details"), dict) else {},
    }


def _labels(config: dict, spec: dict, config_id, spec_id, framework: str) -> dict:
    """Return what places an item on the page: its config and spec, their keys and labels, and
    the framework, dtype and device its row is filtered by."""
    return {"config": config, "spec": spec, "framework": framework,
            "dtype": str(config.get("dtype", "?")), "device": str(config.get("device", "?")),
            "row_key": _key(config, config_id), "col_key": _key(spec, spec_id),
            "row_label": str(config_id or "-".join(map(str, config.values())))
            + ("" if config.get("order", 1) == 1 else " " + record.order_label(config["order"])),
            "col_label": str(spec_id or "-".join(map(str, spec.values())))}


_KEYS: dict = {}


def _key(value: dict, name) -> str:
    """Return a config's or spec's key: its JSON with sorted keys (remembered by its id, so
    that 50,000 items do not encode the same few hundred dicts again and again)."""
    seen = _KEYS.get((name, len(value)))
    if seen is not None and seen[0] == value:
        return seen[1]
    key = json.dumps(value, sort_keys=True)
    _KEYS[(name, len(value))] = (value, key)
    return key


LITE = ("k", "id", "framework", "framework_version", "run", "outcome", "tensor", "entry",
        "reason", "fingerprint")


def _lite(i: dict) -> dict:
    """Return what a passing item shows in a failing group: its numbers, not its heatmap."""
    cmp = i["cmp"] or {}
    out = {k: i[k] for k in LITE}
    out.update(lite=True, message=None, details={}, worst=[], cmp=None,
               stats={"entries": cmp.get("entries"), "shape": cmp.get("shape") or [],
                      "failing": cmp.get("failing"), "max_ratio": cmp.get("max_ratio"),
                      "bits": (cmp.get("bits") or {}).get("min"),
                      "of": (cmp.get("bits") or {}).get("of")} if cmp else None)
    return out


def _lite_card(brief: tuple) -> dict:
    """Return the card `_lite` returns, from what `Page._add_brief` kept of the item: its k, id,
    framework, framework version, run, outcome, tensor, reason, fingerprint and stats (entries,
    shape, failing, max ratio, bits min and of) as a tuple: most items' groups are not shown,
    and their cards are never made."""
    k, item_id, framework, framework_version, run, outcome, tensor, reason, fingerprint, \
        stats = brief
    out = {"k": k, "id": item_id, "framework": framework, "framework_version": framework_version,
           "run": run, "outcome": outcome, "tensor": tensor, "entry": None, "reason": reason,
           "fingerprint": fingerprint}
    out.update(lite=True, message=None, details={}, worst=[], cmp=None,
               stats=None if stats is None else dict(zip(
                   ("entries", "shape", "failing", "max_ratio", "bits", "of"), stats,
                   strict=True)))
    return out


def _entry_lite(i: dict) -> dict:
    """Return what an entry item (`--entries`) adds to its tensor's card."""
    cmp = i["cmp"]
    out = {k: i[k] for k in LITE}
    out.update(message=i["message"], details=i["details"] if i["outcome"] in DETAILED else {})
    if cmp and cmp.get("worst"):
        out["cmp"] = {"code": int(record.codes_of(cmp["heatmap"])[0]),
                      "worst": encoding.worst_entries(cmp["worst"])[0],
                      "bits": cmp["bits"], "failing": cmp.get("failing") or 0,
                      "dtype": cmp.get("dtype")}
    else:
        out["cmp"] = None
    return out


def _detailed(i: dict) -> bool:
    """Say whether an item keeps its full detail on the page: every item that did not pass,
    and a passing one whose calls differed bitwise (nondeterminism is always shown)."""
    det = (i.get("details") or {}).get("determinism")
    return i["outcome"] in DETAILED or bool(isinstance(det, dict) and det.get("differing"))


def _repro(cards: list[dict], links: tuple | None = None) -> dict | None:
    """Return the group's exported reproduction (`--repro DIR`), None when none was written;
    its link only where the path is safe (`script_href`)."""
    for c in cards:
        r = (c.get("details") or {}).get("repro")
        if isinstance(r, dict) and isinstance(r.get("script"), str):
            return {"href": script_href(r["script"], links),
                    "name": PurePosixPath(r["script"].replace("\\", "/")).name,
                    "original": str(r.get("original", "?")), "shrunk": str(r.get("shrunk", "?"))}
    return None


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def script_href(script: str, links: tuple | None = None) -> str | None:
    """Return the link to a script from the page, None unless its path is a plain relative
    one (a results file is data from anywhere: no `javascript:`, no other site, no absolute
    path, nothing unprintable); made relative to the page's folder where `links` says where
    the path starts from and where the page is."""
    if (not script or _SCHEME.match(script) or "\\" in script or
            not all(c.isprintable() for c in script) or PurePosixPath(script).is_absolute()):
        return None
    if links is not None:
        start, page = links
        try:
            script = Path(os.path.relpath(Path(start) / script, page)).as_posix()
        except ValueError:  # another drive
            return None
    return urllib.parse.quote(script)


def _entries_card(members: list[dict], key: str) -> dict:
    """Return one tensor's entry items (`--entries`) as one card with the tensor's heatmap."""
    counts = Counter(i["outcome"] for i in members)
    outcome = next(o for o in (*RED, "xpassed", "xfailed", "passed", "skipped", "not run")
                   if counts[o])
    compared = [i for i in members if i["cmp"]]
    cmp = _entries_summary(compared) if compared else None
    reason = f"{len(members)} entries, each its own item: " + ", ".join(
        f"{n} {o}" for o, n in counts.items())
    return {**members[0], "k": key, "outcome": outcome, "entry": None, "cmp": cmp,
            "worst": cmp["worst"] if cmp else [], "reason": reason, "message": None,
            "details": {}}


def _entries_summary(compared: list[dict]) -> dict:
    """Return a tensor's comparison summary put together from its entries' own."""
    index = [tuple(i["entry"]) for i in compared]
    shape = tuple(max(ix[d] for ix in index) + 1 for d in range(len(index[0])))
    codes = np.zeros(shape, np.uint8)  # an entry not in the results (-k) shows as exact
    for i, ix in zip(compared, index, strict=True):
        codes[ix] = i["cmp"]["code"]
    worst = sorted((i["cmp"]["worst"] for i in compared), key=lambda e: ratio_of(e["ratio"]),
                   reverse=True)
    bits = [float(i["cmp"]["bits"]["min"]) for i in compared
            if i["cmp"]["bits"]["min"] is not None]
    return {"shape": list(shape), "dtype": compared[0]["cmp"].get("dtype"),
            "entries": len(compared), "failing": sum(i["cmp"]["failing"] for i in compared),
            "max_ratio": worst[0]["ratio"], "max": worst[0],
            "bits": {"min": min(bits, default=None),
                     "median": float(np.median(bits)) if bits else None,
                     "of": compared[0]["cmp"]["bits"].get("of")},
            "worst": worst[:SHOWN_WORST], "heatmap": record.pooled(codes),
            "values": _entry_values(worst, shape)}


def _entry_values(entries: list[dict], shape: tuple) -> dict | None:
    """Return got, ref and bound of every entry (NaN where none), if the tensor is small."""
    size = int(np.prod(shape))
    if size > record.EXACT_ENTRIES:
        return None
    out = {k: np.full(size, np.nan) for k in ("got", "ref", "bound")}
    for e in entries:
        flat = int(np.ravel_multi_index(tuple(e["index"]), shape))
        for k in out:
            out[k][flat] = float(e[k])
    return {k: record.b64_floats(v) for k, v in out.items()}


SEEDLESS = re.compile(r"-s\d+$")


def _column(column: dict) -> dict:
    """Return a matrix column with its label: the case's id, less its seed when it has many."""
    seeds = list(column["seeds"])
    if len(seeds) == 1:
        return column
    label = SEEDLESS.sub("", column["label"])
    case = column["case"]
    return {**column, "label": f"{label} · {len(seeds)} seeds",
            "case": {**case, "sub": f"{case['sub']} · {len(seeds)} seeds".lstrip(" ·"),
                     "full": f"{label} · {len(seeds)} seeds"}}


def _verdict(pr: dict, dtype: str) -> dict | None:
    """Return a failing call's verdict in plain words (`labels.verdict`) from its first card
    that read the field of errors."""
    for c in pr["cards"]:
        if c.get("fingerprint") and c["outcome"] in RED:
            return labels.verdict(str(c["fingerprint"]), dtype, c.get("message"))
    return None


def _failure_groups(failures: list[dict]) -> list[dict]:
    """Return the listed failures grouped by adapter call and run: one line per call, its
    failing tensors each with how many entries failed and by how much."""
    out: dict[tuple, dict] = {}
    for i in failures:
        g = out.get((i["anchor"], i["run"]["n"]))
        if g is None:
            g = out[(i["anchor"], i["run"]["n"])] = {
                "anchor": i["anchor"], "run": i["run"], "row_label": i["row_label"],
                "case": labels.case_label(i["spec"], i["col_label"]), "tensors": [],
                "framework": i["framework"], "dtype": i["dtype"], "device": i["device"],
                "outcomes": []}
        cmp = i["cmp"] or {}
        entry = where(i["entry"]) if i["entry"] is not None else ""
        g["tensors"].append({"tensor": i["tensor"] + entry, "outcome": i["outcome"],
                             "failing": cmp.get("failing"), "entries": cmp.get("entries"),
                             "max_ratio": cmp.get("max_ratio"),
                             "reason": None if cmp else i["reason"], "id": i["id"]})
        g["outcomes"].append(token(i["outcome"]))
    return list(out.values())


def _finish_cell(pr: dict) -> None:
    """Settle a cell's colour, title and margin from its counts."""
    counts = pr["counts"]
    pr["total"] = sum(counts.values())
    pr["status"] = _status(counts)
    pr["statuses"] = sorted(map(token, counts))
    pr["fingerprint"] = " / ".join(pr["fingerprints"]) or "–"


def _calls(row: dict) -> list:
    """Return a config's adapter calls for its case table: [case n, run n, [[tensor, passed,
    of, greatest ratio, least bits], …]] each (the page builds the table when it is opened)."""
    out = []
    for g in row["cells"]:
        for pr in (g["per_run"] if g else []):
            if pr["total"]:
                out.append([g["col"]["n"], pr["run"]["n"], [
                    [t, c.get("passed", 0), sum(c.values()), _brief_number(r), _brief_number(b)]
                    for t, c, r, b in pr["tensors"].values()]])
    return out


def _brief_number(value):
    """Return a number to three significant digits (the page shows no more of it)."""
    return float(f"{value:.3g}") if isinstance(value, float) else value


def _status(counts: Counter) -> str:
    """Return a cell's colour: red on any failure, else green on a pass, amber on xfail only."""
    if not counts:
        return "empty"
    if any(map(counts.get, RED)):  # (get: a Counter's missing key costs a call)
        return "fail"
    if counts.get("passed"):
        return "pass"
    return "xfail" if counts.get("xfailed") or counts.get("xpassed") else "skip"


def _provenance(runs: list[dict]) -> list[tuple[str, list[str]]]:
    """Return provenance as (key, one value per run) rows, nested keys dotted."""
    flat = [labels.flatten(r["provenance"]) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    rows = [(k, [f.get(k, "") for f in flat]) for k in keys]
    return [(k, values) for k, values in rows if any(values)]


def _heat(i: dict) -> dict:
    """Return what the page's script needs to draw and explain one tensor's heatmap."""
    cmp = i["cmp"]
    return {"tensor": i["tensor"], "entry": i["entry"], "shape": cmp.get("shape", []),
            "heatmap": cmp.get("heatmap"), "values": cmp.get("values"),
            "worst": cmp.get("worst", [])}
