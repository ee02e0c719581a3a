"""Turn pydantic's validation errors on agent files into ``file: json.path: expected …, got …``.

Pydantic knows which rule failed; the user needs to know where and what to write
instead. The expectation ("a number between 0 and 1", "an integer ≥ 0") is read
from the field's own type and constraints, so it always matches the model.
Secret fields never have their value echoed, not even a wrong one.
"""

from __future__ import annotations

import difflib
import json
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

PLACEHOLDER = "***"
"""What a set secret looks like in public output; sent back, it means "unchanged"."""

_TYPE_ERRORS = {
    "float_parsing", "float_type", "int_parsing", "int_type", "int_from_float", "int_parsing_size",
    "bool_parsing", "bool_type", "string_type", "list_type", "dict_type", "model_type",
    "model_attributes_type", "literal_error", "enum", "finite_number", "none_required",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "string_unicode",
}


def ensure_order(low_name: str, low: float, high_name: str, high: float) -> None:
    """Raise a validation error when ``low`` > ``high`` (used by model validators)."""
    if low > high:
        raise PydanticCustomError(
            "range_order", "expected {low_name} ≤ {high_name}, got {low} > {high}",
            {"low_name": low_name, "high_name": high_name, "low": _num(low), "high": _num(high)},
        )


def json_error_problem(source: str, exc: json.JSONDecodeError) -> str:
    """``agents/x.json: invalid JSON at line 3, column 5: Expecting ',' delimiter``."""
    return f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"


def format_path(loc: tuple[int | str, ...]) -> str:
    """``("behavior", "post_frequency", "peak_posting_hours", 2)`` → ``behavior.post_frequency.peak_posting_hours[2]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def translate_validation_error(exc: ValidationError, source: str, model: type[BaseModel]) -> list[str]:
    """One ``source: path: message`` line per pydantic error, duplicates removed."""
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        spec = _resolve(model, loc)
        message = _message(err, spec)
        path = format_path(loc)
        if not path:
            message = message.replace("expected an object", "expected a JSON object", 1)
        line = f"{source}: {path}: {message}" if path else f"{source}: {message}"
        if line not in problems:
            problems.append(line)
    return problems


def unknown_field_warnings(config: BaseModel, source: str) -> list[str]:
    """Warn about every key the models do not know, then drop those keys."""
    warnings: list[str] = []
    _walk_extras(config, (), source, warnings)
    return warnings


# --------------------------------------------------------------------------- internals


class _Spec:
    """The declared type of one JSON location: base type plus constraints."""

    def __init__(self, base: Any, metadata: list[Any]) -> None:
        self.base = base
        self.metadata = metadata

    @property
    def secret(self) -> bool:
        return self.base is SecretStr


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` and ``| None``; collect annotated-types constraints on the way."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            base, *extra = get_args(annotation)
            for item in extra:
                metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
            annotation = base
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation, metadata
            annotation = options[0]
        else:
            return annotation, metadata


def _field(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _resolve(model: type[BaseModel], loc: tuple[int | str, ...]) -> _Spec | None:
    annotation: Any = model
    metadata: list[Any] = []
    for part in loc:
        annotation, extra = _unwrap(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
            info = _field(annotation, part)
            if info is None:
                return None
            annotation, metadata = info.annotation, list(info.metadata)
        elif origin is list and isinstance(part, int):
            annotation, metadata = get_args(annotation)[0], []
        elif origin is dict and isinstance(part, str):
            annotation, metadata = get_args(annotation)[1], []
        else:
            return None
    base, extra = _unwrap(annotation)
    return _Spec(base, metadata + extra)


def _num(value: float) -> str:
    return f"{value:g}"


def _bounds(metadata: list[Any]) -> str:
    low: Any = None
    high: Any = None
    low_strict = high_strict = False
    for item in metadata:
        if isinstance(item, at.Ge):
            low = item.ge
        elif isinstance(item, at.Gt):
            low, low_strict = item.gt, True
        elif isinstance(item, at.Le):
            high = item.le
        elif isinstance(item, at.Lt):
            high, high_strict = item.lt, True
    if low is not None and high is not None and not (low_strict or high_strict):
        return f" between {_num(low)} and {_num(high)}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_strict else '≥'} {_num(low)}")
    if high is not None:
        parts.append(f"{'<' if high_strict else '≤'} {_num(high)}")
    return (" " + " and ".join(parts)) if parts else ""


def _expectation(spec: _Spec | None) -> str:
    if spec is None:
        return "a valid value"
    base = spec.base
    if base is bool:
        return "true or false"
    if base is int:
        return "an integer" + _bounds(spec.metadata)
    if base is float:
        return "a number" + _bounds(spec.metadata)
    if base is str or base is SecretStr:
        return "a string"
    if get_origin(base) is Literal:
        return "one of " + ", ".join(json.dumps(v) for v in get_args(base))
    if get_origin(base) is list:
        return "a list of " + _plural(_expectation(_Spec(*_unwrap(get_args(base)[0]))))
    if get_origin(base) is dict or (isinstance(base, type) and issubclass(base, BaseModel)):
        return "an object"
    return "a valid value"


def _plural(expectation: str) -> str:
    for article in ("an ", "a "):
        if expectation.startswith(article):
            head, _, rest = expectation[len(article):].partition(" ")
            return f"{head}s {rest}".strip()
    return expectation


def _got(value: Any, secret: bool) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if secret:  # describe, never echo
        kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", type(None): "null"}
        return kinds.get(type(value), "another type")
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _message(err: Any, spec: _Spec | None) -> str:
    kind = err["type"]
    secret = spec is not None and spec.secret
    if kind == "missing":
        return f"required field is missing (expected {_expectation(spec)})"
    if kind == "string_pattern_mismatch":
        return ("expected an id of letters, digits, '-' or '_' (1-64 characters, starting with a letter "
                f"or digit), got {_got(err.get('input'), secret)}")
    if kind in ("range_order", "unknown_timezone", "invalid_url", "url_credentials", "own_url_needs_own_key"):
        return str(err["msg"])
    if kind in _TYPE_ERRORS:
        if spec is None and "model" in kind:
            return f"expected a JSON object, got {_got(err.get('input'), secret)}"
        return f"expected {_expectation(spec)}, got {_got(err.get('input'), secret)}"
    text = str(err["msg"])
    text = text[:1].lower() + text[1:]
    return f"{text}, got {_got(err.get('input'), secret)}" if "input" in err else text


def _walk_extras(node: Any, loc: tuple[int | str, ...], source: str, out: list[str]) -> None:
    if isinstance(node, BaseModel):
        extra = node.__pydantic_extra__
        if extra:
            known = [info.alias or name for name, info in type(node).model_fields.items()]
            for key in list(extra):
                hint = difflib.get_close_matches(str(key), known, n=1)
                suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
                out.append(f"{source}: {format_path((*loc, key))}: unknown field, ignored{suggestion}")
            extra.clear()
        for name, info in type(node).model_fields.items():
            _walk_extras(getattr(node, name), (*loc, info.alias or name), source, out)
    elif isinstance(node, dict):
        for key, value in node.items():
            _walk_extras(value, (*loc, key), source, out)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _walk_extras(value, (*loc, index), source, out)
