"""Adapters that ask for a process of their own (`process = "own"`) are called in one.

Some frameworks cannot share a process: Keras 3 picks its backend once, at its first import, so
a Keras-on-JAX adapter and the built-in Keras (on TensorFlow), or two backends, cannot run side
by side. Such an adapter says `process = "own"`, and every call of it (the conformance calls,
the timing calls, shrinking) runs in a child process that loads that adapter alone and is kept
for the run: one per adapter and pytest process (per xdist worker), started at its first call.
Scheduling plays no part, so the same holds under `-n 0` and `-n N`, and an adapter that kills
its process costs only its own call.

The child receives the pickled case, dtype, device and setting, and answers with the gradients;
it checks itself that the adapter left the case as it was, since the parent's copy never
reaches the adapter. What the adapter prints goes to the child's stderr (the item's captured
output), never into the answers.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import subprocess
import sys
import traceback
from pathlib import Path

from tests.engine.copies import CaseWritten, changes, direction_changes, fresh, fresh_direction

ROOT = Path(__file__).resolve().parents[2]
OWN = "own"


class ChildFailed(Exception):
    """The adapter raised in its own process, or the process died; the text says which."""


_SPECS: dict[int, str] = {}  # id(adapter) → how the child loads it again
_CHILDREN: dict[int, subprocess.Popen] = {}


def own_process(adapter) -> bool:
    """Say whether the adapter asked for a process of its own."""
    return getattr(adapter, "process", None) == OWN


def register(adapter, spec: str) -> None:
    """Remember how to load an own-process adapter again (its --adapter value, a file's path
    made absolute so that the child finds it from the checkout)."""
    module, sep, attr = spec.rpartition(":")
    if module.endswith(".py"):
        spec = f"{Path(module).resolve()}{sep}{attr}"
    _SPECS[id(adapter)] = spec


def call(adapter, case, dtype: str, device: str, v: dict | None = None, **setting):
    """Return the adapter's gradients, or its H·v along v when v is given: from its own process
    when it asked for one."""
    if not own_process(adapter) or id(adapter) not in _SPECS:
        return _run(adapter, case, dtype, device, v, setting)
    child = _child(adapter)
    answered = False
    try:
        pickle.dump((case, dtype, device, setting, v), child.stdin)
        child.stdin.flush()
        kind, value = pickle.load(child.stdout)
        answered = True
    except (EOFError, OSError, pickle.UnpicklingError):
        raise ChildFailed(f"its own process died ({_death(child)})") from None
    finally:
        if not answered:  # died, or interrupted mid-call (timeout, Ctrl-C): never reused
            _stop(id(adapter), kill=True)
    if kind == "ok":
        return value
    if kind == "written":
        raise CaseWritten(value)
    if isinstance(value, BaseException):
        raise value
    raise ChildFailed(value)


def _run(adapter, case, dtype: str, device: str, v: dict | None, setting: dict):
    """Call `gradients`, or `hvp` along v when v is given."""
    if v is None:
        return adapter.gradients(case, dtype, device, **setting)
    return adapter.hvp(case, v, dtype, device, **setting)


def _child(adapter) -> subprocess.Popen:
    """Return the adapter's process, started (with this process's sys.path) if need be."""
    child = _CHILDREN.get(id(adapter))
    if child is not None and child.poll() is None:
        return child
    child = subprocess.Popen([sys.executable, "-m", "tests.engine.isolation", _SPECS[id(adapter)]],
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pickle.dump(list(sys.path), child.stdin)
    child.stdin.flush()
    _CHILDREN[id(adapter)] = child
    return child


def _death(child: subprocess.Popen) -> str:
    """Say how a child ended: its signal or exit status."""
    try:
        code = child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "it stopped answering"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _stop(key: int, kill: bool = False) -> None:
    """End one child: close its input (it exits), or kill it (it may be mid-call)."""
    child = _CHILDREN.pop(key, None)
    if child is None:
        return
    if kill:
        child.kill()
    for stream in (child.stdin, child.stdout):
        try:
            stream.close()
        except OSError:
            pass
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


@atexit.register
def _stop_all() -> None:
    for key in list(_CHILDREN):
        _stop(key)


def serve(spec: str) -> None:
    """Load the adapter alone and answer calls until the parent closes the pipe."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the adapter's prints, even from native code, go to stderr
    requests = sys.stdin.buffer
    sys.path[:] = pickle.load(requests)
    import adapters

    loaded = None
    try:
        loaded = adapters.load(spec)
    except adapters.AdapterError as exc:
        failure = ("raised", f"cannot load it: {exc}")
    while True:
        try:
            case, dtype, device, setting, v = pickle.load(requests)
        except EOFError:
            return
        answer = failure if loaded is None else _answer(loaded, case, dtype, device, setting,
                                                        v)
        try:
            pickle.dump(answer, answers)
        except Exception as exc:  # noqa: BLE001 - gradients that cannot be pickled
            pickle.dump(("raised", f"returned what cannot be sent back ({exc})"), answers)
        answers.flush()


def _answer(adapter, case, dtype, device, setting, v) -> tuple[str, object]:
    """Call the adapter on a fresh read-only copy of the case (and of the direction v, for
    H·v); say what came of it."""
    given, along = fresh(case), None if v is None else fresh_direction(v)
    try:
        got = _run(adapter, given, dtype, device, along, setting)
    except Exception as exc:  # noqa: BLE001 - the adapter's failure is sent back whole
        return "raised", _portable(exc)
    changed = changes(given, case) or (v is not None and direction_changes(along, v))
    return ("written", changed) if changed else ("ok", got)


def _portable(exc: Exception) -> BaseException | str:
    """Return what the parent needs of an exception: ImportError, DeviceUnavailable and
    TwoLayerField as themselves (a missing framework or device is a skip, a contract-v1 read
    too), anything else as the text `Type: message`; each with the adapter's line."""
    from adapters import DeviceUnavailable
    from reference.case import TwoLayerField

    last = [f for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.endswith(f"reference{os.sep}case.py")]
    where = f" ({last[-1].filename.rsplit('/', 1)[-1]}:{last[-1].lineno})" if last else ""
    for kind in (ImportError, DeviceUnavailable, TwoLayerField):
        if isinstance(exc, kind):
            portable = kind(str(exc))
            portable.where = where
            return portable
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}{where}"


if __name__ == "__main__":
    try:
        serve(sys.argv[1])
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        sys.exit(130)
