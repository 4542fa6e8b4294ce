"""A small declarative validator for the manifest.

Every field is required unless declared optional: hyperparameters live in the manifest only, so there is no
default here that could silently win over what a claim says.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable


class ManifestError(ValueError):
    """One clear error naming the file, claim and field."""


@dataclass(frozen=True)
class Field:
    kind: Any  # a type name (see CHECKS), a nested schema dict, or a callable(value, where) -> value
    required: bool = True
    choices: tuple = ()
    doc: str = ""


def _is_number(v):
    """A finite int or float (YAML's .nan and .inf are not numbers a protocol can use)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_int(v, where):
    if not isinstance(v, int) or isinstance(v, bool):
        raise ManifestError(f"{where}: expected an integer, got {v!r}")
    return v


def _check_positive_int(v, where):
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ManifestError(f"{where}: expected a positive integer, got {v!r}")
    return v


def _check_float(v, where):
    if not _is_number(v):
        raise ManifestError(f"{where}: expected a number, got {v!r}")
    return float(v)


def _check_positive_float(v, where):
    if not _is_number(v) or v <= 0:
        raise ManifestError(f"{where}: expected a positive number, got {v!r}")
    return float(v)


def _check_nonnegative_float(v, where):
    if not _is_number(v) or v < 0:
        raise ManifestError(f"{where}: expected a number >= 0, got {v!r}")
    return float(v)


def _check_str(v, where):
    if not isinstance(v, str) or not v.strip():
        raise ManifestError(f"{where}: expected a non-empty string, got {v!r}")
    return v


def _check_bool(v, where):
    if not isinstance(v, bool):
        raise ManifestError(f"{where}: expected true or false, got {v!r}")
    return v


def _list_of(item_check):
    def check(v, where):
        if not isinstance(v, list) or not v:
            raise ManifestError(f"{where}: expected a non-empty list, got {v!r}")
        return [item_check(x, f"{where}[{i}]") for i, x in enumerate(v)]
    return check


def _check_range(v, where):
    if not isinstance(v, list) or len(v) != 2 or not all(_is_number(x) for x in v) or not v[0] <= v[1]:
        raise ManifestError(f"{where}: expected [low, high] with low <= high, got {v!r}")
    return [float(v[0]), float(v[1])]


def _check_nonnegative_int(v, where):
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ManifestError(f"{where}: expected an integer >= 0, got {v!r}")
    return v


def _check_seed(v, where):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**32:
        raise ManifestError(f"{where}: expected a seed, an integer in [0, 2^32), got {v!r}")
    return v


def _check_name(v, where):
    """Run and profile names become folder names (and DVC/Hydra keys): a letter, then letters, digits, '-'."""
    if not isinstance(v, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", v):
        raise ManifestError(f"{where}: {v!r} is not a valid name (lower-case letter first, then letters, digits "
                            "and '-')")
    return v


CHECKS: dict[str, Callable] = {
    "int": _check_int,
    "positive_int": _check_positive_int,
    "nonnegative_int": _check_nonnegative_int,
    "float": _check_float,
    "positive_float": _check_positive_float,
    "nonnegative_float": _check_nonnegative_float,
    "str": _check_str,
    "bool": _check_bool,
    "range": _check_range,
    "str_list": _list_of(_check_str),
    "int_list": _list_of(_check_int),
    "positive_int_list": _list_of(_check_positive_int),
    "step_list": _list_of(_check_nonnegative_int),
    "seed": _check_seed,
    "name": _check_name,
    "seed_list": _list_of(_check_seed),
    "positive_float_list": _list_of(_check_positive_float),
    "float_list": _list_of(_check_float),
}


def check_mapping(value, where):
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
    return value


def validate(value: Any, schema: dict[str, Field], where: str) -> dict:
    """Check `value` against `schema`; return a normalised copy. Unknown keys are errors."""
    check_mapping(value, where)
    unknown = sorted(set(value) - set(schema))
    if unknown:
        known = ", ".join(sorted(schema))
        raise ManifestError(f"{where}: unknown field {unknown[0]!r} (known fields: {known})")
    out = {}
    for key, field in schema.items():
        path = f"{where}.{key}" if where else key
        if value.get(key) is None:
            if field.required:
                raise ManifestError(f"{path}: missing required field" + (f" ({field.doc})" if field.doc else ""))
            continue
        out[key] = check_value(value[key], field, path)
    return out


def check_value(v, field: Field, where: str):
    if isinstance(field.kind, dict):
        return validate(v, field.kind, where)
    if callable(field.kind):
        v = field.kind(v, where)
    else:
        v = CHECKS[field.kind](v, where)
    if field.choices and v not in field.choices:
        raise ManifestError(f"{where}: {v!r} is not one of {', '.join(map(str, field.choices))}")
    return v


def expand_braces(pattern: str) -> list[str]:
    """'mse@{1..3}' -> ['mse@1', 'mse@2', 'mse@3']; other strings are returned as they are."""
    m = re.fullmatch(r"(.*)\{(\d+)\.\.(\d+)\}(.*)", pattern)
    if not m:
        return [pattern]
    head, lo, hi, tail = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    return [f"{head}{i}{tail}" for i in range(lo, hi + 1)]
