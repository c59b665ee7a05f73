"""The conformance options: their flags, and the matrix, adapters and checks they choose."""

from __future__ import annotations

import shlex

import pytest

import adapters
from reports import record
from tests.engine import isolation, matrix

KNOWN_DTYPES = ("float32", "float64")


MATRIX_OPTIONS: dict[str, tuple[str, object]] = {}
"""dest → (flag, default) of the options that decide which items exist or how they are judged
(--deterministic): a failure's reproduce line repeats those that differ from their defaults."""
NOT_MATRIX = ("require_frameworks", "shard", "timing", "adapter_timeout", "repro",
              "repro_seconds")
DESTS: list[str] = []
"""The dests of every conformance option, in the order added (the results' provenance lists
their values)."""


class _Group:
    """An option group that remembers each option's flag and default."""

    def __init__(self, group):
        self.group = group

    def addoption(self, flag: str, **kw) -> None:
        self.group.addoption(flag, **kw)
        dest = flag.lstrip("-").replace("-", "_")
        if dest not in DESTS:
            DESTS.append(dest)
        if dest not in NOT_MATRIX:
            default = False if kw.get("action") == "store_true" else kw.get("default")
            MATRIX_OPTIONS[dest] = (flag, default)


def add(parser: pytest.Parser) -> None:
    """Add the conformance options to pytest's, in their own group."""
    g = _Group(parser.getgroup("conformance", "backprop conformance"))
    g.addoption("--frameworks", default=None,
                help=f"comma-separated frameworks to test (known: {', '.join(adapters.BUILTIN)}; "
                     "default: all, or none when --adapter is given)")
    g.addoption("--adapter", action="append", default=[], metavar="PKG.MODULE:OBJECT",
                help="also test this adapter (repeatable); see adapters/README.md")
    g.addoption("--all-idioms", action="store_true",
                help="also run the slow idioms (eager JAX) of the chosen frameworks")
    g.addoption("--require-frameworks", action="store_true",
                help="fail, not skip, items whose framework cannot be imported or whose device "
                     "is absent (for CI)")
    g.addoption("--dtypes", default=",".join(KNOWN_DTYPES), help="comma-separated dtypes")
    g.addoption("--devices", default=",".join(matrix.DEVICES),
                help=f"comma-separated devices (known: {', '.join(matrix.KNOWN_DEVICES)}); an "
                     "absent one is skipped, or failed under --require-frameworks")
    g.addoption("--precisions", default="default",
                help="float32 matmul settings: 'default' (untouched), 'all' (each adapter's "
                     "own), or names, e.g. highest,high (each adapter runs those it offers)")
    g.addoption("--cases", default=",".join(matrix.CASES),
                help=f"comma-separated cases (known: {', '.join(matrix.CASES)}; not with "
                     "--sizes or --batches)")
    g.addoption("--sizes", default=None, metavar="N0xN1x…xNL,…",
                help="run these network sizes, any number of layers (with --batches), instead "
                     "of the named cases")
    g.addoption("--batches", default=None, metavar="B,…",
                help="batch sizes for --sizes (default 1; alone, with the 784x16x10 net)")
    g.addoption("--seeds", type=int, default=None, metavar="N",
                help="run seeds 0…N−1 (default: seed 0 and the --soak extras)")
    g.addoption("--shard", default=None, metavar="I/N",
                help="run only shard I of N (1-based); whole adapter calls stay together")
    g.addoption("--timing", type=int, default=0, metavar="R",
                help="time each adapter call R more times after a warm-up; report the median")
    g.addoption("--pairs", default="default",
                help="σ pairs, the 2-layer spelling of --activations: 'default' (each case's "
                     "own), 'all', or e.g. relu-tanh,sigmoid-identity")
    g.addoption("--activations", default="default",
                help="an activation per layer: 'default' (each case's own), or e.g. "
                     "relu-relu-sigmoid,tanh-tanh-identity; each replaces the activations of "
                     "the cases of its depth")
    g.addoption("--entries", action="store_true",
                help="make every gradient entry its own test item (small nets, bisecting); "
                     "pytest's log capture is off in this mode")
    g.addoption("--soak", type=int, default=0, metavar="N",
                help="repeat the matrix over N extra seeds (1…N) besides seed 0")
    g.addoption("--deterministic", action="store_true",
                help="fail any bitwise difference between an adapter's calls on one case (by "
                     "default only differences beyond the bound fail)")
    g.addoption("--deviations", action="append", default=[], metavar="FILE",
                help="also apply this known-deviations file (repeatable; `none` drops the "
                     "suite's own tests/deviations.txt): listed items that fail are xfailed "
                     "with their reason, listed items that pass fail (stopped deviating)")
    g.addoption("--adapter-timeout", type=float, default=600.0, metavar="SECONDS",
                help="fail an adapter call's group when the call runs longer (default 600; "
                     "0: no limit)")
    g.addoption("--repro", default=None, metavar="DIR",
                help="for each failing group, shrink the case and write a standalone script "
                     "that reproduces it to DIR/repro-GROUP.py")
    g.addoption("--repro-seconds", type=float, default=30.0, metavar="SECONDS",
                help="time the shrinking of one failing group may take (default 30)")


def rerun_args(config: pytest.Config) -> str:
    """Return the options, as typed, that this run's items need to be collected again."""
    args = []
    for dest, (flag, default) in MATRIX_OPTIONS.items():
        value = config.getoption(dest)
        if value == default:
            continue
        if value is True:
            args.append(flag)
        else:
            args += [f"{flag} {shlex.quote(str(v))}" for v in (value if isinstance(value, list)
                                                             else [value])]
    return " ".join(args)


def _split(value: str) -> list[str]:
    """Return the comma-separated values, stripped, without empties or repeats, in order."""
    return list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))


def _choose(config: pytest.Config, option: str, known) -> list[str]:
    """Return the option's comma-separated values, or stop the run naming the known ones."""
    chosen = _split(config.getoption(option))
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        raise pytest.UsageError(
            f"--{option} {','.join(unknown) or '(empty)'}: unknown; known: {', '.join(known)}")
    return chosen


def _activations(config: pytest.Config, shapes: list) -> list[tuple[str, ...]] | None:
    """Return the activation tuples of --activations or --pairs, None for each case's own."""
    try:
        return matrix.activations(config.getoption("pairs"), config.getoption("activations"),
                                  {len(shape[0]) - 1 for shape in shapes})
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _shapes(config: pytest.Config) -> list:
    """Return the cases: the named ones, or the --sizes × --batches grid."""
    sizes, batches = config.getoption("sizes"), config.getoption("batches")
    if sizes is None and batches is None:
        return matrix.named(_choose(config, "cases", list(matrix.CASES)))
    if config.getoption("cases") != MATRIX_OPTIONS["cases"][1]:
        given = "--sizes" if sizes is not None else "--batches"
        raise pytest.UsageError(f"--cases {config.getoption('cases')} and {given} both choose "
                                f"the cases; give one ({given} runs a grid instead of the "
                                "named cases)")
    try:
        n = [tuple(int(v) for v in s.split("x")) for s in _split(_or(sizes, "784x16x10"))]
        b = [int(v) for v in _split(_or(batches, "1"))]
    except ValueError:
        n, b = [], []
    if not n or not b or any(len(t) < 2 or min(t) < 1 for t in n) or min(b) < 1:
        given = " ".join(f"--{k} {v or repr(v)}" for k, v in (("sizes", sizes),
                                                               ("batches", batches))
                         if v is not None)
        raise pytest.UsageError(f"{given}: expected e.g. "
                                "--sizes 784x16x10,784x128x64x10 --batches 1,32 "
                                "(two or more sizes ≥ 1, batches ≥ 1)")
    n, b = list(dict.fromkeys(n)), list(dict.fromkeys(b))  # 4x3x2 and 04x3x2 run once
    _check_memory(n, b)
    return matrix.grid(n, b)


def _or(value: str | None, default: str) -> str:
    """Return the option's value, its default when not given; an empty value stays empty."""
    return default if value is None else value


def _check_memory(sizes: list[tuple[int, ...]], batches: list[int]) -> None:
    """Stop before drawing a case whose arrays would not fit in memory, saying how much."""
    need, shape = max((matrix.memory_bytes(s, b), (s, b)) for s in sizes for b in batches)
    limit = matrix.memory_limit()
    if need > limit:
        n, b = shape
        raise pytest.UsageError(
            f"--sizes {'x'.join(map(str, n))} --batches {b}: needs about {need / 2**30:.3g} GiB "
            f"(case, reference, bounds and gradients in float64), over the limit of "
            f"{limit / 2**30:.3g} GiB (half this machine's memory)")


def _seeds(config: pytest.Config) -> range:
    """Return the seeds: 0…N−1 with --seeds N, else 0 and the --soak extras."""
    seeds, soak = config.getoption("seeds"), config.getoption("soak")
    if seeds is not None and soak:
        raise pytest.UsageError("--seeds and --soak both set the seeds; give one")
    if seeds is not None and seeds < 1:
        raise pytest.UsageError("--seeds must be 1 or more")
    return range(seeds) if seeds is not None else range(soak + 1)


def shard(config: pytest.Config) -> tuple[int, int] | None:
    """Return (i, n) of --shard i/n, 1-based, or None."""
    value = config.getoption("shard")
    if value is None:
        return None
    i, _, n = value.partition("/")
    if not (i.isdigit() and n.isdigit() and 1 <= int(i) <= int(n)):
        raise pytest.UsageError(f"--shard {value}: expected I/N with 1 ≤ I ≤ N, e.g. 1/2")
    return int(i), int(n)


def _precisions(value: str, adapter) -> list[str]:
    """Return the settings one adapter runs under: those asked for that it offers."""
    offered = list(getattr(adapter, "precisions", ()))
    if value == "all":
        return ["default", *offered]
    asked = _split(value)
    chosen = [p for p in asked if p == "default" or p in offered]
    return chosen or ["default"]


def _check_precisions(value: str, chosen: dict) -> None:
    """Stop with a usage error on a setting that no adapter of the run offers (a typo would
    otherwise run each adapter's default, silently)."""
    if value == "all":
        return
    if not _split(value):
        raise pytest.UsageError(f"--precisions {value!r}: empty; give e.g. default,highest or all")
    offered: dict[tuple, list[str]] = {}  # settings → the adapters offering exactly those
    for a in chosen.values():
        offered.setdefault(("default", *getattr(a, "precisions", ())), []).append(a.name)
    unknown = [p for p in _split(value) if not any(p in names for names in offered)]
    if unknown:
        known = "; ".join(f"{', '.join(who)}: {', '.join(names)}"
                          for names, who in offered.items())
        raise pytest.UsageError(f"--precisions {','.join(unknown)}: no adapter of this run offers "
                                f"it ({known or 'no adapters'}; or 'all')")


def adapters_of(config: pytest.Config) -> dict:
    """Return the adapters to test by name, or stop the run with a one-line usage error."""
    specs = config.getoption("adapter")
    frameworks = config.getoption("frameworks")
    if frameworks is None:
        frameworks = "" if specs else ",".join(adapters.BUILTIN)
    try:
        chosen = adapters.builtin(_split(frameworks), config.getoption("all_idioms"))
        for s in specs:
            chosen.append(adapters.load(s))
            isolation.register(chosen[-1], s)  # used only by one that asks for its own process
    except adapters.AdapterError as exc:
        raise pytest.UsageError(str(exc)) from None
    by_name = {}
    for a in chosen:
        if a.name in by_name:
            raise pytest.UsageError(f"two adapters are named {a.name!r}; names must be unique")
        by_name[a.name] = a
        _check_distributions(a)
    return by_name


def _check_distributions(adapter) -> None:
    """Stop on a `framework` or `distributions` entry that is an import name of what is
    installed (paddle, haiku), naming the distribution to write instead (paddlepaddle,
    dm-haiku): the version recorded with every result is looked up by that name."""
    names = [("framework", adapter.framework)]
    names += [("distributions entry", d) for d in record.declared(adapter)
              if d != adapter.framework]
    for attr, name in names:
        providers = record.import_name_of(name)
        if providers:
            raise pytest.UsageError(
                f"adapter {adapter.name!r}: {attr} {name!r} is an import name, not a "
                f"distribution's; write the distribution that installs it: "
                f"{' or '.join(map(repr, providers))}")


def matrix_of(config: pytest.Config, chosen: dict) -> tuple[list, list]:
    """Return the configs and specs the options ask for, or stop with a usage error."""
    dtypes = _choose(config, "dtypes", KNOWN_DTYPES)
    devices = _choose(config, "devices", matrix.KNOWN_DEVICES)
    _check_precisions(config.getoption("precisions"), chosen)
    configs = [matrix.Config(name, dev, dt, p)
               for name, adapter in chosen.items()
               for dev in devices for dt in dtypes
               for p in _precisions(config.getoption("precisions"), adapter)]
    shapes = _shapes(config)
    return configs, matrix.specs(shapes, _activations(config, shapes), _seeds(config))


def exporter(config: pytest.Config):
    """Return the exporter of --repro DIR, None without it."""
    folder, seconds = config.getoption("repro"), config.getoption("repro_seconds")
    if not seconds > 0:
        raise pytest.UsageError("--repro-seconds must be more than 0")
    if folder is None:
        return None
    from tests.engine.repro import Exporter, unusable

    path = config.invocation_params.dir / folder
    why = unusable(path)
    if why:
        raise pytest.UsageError(f"--repro {folder}: {why}")
    exporter = Exporter(path, seconds, config.invocation_params.dir, config.getoption("adapter"))
    config.pluginmanager.register(exporter, "conformance-repro")
    return exporter


CACHE_OPTIONS = {"lf": "--lf", "failedfirst": "--ff", "newfirst": "--nf", "stepwise": "--sw",
                 "stepwise_skip": "--sw-skip"}
"""pytest's options that read the last run from its cache (the cacheprovider plugin)."""


def refuse_without_cache(config: pytest.Config) -> None:
    """Refuse --lf and its kin when pytest's cache is off (`-p no:cacheprovider`): they would
    silently run every item."""
    if config.pluginmanager.has_plugin("cacheprovider"):
        return
    given = [flag for dest, flag in CACHE_OPTIONS.items() if config.getoption(dest, None)]
    if given:
        raise pytest.UsageError(f"{given[0]} needs pytest's cache, which -p no:cacheprovider "
                                "turned off: without it every item would run again")
