"""The planted second-order bugs (tests/fixtures/planted.py) read by the suite and by the peers,
side by side: `torch.autograd.gradgradcheck` on the torch bugs, `jax.test_util.check_grads(...,
order=2)` on their JAX versions, the correct custom σ of each framework as the control.

    python tests/bench/hvp_peers.py [--size 5x4x3-b3] [--sigmas tanh-softplus]

Each row: what the suite's first-order items read (the bugs leave them exact), what its H·v
items read in float64 and float32 (the known mistake named, `wrong gradient: k entries`, or
`passed`), and what the peer says on the same function in float64 and float32 (`fails`, or
`passed`: on a control row a failure is a false alarm), with each check's time (after one
untimed warm-up of each). The peers check a function's derivatives by finite
differences of its backward; the two bugs in the hvp code itself (a detached gradient, a
forgotten create_graph) are in no function they are handed, so they are run on the function
the hvp differentiates (correct) and pass: what they could not have seen.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from reference.bounds import bounds  # noqa: E402
from reference.compare import compare  # noqa: E402
from reference.network import gradients  # noqa: E402
from tests.engine import second  # noqa: E402
from tests.engine.conformance import case_for  # noqa: E402
from tests.engine.matrix import Spec  # noqa: E402
from tests.fixtures import planted  # noqa: E402

DTYPES = ("float64", "float32")


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def suite_first(adapter, case) -> str:
    """Return the suite's first-order verdict of every dtype: `passed` or the failing count."""
    ref, bad = gradients(case), 0
    for dtype in DTYPES:
        got, bound = adapter.gradients(case, dtype, "cpu"), bounds(case, dtype)
        bad += sum(int(compare(k, got[k], ref[k], bound[k], dtype).failing.sum()) for k in ref)
    return "passed" if not bad else f"{bad} entries fail"


def suite_second(adapter, spec: Spec, dtype: str) -> str:
    """Return the suite's reading of the adapter's H·v in one dtype."""
    got = adapter.hvp(case_for(spec), dict(second.direction_for(spec)), dtype, "cpu")
    diag = second.diagnose_hvp(spec, got, dtype)
    text = str(diag) if diag.failing else "passed"
    return text.split("known bug: ", 1)[1].split(": ", 1)[0] if "known bug: " in text else text


def gradgradcheck(adapter, case, dtype: str) -> str:
    """Return what torch.autograd.gradgradcheck says of the adapter's cost as a function of the
    parameters (its custom σs included)."""
    import torch

    from adapters.torch import _cost, _tensors

    p, x, y = _tensors(case, dtype, "cpu", grad=True)
    sig = adapter.sigmas(case)
    keys = list(p)
    fn = lambda *t: _cost(dict(zip(keys, t, strict=True)), x, y, sig)  # noqa: E731
    try:
        torch.autograd.gradgradcheck(fn, tuple(p.values()))
    except Exception as exc:  # noqa: BLE001 - GradcheckError, or a float32 warning turned error
        return "fails" if "Jacobian mismatch" in str(exc) else type(exc).__name__
    return "passed"


def check_grads(adapter, case, dtype: str) -> str:
    """Return what jax.test_util.check_grads(order=2, modes=("rev",)) says of the JAX cost (a
    custom_vjp has no forward mode)."""
    from jax.test_util import check_grads as check

    cost, p = adapter.cost(case, dtype)
    try:
        check(cost, (p,), order=2, modes=("rev",))
    except AssertionError:
        return "fails"
    return "passed"


TORCH = {"torch σ″ missing in layer 1": planted.TorchSigma2Missing,
         "torch σ″ doubled in layer 2": planted.TorchSigma2Doubled,
         "torch δ2 detached": planted.TorchDeltaDetached,
         "torch hvp: layer 1's gradient detached": planted.TorchGradientDetached,
         "torch hvp: create_graph forgotten": planted.TorchNoCreateGraph}
JAX = {"jax σ″ missing in layer 1": planted.JaxSigma2Missing,
       "jax σ″ doubled in layer 2": planted.JaxSigma2Doubled,
       "jax δ2 detached": planted.JaxDeltaDetached}
IN_THE_HVP = (planted.TorchGradientDetached, planted.TorchNoCreateGraph)
"""Bugs of the hvp code, not of the function: the peers get the (correct) function."""


def rows() -> list[tuple]:
    """Return (label, the suite's adapter, the peer, the peer's adapter), controls first."""
    out = []
    for name, bugs, peer, right in (("torch custom σ", TORCH, gradgradcheck, planted._TorchSecond),
                                    ("JAX custom_vjp σ", JAX, check_grads, planted._JaxSecond)):
        out.append((f"control: {name}, right", right, peer, right))
        out += [(label, cls, peer, right if cls in IN_THE_HVP else cls)
                for label, cls in bugs.items()]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="5x4x3-b3", help="sizes and batch, e.g. 784x16x10-b8")
    p.add_argument("--sigmas", default="tanh-softplus", help="one σ per layer, e.g. tanh-tanh")
    args = p.parse_args()
    sizes, batch = args.size.split("-b")
    spec = Spec(tuple(int(n) for n in sizes.split("x")), int(batch), 0,
                tuple(args.sigmas.split("-")))
    case = case_for(spec)
    print(f"case {spec.id}; suite: the H·v items' reading; peer: gradgradcheck (torch) or "
          "check_grads(order=2) (JAX) on the same function")
    head = ["bug", "1st order", *(f"suite {d}" for d in DTYPES), "s",
            *(f"peer {d}" for d in DTYPES), "s"]
    print(" | ".join(head))
    caught, table = 0, rows()
    for label, suite_cls, peer, _ in table:  # imports and compilations, untimed
        for dtype in DTYPES if label.startswith("control") else ():
            suite_second(suite_cls(), spec, dtype), peer(suite_cls(), case, dtype)
    for label, suite_cls, peer, peer_cls in table:
        adapter, other = suite_cls(), peer_cls()
        reads, s_suite = timed(lambda a=adapter: [suite_second(a, spec, d) for d in DTYPES])
        says, s_peer = timed(lambda o=other, f=peer: [f(o, case, d) for d in DTYPES])
        caught += not label.startswith("control") and all(r != "passed" for r in reads)
        print(" | ".join([label, suite_first(adapter, case), *reads,
                          f"{s_suite:.2f}", *says, f"{s_peer:.2f}"]))
    bugs = len(TORCH) + len(JAX)
    print(f"hvp_peers: suite caught {caught} of {bugs} planted second-order bugs in both dtypes")


if __name__ == "__main__":
    np.seterr(all="ignore")
    warnings.simplefilter("ignore")  # gradgradcheck warns on every float32 input
    main()
