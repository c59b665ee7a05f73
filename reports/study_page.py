"""The study comparison page: one row per config, error and timing plots as inline SVG."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from reports import labels
from reports.encoding import jsonable
from reports.html import csp_hash, num
from reports.record import order_label

TEMPLATES = Path(__file__).parent / "templates"
FAILED = ("failed", "error", "crashed")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
DASHES = ("", "6 3", "2 3", "9 3 2 3")
"""Line styles: a colour per framework, a dash per dtype (float32 solid, float64 dashed), a
marker per precision setting, so that what a line is reads from how it is drawn."""
MARKERS = ("circle", "square", "triangle", "diamond")
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 660, 300, 62, 190, 12, 42
"""A plot's size in pixels and its margins for the axes' labels (on the right: each line's own
label, at its last point)."""
LABEL_GAP = 14.0
"""The least vertical distance between two lines' labels, in pixels (an 11 px font's box)."""
FLOOR = 1e-6
"""Plotted in place of an exact (zero) ratio, the bottom of the log scale."""
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.5em; margin: 0.2em 0; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.15em 0.5em; text-align: left; vertical-align: top;
  white-space: nowrap; }
thead th { background: #f4f4f4; white-space: normal; } table { font-size: 13px; }
td.num { text-align: right; font-family: ui-monospace, monospace; white-space: nowrap; }
td.mono, th.mono { font-family: ui-monospace, monospace; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 6em; max-width: 16em; }
.bad { color: #b30000; font-weight: bold; } .good { color: #1a7f37; } .bad-text { color: #b30000; }
.note { color: #555; font-size: 0.9em; max-width: 70em; }
.precise { color: #1a6fb0; font-family: system-ui, sans-serif; }
.plots { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; } figcaption { font-size: 0.9em; color: #444; max-width: 640px; }
svg.plot { border: 1px solid #ccc; background: #fff; }
p.legend { font-size: 0.9em; } svg.plot text.end { font: 11px ui-monospace, monospace; }
ul.runs { font-size: 0.9em; } code { font-size: 0.9em; } .scroll { overflow-x: auto; }
"""


def render(doc: dict) -> str:
    """Return the comparison page of a results document (one run or a merge of many)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(num=num, ms=ms, margin=labels.margin)
    return env.get_template("study.html.j2").render(
        **view(jsonable(doc)), css=Markup(CSS), style_hash=csp_hash(CSS))


def view(doc: dict) -> dict:
    """Return what the template shows: runs, config rows, timing cells and the plots."""
    provenance = {r.get("id"): r.get("provenance") or {} for r in doc.get("runs", [])}
    configs = group_configs(doc.get("items", []), provenance)
    _styles(configs)
    cases = sorted({g["case"] for c in configs for g in c["groups"].values()}, key=_case_order)
    return {
        "hardware": _hardware(configs),
        "runs": _runs(doc.get("runs", [])), "configs": configs, "cases": cases,
        "items": sum(c["total"] for c in configs), "timed": any(c["timing"] for c in configs),
        "timing": [_timing_row(c, cases) for c in configs],
        "plots": _plots(configs), "keys": _keys(configs),
    }


def _keys(configs: list[dict]) -> dict:
    """Return what each colour, dash and marker stands for, in the order first seen."""
    out = {}
    for attr, key in (("color", "colour_key"), ("dash", "dtype"), ("marker", "precision")):
        out[key] = list(dict.fromkeys((c[key], c[attr]) for c in configs))
    return out


def _hardware(configs: list[dict]) -> dict[str, str]:
    """Return each device's hardware names; mark the configs of a device with several."""
    names: dict[str, dict] = {}
    for c in configs:
        names.setdefault(c["device"], {})[c["hardware"]] = True
    for c in configs:
        c["show_hardware"] = len(names[c["device"]]) > 1
    return {d: " / ".join(h for h in hw if h) for d, hw in names.items()}


def _runs(runs: list[dict]) -> list[dict]:
    """Return each run's view, named by what differs between the runs (`labels.run_names`)."""
    names = labels.run_names([labels.flatten(r.get("provenance") or {}) for r in runs])
    return [{**_run(r), "name": name} for r, name in zip(runs, names, strict=True)]


def _run(run: dict) -> dict:
    """Return a run's id, host, start, commit and how it was run (workers, shard)."""
    prov = run.get("provenance") or {}
    options, git = prov.get("options") or {}, prov.get("git") or {}
    return {"id": str(run.get("id")), "host": str((prov.get("machine") or {}).get("hostname", "")),
            "started": str(prov.get("started", "")), "commit": str(git.get("commit") or "")[:12],
            "workers": f"{options['numprocesses']} xdist worker(s)"
            if options.get("numprocesses") else "no xdist",
            "shard": str(options.get("shard") or "—")}


def number(value) -> float | None:
    """Return a recorded number as a float ('inf' strings included), None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return None


def hardware_of(device: str, provenance: dict) -> str:
    """Return the name of the hardware a device ran on, from its run's provenance."""
    devices = provenance.get("devices") or {}
    names = devices.get(device)
    if isinstance(names, list):
        return ", ".join(map(str, names))
    return str(names) if names else ""


def config_key(item: dict, provenance: dict) -> tuple[str, ...]:
    """Return what makes one config: adapter, framework version, device, dtype, setting, and
    the order of derivative (H·v's configs are rows of their own)."""
    c = item.get("config") if isinstance(item.get("config"), dict) else {}
    device = str(c.get("device", "?"))
    return (str(c.get("adapter", "?")), str(item.get("framework") or "?"),
            str(item.get("framework_version") or "?"), device, hardware_of(device, provenance),
            str(c.get("dtype", "?")), str(c.get("precision", "default")), str(c.get("order", 1)))


def group_configs(items: list[dict], provenance: dict) -> list[dict]:
    """Return one summary per config, in the order configs first appear."""
    members: dict[tuple, list[dict]] = {}
    for item in items:
        if isinstance(item, dict):
            key = config_key(item, provenance.get(item.get("run"), {}))
            members.setdefault(key, []).append(item)
    labels = Counter(_label(k) for k in members)
    return [_config(n, k, v, labels[_label(k)] > 1) for n, (k, v) in enumerate(members.items())]


def _label(key: tuple) -> str:
    """Return `torch-cpu-float32`, `.high` added under a precision setting, ` H·v` for order 2."""
    adapter, _, _, device, _, dtype, precision, order = key
    base = f"{adapter}-{device}-{dtype}"
    base = base if precision == "default" else f"{base}.{precision}"
    return base if order == "1" else f"{base} {order_label(order)}"


def _config(n: int, key: tuple, items: list[dict], ambiguous: bool) -> dict:
    """Return one config's row: outcomes, fingerprints, bits, greatest ratio, groups, timing."""
    adapter, framework, version, device, hardware, dtype, precision, _ = key
    label = _label(key) + (f" ({framework} {version}, {hardware})" if ambiguous else "")
    outcomes = Counter(str(i.get("outcome")) for i in items)
    cmps = [i["comparison"] for i in items if isinstance(i.get("comparison"), dict)]
    bits = [c.get("bits") if isinstance(c.get("bits"), dict) else {} for c in cmps]
    ratios = [r for r in (number(c.get("max_ratio")) for c in cmps) if r is not None]
    groups = _groups(items)
    return {
        "label": label, "adapter": adapter, "framework": framework, "version": version,
        "device": device, "hardware": hardware, "dtype": dtype, "precision": precision,
        "resolved": _resolved(items, precision), "fingerprints": _fingerprints(items),
        "precise": _precise(items),
        "total": len(items), "passed": outcomes["passed"],
        "failed": sum(outcomes[o] for o in FAILED),
        "other": {o: k for o, k in outcomes.items() if o not in ("passed", *FAILED)},
        "bits_min": _extreme(min, [number(b.get("min")) for b in bits]),
        "bits_median": _median([number(b.get("median")) for b in bits]),
        "bits_of": _extreme(max, [number(b.get("of")) for b in bits]),
        "max_ratio": max(ratios, default=None), "groups": groups,
        "timing": [g for g in groups.values() if g["timing"]],
        "color": PALETTE[n % len(PALETTE)], "dash": DASHES[n // len(PALETTE) % len(DASHES)],
        "marker": MARKERS[0], **labels.split_readings(
            [str(i["fingerprint"]) for i in items if i.get("fingerprint")], dtype),
    }


def _styles(configs: list[dict]) -> None:
    """Colour each config by its framework (by its framework and version where a framework
    comes in several: two versions compared never share a colour), dash it by its dtype, mark
    it by its precision setting (each in the order first seen)."""
    versions: dict[str, set] = {}
    for c in configs:
        versions.setdefault(c["framework"], set()).add(c["version"])
    for c in configs:
        several = len(versions[c["framework"]]) > 1
        c["colour_key"] = f"{c['framework']} {c['version']}" if several else c["framework"]
    for attr, key, styles in (("color", "colour_key", PALETTE), ("dash", "dtype", DASHES),
                              ("marker", "precision", MARKERS)):
        order = list(dict.fromkeys(c[key] for c in configs))
        for c in configs:
            c[attr] = styles[order.index(c[key]) % len(styles)]


def _extreme(pick, values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return pick(present) if present else None


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def _resolved(items: list[dict], setting: str) -> str:
    """Return what the precision setting resolved to (`highest`), `` when nothing more is known."""
    seen = dict.fromkeys(str(d["precision_resolved"]).removeprefix("default: ")
                         for d in (i.get("details") for i in items)
                         if isinstance(d, dict) and d.get("precision_resolved") is not None)
    seen.pop(setting, None)
    return " / ".join(seen)


def _fingerprints(items: list[dict]) -> str:
    """Return the distinct effective precisions of a config's groups, `–` when none is known."""
    seen = dict.fromkeys(str(i["fingerprint"]) for i in items if i.get("fingerprint"))
    return " / ".join(seen) or "–"


def _precise(items: list[dict]) -> dict:
    """Return the calls noted more precise than asked (computed in part in float64: their
    timings are not float32's) and the distinct notes."""
    noted = {str(i.get("group")): str(i["note"]) for i in items if i.get("note")}
    return {"calls": len(noted), "notes": " / ".join(dict.fromkeys(noted.values()))}


def _groups(items: list[dict]) -> dict[str, dict]:
    """Return a config's groups (one adapter call each): case, greatest ratio, timing."""
    groups: dict[str, dict] = {}
    for i in items:
        spec = i.get("spec") if isinstance(i.get("spec"), dict) else {}
        g = groups.setdefault(json.dumps(spec, sort_keys=True), {
            "spec": str(i.get("spec_id") or ""), "case": _case(spec), "ratios": [],
            "bits": [], "timing": None})
        cmp = i.get("comparison") if isinstance(i.get("comparison"), dict) else {}
        ratio = number(cmp.get("max_ratio"))
        if ratio is not None:
            g["ratios"].append(ratio)
        bits = number((cmp.get("bits") or {}).get("min")) if isinstance(cmp.get("bits"),
                                                                         dict) else None
        if bits is not None and not math.isnan(bits):
            g["bits"].append(bits)
        timing = (i.get("details") or {}).get("timing") if isinstance(i.get("details"),
                                                                      dict) else None
        if isinstance(timing, dict) and number(timing.get("median_s")) is not None:
            g["timing"] = timing
    for g in groups.values():
        g["ratio"] = max(g["ratios"], default=None)
        g["bits_min"] = min(g["bits"], default=None)
    return groups


def _case(spec: dict) -> tuple[str, int, int, int]:
    """Return (sizes as `784x16x10`, n1 of a 2-layer net, batch, depth L) of a spec; 0 for
    what is not recorded (n1 too on deeper nets: the width plot compares 2-layer nets only)."""
    sizes = spec.get("sizes") if isinstance(spec.get("sizes"), list) else []
    n1 = sizes[1] if len(sizes) == 3 and isinstance(sizes[1], int) else 0
    batch = spec.get("batch") if isinstance(spec.get("batch"), int) else 0
    depth = len(sizes) - 1 if len(sizes) >= 2 and all(isinstance(n, int) for n in sizes) else 0
    return ("x".join(map(str, sizes)) or "?", n1, batch, depth)


def _case_order(case: tuple[str, int, int, int]) -> tuple:
    return (case[3], case[1], case[0], case[2])


def ms(seconds) -> str:
    """Format seconds as milliseconds with three significant digits."""
    value = number(seconds)
    return "–" if value is None else f"{value * 1e3:.3g}"


def _timing_row(config: dict, cases: list[tuple]) -> dict:
    """Return a config's timing per case: the median of its groups' medians, min and max."""
    cells = []
    for case in cases:
        timed = [g["timing"] for g in config["timing"] if g["case"] == case]
        medians = [number(t.get("median_s")) for t in timed]
        cells.append(None if not timed else {
            "median": _median(medians), "groups": len(timed),
            "min": _extreme(min, [number(t.get("min_s")) for t in timed]),
            "max": _extreme(max, [number(t.get("max_s")) for t in timed]),
            "repeats": _extreme(max, [number(t.get("repeats")) for t in timed])})
    return {"config": config, "cells": cells}


def _plots(configs: list[dict]) -> dict:
    """Return the figures (greatest ratio against batch, width and depth; bits of agreement
    against depth; time against batch), one per network where networks differ: only calls of
    the same network share a batch axis, of the same other sizes a width or depth axis; and
    one line saying what had a single x value, so nothing to draw."""
    batch, width, depth = (lambda g: g["case"][2]), (lambda g: g["case"][1]), (lambda g:
                                                                                g["case"][3])
    figures = [  # title, x label, x, y, line through each x, y label, log y, what else is fixed
        ("error against batch size", "batch size", batch, _ratio_of, max, RATIO, True, _net),
        ("error against width n1", "width n1 (hidden units)", width, _ratio_of, max, RATIO, True,
         _ends),
        ("error against depth", "depth L (layers)", depth, _ratio_of, max, RATIO, True, _stack),
        ("bits of agreement against depth", "depth L (layers)", depth, _bits_of, min,
         "least bits of agreement", False, _stack),
        ("gradient time against batch size", "batch size", batch, _time_of, statistics.median,
         "median time per call (ms)", True, _net),
    ]
    out, single = [], {}
    for title, xlabel, x_of, y_of, line, ylabel, log_y, fixed in figures:
        keys = dict.fromkeys(fixed(g) for c in configs for g in c["groups"].values()
                             if x_of(g) > 0)
        nets = [k for k in keys if not any(_joins(k, other) for other in keys)]
        for net in nets:
            series = [_series(c, x_of, y_of, line, lambda g, net=net, fixed=fixed: _joins(
                fixed(g), net) or fixed(g) == net) for c in configs]
            series = [s for s in series if s["points"]]
            xs = {x for s in series for x, _, _ in s["points"]}
            name = f"{title}, {net}" if net else title
            if len(xs) == 1:
                single.setdefault((title, xlabel.split(" (")[0]), {})[num(xs.pop())] = True
            elif xs:
                out.append({"title": name, "line": LINES[line],
                            "svg": plot(series, xlabel, ylabel, bound=y_of is _ratio_of,
                                        log_y=log_y)})
    return {"figures": out, "single": [
        f"{title}: one {x} {'only' if len(values) == 1 else 'per network'} ({', '.join(values)})"
        for (title, x), values in single.items()]}


def _net(group: dict) -> str:
    """Return the network a batch axis holds fixed: its sizes."""
    return group["case"][0]


def _ends(group: dict) -> str:
    """Return what a width axis holds fixed: n0, n2 and the batch of a 2-layer net."""
    sizes = group["case"][0].split("x")
    return f"{sizes[0]}-n1-{sizes[-1]} b{group['case'][2]}" if len(sizes) == 3 else ""


def _stack(group: dict) -> str:
    """Return what a depth axis holds fixed: the input and output widths, the batch and the
    one hidden width (`784-…-10 b8, width 64`); a net of one layer has none and joins every
    depth axis of its ends (`_joins`), one of mixed widths is its own network."""
    sizes = group["case"][0].split("x")
    hidden = dict.fromkeys(sizes[1:-1])
    base = f"{sizes[0]}-…-{sizes[-1]} b{group['case'][2]}"
    if len(hidden) > 1:
        return f"{group['case'][0]} b{group['case'][2]}"
    return f"{base}, width {next(iter(hidden))}" if hidden else base


def _joins(key: str, net: str) -> bool:
    """Say whether a call keyed `key` belongs on the axis of `net` without being it: a
    one-layer net on the depth axis of its ends (`784-…-10 b8` on `784-…-10 b8, width 64`)."""
    return net.startswith(f"{key}, width ")


RATIO = "greatest |g − ref| / bound"
LINES = {max: "the worst call", min: "the worst call (fewest bits)",
         statistics.median: "the median call"}


def _ratio_of(group: dict) -> float | None:
    return group["ratio"]


def _bits_of(group: dict) -> float | None:
    return group["bits_min"]


def _time_of(group: dict) -> float | None:
    t = group["timing"]
    value = number(t.get("median_s")) if t else None
    return None if value is None else value * 1e3


def _series(config: dict, x_of, y_of, line, keep=None) -> dict:
    """Return one config's points (one per group, those `keep` keeps) and its line through
    line(ys) at each x."""
    points, at = [], {}
    for g in config["groups"].values():
        if keep is not None and not keep(g):
            continue
        x, y = x_of(g), y_of(g)
        if isinstance(x, int) and x > 0 and y is not None and not math.isnan(y):
            points.append((x, y, f"{config['label']} · {g['spec']}: {num(y)}"))
            at.setdefault(x, []).append(y)
    return {"label": config["label"], "color": config["color"], "dash": config["dash"],
            "marker": config.get("marker", MARKERS[0]), "points": points,
            "line": [(x, line(ys)) for x, ys in sorted(at.items())]}


def log_range(values: list[float], pad: float = 0.0) -> tuple[float, float]:
    """Return log10 of a range covering the positive values, whole decades, at least one."""
    logs = [math.log10(v) for v in values if v > 0 and math.isfinite(v)]
    if not logs:
        return -1.0, 1.0
    lo, hi = math.floor(min(logs) - pad), math.ceil(max(logs) + pad)
    return (lo, hi) if hi > lo else (lo - 1, hi + 1)


def fitted_range(values: list[float]) -> tuple[float, float]:
    """Return log10 of a range fitted to the positive values, a tenth of their span (at least
    a tenth of a decade) beyond each end: lines between 2e-4 and 2e-3 fill the plot."""
    logs = [math.log10(v) for v in values if v > 0 and math.isfinite(v)]
    if not logs:
        return -1.0, 1.0
    lo, hi = min(logs), max(logs)
    pad = max(0.1, 0.1 * (hi - lo))
    return lo - pad, hi + pad


def log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Return the y ticks of a log axis from lo to hi (log10): 1, 2 and 5 times each decade
    where the range is short, whole decades (every k-th) where it is long."""
    for mantissas in ((1, 2, 5), (1,)):
        ticks = [m * 10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1)
                 for m in mantissas if lo <= math.log10(m * 10.0 ** e) <= hi]
        if 2 <= len(ticks) <= 9:
            return [(t, f"{t:.0e}".replace("e+0", "e").replace("e-0", "e-")) for t in ticks]
    step = max(1, math.ceil((hi - lo) / 8))
    return [(10.0 ** e, f"1e{e}") for e in range(math.ceil(lo), math.floor(hi) + 1, step)]


def plot(series: list[dict], xlabel: str, ylabel: str, bound: bool = False,
         log_y: bool = True) -> Markup:
    """Return a line plot, x logarithmic, y logarithmic and fitted to the data or linear from
    0, as an inline SVG, each line labelled at its end; every text in it is escaped. The bound
    (ratio 1) is drawn where it falls inside the fitted range, else said in the corner."""
    xs = sorted({x for s in series for x, _, _ in s["points"]})
    ys = [y for s in series for _, y, _ in s["points"]]
    if not log_y:
        return _linear_plot(series, xs, ys, xlabel, ylabel)
    ylo, yhi = fitted_range([max(y, FLOOR) for y in ys if math.isfinite(y)])
    xlo, xhi = _x_range(xs)
    px = lambda x: LEFT + (math.log10(x) - xlo) / (xhi - xlo) * (WIDTH - LEFT - RIGHT)  # noqa: E731

    def py(y: float) -> float:
        y = 10.0 ** yhi if not math.isfinite(y) else max(y, FLOOR)
        return TOP + (yhi - math.log10(y)) / (yhi - ylo) * (HEIGHT - TOP - BOTTOM)

    parts = _axes(xs, px, log_ticks(ylo, yhi), py, xlabel, ylabel)
    if bound and ylo <= 0 <= yhi:
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(1.0):.1f}" '
                     f'y2="{py(1.0):.1f}" stroke="#b30000" stroke-dasharray="4 3"/>'
                     f'<text x="{WIDTH - RIGHT - 4}" y="{py(1.0) - 4:.1f}" text-anchor="end" '
                     f'fill="#b30000">bound</text>')
    elif bound:
        where = f"bound (1) is {10.0 ** -yhi:.2g}× above the top" if yhi < 0 else \
            "bound (1) is below the bottom"
        parts.append(f'<text x="{WIDTH - RIGHT - 4}" y="{TOP + 12}" text-anchor="end" '
                     f'fill="#b30000">{escape(where)}</text>')
    return _svg("".join(parts + _lines(series, px, py)))


def _linear_plot(series: list[dict], xs: list[float], ys: list[float], xlabel: str,
                 ylabel: str) -> Markup:
    """Return a plot whose y axis runs linearly from 0 (bits of agreement), x logarithmic."""
    top = max([y for y in ys if math.isfinite(y)], default=1.0)
    yhi = max(8.0, 8.0 * math.ceil(top / 8.0))
    xlo, xhi = _x_range(xs)
    px = lambda x: LEFT + (math.log10(x) - xlo) / (xhi - xlo) * (WIDTH - LEFT - RIGHT)  # noqa: E731

    def py(y: float) -> float:
        y = yhi if not math.isfinite(y) else min(max(y, 0.0), yhi)
        return TOP + (yhi - y) / yhi * (HEIGHT - TOP - BOTTOM)

    ticks = [(float(v), str(v)) for v in range(0, int(yhi) + 1, 8 if yhi <= 64 else 16)]
    return _svg("".join(_axes(xs, px, ticks, py, xlabel, ylabel) + _lines(series, px, py)))


def _lines(series: list[dict], px, py) -> list[str]:
    """Return every series drawn, each shifted a pixel or two sideways from the others (two
    identical series, two versions of one framework, never hide each other), and labelled at
    its end."""
    parts, ends = [], []
    for k, s in enumerate(series):
        dx = (k - (len(series) - 1) / 2) * 1.5
        parts += _draw(s, lambda x, dx=dx: px(x) + dx, py)
        last = s["line"][-1] if s["line"] else max(s["points"])[:2]
        ends.append([py(last[1]), px(last[0]) + dx, s])
    return parts + _end_labels(ends)


def _end_labels(ends: list[list]) -> list[str]:
    """Return each line's label right of the plot, beside its last point's height, pushed
    apart so no two overlap, with a thin leader from the point."""
    ends.sort(key=lambda e: e[0])
    y = [min(max(e[0], TOP + 4), HEIGHT - BOTTOM) for e in ends]
    for k in range(1, len(y)):
        y[k] = max(y[k], y[k - 1] + LABEL_GAP)
    overflow = y[-1] - (HEIGHT - BOTTOM) if y else 0
    if overflow > 0:  # move them up as far as the top allows; more labels make the plot taller
        room = y[0] - (TOP + 4)
        y = [v - min(overflow, room) for v in y]
    x = WIDTH - RIGHT + 8
    out = []
    for (py0, px0, s), ly in zip(ends, y, strict=True):
        color = escape(s["color"])
        out.append(f'<line x1="{px0:.1f}" y1="{py0:.1f}" x2="{x - 2}" y2="{ly:.1f}" '
                   f'stroke="{color}" stroke-width="0.6" stroke-opacity="0.6"/>'
                   f'<text class="end" x="{x}" y="{ly + 4:.1f}" fill="{color}">'
                   f'{escape(s["label"])}</text>')
    return out


def _x_range(xs: list[float]) -> tuple[float, float]:
    """Return the log10 range of the x axis, padded."""
    xlo, xhi = math.log10(xs[0]), math.log10(xs[-1])
    return (xlo - 0.3, xhi + 0.3) if xhi == xlo else (xlo - 0.05 * (xhi - xlo),
                                                      xhi + 0.05 * (xhi - xlo))


def _svg(body: str) -> Markup:
    """Return the plot's SVG, taller than HEIGHT where its lines' labels need more room."""
    labels = [float(y) for y in re.findall(r'<text class="end" x="[\d.]+" y="([\d.]+)"', body)]
    height = max([HEIGHT, *(math.ceil(y) + 6 for y in labels)])
    return Markup(f'<svg class="plot" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} '
                  f'{height}" role="img" font-family="sans-serif" font-size="11">{body}</svg>')


def _axes(xs: list[float], px, yticks: list[tuple[float, str]], py, xlabel: str,
          ylabel: str) -> list[str]:
    """Return the frame, the ticks (each x value; the given y ticks) and the axis labels."""
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
             f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#999"/>']
    for value, label in yticks:
        y = py(value)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#eee"/><text x="{LEFT - 4}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(label)}</text>')
    for x in ticks(xs, px):
        parts.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{HEIGHT - BOTTOM}" '
                     f'y2="{HEIGHT - BOTTOM + 4}" stroke="#999"/><text x="{px(x):.1f}" '
                     f'y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(num(x))}</text>')
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" '
                 f'text-anchor="middle">{escape(xlabel)}</text>')
    parts.append(f'<text transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(ylabel)}</text>')
    return parts


TICK_CHAR, TICK_GAP = 7.0, 8.0
"""The width of a tick label's character at the plots' 11 px font, and the least gap between
two labels, in pixels."""


def ticks(xs: list[float], px) -> list[float]:
    """Return the x values to label, from the least up, each clear of the one before (batch
    sizes 1…64 would print on top of each other); the greatest is always labelled."""
    def half(x: float) -> float:
        return TICK_CHAR * len(num(x)) / 2

    kept: list[float] = []
    for x in xs:
        if not kept or px(x) - px(kept[-1]) >= half(x) + half(kept[-1]) + TICK_GAP:
            kept.append(x)
    last = xs[-1] if xs else None
    if last is not None and kept[-1] != last:
        while len(kept) > 1 and px(last) - px(kept[-1]) < half(last) + half(kept[-1]) + TICK_GAP:
            kept.pop()
        kept[-1:] = [kept[-1], last] if px(last) - px(kept[-1]) >= half(last) + half(
            kept[-1]) + TICK_GAP else [last]
    return kept


def _draw(series: dict, px, py) -> list[str]:
    """Return one config's line (through each x's greatest value) and its points, each drawn
    with the config's marker."""
    color, dash = escape(series["color"]), escape(series["dash"])
    parts = []
    if len(series["line"]) > 1:
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in series["line"])
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.8" '
                     f'stroke-dasharray="{dash}"><title>{escape(series["label"])}</title>'
                     f'</polyline>')
    for x, y, title in series["points"]:
        parts.append(_marker(series.get("marker", MARKERS[0]), px(x), py(y), color,
                             escape(title)))
    return parts


def _marker(kind: str, x: float, y: float, color: str, title: str) -> str:
    """Return one point as a circle, square, triangle or diamond (titled: hover says what)."""
    fill = f'fill="{color}" fill-opacity="0.45"'
    if kind == "square":
        return (f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" {fill}>'
                f'<title>{title}</title></rect>')
    if kind in ("triangle", "diamond"):
        pts = ((x, y - 4), (x + 4, y + 3), (x - 4, y + 3)) if kind == "triangle" else (
            (x, y - 4), (x + 4, y), (x, y + 4), (x - 4, y))
        return (f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" {fill}>'
                f'<title>{title}</title></polygon>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" {fill}><title>{title}</title></circle>'
