"""Where and how a run happened: versions, devices, CPU, git commit, date, command, options."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from reports.record import installed, version_of

SUITE_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "pytest", "pytest-xdist", "jinja2")
COMPANIONS = {"jax": ("jaxlib",)}
"""Distributions whose version matters along with a framework's own."""


def now() -> str:
    """Return the UTC time as ISO 8601, to the second."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_id(started: str) -> str:
    """Return an id for a run: host and start time, safe in a file name and an HTML id."""
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", platform.node() or "host")[:40]
    return f"{host}-{started.replace(':', '').replace('-', '')}"


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def accelerators() -> dict:
    """Return the GPU/accelerator names of frameworks this process already imported."""
    found = {}
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            count = torch.cuda.device_count()
            found["cuda"] = [torch.cuda.get_device_name(i) for i in range(count)]
    except Exception:  # noqa: BLE001 - a broken CUDA setup is no reason to lose the results
        pass
    jax = sys.modules.get("jax")
    try:
        if jax is not None:
            found["jax"] = sorted({f"{d.platform}: {d.device_kind}" for d in jax.devices()})
    except Exception:  # noqa: BLE001
        pass
    return found


def git() -> dict:
    """Return the suite's commit and whether its tree differs from it; tolerate no git."""
    try:
        commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "dirty": None, "error": str(exc).splitlines()[0][:200]}
    return {"commit": commit, "dirty": bool(status), "branch": _branch()}


def _branch() -> str | None:
    try:
        return _git("rev-parse", "--abbrev-ref", "HEAD") or None
    except (OSError, subprocess.SubprocessError):
        return None


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(SUITE_ROOT), *args], capture_output=True, text=True,
                          timeout=10, check=True)
    return done.stdout.strip()


def versions(frameworks: set[str], distributions: set[str] = frozenset()) -> dict:
    """Return Python's version and those of the suite's packages, the tested frameworks and
    the distributions their adapters declare, each under its installed name (tensorflow-cpu
    where that is what provides tensorflow); one not installed is recorded as None."""
    names = list(PACKAGES)
    for f in sorted(frameworks | set(distributions)):
        names += [f, *COMPANIONS.get(f, ())]
    out = {"python": platform.python_version(),
           "python_implementation": platform.python_implementation()}
    for n in dict.fromkeys(names):
        real, version = installed(n)
        out[real] = version if version is not None else version_of(n)
    return out


def machine() -> dict:
    """Return the host: name, OS, architecture, CPU model and count."""
    return {"hostname": platform.node(), "platform": platform.platform(),
            "machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count()}
