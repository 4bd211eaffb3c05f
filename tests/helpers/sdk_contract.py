"""A strict checker of JSON answers against the `ultralytics-platform` SDK's TypedDicts.

The SDK declares every response as nested TypedDicts (`ultralytics_platform.types`); the contract
behind them forbids additional properties at every level. `assert_matches(value, T)` walks a parsed
JSON value and `T` together and raises `AssertionError` naming the JSON path (`$.images[0].box.x1`)
of the first missing required key, extra key or wrong type. JSON has one number type, so an int is
a valid float; a bool is neither (Python's `bool` subclasses `int`, JSON's `true` is no number).
"""

from __future__ import annotations

import math
import types
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

_WRAPPERS = (NotRequired, Required, Annotated)


def _unwrap(hint: Any) -> Any:
    """`NotRequired[X]`, `Required[X]`, `Annotated[X, ...]` -> `X` (key presence is checked apart)."""
    while get_origin(hint) in _WRAPPERS:
        hint = get_args(hint)[0]
    return hint


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _fail(path: str, expected: str, value: Any) -> None:
    raise AssertionError(f"{path}: expected {expected}, got {_describe(value)}")


def _check_typeddict(value: Any, spec: Any, path: str) -> None:
    if not isinstance(value, dict):
        _fail(path, f"an object ({spec.__name__})", value)
    hints = get_type_hints(spec, include_extras=True)
    missing = sorted(set(spec.__required_keys__) - set(value))
    if missing:
        raise AssertionError(f"{path}: required key {missing[0]!r} of {spec.__name__} is missing")
    extra = sorted(str(k) for k in set(value) - set(hints))
    if extra:
        raise AssertionError(f"{path}: key {extra[0]!r} is not in {spec.__name__} (no additional properties)")
    for key, item in value.items():
        assert_matches(item, hints[key], f"{path}.{key}")


def _check_union(value: Any, options: tuple[Any, ...], path: str) -> None:
    errors = []
    for option in options:
        try:
            assert_matches(value, option, path)
        except AssertionError as exc:
            errors.append(str(exc))
        else:
            return
    raise AssertionError(f"{path}: matches no alternative of the union: " + " | ".join(errors))


def _check_literal(value: Any, options: tuple[Any, ...], path: str) -> None:
    # `True == 1` and `1 == 1.0` in Python; a literal must match in JSON type too.
    if not any(type(value) is type(option) and value == option for option in options):
        _fail(path, f"one of {list(options)}", value)


def assert_matches(value: Any, spec: Any, path: str = "$") -> None:
    """Raise `AssertionError` naming the path unless `value` (parsed JSON) is exactly a `spec`."""
    spec = _unwrap(spec)
    origin, args = get_origin(spec), get_args(spec)
    if spec is Any:
        return
    if spec is None or spec is type(None):
        if value is not None:
            _fail(path, "null", value)
        return
    if is_typeddict(spec):
        _check_typeddict(value, spec, path)
    elif origin is Union or origin is types.UnionType:
        _check_union(value, args, path)
    elif origin is Literal:
        _check_literal(value, args, path)
    elif origin is list or spec is list:
        if not isinstance(value, list):
            _fail(path, "an array", value)
        for i, item in enumerate(value):
            assert_matches(item, args[0] if args else Any, f"{path}[{i}]")
    elif origin is dict or spec is dict:
        if not isinstance(value, dict):
            _fail(path, "an object", value)
        for key, item in value.items():
            if not isinstance(key, str):
                _fail(f"{path} key", "a string", key)
            assert_matches(item, args[1] if args else Any, f"{path}.{key}")
    elif spec is bool:
        if not isinstance(value, bool):
            _fail(path, "a boolean", value)
    elif spec is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, "an integer", value)
    elif spec is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(path, "a number", value)
        if isinstance(value, float) and not math.isfinite(value):
            _fail(path, "a finite number (JSON has no NaN or Infinity)", value)
    elif spec is str:
        if not isinstance(value, str):
            _fail(path, "a string", value)
    else:
        raise TypeError(f"{path}: the checker does not know the type {spec!r}")
