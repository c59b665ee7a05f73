"""The conformance plugin's options: selection, third-party adapters, CI strictness, ids."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = str(ROOT / "tests" / "test_conformance.py")
FAST = ("--cases", "chain,small")

MISSING_FRAMEWORK = '''
class Adapter:
    name = "needs_missing"
    framework = "nonexistent_framework"

    def gradients(self, case, dtype, device):
        import nonexistent_framework  # noqa: F401
'''


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(CONFORMANCE, *args)


def test_ids_read_like_the_domain(pytester):
    """Ids are adapter-device-dtype-σ1-…-σL-sizes-batch-seed-tensor, as in DESIGN.md."""
    result = run(pytester, "--collect-only", "-q", "--frameworks", "torch")
    result.stdout.fnmatch_lines(
        ["*test_gradient[[]torch-cpu-float64-sigmoid-sigmoid-784x16x10-b1-s0-W1[]]"])


def test_unknown_framework_is_a_usage_error_naming_the_known(pytester):
    """--frameworks with an unknown name stops the run before any test, listing the known."""
    result = run(pytester, "--frameworks", "torch,mxnet")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown framework 'mxnet'; known: autograd, equinox, flax, "
                                 "jax, keras, tensorflow, tinygrad, torch*"])


@pytest.mark.parametrize("spec,says", [
    ("no_colon", "expected package.module:object"),
    ("not_a_module_xyz:adapter", "cannot import not_a_module_xyz"),
    ("adapters.example:nothing", "adapters.example has no 'nothing'"),
])
def test_bad_adapter_spec_is_a_one_line_usage_error(pytester, spec, says):
    """A broken --adapter names what was wrong in one line."""
    result = run(pytester, "--adapter", spec)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--adapter {spec!r}: {says}*"])


@pytest.mark.parametrize("spec", ["my_adapter:adapter", "{path}/my_adapter.py:NumpyAdapter"])
def test_adapter_outside_the_repo_is_loaded(pytester, spec):
    """The documented example, copied outside the checkout, runs with --adapter and passes."""
    shutil.copy(ROOT / "adapters" / "example.py", pytester.path / "my_adapter.py")
    pytester.syspathinsert()
    result = run(pytester, "--adapter", spec.format(path=pytester.path), *FAST)
    result.assert_outcomes(passed=4 * 2 * 2)  # tensors × dtypes × (chain, small)


def test_missing_framework_skips_locally_and_fails_under_require(pytester):
    """An adapter whose framework cannot be imported is skipped, or failed with --require."""
    pytester.makepyfile(needs_missing=MISSING_FRAMEWORK)
    pytester.syspathinsert()
    args = ("--adapter", "needs_missing:Adapter", *FAST, "-rs")
    skipped = run(pytester, *args)
    skipped.assert_outcomes(skipped=16)
    skipped.stdout.fnmatch_lines(["*nonexistent_framework cannot be imported*"])
    failed = run(pytester, *args, "--require-frameworks")
    failed.assert_outcomes(failed=16)
    assert failed.ret == pytest.ExitCode.TESTS_FAILED


def test_entry_granular_mode_makes_each_entry_an_item(pytester):
    """--entries gives one item per entry, named by its index."""
    result = run(pytester, "--adapter", "adapters.example:adapter", "--cases", "small",
                 "--dtypes", "float64", "--entries", "-v")
    result.assert_outcomes(passed=4 * 5 + 4 + 3 * 4 + 3)
    result.stdout.fnmatch_lines(["*numpy-cpu-float64-tanh-softplus-5x4x3-b3-s0-W1[[]3,4[]]*PASSED*"])


def test_soak_repeats_the_matrix_over_extra_seeds(pytester):
    """--soak 2 runs seeds 0, 1 and 2."""
    result = run(pytester, "--adapter", "adapters.example:adapter", "--cases", "chain", "--soak",
                 "2", "--collect-only", "-q")
    for seed in (0, 1, 2):
        result.stdout.fnmatch_lines([f"*-1x1x1-b1-s{seed}-W1*"])
    result.stdout.fnmatch_lines(["24 tests collected*"])


def test_pairs_all_crosses_every_case_with_every_pair(pytester):
    """--pairs all runs each case with every pair of the catalogue list."""
    result = run(pytester, "--adapter", "adapters.example:adapter", "--cases", "chain",
                 "--pairs", "all", "--dtypes", "float64", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["24 tests collected*"])


def test_header_names_framework_versions(pytester):
    """The pytest header lists each tested framework with its version."""
    result = run(pytester, "--frameworks", "torch,jax", "--collect-only", "-q", "-v")
    result.stdout.fnmatch_lines(["frameworks: jax *, torch *"])


def collected(result: pytest.RunResult) -> set[str]:
    """Return the item ids a --collect-only -q run listed."""
    return {ln.split("[", 1)[1][:-1] for ln in result.stdout.lines if "::test_gradient[" in ln}


def test_shards_partition_the_matrix_keeping_adapter_calls_whole(pytester):
    """--shard 1/2 and 2/2 are disjoint, together the whole run, and split no group."""
    base = ("--adapter", "adapters.example:adapter", "--collect-only", "-q", "--seeds", "3")
    whole = collected(run(pytester, *base))
    shards = [collected(run(pytester, *base, "--shard", f"{i}/2")) for i in (1, 2)]
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == whole
    groups = [{k.rsplit("-", 1)[0] for k in s} for s in shards]
    assert not groups[0] & groups[1]


@pytest.mark.parametrize("args,says", [
    (("--shard", "0/2"), "--shard 0/2: expected I/N"),
    (("--shard", "x"), "--shard x: expected I/N"),
    (("--sizes", "784"), "--sizes 784: expected e.g."),
    (("--sizes", "784x0x10"), "--sizes 784x0x10: expected e.g."),
    (("--batches", "0"), "--batches 0: expected e.g."),
    (("--seeds", "2", "--soak", "1"), "--seeds and --soak both set the seeds"),
    (("--cases", "small", "--sizes", "4x3x2"),
     "--cases small and --sizes both choose the cases; give one"),
    (("--batches", "8", "--cases", "chain"),
     "--cases chain and --batches both choose the cases; give one"),
    (("--pairs", "relu-nope"), "--pairs relu-nope: expected σ1-σ2 pairs"),
    (("--pairs", "relu-tanh-tanh"), "--pairs relu-tanh-tanh: expected σ1-σ2 pairs"),
    (("--activations", "relu-nope-tanh"), "--activations relu-nope-tanh: expected σ1-…-σL"),
    (("--sizes", "784x128x64x10", "--activations", "relu-sigmoid"),
     "--activations relu-sigmoid: 2 activation(s), but the cases have 3 layer(s); give one "
     "activation per layer"),
    (("--cases", "small", "--activations", "relu-relu-sigmoid"),
     "--activations relu-relu-sigmoid: 3 activation(s), but the cases have 2 layer(s)"),
    (("--pairs", "relu-tanh", "--activations", "relu-relu-tanh"),
     "--pairs relu-tanh --activations relu-relu-tanh: --pairs is the 2-layer spelling of "
     "--activations; give one"),
    (("--dtypes", "float16"), "--dtypes float16: unknown; known: float32, float64"),
    (("--precisions", "default,hihg"),
     "--precisions hihg: no adapter of this run offers it (numpy: default; or 'all')"),
])
def test_bad_matrix_options_are_one_line_usage_errors(pytester, args, says):
    """Each malformed matrix option stops the run with one line naming it."""
    result = run(pytester, "--adapter", "adapters.example:adapter", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{says}*"])


def test_sizes_and_batches_make_a_grid(pytester):
    """--sizes × --batches replaces the named cases, every seed of --seeds."""
    result = run(pytester, "--adapter", "adapters.example:adapter", "--sizes", "4x3x2,6x5x4",
                 "--batches", "1,7", "--seeds", "2", "--dtypes", "float64", "--collect-only",
                 "-q")
    ids = collected(result)
    assert len(ids) == 2 * 2 * 2 * 4
    assert "numpy-cpu-float64-sigmoid-sigmoid-6x5x4-b7-s1-b2" in ids


def test_sizes_take_any_number_of_layers_with_an_activation_each(pytester):
    """--sizes 784x128x64x10 --activations relu-relu-sigmoid: ids name each layer's activation
    and every tensor W1…b3; a 1-layer net is a case too, with its own activations."""
    result = run(pytester, "--adapter", "adapters.example:adapter", "--sizes",
                 "784x128x64x10,6x3", "--batches", "8", "--activations",
                 "relu-relu-sigmoid,tanh", "--collect-only", "-q")
    ids = collected(result)
    assert "numpy-cpu-float32-relu-relu-sigmoid-784x128x64x10-b8-s0-W2" in ids
    assert {i.rsplit("-", 1)[1] for i in ids if "784x128x64x10" in i} == {
        "W1", "b1", "W2", "b2", "W3", "b3"}
    assert {i.rsplit("-", 1)[1] for i in ids if "-tanh-6x3-" in i} == {"W1", "b1"}
    assert len(ids) == 2 * (6 + 2)


def test_activations_replace_those_of_their_depth_only(pytester):
    """On the named cases, 4 activations replace the deep case's own; the 2-layer cases keep
    theirs; --pairs is the 2-layer spelling of the same option, leaving deep cases alone."""
    base = ("--adapter", "adapters.example:adapter", "--cases", "small,deep", "--dtypes",
            "float64", "--collect-only", "-q")
    ids = collected(run(pytester, *base, "--activations", "tanh-tanh-tanh-tanh"))
    assert "numpy-cpu-float64-tanh-tanh-tanh-tanh-784x64x32x16x10-b8-s0-W4" in ids
    assert "numpy-cpu-float64-tanh-softplus-5x4x3-b3-s0-W1" in ids and len(ids) == 4 + 8
    ids = collected(run(pytester, *base, "--pairs", "relu-identity"))
    assert "numpy-cpu-float64-relu-identity-5x4x3-b3-s0-b2" in ids
    assert "numpy-cpu-float64-relu-tanh-sigmoid-softplus-784x64x32x16x10-b8-s0-b4" in ids


def test_the_default_matrix_has_a_deep_case(pytester):
    """The default cases include 784-64-32-16-10 at batch 8 with mixed activations."""
    ids = collected(run(pytester, "--adapter", "adapters.example:adapter", "--collect-only",
                        "-q"))
    deep = {i for i in ids if "-784x64x32x16x10-b8-" in i}
    assert "numpy-cpu-float32-relu-tanh-sigmoid-softplus-784x64x32x16x10-b8-s0-W3" in deep
    assert len(deep) == 2 * 8


def test_entries_at_depth_index_every_layer(pytester):
    """--entries on a 3-layer net makes an item of every entry of every layer's W and b."""
    result = run(pytester, "--adapter", "adapters.example:adapter", "--sizes", "3x2x4x2",
                 "--dtypes", "float64", "--entries", "-v")
    result.assert_outcomes(passed=2 * 3 + 2 + 4 * 2 + 4 + 2 * 4 + 2)
    result.stdout.fnmatch_lines(["*numpy-cpu-float64-sigmoid-sigmoid-sigmoid-3x2x4x2-b1-s0-W3[[]1,3[]]*"
                                 "PASSED*"])


def test_memory_estimate_counts_every_layer(pytester):
    """A deep net too large for the machine stops before any case is drawn, naming its size."""
    result = run(pytester, "--adapter", "adapters.example:adapter", "--sizes",
                 "784x100000x100000x10", "--batches", "8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sizes 784x100000x100000x10 --batches 8: needs about * GiB*"])


def test_absent_device_skips_locally_and_fails_under_require(pytester):
    """An adapter without the asked-for device is skipped with the reason, failed under CI."""
    args = ("--adapter", "adapters.example:adapter", "--devices", "cuda", "--cases", "chain",
            "-rs")
    skipped = run(pytester, *args)
    skipped.assert_outcomes(skipped=8)
    skipped.stdout.fnmatch_lines(["*numpy runs on the cpu only, not on 'cuda'*"])
    run(pytester, *args, "--require-frameworks").assert_outcomes(failed=8)


LOUD = '''
from adapters.example import NumpyAdapter


class Loud(NumpyAdapter):
    name = "loud"

    def gradients(self, case, dtype, device):
        raise ValueError("x" * 5_000_000)
'''


@pytest.mark.parametrize("results,report", [("same.json", "same.json"),
                                            ("same.json", "./sub/../same.json")])
def test_results_and_report_at_one_file_is_a_usage_error(pytester, results, report):
    """--results X --report X stops before any test runs, and writes nothing."""
    result = run(pytester, "--adapter", "adapters.example:adapter", *FAST,
                 "--results", results, "--report", report)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --results and --report are one file (*same.json); "
                                 "give two paths"])
    assert "passed" not in result.stdout.str() and not (pytester.path / "same.json").exists()


def test_a_fifo_as_results_is_a_usage_error_and_stays_a_fifo(pytester):
    """A FIFO (like a device) at --results is refused before any test runs, never replaced."""
    fifo = pytester.path / "fifo"
    os.mkfifo(fifo)
    result = run(pytester, "--adapter", "adapters.example:adapter", *FAST, "--results", "fifo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --results *fifo: a FIFO, not a regular file; left "
                                 "untouched"])
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_huge_reason_is_capped_in_the_results(pytester):
    """An adapter whose exception is one 5 MB line: the item's reason is cut with a marker."""
    (pytester.path / "loud.py").write_text(LOUD)
    pytester.syspathinsert()
    run(pytester, "--adapter", "loud:Loud", "--cases", "chain", "--dtypes", "float64",
        "--results", "r.json")
    items = json.loads((pytester.path / "r.json").read_text())["items"]
    assert items and all(len(i["reason"]) < 1000 and i["reason"].endswith("characters cut]")
                         for i in items)


def test_memory_estimate_at_depth_keeps_the_two_layer_number():
    """memory_bytes of a 2-layer net is what it was before depth; each layer adds its own."""
    from tests.engine import matrix

    n0, n1, n2, b = 4000, 2000, 10, 200
    before = 8 * (12 * (n1 * n0 + n1 + n2 * n1 + n2) + 4 * b * (n0 + n2) + 12 * b * (n1 + n2))
    assert matrix.memory_bytes((n0, n1, n2), b) == before
    deeper = matrix.memory_bytes((n0, n1, n1, n2), b)
    assert deeper - matrix.memory_bytes((n0, n1, n2), b) == 8 * (12 * (n1 * n1 + n1) + 12 * b * n1)
    assert matrix.entry_indices((3, 2, 4, 2), "W3")[-1] == (1, 3)
    assert matrix.shape_of((784, 64, 32, 16, 10), "b3") == (16,)
