"""Payload conversion, in one place: Python values to JSON and back by annotations.

Out: pydantic models are dumped (`model_dump(mode="json")`), dataclasses turned into
objects, tuples and sets into lists; other JSON values pass as they are. In: a value is
rebuilt as the annotated type of the receiving function (an activity's or workflow's input
parameter, an activity's return type when a workflow awaits it) with pydantic's
TypeAdapter, which understands models, dataclasses, TypedDicts and containers of them. No
annotation (or `Any`) leaves the JSON value as it is.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from durable.common import InvalidArgument, NonRetryableError

_PLAIN = (str, int, float, bool, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)
_NO_CONVERSION: Any = object()


def to_json(value: Any) -> Any:
    """A Python value as JSON-ready data (dicts, lists, strings, numbers, booleans, None)."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is dict and all(type(v) in _PLAIN_TYPES for v in value.values()):
        return value if all(type(k) is str for k in value) else {str(k): v for k, v in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    try:
        return TypeAdapter(type(value)).dump_python(value, mode="json")
    except Exception as exc:  # noqa: BLE001 - pydantic's errors for types it cannot dump
        raise InvalidArgument(f"{type(value).__name__} is not JSON-serialisable: {exc}") from None


def from_json(value: Any, annotation: Any, *, field: str = "payload") -> Any:
    """`value` rebuilt as `annotation`; a mismatch raises NonRetryableError naming `field`."""
    if annotation is _NO_CONVERSION or annotation in (Any, inspect.Parameter.empty, None, type(None), object):
        return value
    native = _native(annotation)
    if native is not None and type(value) is native:
        return value  # JSON already is what the annotation asks for (dict, dict[str, Any], list, ...)
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError as exc:
        first: dict[str, Any] = dict(exc.errors()[0]) if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        raise NonRetryableError(
            f"{field} does not fit {_name(annotation)}: {where}: {first.get('msg', exc)}",
            type="PayloadConversionError",
        ) from None
    except TypeError:  # an annotation pydantic cannot build: leave the value as it is
        return value


@functools.lru_cache(maxsize=512)
def _native(annotation: Any) -> type | None:
    """The JSON type an annotation is satisfied by as it is (no validation to run), if any."""
    if annotation in (dict, list, str, bool):
        return annotation  # type: ignore[no-any-return]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and args in ((str, Any), ()):
        return dict
    if origin is list and args in ((Any,), ()):
        return list
    return None


@functools.lru_cache(maxsize=512)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)


@functools.lru_cache(maxsize=2048)
def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations mean "no conversion"
        return {}


def input_type(fn: Callable[..., Any], position: int = 1) -> Any:
    """The annotation of `fn`'s parameter at `position` (after ctx), or no conversion."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return _NO_CONVERSION
    if len(parameters) <= position:
        return _NO_CONVERSION
    return _hints(fn).get(parameters[position].name, _NO_CONVERSION)


def return_type(fn: Callable[..., Any]) -> Any:
    """The return annotation of `fn`, or no conversion."""
    return _hints(fn).get("return", _NO_CONVERSION)


NO_CONVERSION = _NO_CONVERSION
