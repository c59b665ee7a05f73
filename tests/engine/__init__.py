"""The conformance engine: what turns tests/test_conformance.py into the matrix and judges it.

- plugin.py: the pytest hooks (registered by tests/conftest.py); each hands its work on to
- options.py: the conformance options, and the adapters, matrix and checks they choose;
- matrix.py: configs, cases (specs) and the items they make, with their ids;
- conformance.py: the runner (calls each adapter per group) and the verdict of one item;
- copies.py: the fresh read-only copy of the case an adapter is handed, and what it changed;
- isolation.py: an adapter's calls in a process of its own, when it asks for one;
- entries.py: the run protocol of entry items (`--entries`), through pytest's public hooks;
- scheduling.py: the xdist scheduler that keeps an adapter call's items on one worker;
- deviations.py: known deviations (tests/deviations.txt), xfailed with their reason;
- shrink.py and repro.py: a failing group shrunk and written as a standalone script (--repro).
"""
