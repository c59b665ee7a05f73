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


def hex_array(a: np.ndarray) -> str:
    """Return a float32 array as `f32("…hex…", shape…)`, exact, wrapped in lines."""
    a = np.asarray(a, dtype="<f4")
    text = a.tobytes().hex()
    shape = ", ".join(map(str, a.shape))
    if len(text) <= HEX_CHARS:
        return f'f32("{text}", {shape})'
    lines = "\n".join(f'    "{text[i:i + HEX_CHARS]}"' for i in range(0, len(text), HEX_CHARS))
    return f"f32(\n{lines},\n    {shape})"


def _data(d: dict) -> str:
    """Return the embedded inputs: f32, SIZES … SIGMAS, W, b, x, y."""
    W = ",\n".join(f"    {hex_array(Wl)}" for Wl, _ in d["layers"])
    b = ",\n".join(f"    {hex_array(bl)}" for _, bl in d["layers"])
    return "\n".join([
        "",
        "def f32(hex_bytes, *shape):",
        '    """Return float32 values stored little-endian as hex: the exact inputs."""',
        '    return np.frombuffer(bytes.fromhex(hex_bytes), dtype="<f4").reshape(shape)',
        "",
        "",
        f"SIZES, BATCH, SEED = {tuple(d['sizes'])!r}, {d['batch']}, {d['seed']}",
        f"SIGMAS = {tuple(d['sigmas'])!r}  # activation of each layer",
        f"W = [  # W[l] of layer l + 1 is (out, in), as in (20)\n{W},\n]",
        f"b = [\n{b},\n]",
        f"x = {hex_array(d['x'])}  # (batch, n0)",
        f"y = np.eye({d['sizes'][-1]})[{list(d['labels'])!r}]  # one-hot targets",
    ])


def _entries(d: dict) -> str:
    rows = [f"    ({tuple(e['index'])!r}, {e['ref']!r}, {e['bound']!r}, {e.get('sim')!r}),"
            for e in d["entries"]]
    return "\n".join(rows)


def render(d: dict) -> str:
    """Return the script's text for one failure's data."""
    kind = d["framework"] if d["framework"] in FRAMEWORKS else "adapter"
    layer, part = int(d["tensor"][1:]) - 1, 0 if d["tensor"][0] == "W" else 1
    used = dict.fromkeys(d["sigmas"])
    acts = ", ".join(f"{s!r}: {ACTIVATIONS.get(kind, {}).get(s, '')}" for s in used)
    precision = d.get("precision", "default")
    fields = {
        "data": _data(d), "dtype": d["dtype"], "device": d["device"], "layer": layer,
        "part": part, "tensor": d["tensor"], "activations": acts,
        "precision_line": (f'torch.set_float32_matmul_precision("{precision}")'
                           if precision != "default" else
                           "# float32 matmul precision: left at the framework's default"),
        "precision": repr(None if precision == "default" else precision),
        "setting": repr({} if precision == "default" else {"precision": precision}),
        **{k: d.get("adapter", {}).get(k, "") for k in ("name", "module", "attr")},
        "paths": repr(list(d.get("adapter", {}).get("paths", []))),
    }
    head = _template("head").substitute(
        title=d["title"], diagnosis=textwrap.fill(d["diagnosis"], 96), item=d["item"],
        search=textwrap.fill(d["search"], 96), tensor=d["tensor"])
    body = _template(kind).substitute(fields)
    check = _template("check").substitute(
        tensor=d["tensor"], entries=_entries(d), diagnosis_literal=repr(d["diagnosis"]),
        sim_label=d.get("sim_label") or "no arithmetic fits",
        digits=17 if d["dtype"] == "float64" else 9)
    return head + body + check
