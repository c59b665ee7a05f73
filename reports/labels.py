"""What the pages call things: margins in one number format, short case names, a reading split
into its arithmetic and its diagnosis, plain-words verdicts, and runs named by what differs."""

from __future__ import annotations

import math
import re
import shlex

ARITHMETICS = ("float64", "float32", "tf32", "bfloat16")
"""The arithmetics a group's errors can read as (reference/compare.py); any other reading is a
diagnosis (`wrong gradient: 3 entries`, a named mistake)."""
WRONG = "wrong gradient"
EXPONENTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def margin(value) -> str:
    """Format a ratio to the bound in the pages' one format: `5.2e-04`, `exact` for 0."""
    if value is None:
        return "–"
    if isinstance(value, str) or not isinstance(value, int | float):
        return str(value)
    if value == 0:
        return "exact"
    return f"{value:.1e}" if math.isfinite(value) else str(value)


def case_label(spec: dict, full: str) -> dict:
    """Return a case's short name: its sizes and batch (`784-16-10 b32`), its activations on a
    line below, and the full id for hovering; a scaled case says `params × 2⁻¹²`."""
    sizes = spec.get("sizes")
    if not isinstance(sizes, list) or not sizes:
        return {"short": full, "sub": "", "full": full}
    short = "-".join(map(str, sizes)) + (f" b{spec['batch']}" if "batch" in spec else "")
    sigmas = spec.get("sigmas")
    if not isinstance(sigmas, list):  # older writers: sigma1, sigma2
        layers = sorted((int(k[5:]), k) for k in spec if re.fullmatch(r"sigma\d+", k))
        sigmas = [spec[k] for _, k in layers] or None
    sub = " · ".join(map(str, sigmas)) if isinstance(sigmas, list) else ""
    scale = spec.get("scale")
    if isinstance(scale, int) and scale:
        sub += f" · params × 2{str(-scale).translate(EXPONENTS)}"
    saturate = spec.get("saturate")
    if isinstance(saturate, int) and saturate:
        sub += f" · |z| in ({saturate}, {saturate + 3})"
    return {"short": short, "sub": sub, "full": full}


def arithmetic_of(reading: str) -> str | None:
    """Return the arithmetic a reading names (`tf32` of `tf32 in 2 of 5 products: …`), None
    when it is a diagnosis (anything more than an arithmetic and where it ran: `float64, σ of
    layer 1 in float32` names a cause)."""
    head, _, rest = reading.partition(" ")
    if head in ARITHMETICS and (not rest or rest.startswith(("in ", "(outputs rounded"))):
        return head
    return None


def split_readings(readings, dtype: str) -> dict:
    """Return a config's readings as its arithmetic (`as asked` when every call's is the dtype)
    and its diagnoses (`wrong gradient in 5 calls`), each with the full list for hovering."""
    readings = [r for r in readings if r and r != "–"]
    arithmetics = dict.fromkeys(a for a in map(arithmetic_of, readings) if a)
    diagnoses: dict[str, int] = {}
    for r in readings:
        if arithmetic_of(r) is None:
            kind = re.sub(r" \([^()]*(\([^()]*\)[^()]*)*\)$", "", cause_of(r))  # (C/n_L) on hover
            diagnoses[kind] = diagnoses.get(kind, 0) + 1
    if not arithmetics:
        arith = "–"
    elif list(arithmetics) == [dtype]:
        arith = "as asked"
    else:
        arith = " / ".join(arithmetics)
    diag = "; ".join(k if n == 1 else f"{k} in {n} calls" for k, n in diagnoses.items())
    return {"arithmetic": arith, "asked": arith == "as asked", "diagnosis": diag,
            "full": " / ".join(dict.fromkeys(readings)) or "–"}


def cause_of(reading: str) -> str:
    """Return what a diagnosis names: `wrong gradient` of `wrong gradient: 3 entries`, the
    known bug of `every entry is 0.1× the reference: the cost is averaged over … (C/n_L)`."""
    head, _, cause = reading.partition(": ")
    return head if head == WRONG or not cause else cause


def verdict(reading: str | None, dtype: str, message: str | None) -> dict | None:
    """Return a failing call's verdict in plain words and the numbers behind it (the failure
    message's lines on the field of errors), None when nothing was read."""
    if not reading or reading == "–":
        return None
    numbers = [line.removeprefix("the group's ") for line in (message or "").splitlines()
               if line.startswith(("the group's ", "errors consistent with: "))]
    arith = arithmetic_of(reading)
    if arith is None:
        head, _, rest = reading.partition(": ")
        one = rest.startswith("1 ")
        if head == WRONG:
            text = (f"A wrong gradient: {rest} {'is' if one else 'are'} outside "
                    f"{'its' if one else 'their'} bound, and no arithmetic's rounding explains "
                    f"{'it' if one else 'them'}: a bug, not rounding.")
        elif rest:
            text = f"A known bug: {rest} ({head})."
        else:
            text = f"Diagnosis: {reading}."
    elif arith == dtype:
        text = f"The arithmetic is the {dtype} asked for."
    else:
        where = reading[len(arith):].strip()
        text = f"The errors are those of {arith}{' ' + where if where else ''}, not the {dtype} " \
               "asked for." + _advice(reading, dtype, numbers)
    return {"text": text, "numbers": numbers}


def _advice(reading: str, dtype: str, numbers: list[str]) -> str:
    """Return the setting the failure message suggests (`jax.default_matmul_precision(…)
    restores float32`) as a sentence, "" when it suggests none."""
    said = next((n for n in numbers if n.startswith(f"errors consistent with: {reading}")), "")
    rest = said.removeprefix(f"errors consistent with: {reading}").strip()
    if not (rest.startswith("(") and rest.endswith(")")):
        return ""
    parts = [p for p in rest[1:-1].split("; ") if not p.startswith(f"{dtype} was asked")]
    return f" {'; '.join(parts)}." if parts else ""


VARYING = re.compile(r"^(started|finished|exitstatus|argv|args|seeds|collection_errors|"
                     r"options\.(results|report|repro|keyword|shard)|git\.dirty)")
"""Provenance that differs between any two runs and names none of them."""


def run_names(flat: list[dict[str, str]]) -> list[str]:
    """Return a short name per run by what differs between them (`torch 2.12.0`, `cuda`,
    `host b`), framework versions first; `R1`, `R2` … where nothing tells them apart."""
    if len(flat) < 2:
        return [f"R{n + 1}" for n in range(len(flat))]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f) if not VARYING.match(k)
            and len({f.get(k, "") for f in flat}) > 1]
    keys.sort(key=lambda k: (not k.startswith("versions."), not k.startswith("devices."), k))
    names = []
    for n, f in enumerate(flat):
        parts = [_named(k, f.get(k, "")) for k in keys[:2]]
        names.append(", ".join(p for p in parts if p)[:40] or f"R{n + 1}")
    if len(set(names)) < len(names):
        names = [f"R{n + 1} {name}" for n, name in enumerate(names)]
    return names


def _named(key: str, value: str) -> str:
    """Return one differing fact: `torch 2.12.0` for a version, `key value` for the rest."""
    if not value:
        return f"no {key.rsplit('.', 1)[-1]}"
    if key.startswith("versions."):
        return f"{key.removeprefix('versions.')} {value}"
    return f"{key.rsplit('.', 1)[-1]} {value}"


def flatten(value, prefix: str = "") -> dict[str, str]:
    """Return a nested dict as {dotted.key: text}; lists of words are joined like a shell."""
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        text = shlex.join(map(str, value)) if prefix.endswith(("argv", "args")) else \
            ", ".join(map(str, value))
        return {prefix: text}
    return {prefix: "" if value is None or value == {} else str(value)}
