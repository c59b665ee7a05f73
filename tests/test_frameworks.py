"""The frameworks beyond torch and jax: provenance per distribution, tinygrad without clang,
skips when not installed, and the Keras loss deviation the keras adapter steers clear of."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adapters
from adapters import DeviceUnavailable
from reference.case import make_case
from reports import provenance, record
from tests.test_plugin import run

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
NEW = ("tensorflow", "keras", "autograd", "tinygrad", "flax", "equinox")
MODULES = {"tensorflow": "tensorflow", "keras": "keras", "autograd": "autograd",
           "tinygrad": "tinygrad", "flax": "flax", "equinox": "equinox"}


def installed(*modules: str) -> None:
    """Skip unless each module can be imported, without importing it."""
    for m in modules:
        if importlib.util.find_spec(m) is None:
            pytest.skip(f"{m} is not installed")


class KerasLike:
    name = "keras_like"
    framework = "keras"
    distributions = ("keras", "tensorflow")


@pytest.fixture
def only_tensorflow_cpu(monkeypatch):
    """Pretend that tensorflow-cpu and keras are installed, and tensorflow is not."""
    fake = {"tensorflow-cpu": "2.21.0", "keras": "3.15.1"}
    monkeypatch.setattr(record, "version_of", fake.get)


def test_a_distribution_is_recorded_under_its_installed_name(only_tensorflow_cpu):
    """tensorflow, provided by tensorflow-cpu, is recorded as tensorflow-cpu with its version."""
    assert record.installed("tensorflow") == ("tensorflow-cpu", "2.21.0")
    assert record.distributions(KerasLike()) == {"keras": "3.15.1", "tensorflow-cpu": "2.21.0"}


def test_every_declared_distribution_reaches_the_results(only_tensorflow_cpu):
    """An item records its framework's version and each distribution; the run's versions too."""
    item = make_item()
    p = record.params(item, KerasLike())
    assert (p["framework"], p["framework_version"]) == ("keras", "3.15.1")
    assert p["distributions"] == {"keras": "3.15.1", "tensorflow-cpu": "2.21.0"}
    versions = provenance.versions({"keras"}, {"keras", "tensorflow"})
    assert versions["tensorflow-cpu"] == "2.21.0" and versions["keras"] == "3.15.1"
    assert "tensorflow" not in versions


def test_a_missing_distribution_is_recorded_as_none(monkeypatch):
    monkeypatch.setattr(record, "version_of", {}.get)
    assert record.distributions(KerasLike()) == {"keras": None, "tensorflow": None}


class TensorFlowCpu:
    name = "tf_cpu_spelling"
    framework = "tensorflow_cpu"  # the installed distribution, in another spelling


def test_a_variant_distribution_is_recorded_as_its_framework(only_tensorflow_cpu):
    """framework = "tensorflow_cpu" (or tensorflow-cpu) is the tensorflow framework: recorded
    under that name, with its real distribution and version."""
    p = record.params(make_item(), TensorFlowCpu())
    assert (p["framework"], p["framework_version"]) == ("tensorflow", "2.21.0")
    assert p["distributions"] == {"tensorflow-cpu": "2.21.0"}
    assert record.framework_of(TensorFlowCpu()) == record.canonical("TensorFlow-CPU")


def test_a_distribution_is_recorded_under_its_own_spelling():
    """A declared name in another spelling is recorded as the distribution spells itself."""
    assert record.installed("absl_py") == ("absl-py", record.version_of("absl-py"))


IMPORT_NAMED = """
class Adapter:
    name = "mine"
    framework = {framework!r}
    distributions = {distributions!r}

    def gradients(self, case, dtype, device):
        raise AssertionError("never called")
"""


@pytest.mark.parametrize(("framework", "distributions", "said"), [
    ("paddle", ("paddle",), "framework 'paddle' is an import name, not a distribution's; "
                            "write the distribution that installs it: 'paddlepaddle'"),
    ("dm-haiku", ("dm-haiku", "haiku"), "distributions entry 'haiku' is an import name, not "
                                         "a distribution's; write the distribution that "
                                         "installs it: 'dm-haiku'")])
def test_an_import_name_is_refused_naming_the_distribution(pytester, monkeypatch, framework,
                                                           distributions, said):
    """framework = "paddle" or "haiku" (what `import` takes) would record no version and a
    header reading "(not installed)": the run stops in one line naming the distribution."""
    monkeypatch.setattr(record, "_import_names",
                        lambda: {"paddle": ["paddlepaddle"], "haiku": ["dm-haiku"]})
    pytester.makepyfile(mine=IMPORT_NAMED.format(framework=framework,
                                                 distributions=distributions))
    result = run(pytester, "--adapter", "mine.py:Adapter", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: adapter 'mine': {said}"])


def make_item():
    from tests.engine.matrix import Config, Item, Spec

    return Item(Config("keras_like", "cpu", "float64"), Spec((1, 1, 1), 1, 0, "relu", "relu"), "W1")


def test_every_builtin_declares_its_distributions():
    """Each new adapter names its framework first among the distributions it runs on."""
    for framework in NEW:
        for a in adapters.builtin([framework], slow=True):
            assert a.framework == framework and a.distributions[0] == framework, a.name


def test_header_names_each_distribution(pytester):
    """The header: `keras 3.x (tensorflow-cpu 2.x)`, under the installed names."""
    installed("keras", "flax")  # not imported: pytester would drop TensorFlow's modules, and
    # TensorFlow aborts the process when it is imported a second time
    result = run(pytester, "--frameworks", "keras,flax", "--collect-only", "-q", "-v")
    tf_name, tf_version = record.installed("tensorflow")
    result.stdout.fnmatch_lines([f"frameworks: flax * (jax *, jaxlib *), "
                                 f"keras * ({tf_name} {tf_version})"])


NOT_INSTALLED = (
    "import sys\n"
    "for m in {modules}: sys.modules[m] = None  # any import of them now fails\n"
    "import pytest\n"
    "sys.exit(pytest.main(['tests/test_conformance.py', '-q', '-rs', '-p', 'no:xdist',\n"
    "                      '--frameworks', {frameworks!r}, '--cases', 'chain',\n"
    "                      '--dtypes', 'float64', *sys.argv[1:]]))\n"
)


@pytest.mark.parametrize("require", [False, True], ids=["local", "require"])
def test_not_installed_is_a_skip_with_its_reason(require):
    """With none of the new frameworks importable, their items are skipped (failed under
    --require-frameworks), each naming the framework that cannot be imported."""
    code = NOT_INSTALLED.format(modules=list(MODULES.values()), frameworks=",".join(NEW))
    args = ["--require-frameworks"] if require else []
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == (1 if require else 0), done.stdout[-2000:]
    counted = "48 failed" if require else "48 skipped"  # 6 frameworks × 4 tensors × 2 orders
    assert counted in done.stdout.splitlines()[-1], done.stdout[-2000:]
    for framework in NEW:
        assert f"{framework} cannot be imported" in done.stdout, framework


def test_tinygrad_without_clang_or_ziglang_is_device_unavailable(monkeypatch, tmp_path):
    """No clang on PATH and no ziglang wheel: the tinygrad adapter says so as
    DeviceUnavailable, naming both, before tinygrad fails with "no usable devices"."""
    pytest.importorskip("tinygrad")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setitem(sys.modules, "ziglang", None)  # find_spec now finds nothing
    adapter = adapters.load("adapters.tinygrad:Tinygrad")
    with pytest.raises(DeviceUnavailable, match="compiles every kernel with 'clang'.*not on "
                       "PATH, and the ziglang wheel .* not installed"):
        adapter.gradients(make_case((1, 1, 1), 1, 0, "relu", "relu"), "float32", "cpu")


def test_tinygrad_without_clang_or_ziglang_fails_under_require(pytester, monkeypatch, tmp_path):
    installed("tinygrad")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setitem(sys.modules, "ziglang", None)
    args = ("--frameworks", "tinygrad", "--cases", "chain", "--dtypes", "float32", "-rs")
    run(pytester, *args).stdout.fnmatch_lines(["*SKIPPED*tinygrad*clang*not on PATH*ziglang*"])
    failed = run(pytester, *args, "--require-frameworks")
    failed.assert_outcomes(failed=4 * 2)  # gradients and H·v
    failed.stdout.fnmatch_lines(["*tinygrad: its CPU device compiles every kernel with 'clang'*"])


WITHOUT_CLANG = (
    "import os, sys\n"
    "from adapters.tinygrad import Tinygrad\n"
    "from reference.case import make_case\n"
    "from reference.network import gradients\n"
    "case = make_case((5, 4, 3), 3, 0, 'tanh', 'sigmoid')\n"
    "got, ref = Tinygrad().gradients(case, 'float64', 'cpu'), gradients(case)\n"
    "print(os.environ['CC'], max(abs(got[k] - ref[k]).max() for k in ref))\n"
)


def test_tinygrad_runs_on_the_ziglang_wheel_without_clang(tmp_path):
    """A machine with Python and pip alone (no clang on PATH, no CC) runs tinygrad's CPU device:
    its kernels compile with the ziglang wheel's `zig cc`, and the gradients are tinygrad's,
    float64-close to the reference's."""
    installed("tinygrad", "ziglang")
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    env.update(PATH=str(tmp_path), CACHEDB=str(tmp_path / "tinygrad.db"))  # nothing cached
    done = subprocess.run([sys.executable, "-c", WITHOUT_CLANG], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    cc, diff = done.stdout.split()
    assert Path(cc) == ROOT / "adapters" / "zigcc" and float(diff) < 1e-12, done.stdout


def test_keras_mean_squared_error_averages_and_computes_in_float32():
    """keras.losses.MeanSquaredError, in a float64 run: it averages (over outputs, and over
    the batch by default) and returns float32; reduction="sum" still averages over outputs.
    The keras adapter writes the summed cost (19) instead."""
    pytest.importorskip("keras")
    from adapters.keras import keras_module

    keras = keras_module()
    y = np.eye(3)[[0, 2]]
    pred = y + np.array([[1e-9, 2.0, 0.0], [0.0, 1.0, 1e-9]])  # float64 values
    summed = float(np.sum((pred - y) ** 2))  # (19): 5 + 2e-18
    for reduction, divisor in (("sum_over_batch_size", pred.size), ("sum", pred.shape[1])):
        loss = keras.losses.MeanSquaredError(reduction=reduction)(y, pred)
        assert loss.dtype == "float32", reduction  # a float64 run, computed in float32
        mean = summed / divisor  # averaged, not summed: rounded to float32
        assert abs(float(loss) - mean) <= 2**-23 * mean and float(loss) != mean, reduction
    model_dtype = keras.losses.MeanSquaredError(dtype="float64")(y, pred).dtype
    assert model_dtype == "float64"  # a Loss asked for float64 keeps it, and still averages


def test_jax_based_adapters_leave_x64_as_they_found_it():
    """Flax and Equinox get float64 from a scoped jax.enable_x64: the global flag is
    unchanged after a float64 call, in a fresh process where nothing else touched it."""
    code = ("import jax\n"
            "from reference.case import make_case\n"
            "from adapters.flax import FlaxNNX\n"
            "from adapters.equinox import Equinox\n"
            "c = make_case((3, 2, 2), 2, 0, 'tanh', 'sigmoid')\n"
            "for a in (FlaxNNX(), Equinox()):\n"
            "    g = a.gradients(c, 'float64', 'cpu')\n"
            "    assert g['W1'].dtype.name == 'float64'\n"
            "print(jax.config.jax_enable_x64)\n")
    pytest.importorskip("flax")
    pytest.importorskip("equinox")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr[-2000:]


@pytest.mark.parametrize("framework", ["flax", "equinox"])
def test_jax_based_adapters_compile_once_per_shape(framework):
    """A second call of the same shape and dtype compiles nothing (jax.log_compiles)."""
    jax = pytest.importorskip("jax")
    pytest.importorskip(framework)
    (adapter,) = adapters.builtin([framework])
    case = make_case((4, 3, 2), 2, 0, "relu", "tanh")
    adapter.gradients(case, "float32", "cpu")
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())
    log = logging.getLogger("jax._src.dispatch")
    log.addHandler(handler)
    try:
        with jax.log_compiles(True):
            adapter.gradients(make_case((4, 3, 2), 2, 1, "relu", "tanh"), "float32", "cpu")
    finally:
        log.removeHandler(handler)
    assert not [m for m in seen if "Compiling" in m], seen
