"""The README stays true: its quick start is what CI runs, its sample failure what is printed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.engine.conformance import _python
from tests.test_planted import run_suite

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    """Return the commands of the README's quick start, in order."""
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_quick_start_has_exactly_two_commands():
    """One runs the conformance suite, one runs all the tests."""
    run_suite, run_tests = quick_start()
    assert "tests/test_conformance.py" in run_suite and "--require-frameworks" in run_suite
    assert run_tests.endswith("--require-frameworks --all-idioms")


def test_ci_runs_the_readme_test_command_verbatim():
    """.ci/run's last command is the README's second command, character for character."""
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip()]
    assert ci[-1] == quick_start()[1]


def test_readme_sample_failure_is_what_the_suite_prints(pytester):
    """The README's sample failure matches, line by line with numbers masked, a real failure
    of the planted off-by-one-entry adapter on the seed case."""
    block = re.search(r"A failure reads like this.*?```\n(.*?)```", (ROOT / "README.md")
                      .read_text(), re.S).group(1)
    _, messages = run_suite(pytester, "--adapter", "tests.fixtures.planted:OffByOneEntry",
                            "--cases", "seed", "--dtypes", "float64",
                            "-k", "sigmoid-sigmoid and W1")
    (printed,) = messages.values()
    printed = printed.strip().replace(_python_in_reproduce(), "python -m pytest", 1)
    sample, real = block.strip().splitlines(), printed.splitlines()
    assert len(sample) == len(real), (sample, real)
    for want, got in zip(sample, real, strict=True):
        assert re.fullmatch(_masked_pattern(want), _mask(got)), (want, got)


NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _mask(line: str) -> str:
    return NUMBER.sub("#", line)


def _masked_pattern(line: str) -> str:
    """Return a regex for a README line: numbers masked, `…` standing for any text."""
    return ".*".join(re.escape(_mask(piece)) for piece in line.split("…"))


def _python_in_reproduce() -> str:
    return f"{_python()} -m pytest"


def test_the_lock_installs_tinygrads_c_compiler():
    """"Python 3.11 and pip are all it needs": tinygrad's CPU device compiles every kernel, and
    where no clang is on PATH the compiler is the ziglang wheel, which the lock pins and the
    tinygrad extra names (tests/test_frameworks.py runs tinygrad on it without clang)."""
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    assert any(re.fullmatch(r"ziglang==[\d.]+", line) for line in lock)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(dep.startswith("ziglang") for dep in extras["tinygrad"]), extras["tinygrad"]


def test_every_cited_design_document_is_in_the_repository():
    """The code, the workflow and the benchmarks cite DESIGN.md for facts (the H200
    measurements, the id format): it is a file of the repository, at its root."""
    sources = [f for folder in ("reference", "adapters", "tests", "reports", ".github", ".ci")
               for f in (ROOT / folder).rglob("*") if f.is_file() and f.suffix != ".pyc"]
    citing = [f for f in sources if "DESIGN.md" in f.read_text(errors="replace")]
    assert citing, "nothing cites DESIGN.md: drop this test"
    assert (ROOT / "DESIGN.md").is_file(), [str(f.relative_to(ROOT)) for f in citing]
    design = (ROOT / "DESIGN.md").read_text()
    assert "Frameworks' GPU activations showed nothing worse than their CPU ones" in design
    assert "`torch-cpu-float64-sigmoid-sigmoid-784x16x10-b1-s0-W1`" in design
