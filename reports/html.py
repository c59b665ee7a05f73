"""Render a results document as one self-contained HTML page (Jinja2, autoescaped)."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
from collections import Counter
from pathlib import Path, PurePath

import jinja2
import numpy as np
from markupsafe import Markup

from reports import record
from reports.results import OUTCOMES, jsonable

TEMPLATES = Path(__file__).parent / "templates"
RED = ("failed", "error", "crashed")
"""Outcomes that turn a matrix cell red."""
SHOWN_WORST = 10


def render(doc: dict) -> str:
    """Return the page for a results document (one run or a merge)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(num=num, exact=exact, where=where, token=token, brief=brief)
    model = view(jsonable(doc))
    static = {n: Markup((TEMPLATES / n).read_text(encoding="utf-8")) for n in ("report.css",
                                                                             "report.js")}
    return env.get_template("report.html.j2").render(
        **model, css=static["report.css"], js=static["report.js"], data=script_json(model["blob"]),
        script_hash=csp_hash(static["report.js"]), style_hash=csp_hash(static["report.css"]))


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


def view(doc: dict) -> dict:
    """Return what the template needs: runs, the matrix, the detail groups, the filters."""
    runs = [_run_view(n, r) for n, r in enumerate(doc["runs"])]
    run_of = {r["id"]: r for r in runs}
    items = [_item_view(k, i, run_of) for k, i in enumerate(doc["items"])]
    rows, cols, groups = _matrix(items, runs)
    return {
        "runs": runs, "multi": len(runs) > 1, "rows": rows, "cols": cols, "groups": groups,
        "totals": _totals(items, runs), "filters": _filters(items, runs),
        "failures": [i for i in items if i["outcome"] in RED],
        "provenance": _provenance(runs), "blob": {"items": {
            c["k"]: _heat(c) for g in groups for pr in g["per_run"] for c in pr["cards"]
            if c["cmp"]}},
    }


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
        "k": k, "raw": item, "run": run_of[item["run"]], "outcome": outcome,
        "config": config, "spec": spec, "framework": str(item.get("framework") or "unknown"),
        "dtype": str(config.get("dtype", "?")), "device": str(config.get("device", "?")),
        "row_key": json.dumps(config, sort_keys=True), "col_key": json.dumps(spec, sort_keys=True),
        "row_label": str(item.get("config_id") or "-".join(map(str, config.values()))),
        "col_label": str(item.get("spec_id") or "-".join(map(str, spec.values()))),
        "tensor": str(item.get("tensor", "?")), "entry": item.get("entry"), "cmp": cmp,
        "worst": (cmp or {}).get("worst", [])[:SHOWN_WORST],
        "reason": record.capped(item.get("reason"), record.REASON_CHARS),
        "message": record.capped(item.get("message"), record.MESSAGE_CHARS),
        "fingerprint": item.get("fingerprint"),
        "details": item.get("details") if isinstance(item.get("details"), dict) else {},
    }


def _matrix(items: list[dict], runs: list[dict]) -> tuple[list, list, list]:
    """Group items by config (rows), case (columns) and run; each cell is one detail group."""
    rows, cols, cells = {}, {}, {}
    for i in items:
        rows.setdefault(i["row_key"], {"label": i["row_label"], "config": i["config"],
                                       "framework": i["framework"], "cells": {}})
        cols.setdefault(i["col_key"], {"label": i["col_label"], "n": len(cols)})
        cells.setdefault((i["row_key"], i["col_key"]), []).append(i)
    groups = []
    for (rk, ck), members in cells.items():
        group = _group(len(groups), rows[rk], cols[ck], members, runs)
        for i in members:
            i["anchor"] = group["anchor"]
        rows[rk]["cells"][ck] = group
        groups.append(group)
    for row in rows.values():
        row["cells"] = [row["cells"].get(ck) for ck in cols]
        row["fingerprints"] = _fingerprints(g for g in row["cells"] if g)
        row["statuses"] = sorted({s for g in row["cells"] if g for s in g["statuses"]})
    return list(rows.values()), list(cols.values()), groups


def _group(n: int, row: dict, col: dict, members: list[dict], runs: list[dict]) -> dict:
    """Return one (config, case) group: per run its items, outcome counts and fingerprint."""
    per_run = []
    for run in runs:
        mine = [i for i in members if i["run"] is run]
        counts = Counter(i["outcome"] for i in mine)
        per_run.append({"run": run, "items": mine, "cards": _cards(mine, f"{n}.{run['n']}"),
                        "counts": counts, "total": len(mine),
                        "status": _status(counts), "statuses": sorted(map(token, counts)),
                        "fingerprint": _fingerprints([{"items": mine}]),
                        "repro": _repro(mine)})
    return {"anchor": f"g{n}", "row": row, "col": col, "per_run": per_run,
            "items": members, "statuses": sorted({token(i["outcome"]) for i in members})}


def _repro(items: list[dict]) -> dict | None:
    """Return the group's exported reproduction (`--repro DIR`), None when none was written."""
    for i in items:
        r = i["details"].get("repro")
        if isinstance(r, dict) and isinstance(r.get("script"), str):
            path = PurePath(r["script"])
            return {"href": path.as_uri() if path.is_absolute() else r["script"],
                    "name": path.name, "original": str(r.get("original", "?")),
                    "shrunk": str(r.get("shrunk", "?"))}
    return None


def _cards(items: list[dict], key: str) -> list[dict]:
    """Return what a run's column shows: each tensor item, and a tensor's entry items as one."""
    cards, entries = [], {}
    for i in items:
        if i["entry"] is None:
            cards.append(i)
            continue
        if i["tensor"] not in entries:
            entries[i["tensor"]] = []
            cards.append(entries[i["tensor"]])
        entries[i["tensor"]].append(i)
    return [c if isinstance(c, dict) else _entries_card(c, f"{key}.{n}")
            for n, c in enumerate(cards)]


def _entries_card(members: list[dict], key: str) -> dict:
    """Return one tensor's entry items (`--entries`) as one card with the tensor's heatmap."""
    counts = Counter(i["outcome"] for i in members)
    outcome = next(o for o in (*RED, "passed", "xpassed", "xfailed", "skipped", "not run")
                   if counts[o])
    compared = [i for i in members if i["cmp"] and i["cmp"].get("worst")]
    cmp = _entries_summary(compared) if compared else None
    reason = f"{len(members)} entries, each its own item: " + ", ".join(
        f"{n} {o}" for o, n in counts.items())
    return {**members[0], "k": key, "outcome": outcome, "entry": None, "cmp": cmp,
            "worst": cmp["worst"] if cmp else [], "reason": reason, "message": None}


def _entries_summary(compared: list[dict]) -> dict:
    """Return a tensor's comparison summary put together from its entries' own."""
    index = [tuple(i["entry"]) for i in compared]
    shape = tuple(max(ix[d] for ix in index) + 1 for d in range(len(index[0])))
    codes = np.zeros(shape, np.uint8)  # an entry not in the results (-k) shows as exact
    for i, ix in zip(compared, index, strict=True):
        codes[ix] = record.codes_of(i["cmp"]["heatmap"])[0]
    worst = sorted((i["cmp"]["worst"][0] for i in compared), key=_ratio, reverse=True)
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


def _ratio(entry: dict) -> float:
    """Return an entry's ratio as a float for sorting ('inf' and 'nan' sort first)."""
    r = entry["ratio"]
    return float("inf") if isinstance(r, str) else r


def _status(counts: Counter) -> str:
    """Return a cell's colour: red on any failure, else green on a pass, amber on xfail only."""
    if not counts:
        return "empty"
    if any(counts[o] for o in RED):
        return "fail"
    if counts["passed"]:
        return "pass"
    return "xfail" if counts["xfailed"] or counts["xpassed"] else "skip"


def _fingerprints(groups) -> str:
    """Return the distinct effective precisions of some groups' items, `–` when none is known."""
    seen = dict.fromkeys(str(i["fingerprint"]) for g in groups for i in g["items"]
                         if i["fingerprint"])
    return " / ".join(seen) or "–"


def _totals(items: list[dict], runs: list[dict]) -> list[dict]:
    """Return each run's count of items per outcome."""
    out = []
    for run in runs:
        counts = Counter(i["outcome"] for i in items if i["run"] is run)
        out.append({"run": run, "counts": [(o, counts[o]) for o in OUTCOMES if counts[o]],
                    "total": sum(counts.values())})
    return out


def _filters(items: list[dict], runs: list[dict]) -> list[dict]:
    """Return the filter dimensions and the values each takes in this document."""
    dims = [("framework", "framework"), ("dtype", "dtype"), ("device", "device")]
    out = [{"dim": d, "title": t, "values": sorted({i[d] for i in items})} for d, t in dims]
    present = {i["outcome"] for i in items}
    out.append({"dim": "status", "title": "status",
                "values": [token(o) for o in OUTCOMES if o in present]})
    if len(runs) > 1:
        out.append({"dim": "run", "title": "run", "values": [r["label"] for r in runs]})
    return out


def _provenance(runs: list[dict]) -> list[tuple[str, list[str]]]:
    """Return provenance as (key, one value per run) rows, nested keys dotted."""
    flat = [_flatten(r["provenance"]) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    return [(k, [f.get(k, "") for f in flat]) for k in keys]


def _flatten(value, prefix: str = "") -> dict[str, str]:
    """Return a nested dict as {dotted.key: text}; lists of words are joined like a shell."""
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        text = shlex.join(map(str, value)) if prefix.endswith(("argv", "args")) else \
            ", ".join(map(str, value))
        return {prefix: text}
    return {prefix: "" if value is None or value == {} else str(value)}


def _heat(i: dict) -> dict:
    """Return what the page's script needs to draw and explain one tensor's heatmap."""
    cmp = i["cmp"]
    return {"tensor": i["tensor"], "entry": i["entry"], "shape": cmp.get("shape", []),
            "heatmap": cmp.get("heatmap"), "values": cmp.get("values"),
            "worst": cmp.get("worst", [])}
