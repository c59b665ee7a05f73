"""The README's quick start and what CI runs stay the same commands."""

from __future__ import annotations

import re
from pathlib import Path

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
