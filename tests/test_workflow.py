"""The CI workflow's merge job installs what `reports merge` and `reports html` import; its
self-tests job runs the lowest pytest and pytest-xdist that pyproject.toml accepts."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "conformance.yml"
OPTIONAL = {"typing-extensions"}  # msgspec._utils imports it where it is installed, else not

IMPORTED = """
import importlib.metadata, runpy, sys
before = set(sys.modules)  # what the interpreter's start imported (site's .pth files) is not
for argv in (["merge", sys.argv[1], "-o", sys.argv[2]], ["html", sys.argv[2], "-o", sys.argv[3]]):
    sys.argv = ["reports", *argv]
    try:
        runpy.run_module("reports", run_name="__main__")
    except SystemExit as exc:
        assert not exc.code, exc.code
found = importlib.metadata.packages_distributions()
new = {m.split(".")[0] for m in set(sys.modules) - before}
print("imported:", *sorted({d for m in new for d in found.get(m, ())}))
"""


def merge_job() -> str:
    """Return the text of the workflow's merge job."""
    return WORKFLOW.read_text().split("\n  merge:\n", 1)[1]


def closure(requirements: list[str]) -> set[str]:
    """Return the distributions these requirements install, their own requirements included."""
    seen, todo = set(), [re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0] for r in requirements]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or ()
        except importlib.metadata.PackageNotFoundError:  # left out by its marker here
            continue
        for req in requires:
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def test_merge_job_installs_the_suites_dependencies_at_the_locked_versions():
    """The merge job installs the project (its dependencies, none of its packages) constrained
    by the lock, not a hand-kept list that forgot msgspec."""
    steps = [s.strip() for s in re.findall(r"- run: (.*)", merge_job())]
    assert "python -m pip install -c requirements.lock ." in steps, steps


def test_what_merge_and_html_import_is_among_the_suites_dependencies(tmp_path):
    """Run `python -m reports merge` and `html` on a synthetic results file and name every
    distribution they imported: each one is a dependency of pyproject.toml, or one of theirs."""
    results = tmp_path / "results.json"
    subprocess.run([sys.executable, str(ROOT / "tests" / "bench" / "synthetic.py"), "-o",
                    str(results), "--items", "200"], cwd=ROOT, check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-c", IMPORTED, str(results), str(tmp_path / "m.json"),
                           str(tmp_path / "m.html")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {d.lower().replace("_", "-") for d in done.stdout.splitlines()[-1].split()[1:]}
    assert {"numpy", "jinja2", "msgspec"} <= imported, imported
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert imported - OPTIONAL <= closure(dependencies), imported - closure(dependencies)


def test_self_tests_run_under_the_lowest_pytest_and_xdist_that_pyproject_accepts():
    """The workflow's "lowest" pins are pyproject's floors, so raising a floor moves CI too."""
    job = WORKFLOW.read_text().split("\n  self-tests:\n", 1)[1].split("\n  cuda:\n", 1)[0]
    lowest = re.search(r"- pytest: lowest\n\s+install: (.*)", job).group(1).split()
    pinned = dict(p.split("==") for p in lowest)
    floors = dict(re.fullmatch(r"([\w-]+)>=([\d.]+)", d).groups() for d in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    for name in ("pytest", "pytest-xdist"):
        assert _release(pinned[name]) == _release(floors[name]), (name, pinned, floors)
    assert "--upgrade pytest pytest-xdist" in job


def _release(version: str) -> tuple[int, ...]:
    """Return a release number without its trailing zeros: 8, 8.0 and 8.0.0 are one."""
    parts = [int(p) for p in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)
