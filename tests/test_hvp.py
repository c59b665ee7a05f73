"""Second order: every built-in adapter's H·v passes, and each planted second-order bug (first
order exact) fails its H·v items only, named by the nearest known mistake."""

from __future__ import annotations

import contextlib
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import adapters
from tests.fixtures import planted

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")
CURVED = ("--cases", "small,seed")  # every layer's σ curved (tanh, softplus, sigmoid): σ″ ≠ 0
EXPECTED = {  # planted bug → what its failure names, and the tensors whose H·v it breaks
    "TorchSigma2Missing": ("σ″ missing in layer 1", {"W1", "b1"}),
    "TorchSigma2Doubled": ("σ″ doubled in layer 2", None),
    "TorchDeltaDetached": ("δ2 detached", None),
    "TorchGradientDetached": ("gradient of layer 1 detached", None),
    "TorchNoCreateGraph": ("hvp zero", None),
    "JaxSigma2Missing": ("σ″ missing in layer 1", {"W1", "b1"}),
    "JaxSigma2Doubled": ("σ″ doubled in layer 2", None),
    "JaxDeltaDetached": ("δ2 detached", None),
}


@pytest.fixture(scope="module", autouse=True)
def _frameworks_loaded_once():
    """Import torch and JAX before pytester snapshots sys.modules: pytester drops what a test
    imported, the next test imports it again, and jaxlib aborts when its native library is
    initialised twice (absl: SetTimeZone() has already been called)."""
    for name in ("torch", "jax"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict, dict]:
    """Run the conformance suite in a process of its own (JAX's native libraries cannot be
    imported twice, as pytester's in-process runs would); return the result, each item's
    outcome and each failure's message, read from its results."""
    result = pytester.runpytest_subprocess(CONFORMANCE, "-p", "no:randomly", "-n", "0",
                                           "--results", "hvp.json", *args, timeout=600)
    items = json.loads((pytester.path / "hvp.json").read_text())["items"]
    outcomes = {i["id"]: i["outcome"] for i in items}
    messages = {i["id"]: i["message"] for i in items if i["outcome"] == "failed"}
    return result, outcomes, messages


def test_every_builtin_adapter_offers_second_order():
    """Each built-in idiom has hvp (tinygrad and Keras too: both differentiate twice)."""
    for specs in adapters.BUILTIN.values():
        for spec in specs:
            module, _, name = spec.partition(":")
            cls = getattr(__import__(module, fromlist=[name]), name)
            assert adapters.has_hvp(cls()), spec


def test_builtin_hvps_pass(pytester):
    """Every built-in framework's H·v passes at both dtypes on curved and deep cases, and its
    first-order items still run beside it (the default --order)."""
    frameworks = [f for f in adapters.BUILTIN if _importable(f)]
    result, outcomes, messages = run(pytester, "--frameworks", ",".join(frameworks), "--cases",
                                     "small,chain,deep")
    assert not messages, next(iter(messages.values()))
    hvp = [k for k in outcomes if "-hvp-" in k]
    assert hvp and len(hvp) * 2 == len(outcomes)  # first and second order, item for item
    assert set(outcomes.values()) == {"passed"}


def _importable(framework: str) -> bool:
    import importlib.util

    return importlib.util.find_spec({"equinox": "equinox", "flax": "flax"}.get(
        framework, framework)) is not None


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_planted_second_order_bug_is_caught_and_named(pytester, bug):
    """The bug's gradients pass (first order exact); its H·v fails, on the tensors it breaks,
    with the known mistake it is named as; the message names H·v and reruns the item."""
    pytest.importorskip("torch" if bug.startswith("Torch") else "jax")
    label, tensors = EXPECTED[bug]
    _, outcomes, messages = run(pytester, "--adapter", f"tests.fixtures.planted:{bug}", *CURVED)
    first = {k: v for k, v in outcomes.items() if "-hvp-" not in k}
    assert first and set(first.values()) == {"passed"}, messages
    failing = {k for k, v in outcomes.items() if v == "failed"}
    assert failing and all("-hvp-" in k for k in failing)
    if tensors is not None:
        assert failing == {k for k in outcomes if "-hvp-" in k and k.rsplit("-", 1)[1] in tensors}
    for k in failing:
        reading = next(ln for ln in messages[k].splitlines()
                       if ln.startswith("errors consistent with: "))
        assert label in reading and (label != "wrong gradient: " or "known bug" not in reading)
        assert f" H·v {k.rsplit('-', 1)[1]}: " in messages[k].splitlines()[0]
        assert f"test_gradient[{k}]" in messages[k]


def test_order_selects_the_items(pytester):
    """--order 1 runs gradients only, --order 2 H·v only; anything else is a usage error."""
    pytest.importorskip("torch")
    ids = {}
    for order in ("1", "2"):
        result = pytester.runpytest_subprocess(CONFORMANCE, "--frameworks", "torch", "--cases",
                                              "chain", "--order", order, "--collect-only", "-q")
        ids[order] = [ln for ln in result.outlines if "test_gradient[" in ln]
    assert ids["1"] and not any("-hvp-" in i for i in ids["1"])
    assert ids["2"] and all("-hvp-" in i for i in ids["2"]) and len(ids["1"]) == len(ids["2"])
    assert any(i.endswith("-s0-hvp-W1]") for i in ids["2"])
    bad = pytester.runpytest_subprocess(CONFORMANCE, "--frameworks", "torch", "--order", "3")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--order '3': expected 1, 2 or 1,2*"])


def test_an_adapter_without_hvp_runs_first_order_or_skips_when_asked(pytester):
    """The NumPy example has no hvp: by default it runs first order only; asked for order 2,
    its items are skipped, saying why."""
    _, outcomes, _ = run(pytester, "--adapter", "adapters.example:adapter", "--cases", "chain")
    assert outcomes and not any("-hvp-" in k for k in outcomes)
    result, outcomes, _ = run(pytester, "--adapter", "adapters.example:adapter", "--cases",
                              "chain", "--order", "2", "-rs")
    assert outcomes and set(outcomes.values()) == {"skipped"}
    result.stdout.fnmatch_lines(["*adapter 'numpy' has no hvp(case, v, dtype, device)*"])


HOSTILE = '''
import numpy as np
from tests.fixtures.planted import TorchSigma2Missing


class Writes(TorchSigma2Missing):
    name = "writes_v"
    layer = 0  # no layer planted: the H·v is right, but the call writes into v

    def hvp(self, case, v, dtype, device):
        import torch

        out = super().hvp(case, v, dtype, device)
        torch.from_numpy(v["W1"]).add_(1.0)  # past the read-only flag (torch only warns)
        return out


class OwnProcess(TorchSigma2Missing):
    name = "own_hvp"
    layer, process = 0, "own"


class Flaky(TorchSigma2Missing):
    name = "flaky_hvp"
    layer, calls = 0, 0

    def hvp(self, case, v, dtype, device):
        out = super().hvp(case, v, dtype, device)
        Flaky.calls += 1
        out["W2"][0, 0] += Flaky.calls * 1e-3 * (abs(out["W2"][0, 0]) + 1)
        return out
'''


def test_hvp_calls_get_the_first_order_checks(pytester):
    """A write into the direction fails the group, and calls that differ beyond the bound fail
    as nondeterministic, as for gradients."""
    pytest.importorskip("torch")
    pytester.makepyfile(hostile_hvp=HOSTILE)
    pytester.syspathinsert()
    _, outcomes, messages = run(pytester, "--adapter", "hostile_hvp:Writes", "--cases", "chain",
                                "--dtypes", "float64")
    hvp = {k: v for k, v in outcomes.items() if "-hvp-" in k}
    assert set(hvp.values()) == {"failed"}
    assert "wrote into the case: the direction's W1 changed (1 of 1 entries)" in next(
        iter(messages.values()))
    _, outcomes, messages = run(pytester, "--adapter", "hostile_hvp:Flaky", "--cases", "small",
                                "--dtypes", "float64")
    w2 = next(k for k in outcomes if k.endswith("-hvp-W2"))
    assert outcomes[w2] == "failed" and " H·v W2 nondeterministic: " in messages[w2]


def test_hvp_in_an_own_process(pytester):
    """An adapter that asks for a process of its own gets its hvp calls there too."""
    pytest.importorskip("torch")
    pytester.makepyfile(hostile_hvp=HOSTILE)
    _, outcomes, _ = run(pytester, "--adapter", "hostile_hvp:OwnProcess", "--cases", "chain")
    assert len([k for k in outcomes if "-hvp-" in k]) == 8
    assert set(outcomes.values()) == {"passed"}


def test_results_record_the_order_and_the_report_shows_it(pytester):
    """Each item's results carry its order (2 for H·v, in config and at the top); the report
    gives H·v configs rows of their own."""
    pytest.importorskip("torch")
    _, outcomes, _ = run(pytester, "--frameworks", "torch", "--cases", "chain", "--dtypes",
                         "float64", "--report", "r.html")
    items = json.loads((pytester.path / "hvp.json").read_text())["items"]
    orders = {i["id"]: (i["order"], i["config"]["order"]) for i in items}
    assert {o for k, o in orders.items() if "-hvp-" in k} == {(2, 2)}
    assert {o for k, o in orders.items() if "-hvp-" not in k} == {(1, 1)}
    assert "torch-cpu-float64 H·v" in (pytester.path / "r.html").read_text()


def test_planted_bugs_leave_first_order_exact_in_both_frameworks():
    """Each activation bug changes H·v only: the same custom σ's gradients equal the correct
    one's bit for bit (the planted backward computes g·σ′ in the same operations)."""
    import numpy as np

    from tests.engine.conformance import case_for
    from tests.engine.matrix import Spec

    case = case_for(Spec((5, 4, 3), 3, 0, ("tanh", "softplus")))
    for family, right in ((planted.TORCH_SECOND, planted._TorchSecond),
                          (planted.JAX_SECOND, planted._JaxSecond)):
        pytest.importorskip("torch" if right is planted._TorchSecond else "jax")
        want = right().gradients(case, "float64", "cpu")
        for cls in family.values():
            got = cls().gradients(case, "float64", "cpu")
            assert all(np.array_equal(got[k], want[k]) for k in want), cls.name


def test_entry_items_of_a_second_order_bug(pytester):
    """--entries makes each entry of H·v an item (`…-hvp-W1[0,0]`); the planted σ″ bug fails
    exactly the entries of the tensors it breaks."""
    pytest.importorskip("torch")
    _, outcomes, _ = run(pytester, "--adapter", "tests.fixtures.planted:TorchSigma2Missing",
                         "--cases", "chain", "--dtypes", "float64", "--entries")
    failing = {k for k, v in outcomes.items() if v == "failed"}
    assert failing == {f"planted_torch_sigma2_missing-cpu-float64-sigmoid-sigmoid-1x1x1-b1-s0-"
                       f"hvp-{t}" for t in ("W1[0,0]", "b1[0]")}
    assert sum(v == "passed" for v in outcomes.values()) == 4 + 2  # first order, hvp W2, b2


def test_study_rows_name_the_order():
    """The study page keeps H·v configs apart from first-order ones, labelled `… H·v`."""
    from reports import study_page

    items = [{"config": {"adapter": "torch", "device": "cpu", "dtype": "float64",
                         "precision": "default", "order": order}, "framework": "torch"}
             for order in (1, 2)]
    keys = [study_page.config_key(i, {}) for i in items]
    assert keys[0] != keys[1]
    assert [study_page._label(k) for k in keys] == ["torch-cpu-float64", "torch-cpu-float64 H·v"]


def test_a_second_order_failure_is_handed_over(pytester):
    """--repro shrinks an H·v failure and writes a script that calls the adapter's hvp on the
    shrunk case and the embedded direction: it exits 1 while the bug is there, naming the
    known mistake; `python -m reports repro` exports the same item from the results."""
    pytest.importorskip("torch")
    _, outcomes, _ = run(pytester, "--adapter", "tests.fixtures.planted:TorchSigma2Missing",
                         "--cases", "small", "--dtypes", "float64", "--repro", "out")
    scripts = sorted((pytester.path / "out").glob("repro-*-hvp-*.py"))
    item = next(k for k, v in outcomes.items() if v == "failed")
    exported = pytester.path / "again.py"
    done = subprocess.run([sys.executable, "-m", "reports", "repro",
                           str(pytester.path / "hvp.json"), item, "-o", str(exported)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for script in (*scripts, exported):
        ran = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert "the Hessian-vector product H·v along the embedded direction V is wrong" in (
            ran.stdout) and "σ″ missing in layer 1" in ran.stdout
    assert len(scripts) == 1 and "V = " in scripts[0].read_text()


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_the_frameworks_own_scripts_compute_hvp(tmp_path, framework):
    """The torch and JAX script templates compute H·v as their users write it (double backward;
    jvp of grad): on the reference's own entries a correct framework reads `fixed` (exit 0),
    and an entry moved past its bound reproduces (exit 1)."""
    pytest.importorskip(framework)
    from reports import repro as render
    from tests.engine import second
    from tests.engine.conformance import case_for
    from tests.engine.matrix import Spec

    spec = Spec((5, 4, 3), 3, 0, ("tanh", "softplus"))
    case, v = case_for(spec), second.direction_for(spec)
    ref, bound = second.hvp_for(spec)["W1"], second.hvp_bounds_for(spec, "float64")["W1"]
    entries = [{"index": (j, k), "ref": float(ref[j, k]), "bound": float(bound[j, k]),
                "sim": None} for j, k in ((0, 0), (3, 4))]
    d = {"framework": framework, "item": "x", "tensor": "W1", "shape": ref.shape,
         "direction": [(v[f"W{i}"], v[f"b{i}"]) for i in (1, 2)], "title": "t", "search": "s",
         "diagnosis": "d", "found_with": "f", "sizes": spec.sizes, "batch": spec.batch,
         "seed": 0, "sigmas": spec.sigmas, "layers": [(la.W, la.b) for la in case.layers],
         "x": case.x, "labels": [int(i) for i in case.y.argmax(axis=1)], "dtype": "float64",
         "device": "cpu", "precision": "default", "entries": entries, "sim_label": None}
    for moved, status in ((0.0, 0), (1.0, 1)):
        d["entries"][1] = {**entries[1], "ref": entries[1]["ref"] + moved}
        script = tmp_path / f"repro-{framework}-{status}.py"
        script.write_text(render.render(d))
        ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             timeout=300)
        assert ran.returncode == status, ran.stdout + ran.stderr


def test_a_correct_hvp_with_exact_zero_entries_opens_no_fit():
    """On the saturated relu-sigmoid case (seed 14) units relu has switched off give exact
    zeros with a bound of 0; those err by nothing and must not open the per-product fits,
    which then read a correct torch H·v as tf32 (every entry inside 0.02 of its bound)."""
    import numpy as np

    from reference.compare import _reaches
    from tests.engine import second
    from tests.engine.matrix import Spec

    spec = Spec((16, 8, 4), 4, 14, ("relu", "sigmoid"), 0, 25)
    got = adapters.load("adapters.torch:TorchAutograd").hvp(
        second._case(spec), second.direction_for(spec), "float32", "cpu")
    got = {k: np.asarray(t, dtype=np.float64) for k, t in got.items()}
    assert str(second.diagnose_hvp(spec, got, "float32")) == "float32"
    ref, bound = second.hvp_for(spec), second.hvp_bounds_for(spec, "float32")
    assert (bound["W1"] == 0).any() and not _reaches(ref, ref, bound, 0.25)
