"""Registers the conformance engine (tests/engine/) and the results recorder (reports/)."""

pytest_plugins = ["tests.engine.plugin", "reports.plugin"]
