"""Render a standalone reproduction script from a shrunk failure's data (templates/repro/).

The data is plain: the case's float32 arrays, the entries with their reference values and
bounds, the settings and one sentence of diagnosis. A built-in framework gets its own template,
written as that framework's users write code; any other adapter gets a script that loads the
adapter object itself, from its file or module (relative to the script, or the working folder).

Every value is written into the script as a Python literal (`repr`) and every text of the
docstring escaped (`doc_text`): an item id or a device read from a results file is data, never
code. The script exits 0 once fixed, 1 while the failure reproduces, 2 when it cannot run.
"""

from __future__ import annotations

import re
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
TENSOR = re.compile(r"([Wb])([1-9][0-9]*)")
"""A gradient's name: W1, b1, …; anything else is refused before it reaches a script."""


def _template(name: str) -> Template:
    return Template((TEMPLATES / f"{name}.py.tmpl").read_text(encoding="utf-8"))


def doc_text(text: str) -> str:
    """Return text that reads the same inside a triple-quoted docstring and cannot end it:
    backslashes and quotes escaped, anything unprintable (a newline, a lone surrogate) as its
    escape sequence."""
    out = []
    for c in str(text):
        if c in '\\"':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        else:
            out.append(c.encode("unicode_escape").decode("ascii"))
    return "".join(out)


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
    """Return the embedded case and settings: f32, SIZES…, W, b, x, y, DTYPE…, TENSOR…"""
    n = int(d["sizes"][-1])
    part, layer = TENSOR.fullmatch(d["tensor"]).groups()
    precision = d.get("precision", "default")
    shape = tuple(int(s) for s in d["shape"])
    return "\n".join([
        "f32 = lambda h, *shape: np.frombuffer(bytes.fromhex(h), \"<f4\").reshape(shape)"
        ".astype(float)",
        f"SIZES, BATCH, SEED = {tuple(int(s) for s in d['sizes'])!r}, {int(d['batch'])!r}, "
        f"{int(d['seed'])!r}",
        f"SIGMAS = {tuple(str(s) for s in d['sigmas'])!r}",
        f"W = {_listed([Wl for Wl, _ in d['layers']])}  # (out, in) as in (20)",
        f"b = {_listed([bl for _, bl in d['layers']])}",
        f"x, y = {hex_array(d['x'])}, np.eye({n})[{[int(i) for i in d['labels']]!r}]  # exact "
        "float32 inputs (little-endian hex); y one-hot",
        f"DTYPE, DEVICE = {str(d['dtype'])!r}, {str(d['device'])!r}",
        f"PRECISION = {None if precision == 'default' else str(precision)!r}  # the float32 "
        "matmul setting; None: the framework's default",
        f"TENSOR, SHAPE = {d['tensor']!r}, {shape!r}",
        *_direction(d),
        f"LAYER, PART = {int(layer) - 1}, {int(part == 'b')}  # TENSOR is the gradient of "
        "W[LAYER] (PART 0) or b[LAYER] (PART 1)",
    ])


def _direction(d: dict) -> list[str]:
    """Return the embedded direction of a Hessian-vector product (V, Vb), or `V = None`."""
    if d.get("direction") is None:
        return ["V = Vb = None  # the script checks the gradient (no direction)"]
    return [f"V = {_listed([Vl for Vl, _ in d['direction']])}  # the direction's W parts: "
            "the script checks H·v along (V, Vb)",
            f"Vb = {_listed([vb for _, vb in d['direction']])}"]


def _entries(d: dict) -> str:
    rows = [f"({tuple(int(i) for i in e['index'])!r}, {float(e['ref'])!r}, "
            f"{float(e['bound'])!r}, {None if e.get('sim') is None else float(e['sim'])!r})"
            for e in d["entries"]]
    return f"[{rows[0]}]" if len(rows) == 1 else "[\n" + "".join(f"    {r},\n" for r in rows) + "]"


def kind_of(d: dict) -> str:
    """Return the template a failure's script is written with: its framework's own where
    there is one that knows every activation of the case, else `adapter`."""
    known = ACTIVATIONS.get(d["framework"], {})
    return d["framework"] if all(s in known for s in d["sigmas"]) else "adapter"


def docstring(d: dict) -> str:
    """Return the script's docstring: the title, where the case came from and how it was
    found (versions, device, commit), and what the exit status says; every text escaped."""
    paragraphs = [d["title"], f"From {d['item']} ({d['search']})."]
    if d.get("found_with"):
        paragraphs.append(f"Found with {d['found_with']}.")
    paragraphs.append("Exits 1 while an entry is outside its bound (it reproduces), 0 once "
                      "every entry is inside (fixed), 2 when it cannot run (an import fails, "
                      "or computing the gradient raises).")
    return "\n\n".join("\n".join(doc_text(line) for line in _wrapped(str(p))) for p in paragraphs)


def _literal(text: str, width: int = 80) -> str:
    """Return a string literal of the text, in pieces of `width` characters, one per line (a
    long diagnosis stays readable; the pieces concatenate back to the text exactly)."""
    if len(text) <= width:
        return repr(text)
    pieces = (repr(text[i:i + width]) for i in range(0, len(text), width))
    return "(\n    " + "\n    ".join(pieces) + "\n)"


def _wrapped(text: str) -> list[str]:
    """Return a paragraph in lines of about 96 characters, ids never broken."""
    return textwrap.wrap(text, 96, break_long_words=False, break_on_hyphens=False) or [""]


def render(d: dict) -> str:
    """Return the script's text for one failure's data."""
    if not isinstance(d.get("tensor"), str) or not TENSOR.fullmatch(d["tensor"]):
        raise ValueError(f"not a gradient's name: {d.get('tensor')!r}")
    kind = kind_of(d)
    used = dict.fromkeys(d["sigmas"])
    fields = {"data": _data(d),
              "activations": ", ".join(f"{s!r}: {ACTIVATIONS.get(kind, {}).get(s)}"
                                       for s in used)}
    if kind == "adapter":
        source = d["adapter"]
        fields.update(name=repr(str(d.get("name") or source.get("name"))),
                      suite=repr(source.get("suite")),
                      adapter="{\n" + "".join(f"    {k!r}: {source.get(k)!r},\n" for k in (
                          "file", "file_name", "module", "root", "object")) + "}")
    head = _template("head").substitute(doc=docstring(d))
    body = _template(kind).substitute(fields)
    label, digits = d.get("sim_label"), 17 if d["dtype"] == "float64" else 9
    check = _template("check").substitute(
        entries=_entries(d), diagnosis=_literal(str(d["diagnosis"])),
        sim_label=repr(None if label is None else str(label)), digits=digits)
    return head + body + check
