"""The conformance engine's pytest plugin (registered by tests/conftest.py): each hook hands its
work to the engine's module for it (options, matrix, entries, deviations, scheduling)."""

from __future__ import annotations

import math
import os
import zlib

import pytest

from reports import record
from tests.engine import deviations, entries, matrix, options, precise, progress, scheduling
from tests.engine.conformance import RERUN, RUNNER, RUNNING, Runner

# JAX takes 75 % of a GPU's memory when its CUDA backend starts; with pytest-xdist every worker
# does, and the second one runs out. The suite's arrays are small: allocate what is used.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

DEVIATIONS = pytest.StashKey[list]()
"""The run's known deviations (every --deviations file's lines), in its config's stash."""
MATRIX = pytest.StashKey[tuple]()
"""The run's (configs, specs), in its config's stash."""


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add(parser)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the known deviations; keep only this shard's items (an adapter call's items share
    a shard)."""
    if deviations.mark(items, config.stash[DEVIATIONS]) and not config.pluginmanager.has_plugin(
            "conformance-deviations"):
        config.pluginmanager.register(deviations.Watch(), "conformance-deviations")
    if entries.eligible(config):
        entries.find_locations(items)
    shard = options.shard(config)
    if shard is None:
        return
    i, n = shard
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        ci = spec.params.get("conformance_item") if spec else None
        key = ci.group if ci is not None else item.nodeid
        (keep if zlib.crc32(key.encode()) % n == i - 1 else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: a gradient conformance item")
    if config.getoption("soak") < 0:
        raise pytest.UsageError("--soak must be 0 or more")
    config.stash[record.OPTIONS] = list(options.DESTS)
    adapters = config.stash[record.ADAPTERS] = options.adapters_of(config)
    if config.getoption("entries"):
        entries.collect_for_many_items(config)
        # pytest's log capture hooks a handler onto every non-propagating logger (torch makes
        # 42) in each phase of each item, a third of an entry item's time; an adapter runs once
        # per group, so entry items capture no log records (-p no:logging, for this mode).
        config.pluginmanager.set_blocked("logging-plugin")
    config.stash[DEVIATIONS] = [d for path in deviations.files(config.getoption("deviations"))
                                for d in deviations.read(path)]
    if config.getoption("timing") < 0:
        raise pytest.UsageError("--timing must be 0 or more")
    options.shard(config)
    configs, specs = config.stash[MATRIX] = options.matrix_of(config, adapters)
    scheduling.refuse_each(config)
    scheduling.allow_a_crash_per_group(config, len(configs) * len(specs))
    config.stash[RERUN] = options.rerun_args(config)
    if not 0 <= config.getoption("adapter_timeout") < math.inf:
        raise pytest.UsageError("--adapter-timeout must be 0 (no limit) or more seconds")
    options.refuse_without_cache(config)
    progress.register(config)
    precise.register(config)
    config.stash[RUNNER] = Runner(adapters, config.getoption("timing"),
                                  config.getoption("deterministic"),
                                  config.getoption("adapter_timeout"), options.exporter(config))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Tell the conformance check which test item it runs in (tests/engine/conformance.py)."""
    token = RUNNING.set(item)
    try:
        return (yield)
    finally:
        RUNNING.reset(token)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Run an entry item (`--entries`) that needs no fixture by the lean protocol (with the
    lean items after it, when `pytest_runtestloop` below gave it a stretch)."""
    if entries.eligible(item.config) and entries.lean(item):
        entries.run_stretch(item, nextitem)
        return True
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session):
    """Give each stretch of lean entry items one protocol call, where the run allows it."""
    if entries.stretches(session, pytest_runtest_protocol):
        return entries.runtestloop(session)
    return None


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Keep each adapter call's items on one worker, whatever --dist load mode was given."""
    return scheduling.make(config, log)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name each tested framework's installed distribution and version, then what else its
    adapters run on: `keras 3.15.1 (tensorflow-cpu 2.21.0)`."""
    by_framework: dict[str, dict[str, str | None]] = {}
    for a in config.stash[record.ADAPTERS].values():
        by_framework.setdefault(record.framework_of(a), {}).update(record.distributions(a))
    versions = []
    for framework, dists in sorted(by_framework.items()):
        real, version = record.installed(framework)
        others = [_version(n, v) for n, v in dists.items() if n != real]
        versions.append(_version(real, version) + (f" ({', '.join(others)})" if others else ""))
    return [f"frameworks: {', '.join(versions) or 'none'}"]


def _version(name: str, version: str | None) -> str:
    return f"{name} {version}" if version else f"{name} (not installed)"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_item" not in metafunc.fixturenames:
        return
    config = metafunc.config
    configs, specs = config.stash[MATRIX]
    items = matrix.items(configs, specs, config.getoption("entries"))
    # ids read `config-spec-tensor` (grouped by tests/engine/scheduling.py); the conformance mark is
    # test_gradient's, not each parameter's (76,000 entry items need no 76,000 marks)
    metafunc.parametrize("conformance_item", items, ids=[i.id for i in items])
