"""Write a synthetic results file of many items, shaped like a merged run of the real matrix.

    python tests/bench/synthetic.py -o reports/out/synthetic.json [--items 50000] [--runs 2]
        [--configs 40] [--fail-groups 60]

Configs are adapters × devices × dtypes × precision settings; cases cycle through the default
matrix's (784-16-10 at batch 1 and 32, the 1-1-1 chain, 5-4-3) over σ pairs and seeds; each
case gives the four tensors W1, b1, W2, b2. Each item's comparison is a real
`record.summarize` of a drawn tensor of its true shape (drawn once per shape, dtype and kind,
then shared), so items weigh what real ones weigh. Most pass; `--fail-groups` whole adapter
calls fail (every entry off, as a wrong gradient), a few single entries fail (a planted
one-entry bug), one config's items are skipped (framework absent) and a few xfail.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from reference.compare import compare  # noqa: E402
from reports import encoding, files, record  # noqa: E402

ADAPTERS = ("torch", "torch.compile", "jax", "jax.jit", "tensorflow", "mlx", "numpy", "cupy",
            "paddle", "mxnet")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")
PRECISIONS = ("default", "high", "highest")
CASES = (((784, 16, 10), 1, ("sigmoid", "sigmoid")), ((784, 16, 10), 1, ("softplus", "tanh")),
         ((784, 16, 10), 32, ("relu", "sigmoid")), ((784, 16, 10), 32, ("tanh", "identity")),
         ((1, 1, 1), 1, ("sigmoid", "sigmoid")), ((5, 4, 3), 3, ("tanh", "softplus")))
STUDY = tuple(((784, 16, 10), b, ("sigmoid", "sigmoid")) for b in (1, 8, 32))
"""The cases of tests/bench/study_bench.py's study (784-16-10 at batches 1, 8 and 32)."""
EPS = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}


def shapes(sizes: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """Return each parameter tensor's shape for a net of these sizes."""
    n0, n1, n2 = sizes
    return {"W1": (n1, n0), "b1": (n1,), "W2": (n2, n1), "b2": (n2,)}


def summary(tensor: str, shape: tuple, dtype: str, kind: str, rng) -> dict:
    """Return a real comparison summary of a drawn tensor: passing, all wrong, or one entry."""
    ref = rng.normal(0.0, 0.05, shape)
    bound = np.abs(ref) * 64 * EPS[dtype] + 1e-3 * 64 * EPS[dtype]
    got = ref + bound * rng.uniform(-0.3, 0.3, shape) * rng.uniform(0, 1, shape) ** 4
    if dtype == "float32":
        got = got.astype(np.float32).astype(np.float64)
    if kind == "wrong":
        got = ref * 1.5
    elif kind == "entry":
        got.flat[rng.integers(got.size)] += 50 * bound.flat[0]
    return record.summarize(compare(tensor, got, ref, bound, dtype))


def configs(n: int) -> list[dict]:
    """Return n configs, crossing adapters, devices, dtypes and precision settings."""
    out = []
    for a, d, t, p in itertools.product(ADAPTERS, DEVICES, DTYPES, PRECISIONS):
        if t == "float64" and p != "default":
            continue
        out.append({"adapter": a, "device": d, "dtype": t, "precision": p})
    for k in itertools.count():
        if len(out) >= n:
            return out[:n]
        out += [{**c, "adapter": f"{c['adapter']}-v{k + 2}"} for c in out[:n - len(out)]]
    return out


def config_id(c: dict) -> str:
    base = f"{c['adapter']}-{c['device']}-{c['dtype']}"
    return base if c["precision"] == "default" else f"{base}.{c['precision']}"


def spec_id(s: dict) -> str:
    n0, n1, n2 = s["sizes"]
    return f"{s['sigma1']}-{s['sigma2']}-{n0}x{n1}x{n2}-b{s['batch']}-s{s['seed']}"


def specs(n: int, cases=CASES) -> list[dict]:
    """Return n cases: the default matrix's (or the given) cases over seeds 0, 1, …"""
    out = []
    for seed in itertools.count():
        for sizes, batch, (s1, s2) in cases:
            if len(out) == n:
                return out
            out.append({"sizes": list(sizes), "batch": batch, "seed": seed, "sigma1": s1,
                        "sigma2": s2})
    return out


def build(n_items: int, n_runs: int, n_configs: int, fail_groups: int, seed: int = 0,
          cases=CASES) -> dict:
    """Return the synthetic results document."""
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    cfgs = configs(n_configs)
    per_run = -(-n_items // n_runs)
    cases = specs(-(-per_run // (4 * len(cfgs))), cases)
    runs = [{"id": f"synthetic-{r + 1}", "provenance": provenance(r)} for r in range(n_runs)]
    groups = [(r, c, s) for r in range(n_runs) for c in range(len(cfgs)) for s in range(len(cases))]
    failing = set(pick.sample(range(len(groups)), min(fail_groups, len(groups))))
    one_entry = set(pick.sample(range(len(groups)), min(fail_groups // 4, len(groups))))
    skipped_config, xfail_config = len(cfgs) - 1, len(cfgs) // 2
    templates, items = {}, []
    for g, (r, c, s) in enumerate(groups):
        kind = "wrong" if g in failing else "entry" if g in one_entry else "pass"
        for tensor, shape in shapes(tuple(cases[s]["sizes"])).items():
            if len(items) == n_items:
                break
            outcome = "failed" if kind != "pass" and (kind == "wrong" or tensor == "W1") else \
                "passed"
            if c == skipped_config:
                outcome = "skipped"
            elif c == xfail_config and s % 7 == 3 and outcome == "passed":
                outcome = "xfailed"
            key = (tensor, shape, cfgs[c]["dtype"], kind if outcome == "failed" else "pass")
            if key not in templates and outcome != "skipped":
                templates[key] = summary(tensor, shape, key[2], key[3], rng)
            items.append(item(runs[r]["id"], cfgs[c], cases[s], tensor, outcome,
                              None if outcome == "skipped" else templates[key]))
    return encoding.document(runs, items)


def item(run: str, config: dict, spec: dict, tensor: str, outcome: str, cmp: dict | None) -> dict:
    """Return one item as the recorder writes it."""
    cid, sid = config_id(config), spec_id(spec)
    ident = f"{cid}-{sid}-{tensor}"
    reason = message = None
    if outcome == "failed":
        reason = (f"{cid} {tensor}: {cmp['failing']} of {cmp['entries']} entries outside "
                  f"their bound; greatest ratio {cmp['max_ratio']:.3g}")
        message = reason + "\nreproduce: python -m pytest 'tests/test_conformance.py::…'"
    elif outcome == "skipped":
        reason = f"adapter {config['adapter']!r}: {config['adapter']} cannot be imported"
    elif outcome == "xfailed":
        reason = "known: see issue 3"
    return {
        "run": run, "nodeid": f"tests/test_conformance.py::test_gradient[{ident}]",
        "config": config, "spec": spec, "tensor": tensor, "entry": None, "id": ident,
        "group": f"{cid}-{sid}", "config_id": cid, "spec_id": sid,
        "framework": config["adapter"].split(".")[0].split("-")[0], "framework_version": "2.5.1",
        "outcome": outcome, "reason": reason, "message": message,
        "fingerprint": None if cmp is None else config["dtype"],
        "details": {} if cmp is None else {
            "sensitivity": {"entry_change": 3.0e-4, "tf32": "detectable"},
            "precision_resolved": f"default: {config['precision']}",
            "determinism": {"calls": 2, "differing": 0, "of": cmp["entries"], "max_ratio": 0.0}},
        "comparison": cmp, "duration": 0.0123,
    }


def provenance(r: int) -> dict:
    """Return a plausible provenance for synthetic run r."""
    return {"started": "2026-11-29T00:00:00Z", "finished": "2026-11-29T01:00:00Z",
            "exitstatus": 1, "argv": ["pytest", "tests/test_conformance.py"], "args": [],
            "versions": {"python": "3.11.9", "numpy": "2.1.0"},
            "machine": {"hostname": f"host{r + 1}", "cpu_count": 16}, "devices": {"cpu": "x86"},
            "git": {"commit": "0" * 40, "dirty": False}, "options": {}, "seeds": [0],
            "collection_errors": []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--configs", type=int, default=40)
    ap.add_argument("--fail-groups", type=int, default=60)
    args = ap.parse_args()
    doc = build(args.items, args.runs, args.configs, args.fail_groups)
    files.write_text(args.output, encoding.dumps(doc))
    counts = {}
    for i in doc["items"]:
        counts[i["outcome"]] = counts.get(i["outcome"], 0) + 1
    print(f"{args.output}: {len(doc['items'])} items, {json.dumps(counts)}, "
          f"{args.output.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
