"""Config schemas made from signatures, and validation of a section against one (OmegaConf
structured configs): the half of :mod:`layerkit.config` that knows about types.

:func:`schema_of` turns a constructor (a stage backend, ``lightning.Trainer``, a training module)
into a dataclass whose fields are its keyword arguments — typed scalars, optional scalars, lists of
scalars, else ``Any`` (checked by the constructor itself) — so a schema cannot drift from the code.
:func:`structured` validates a section against a dataclass and says, in one line, which key was
wrong, where it was set and what is valid.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import math
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from layerkit.errors import ConfigError
from layerkit.registry import parameters

if TYPE_CHECKING:
    from layerkit.config import Composed

_SIMPLE = (int, float, bool, str)


def _omega_type(hint: Any) -> Any:
    """The OmegaConf field type for a constructor hint: scalars, Optional scalars, lists of
    scalars; ``Any`` for everything else (validated by the constructor itself)."""
    if hint in _SIMPLE:
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner = _omega_type(rest[0])
            return Optional[inner] if inner is not Any else Any  # noqa: UP045 - OmegaConf reads typing.Optional
        return Any
    if origin in (list, tuple, Sequence, typing.Sequence, collections.abc.Sequence):
        elems = [a for a in args if a is not Ellipsis]
        if len(set(elems)) == 1 and elems[0] in _SIMPLE:
            return list[elems[0]]  # type: ignore[index]
        return list[Any]
    return Any


def hints(builder: Callable[..., Any]) -> dict[str, Any]:
    target = builder.__init__ if isinstance(builder, type) else builder
    try:
        return typing.get_type_hints(target)
    except Exception:  # a TYPE_CHECKING-only name: resolve what can be resolved, one by one
        out: dict[str, Any] = {}
        module = inspect.getmodule(target)
        ns = vars(module) if module else {}
        for name, ann in getattr(target, "__annotations__", {}).items():
            try:
                out[name] = eval(ann, ns) if isinstance(ann, str) else ann  # noqa: S307 - annotations of our own code
            except Exception:
                out[name] = Any
        return out


@functools.cache
def _schema_cached(builder: Callable[..., Any], exclude: tuple[str, ...], defaults: tuple[tuple[str, Any], ...]) -> type:
    declared = hints(builder)
    given = dict(defaults)
    fields = []
    for name, p in parameters(builder, exclude).items():
        typ = _omega_type(declared.get(name, Any))
        default = given.get(name, p.default)
        if default is p.empty:
            fields.append((name, typ))
            continue
        if isinstance(default, (list, tuple, dict)):
            fields.append((name, typ, dataclasses.field(default_factory=functools.partial(_copy, default))))
        elif default is not None and not isinstance(default, _SIMPLE):
            fields.append((name, Any, dataclasses.field(default=None)))
        else:
            fields.append((name, typ, dataclasses.field(default=default)))
    fields.sort(key=lambda f: len(f) == 3)  # dataclasses: required fields first
    name = getattr(builder, "__qualname__", "builder").replace(".", "_") + "Config"
    return dataclasses.make_dataclass(name, fields)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else type(value)(value)


def schema_of(builder: Callable[..., Any], exclude: Sequence[str] = (), defaults: Mapping[str, Any] | None = None) -> type:
    """A dataclass schema of ``builder``'s keyword arguments: typed fields (scalars, Optional scalars,
    lists of scalars, else ``Any``) with the signature's defaults (or ``defaults``)."""
    return _schema_cached(builder, tuple(exclude), tuple(sorted((defaults or {}).items())))


def structured(schema: type, values: Mapping[str, Any], section: str, composed: Composed | None = None,
               what: str = "", fill: bool = True) -> dict[str, Any]:
    """Validate ``values`` against ``schema`` with OmegaConf; the filled-in plain dict.

    Args:
        schema: a dataclass.
        values: the section's keys.
        section: dotted name of the section, for messages.
        composed: where keys came from, for messages.
        what: words after the key in an unknown-key message (``"for matter backend 'x'"``).
        fill: return every field (defaults filled in); False: only the keys of ``values``, converted.

    Raises:
        ConfigError: an unknown key (the valid ones listed), a wrong type, a required key missing.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

    fields = {f.name: f for f in dataclasses.fields(schema)}

    def where(key: str) -> str:
        return composed.source(f"{section}.{key}") if composed else "the config"

    for key in values:
        if key not in fields:
            valid = ", ".join((["backend"] if what else []) + sorted(fields))
            raise ConfigError(f"{where(key)}: unknown key '{section}.{key}'{(' ' + what) if what else ''}; valid keys: {valid}")
    try:
        conf = OmegaConf.merge(OmegaConf.structured(schema), dict(values))
        out: dict[str, Any] = OmegaConf.to_container(conf, resolve=True, throw_on_missing=True)  # type: ignore[assignment]
    except (ValidationError, ConfigKeyError, MissingMandatoryValue) as e:
        key = re.split(r"[.\[]", str(getattr(e, "full_key", "") or ""))[0] or "?"  # "weights[0]" → "weights"
        if isinstance(e, MissingMandatoryValue):
            raise ConfigError(f"{where(key)}: '{section}.{key}' is required; set {section}.{key}=VALUE") from None
        want = _describe(typing.get_type_hints(schema).get(key))
        raise ConfigError(f"{where(key)}: {section}.{key} must be {want}, got {values.get(key)!r}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"section {section!r}: {str(e).splitlines()[0]}") from None
    for key in values:  # .nan/.inf parse as floats; no stage setting means them (issue 17)
        if isinstance(out.get(key), float) and not math.isfinite(out[key]):
            raise ConfigError(f"{where(key)}: {section}.{key} must be a finite number, got {out[key]}")
    return out if fill else {k: out[k] for k in values}


def _describe(hint: Any) -> str:
    """``bool`` → "true or false", ``Optional[int]`` → "of type int (or null)", ``list[str]`` → "a list of str"."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = typing.get_origin(hint) is typing.Union and len(args) == 1
    if optional:
        hint = args[0]
    if hint is bool:
        text = "true or false"
    elif typing.get_origin(hint) is list:
        inner = typing.get_args(hint)
        text = f"a list of {getattr(inner[0], '__name__', 'values')}" if inner else "a list"
    else:
        text = f"of type {getattr(hint, '__name__', str(hint))}"
    return text + (" (or null)" if optional else "")


def validate_args(section: str, values: Mapping[str, Any], builder: Callable[..., Any],
                  exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Validate a section of keyword arguments of ``builder`` (training ``data``/``model``)."""
    return structured(schema_of(builder, exclude), values, section)
