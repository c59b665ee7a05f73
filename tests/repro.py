"""Hand over a finding: shrink a failing group and export a standalone script that shows it.

`export` shrinks (tests/shrink.py), takes the failing entries of the shrunk case with their
reference values and bounds, states the diagnosis in one sentence, and renders the script
(reports/repro.py). `Exporter` does it once per failing group during a run (`--repro DIR`);
`from_results` does it for one item of a results file (`python -m reports repro`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import adapters
from reference.compare import REDUCED, WRONG, Diagnosis
from reference.simulate import MATMUL_BITS, TRUNCATED
from reports import repro as render
from tests.conformance import case_for, simulated_for
from tests.matrix import Config
from tests.shrink import BUDGET, Shrunk, failing_entries, shrink, sigmas_of, size_text, spec_of

SUITE = Path(__file__).resolve().parents[1]


class NotExported(Exception):
    """The item cannot be exported; the message says why, in one line."""


def sentence(diag: Diagnosis, config: Config, adapter) -> str:
    """Return the diagnosis as one sentence a maintainer can act on."""
    if diag.field in ("tf32", "bfloat16"):
        f = max((f for f in diag.fits if f.matches and REDUCED[f.arithmetic] == diag.field),
                key=lambda f: f.z)
        how = "truncated" if f.arithmetic.endswith(TRUNCATED) else "rounded"
        setting = getattr(adapter, "float32_setting", None)
        restore = f"; {setting} restores float32" if setting else ""
        return (f"float32 was asked, but the errors match float32 matrix products whose "
                f"operands are {how} to {diag.field} ({MATMUL_BITS[diag.field]} mantissa bits): "
                f"share {f.beta:.3g} of the simulated error, z {f.z:.3g} over {f.rows} "
                f"rows{restore}.")
    if diag.field == "float32" and config.dtype == "float64":
        return (f"float64 was asked, but it was computed in float32: the median entry error "
                f"is {diag.leak:.2g}× a float32 computation's.")
    if diag.reads == WRONG:
        n = diag.failing
        return (f"wrong gradient: {n} {'entry' if n == 1 else 'entries'} of the gradients "
                f"outside their bound, and no reduced arithmetic's error field matches: the "
                f"formula differs, not the rounding.")
    return f"errors consistent with {diag}."


def _simulation(diag: Diagnosis, config: Config) -> tuple[str | None, str | None]:
    """Return (arithmetic, label) of the simulation whose values the script shows, if any."""
    if diag.field in ("tf32", "bfloat16"):
        best = max((f for f in diag.fits if f.matches and REDUCED[f.arithmetic] == diag.field),
                   key=lambda f: f.z)
        return best.arithmetic, f"{diag.field} products give"
    if diag.field == "float32" and config.dtype == "float64":
        return "float32", "float32 gives"
    return None, None


def _adapter_source(adapter) -> dict:
    """Return where a script imports the adapter from: module, attribute and sys.path roots."""
    cls = type(adapter)
    module = sys.modules[cls.__module__]
    path = Path(module.__file__).resolve()
    name = cls.__module__
    if name.startswith("_adapter_"):  # loaded from a file path by adapters.load
        name, roots = path.stem, [str(path.parent)]
    else:
        depth = name.count(".") + (path.stem == "__init__")
        roots = [str(path.parents[depth])]
    roots += [str(SUITE)] if str(SUITE) not in roots else []
    return {"name": adapter.name, "module": name, "attr": cls.__qualname__, "paths": roots}


def data(adapter, config: Config, shrunk: Shrunk, item_id: str) -> dict:
    """Return what the script embeds for a shrunk failure."""
    spec, tensor, diag = shrunk.spec, shrunk.shrunk_tensor, shrunk.verdict.diagnosis
    case = case_for(spec)
    entries = failing_entries(adapter, config, spec, tensor)
    if not entries:
        raise NotExported(f"{item_id}: no entry of {tensor} is outside its bound on "
                          f"{size_text(spec)} (the group fails as a field of errors only)")
    arithmetic, label = _simulation(diag, config)
    sim = simulated_for(spec, arithmetic)[tensor] if arithmetic else None
    for e in entries:
        e["sim"] = None if sim is None else float(sim[e["index"]])
    builtin = type(adapter).__module__ == f"adapters.{adapter.framework}"
    framework = adapter.framework if builtin else "adapter"
    worst = entries[0]
    return {
        "framework": framework, "item": item_id, "tensor": tensor,
        "title": (f"{adapter.name}: {config.dtype} dC/d{tensor} off by {worst['ratio']:.3g}× its "
                  f"bound on a {size_text(spec)} net; reads {diag.reads}."),
        "search": _searched(shrunk), "diagnosis": sentence(diag, config, adapter),
        "sizes": spec.sizes, "batch": spec.batch, "seed": spec.seed, "sigmas": sigmas_of(spec),
        "layers": [(W, b) for W, b in zip(_params(case)[0::2], _params(case)[1::2],
                                          strict=True)],
        "x": case.x, "labels": [int(i) for i in np.argmax(case.y, axis=1)],
        "dtype": config.dtype, "device": config.device, "precision": config.precision,
        "entries": entries, "sim_label": label, "adapter": _adapter_source(adapter),
    }


def _searched(shrunk: Shrunk) -> str:
    """Return how the case was found: `shrunk from 784x16x10 b32: 29 cases, 0.31 s`."""
    cut = "" if shrunk.complete else ", budget spent: the smallest found"
    n = shrunk.evaluations
    return (f"shrunk from {size_text(shrunk.original)}: {n} case{'s' if n != 1 else ''}, "
            f"{shrunk.seconds:.2g} s{cut}")


def _params(case) -> list[np.ndarray]:
    return list(case.params.values())  # W1, b1, …, WL, bL


def export(adapter, config: Config, spec, tensor: str, item_id: str,
           budget: float = BUDGET) -> tuple[str, Shrunk]:
    """Shrink the failure and return (script text, how the search went)."""
    shrunk = shrink(adapter, config, spec, tensor, budget)
    if not shrunk.reproduced:
        raise NotExported(f"{item_id}: {tensor} did not fail again when the adapter was "
                          "called on the same case")
    return render.render(data(adapter, config, shrunk, item_id)), shrunk


def info(path: Path, shrunk: Shrunk) -> dict:
    """Return what the results and the report keep of an export."""
    return {"script": str(path), "original": size_text(shrunk.original),
            "shrunk": size_text(shrunk.spec), "shrunk_id": shrunk.spec.id,
            "tensor": shrunk.shrunk_tensor, "reads": shrunk.reads, "complete": shrunk.complete,
            "seconds": round(shrunk.seconds, 3), "cases": shrunk.evaluations}


class Exporter:
    """Exports one script per failing group into a folder (`--repro DIR`)."""

    def __init__(self, folder: str | Path, budget: float = BUDGET):
        self.folder, self.budget = Path(folder), budget
        self.done: dict[str, dict | None] = {}

    def export(self, item, adapter) -> dict | None:
        """Export the item's group once; return what was exported (None: nothing, or why)."""
        if item.group not in self.done:
            self.done[item.group] = self._export(item, adapter)
        return self.done[item.group]

    def _export(self, item, adapter) -> dict:
        try:
            text, shrunk = export(adapter, item.config, item.spec, item.tensor, item.id,
                                  self.budget)
        except NotExported as exc:
            return {"error": str(exc)}
        self.folder.mkdir(parents=True, exist_ok=True)
        path = (self.folder / f"repro-{item.group}.py").resolve()
        path.write_text(text)
        return info(path, shrunk)


def from_results(item: dict, options: dict | None = None) -> tuple[object, Config, object]:
    """Return (adapter, config, spec) of one results item, loading the adapter it names."""
    config = Config(**item["config"])
    s = item["spec"]
    spec = spec_of(s["sizes"], s["batch"], s["seed"], s.get("sigmas") or
                   (s["sigma1"], s["sigma2"]))
    return _load(config.adapter, item.get("adapter_spec"), options or {}), config, spec


def _load(name: str, recorded: str | None, options: dict):
    """Load the adapter by its recorded import path, a built-in name, or the run's --adapter."""
    candidates = [recorded] if recorded else []
    candidates += [s for specs in adapters.BUILTIN.values() for s in specs]
    candidates += list(options.get("adapter") or [])
    for spec in candidates:
        try:
            adapter = adapters.load(spec)
        except adapters.AdapterError:
            continue
        if adapter.name == name:
            return adapter
    raise NotExported(f"adapter {name!r}: cannot be loaded here (import path "
                      f"{recorded or 'not recorded'}); run from the suite's checkout")
