"""Render a standalone reproduction script from a shrunk failure's data (templates/repro/).

The data is plain: the case's float32 arrays, the entries with their reference values and
bounds, the settings and one sentence of diagnosis. A built-in framework gets its own template,
written as that framework's users write code; any other adapter gets a script that imports
the adapter's module from the paths the data names.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from string import Template

import numpy as np

TEMPLATES = Path(__file__).parent / "templates" / "repro"
FRAMEWORKS = ("torch", "jax")
"""Frameworks with a template of their own; anything else runs through its adapter."""
ACTIVATIONS = {
    "torch": {"sigmoid": "torch.sigmoid", "tanh": "torch.tanh", "relu": "torch.relu",
              "softplus": "torch.nn.functional.softplus", "identity": "lambda z: z"},
    "jax": {"sigmoid": "jax.nn.sigmoid", "tanh": "jnp.tanh", "relu": "jax.nn.relu",
            "softplus": "jax.nn.softplus", "identity": "lambda z: z"},
}
HEX_CHARS = 88  # hex digits per line of an embedded array


def _template(name: str) -> Template:
    return Template((TEMPLATES / f"{name}.py.tmpl").read_text())


def hex_array(a: np.ndarray, indent: int = 0) -> str:
    """Return a float32 array as `f32("…hex…", shape…)`, exact, wrapped in lines."""
    a = np.asarray(a, dtype="<f4")
    text = a.tobytes().hex()
    shape = ", ".join(map(str, a.shape))
    if len(text) <= HEX_CHARS:
        return f'f32("{text}", {shape})'
    pad = " " * (indent + 4)
    lines = "\n".join(f'{pad}"{text[i:i + HEX_CHARS]}"' for i in range(0, len(text), HEX_CHARS))
    return f"f32(\n{lines},\n{pad}{shape})"


def _listed(arrays: list) -> str:
    """Return a list of embedded arrays, on one line when it fits."""
    one = f"[{', '.join(hex_array(a) for a in arrays)}]"
    if len(one) <= 88 and "\n" not in one:
        return one
    return "[\n" + "".join(f"    {hex_array(a, 4)},\n" for a in arrays) + "]"


def _data(d: dict) -> str:
    """Return the embedded inputs: f32, SIGMAS, W, b, x, y."""
    n = d["sizes"][-1]
    return "\n".join([
        "f32 = lambda h, *shape: np.frombuffer(bytes.fromhex(h), \"<f4\").reshape(shape)"
        ".astype(float)",
        f"SIGMAS = {tuple(d['sigmas'])!r}",
        f"W = {_listed([Wl for Wl, _ in d['layers']])}  # (out, in) as in (20)",
        f"b = {_listed([bl for _, bl in d['layers']])}",
        f"x, y = {hex_array(d['x'])}, np.eye({n})[{list(d['labels'])!r}]  # exact float32 "
        "inputs (little-endian hex); y one-hot",
    ])


def _entries(d: dict) -> str:
    rows = [f"({tuple(e['index'])!r}, {e['ref']!r}, {e['bound']!r}, {e.get('sim')!r})"
            for e in d["entries"]]
    return f"[{rows[0]}]" if len(rows) == 1 else "[\n" + "".join(f"    {r},\n" for r in rows) + "]"


def render(d: dict) -> str:
    """Return the script's text for one failure's data."""
    kind = d["framework"] if d["framework"] in FRAMEWORKS else "adapter"
    layer, part = int(d["tensor"][1:]) - 1, 0 if d["tensor"][0] == "W" else 1
    used = dict.fromkeys(d["sigmas"])
    acts = ", ".join(f"{s!r}: {ACTIVATIONS.get(kind, {}).get(s, '')}" for s in used)
    precision = d.get("precision", "default")
    source = d.get("adapter", {})
    fields = {
        "data": _data(d), "dtype": d["dtype"], "device": d["device"], "layer": layer,
        "part": part, "tensor": d["tensor"], "activations": acts,
        "sizes": repr(tuple(d["sizes"])), "batch": d["batch"], "seed": d["seed"],
        "precision_line": (f'torch.set_float32_matmul_precision("{precision}")'
                           if precision != "default" else
                           "# float32 matmul precision: the framework's default"),
        "precision": repr(None if precision == "default" else precision),
        "device_name": ("torch.cuda.get_device_name()" if d["device"] == "cuda"
                        else "platform.processor() or 'cpu'"),
        "setting": "" if precision == "default" else f", precision={precision!r}",
        "setting_text": "" if precision == "default" else f", precision {precision}",
        **{k: source.get(k, "") for k in ("name", "module", "attr")},
        "paths": repr(list(source.get("paths", []))),
    }
    head = _template("head").substitute(
        title=d["title"], provenance=textwrap.fill(
            f"From {d['item']} ({d['search']}). Exits 1 while an entry is outside its bound.",
            96))
    body = _template(kind).substitute(fields)
    label, digits = d.get("sim_label"), 17 if d["dtype"] == "float64" else 9
    check = _template("check").substitute(
        tensor=d["tensor"], entries=_entries(d), diagnosis_literal=repr(d["diagnosis"]),
        sim_label=f", what {label.split()[0]} gives" if label else "",
        sim_part=f"; {label} {{sim:.{digits}g}}" if label else "", digits=digits)
    return head + body + check
