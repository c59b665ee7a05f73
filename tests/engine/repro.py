"""Hand over a finding: shrink a failing group and export a standalone script that shows it.

`export` shrinks (tests/engine/shrink.py), takes the failing entries of the shrunk case with their
reference values and bounds, states the diagnosis in one sentence, and renders the script
(reports/repro.py). `Exporter` does it once per failing group during a run (`--repro DIR`);
`from_results` does it for one item of a results file (`python -m reports repro`).

A script names no absolute path of the machine that wrote it: the suite's checkout and the
adapter's file are written relative to the script when the two share a folder below the file
system's root, and looked for in the working folder when they are not there.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import adapters
from reference.activations import CATALOGUE
from reference.compare import WRONG, Diagnosis
from reference.simulate import MATMUL_BITS, TRUNCATED
from reports import provenance, record
from reports import repro as render
from tests.engine import second
from tests.engine.conformance import case_for, expected_of, simulated_for
from tests.engine.matrix import Config, Spec
from tests.engine.shrink import BUDGET, Shrunk, failing_entries, shrink, sigmas_of, size_text

SUITE = Path(__file__).resolve().parents[2]


class NotExported(Exception):
    """The item cannot be exported; the message says why, in one line."""


def sentence(diag: Diagnosis, config: Config, adapter) -> str:
    """Return the diagnosis as one sentence a maintainer can act on."""
    if config.order == second.SECOND:
        return (f"the Hessian-vector product H·v along the embedded direction V is wrong: "
                f"{diag}.")
    if diag.field in ("tf32", "bfloat16"):
        how = "truncated" if (diag.matched or "").endswith(TRUNCATED) else "rounded"
        setting = getattr(adapter, "float32_setting", None)
        restore = f"; {setting} restores float32" if setting else ""
        return (f"float32 was asked, but the errors match float32 matrix products whose "
                f"operands are {how} to {diag.field} ({MATMUL_BITS[diag.field]} mantissa bits): "
                f"{diag}; {diag.evidence()}{restore}.")
    if diag.field == "float32" and config.dtype == "float64":
        if diag.operations is not None:
            return f"float64 was asked, but {diag}: {diag.evidence()}."
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
        return diag.matched, f"{diag.field} products give"
    if diag.field == "float32" and config.dtype == "float64":
        return "float32", "float32 gives"
    return None, None


def _home(adapter, specs=()) -> tuple[ModuleType, str]:
    """Return the module the adapter object can be fetched from and its name there: the
    `--adapter MODULE:OBJECT` that loaded it, else a name of its class's module bound to the
    adapter or its class, else the class's qualified name (no pickling: any class, any
    constructor, defined anywhere, as long as one of these names reaches it)."""
    for spec in specs:
        name, _, attr = spec.rpartition(":")
        key = f"_adapter_{Path(name).stem}" if name.endswith(".py") else name
        module = sys.modules.get(key)
        obj = vars(module).get(attr) if module is not None else None
        if obj is not None and (obj is adapter or obj is type(adapter)):
            return module, attr
    cls = type(adapter)
    module = sys.modules.get(cls.__module__)
    if module is None:
        raise NotExported(f"adapter {adapter.name!r}: its module {cls.__module__} is not loaded")
    for target in (adapter, cls):
        for key, value in list(vars(module).items()):
            if value is target and not key.startswith("__"):
                return module, key
    obj = module
    for part in cls.__qualname__.split("."):
        obj = getattr(obj, part, None)
    if obj is not cls:
        raise NotExported(f"adapter {adapter.name!r}: no name of {module.__name__} holds it "
                          f"or its class {cls.__qualname__}, so a script cannot fetch it")
    return module, cls.__qualname__


def relative(target: Path, folder: Path) -> str | None:
    """Return `target` relative to `folder` where the two share a folder below the file
    system's root, else None (a path up to the root and down again is an absolute path)."""
    target, folder = Path(target).resolve(), Path(folder).resolve()
    try:
        common = Path(os.path.commonpath([target, folder]))
    except ValueError:  # another drive
        return None
    if common == Path(common.anchor):
        return None
    return Path(os.path.relpath(target, folder)).as_posix()


def _installed(root: Path) -> bool:
    """Say whether an import root is one of this interpreter's own (site-packages)."""
    paths = sysconfig.get_paths()
    return any(str(root) == str(Path(paths[k]).resolve()) for k in ("purelib", "platlib")
               if k in paths)


def _adapter_source(adapter, folder: Path, specs=()) -> dict:
    """Return where a script written into `folder` fetches the adapter from: its file or its
    module (with its import root), relative to the script, and the object's name there."""
    module, attr = _home(adapter, specs)
    file = getattr(module, "__file__", None)
    out = {"name": adapter.name, "suite": relative(SUITE, folder), "object": attr,
           "file": None, "file_name": None, "module": None, "root": None}
    if module.__name__.startswith("_adapter_") and file:  # loaded from a file's path
        out.update(file=relative(Path(file), folder), file_name=Path(file).name)
        return out
    out["module"] = module.__name__
    if file:
        path = Path(file).resolve()
        root = path.parents[module.__name__.count(".") + (path.stem == "__init__")]
        out["root"] = None if _installed(root) else relative(root, folder)
    return out


def found_with(adapter, config: Config) -> str:
    """Return the versions, device and suite commit this process finds a failure with."""
    named = [f"{n} {v or '(version unknown)'}" for n, v in record.distributions(adapter).items()
             if n != "numpy"]
    device = provenance.cpu_model() if config.device == "cpu" else ", ".join(
        f"{k}: {', '.join(map(str, v))}" for k, v in provenance.accelerators().items())
    return _found(f"python {platform.python_version()}", f"numpy {np.__version__}", *named,
                  device=f"{config.device}: {device or '?'}", git=_git())


_GIT: list = []


def _git() -> dict:
    """Return the suite's commit, asked of git once a process."""
    if not _GIT:
        _GIT.append(provenance.git())
    return _GIT[0]


def _found(*versions: str, device: str, git: dict | None) -> str:
    """Return `python 3.11.9, numpy 2.2.1, torch 2.5.1; cpu: <model>; suite 0123abcd…`."""
    git = git if isinstance(git, dict) else {}
    commit = git.get("commit")
    suite = (f"suite commit {str(commit)[:12]}{' (modified)' if git.get('dirty') else ''}"
             if commit else "suite commit unknown")
    return f"{', '.join(versions)}; {device}; {suite}"


def found_with_run(run: dict, item: dict) -> str:
    """Return the versions, device and commit the results say an item failed with."""
    prov = run.get("provenance") if isinstance(run.get("provenance"), dict) else {}
    versions = prov.get("versions") if isinstance(prov.get("versions"), dict) else {}
    dists = item.get("distributions") if isinstance(item.get("distributions"), dict) else {
        item.get("framework"): item.get("framework_version")}
    named = [f"{n} {versions.get(n) or '?'}" for n in ("python", "numpy")]
    named += [f"{n} {v or '(version unknown)'}" for n, v in dists.items()
              if n not in (None, "numpy", "python")]
    devices = prov.get("devices") if isinstance(prov.get("devices"), dict) else {}
    device = str((item.get("config") or {}).get("device", "?"))
    seen = devices.get("cpu") if device == "cpu" else devices.get(device.split(":")[0])
    return _found(*named, device=f"{device}: {seen or '?'}", git=prov.get("git")) + (
        f" (run {run.get('id')})" if run.get("id") else "")


def data(adapter, config: Config, shrunk: Shrunk, item_id: str, folder=None,
         found: str | None = None, specs=()) -> dict:
    """Return what the script written into `folder` (default: the working folder) embeds for a
    shrunk failure; `found`: the versions it was found with (default: this process's)."""
    spec, tensor, diag = shrunk.spec, shrunk.shrunk_tensor, shrunk.verdict.diagnosis
    case = case_for(spec)
    entries = failing_entries(adapter, config, spec, tensor)
    if not entries:
        raise NotExported(f"{item_id}: no entry of {tensor} is outside its bound on "
                          f"{size_text(spec)} (the group fails as a field of errors only)")
    arithmetic, label = _simulation(diag, config)
    reduced = diag.products or None if arithmetic != "float32" else None  # the products read
    sim = simulated_for(spec, arithmetic, reduced)[tensor] if arithmetic else None
    for e in entries:
        e["sim"] = None if sim is None else float(sim[e["index"]])
    builtin = type(adapter).__module__ == f"adapters.{adapter.framework}"
    framework = adapter.framework if builtin else "adapter"
    worst, what = entries[0], f"dC/d{tensor}" if config.order == 1 else f"(H·v) {tensor}"
    v = None if config.order == 1 else second.direction_for(spec)
    return {
        "framework": framework, "item": item_id, "tensor": tensor,
        "shape": expected_of(config, spec)[tensor].shape,
        "direction": None if v is None else [(v[f"W{i}"], v[f"b{i}"])
                                             for i in range(1, len(spec.sizes))],
        "title": (f"{adapter.name}: {config.dtype} {what} off by {worst['ratio']:.3g}× its "
                  f"bound on a {size_text(spec)} net; reads {diag.reads}."),
        "search": _searched(shrunk), "diagnosis": sentence(diag, config, adapter),
        "found_with": found if found is not None else found_with(adapter, config),
        "sizes": spec.sizes, "batch": spec.batch, "seed": spec.seed, "sigmas": sigmas_of(spec),
        "layers": [(W, b) for W, b in zip(_params(case)[0::2], _params(case)[1::2],
                                          strict=True)],
        "x": case.x, "labels": [int(i) for i in np.argmax(case.y, axis=1)],
        "dtype": config.dtype, "device": config.device, "precision": config.precision,
        "entries": entries, "sim_label": label,
        "adapter": _adapter_source(adapter, Path(folder or "."), specs),
    }


def _searched(shrunk: Shrunk) -> str:
    """Return how the case was found: `shrunk from 784x16x10 b32: 29 cases, 0.31 s`."""
    cut = "" if shrunk.complete else ", budget spent: the smallest found"
    n = shrunk.evaluations
    return (f"shrunk from {size_text(shrunk.original)}: {n} case{'s' if n != 1 else ''}, "
            f"{shrunk.seconds:.2g} s{cut}")


def _params(case) -> list[np.ndarray]:
    return list(case.params.values())  # W1, b1, …, WL, bL


def shrunk_failure(adapter, config: Config, spec, tensor: str, item_id: str,
                   budget: float = BUDGET) -> Shrunk:
    """Shrink the failure; raise NotExported when it does not come back."""
    shrunk = shrink(adapter, config, spec, tensor, budget)
    if not shrunk.reproduced:
        raise NotExported(f"{item_id}: {tensor} did not fail again when the adapter was "
                          "called on the same case")
    return shrunk


def export(adapter, config: Config, spec, tensor: str, item_id: str, budget: float = BUDGET,
           folder=None, found: str | None = None, specs=()) -> tuple[str, Shrunk]:
    """Shrink the failure and return (the text of a script to write into `folder`, how the
    search went)."""
    shrunk = shrunk_failure(adapter, config, spec, tensor, item_id, budget)
    return render.render(data(adapter, config, shrunk, item_id, folder, found, specs)), shrunk


def script_name(config: Config, shrunk: Shrunk) -> str:
    """Return a script's file name: the shrunk case's, so that groups which shrink to one case
    share one script (`repro-numpy-cpu-float64-identity-1x1-b1-s0-W1.py`)."""
    hvp = "" if config.order == 1 else "-hvp"
    return f"repro-{config.id}-{shrunk.spec.id}{hvp}-{shrunk.shrunk_tensor}.py"


def info(path: Path, shrunk: Shrunk, base: Path | None = None) -> dict:
    """Return what the results and the report keep of an export; the script's path relative
    to `base` (the run's working folder)."""
    try:
        script = Path(os.path.relpath(path, base)).as_posix() if base else str(path)
    except ValueError:  # another drive
        script = str(path)
    return {"script": script, "original": size_text(shrunk.original),
            "shrunk": size_text(shrunk.spec), "shrunk_id": shrunk.spec.id,
            "tensor": shrunk.shrunk_tensor, "reads": shrunk.reads, "complete": shrunk.complete,
            "seconds": round(shrunk.seconds, 3), "cases": shrunk.evaluations}


def unusable(folder: Path) -> str | None:
    """Return why scripts cannot be written into the folder (made if missing), None if they
    can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "is a file, not a folder"
    except (OSError, ValueError) as exc:
        return f"cannot be made ({getattr(exc, 'strerror', None) or exc})"
    if not folder.is_dir():
        return "is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "cannot be written into (permission denied)"
    return None


PROPERTY = "conformance_repro"
"""The user property that carries an export from a worker to the controller's summary."""


class Exporter:
    """Exports a script per failing group into a folder (`--repro DIR`), once per shrunk case,
    and says at the end of the run where they went. Registered as a plugin under --repro."""

    def __init__(self, folder: str | Path, budget: float = BUDGET, base: Path | None = None,
                 specs=()):
        self.folder, self.budget, self.base = Path(folder), budget, base
        self.specs = tuple(specs)
        self.done: dict[str, dict | None] = {}
        self.written: dict[str, str] = {}  # script name → the item whose shrinking wrote it
        self.interrupted = False
        self.reported: dict[str, dict] = {}  # group → export, as the controller heard it

    def export(self, item, adapter) -> dict | None:
        """Export the item's group once; return what was exported (None: nothing, or why)."""
        if item.group not in self.done:
            self.done[item.group] = self._export(item, adapter)
        return self.done[item.group]

    def _export(self, item, adapter) -> dict:
        if self.interrupted:
            return {"error": "not shrunk: the run was interrupted (Ctrl-C)"}
        try:
            shrunk = shrunk_failure(adapter, item.config, item.spec, item.tensor, item.id,
                                    self.budget)
            path = (self.folder / script_name(item.config, shrunk)).resolve()
            if path.name in self.written:
                return {**info(path, shrunk, self.base), "same_as": self.written[path.name]}
            text = render.render(data(adapter, item.config, shrunk, item.id, path.parent,
                                      found_with(adapter, item.config), self.specs))
        except NotExported as exc:
            return {"error": str(exc)}
        except KeyboardInterrupt:  # the item failed already: keep its failure, stop the run
            self.interrupted = True
            return {"error": "not exported: interrupted (Ctrl-C) while shrinking"}
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the item's failure stays whole
            return {"error": f"not exported: {type(exc).__name__}: {first_line(exc)}"}
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            return {"error": f"cannot write {path}: {exc.strerror or exc}"}
        self.written[path.name] = item.id
        return info(path, shrunk, self.base)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """Hand the group's export on with the report; stop the run after an item whose
        shrinking a Ctrl-C cut."""
        report = yield
        export = (item.stash.get(record.COMPARED, None) or {}).get("repro")
        ci = record.conformance_param(item)
        if call.when == "call" and isinstance(export, dict) and ci is not None:
            report.user_properties.append((PROPERTY, {"group": ci.group, "export": export}))
        if self.interrupted:
            item.session.shouldstop = "interrupted (Ctrl-C) while shrinking a failure"
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == PROPERTY and isinstance(value, dict):
                self.reported.setdefault(str(value.get("group")), value.get("export") or {})

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """Say in one line where the scripts went."""
        line = self.summary()
        if line:
            terminalreporter.write_line(line)

    def summary(self) -> str | None:
        """Return `conformance repro: 2 scripts for 3 failing groups (…) in DIR`; with no
        failing group, that none was written there (the folder asked for is named either way)."""
        exports = list(self.reported.values())
        if not exports:
            return ("conformance repro: no failing group, no script written to "
                    f"{self.folder.resolve()}")
        scripts = {e["script"] for e in exports if "script" in e}
        errors = [e["error"] for e in exports if "error" in e]
        n, k = len(exports), len(scripts)
        same = n - len(errors) - k
        line = (f"conformance repro: {k} script{'s' if k != 1 else ''} for {n} failing "
                f"group{'s' if n != 1 else ''}")
        if same:
            line += f" ({same} shrank to the case of another)"
        line += f" in {self.folder.resolve()}"
        if errors:
            line += f"; {len(errors)} not exported: {errors[0]}"
        return line


def from_results(item: dict, options: dict | None = None) -> tuple[object, Config, object]:
    """Return (adapter, config, spec) of one results item, loading the adapter it names; raise
    NotExported when the item's fields are not what the suite writes."""
    config, spec = _checked(item)
    return _load(config.adapter, item.get("adapter_spec"), options or {}), config, spec


_NAME = re.compile(r"[a-z0-9_.]+")  # as adapters' names are checked
_DEVICE = re.compile(r"[a-z]+(:[0-9]+)?")
_SETTING = re.compile(r"[A-Za-z0-9_]+")


def _checked(item: dict) -> tuple[Config, Spec]:
    """Return an item's config and spec, checked as the suite writes them (results are data
    from anywhere: nothing unchecked reaches the adapter or a script)."""
    c, s, tensor = item.get("config"), item.get("spec"), item.get("tensor")
    what = f"{item.get('id')!r}"
    try:
        config = Config(c["adapter"], c["device"], c["dtype"], c.get("precision", "default"),
                        c.get("order", 1))
        sigmas = tuple(s.get("sigmas") or (s["sigma1"], s["sigma2"]))
        spec = Spec(tuple(s["sizes"]), s["batch"], s["seed"], sigmas, s.get("scale", 0),
                    s.get("saturate", 0))
    except (KeyError, TypeError, AttributeError) as exc:
        raise NotExported(f"{what}: its config or case is incomplete ({exc!r} missing)") from None
    problems = [
        (isinstance(config.adapter, str) and _NAME.fullmatch(config.adapter), "adapter"),
        (config.dtype in ("float32", "float64"), "dtype"),
        (isinstance(config.device, str) and _DEVICE.fullmatch(config.device), "device"),
        (isinstance(config.precision, str) and _SETTING.fullmatch(config.precision), "precision"),
        (config.order in (1, 2) and not isinstance(config.order, bool), "order"),
        (len(spec.sizes) >= 2 and all(_count(n) and n > 0 for n in spec.sizes), "sizes"),
        (_count(spec.batch) and spec.batch > 0, "batch"),
        (_count(spec.seed), "seed"), (_count(spec.scale), "scale"),
        (_count(spec.saturate), "saturate"),
        (len(sigmas) == len(spec.sizes) - 1 and all(isinstance(a, str) and a in CATALOGUE
                                                   for a in sigmas), "sigmas"),
        (isinstance(tensor, str) and render.TENSOR.fullmatch(tensor) is not None and
         int(tensor[1:]) < len(spec.sizes), "tensor")]
    bad = [name for ok, name in problems if not ok]
    if bad:
        raise NotExported(f"{what}: not a conformance item of this suite (its {bad[0]} is not "
                          "one the suite writes)")
    return config, spec


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's text, at most 200 characters."""
    try:
        lines = str(exc).strip().splitlines()
    except Exception:  # noqa: BLE001 - a __str__ that raises
        lines = []
    return (lines[0] if lines else "")[:200]


def _count(n) -> bool:
    """Say whether a value is a whole number ≥ 0 (not a bool)."""
    return isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31


def _load(name: str, recorded: str | None, options: dict):
    """Load the adapter by its recorded import path, a built-in name, or the run's --adapter."""
    candidates = [recorded] if recorded else []
    candidates += [s for specs in adapters.BUILTIN.values() for s in specs]
    given = options.get("adapter")
    candidates += [s for s in given if isinstance(s, str)] if isinstance(given, list) else []
    for spec in candidates:
        try:
            adapter = adapters.load(spec)
        except adapters.AdapterError:
            continue
        if adapter.name == name:
            return adapter
    raise NotExported(f"adapter {name!r}: cannot be loaded here (import path "
                      f"{recorded or 'not recorded'}); run from the suite's checkout")
