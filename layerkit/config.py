"""Config files → validated plain dicts. The only place YAML is read (with OmegaConf, so
``${...}`` interpolations work).

A pipeline config is YAML with one section of pipeline-wide settings (``pipeline:``, schema
:class:`PipelineSettings`) and one section per stage role, whose ``backend`` names a registry
entry and whose other keys are that backend's constructor arguments::

    pipeline: {name: classical, device: cpu}
    segmenter: {backend: grabcut, iterations: 5}
    matter: {backend: closed_form}

Overrides use dotted keys (``matter.backend=vitmatte``, or ``matter__backend`` as a Python
keyword). Stage keys are checked against the backend's signature, so a typo fails with a list
of the valid keys.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from layerkit.errors import ConfigError
from layerkit.registry import OPTIONAL_ROLES, ROLES, build, parameters, resolve


@dataclass
class PipelineSettings:
    """Pipeline-wide settings (the ``pipeline:`` section).

    Attributes:
        name: config name, for logs and saved configs.
        device: torch device for learned stages ("cpu", "cuda", "cuda:1", "auto").
        seed: seed for stochastic stages (GrabCut, diffusion samplers).
        max_pixels: refuse larger inputs (decompression-bomb guard).
        roi_margin: margin around the prompt's region, as a fraction of its larger side.
        roi_min_margin: smallest margin in pixels.
        coarse_side: long side of the downscaled full image used to locate an object given by
            points or text only, before the full-resolution pass on its region.
        consistent: re-solve F from C, α and the final B (and B where that F would leave [0, 1]) so
            that the stack recomposes the input.
        consistent_min_alpha: F is re-solved where α is at least this (below it the estimate
            is kept: dividing by a tiny α amplifies every error in B).
    """

    name: str = "custom"
    device: str = "cpu"
    seed: int = 0
    max_pixels: int = 100_000_000
    roi_margin: float = 0.25
    roi_min_margin: int = 24
    coarse_side: int = 512
    consistent: bool = True
    consistent_min_alpha: float = 0.001


_SETTINGS_KEYS = [f.name for f in dataclasses.fields(PipelineSettings)]


def config_dir(kind: str = "pipeline") -> Path:
    """Folder of the configs shipped inside the package (``pipeline`` or ``train``)."""
    return Path(str(resources.files("layerkit") / "configs" / kind))


def available_configs(kind: str = "pipeline") -> list[str]:
    return sorted(p.stem for p in config_dir(kind).glob("*.yaml"))


def read_yaml(name_or_path: str | os.PathLike, kind: str = "pipeline") -> dict[str, Any]:
    """Read a shipped config by name (``classical``) or a YAML file by path."""
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = config_dir(kind) / f"{name_or_path}.yaml"
        if not p.exists():
            raise ConfigError(f"unknown {kind} config {str(name_or_path)!r}; shipped configs: "
                              f"{', '.join(available_configs(kind))} (or give a path to a .yaml file)")
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    if not p.is_file():
        raise ConfigError(f"config {str(p)!r} is a folder, not a YAML file; give the path of a .yaml file")
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        data = OmegaConf.to_container(OmegaConf.load(p), resolve=True) or {}
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as e:
        raise ConfigError(f"config {str(p)!r} is not valid: {(str(e).splitlines() or [type(e).__name__])[0][:200]}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config {str(p)!r}: {e.strerror or e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {str(p)!r} must be a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """``"matter.band=12"`` → ``("matter.band", 12)`` (value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value (e.g. matter.backend=vitmatte)")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(cfg: dict[str, Any], overrides: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """Return a copy of ``cfg`` with dotted overrides applied.

    ``overrides`` is a mapping (``{"matter.backend": "vitmatte"}`` or ``{"matter__backend": ...}``)
    or a list of ``key=value`` strings. Changing a stage's ``backend`` drops the old backend's keys
    that the new one does not take.
    """
    import copy

    out = copy.deepcopy(cfg)
    items = [parse_override(s) for s in overrides] if isinstance(overrides, (list, tuple)) else list((overrides or {}).items())
    for key, value in items:
        parts = key.replace("__", ".").split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {key!r}: {part!r} is a value, not a section")
            node = child
        if parts[-1] == "backend" and node.get("backend") != value and len(parts) == 2 and parts[0] in ROLES:
            node.clear()
        node[parts[-1]] = value
    return out


def validate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check every section and key; returns a normalised config (every role present).

    Raises:
        ConfigError: unknown section, unknown key (valid keys listed), wrong type, unknown backend.
    """
    out: dict[str, Any] = {}
    for section in cfg:
        if section not in ("pipeline", *ROLES):
            raise ConfigError(f"unknown config section {section!r}; valid sections: pipeline, {', '.join(ROLES)}")
    if cfg.get("pipeline") is not None and not isinstance(cfg["pipeline"], dict):
        raise ConfigError(f"config section 'pipeline' must be a mapping of settings (key: value), got {cfg['pipeline']!r:.80}")
    settings = dict(cfg.get("pipeline") or {})
    for key, value in settings.items():
        if key not in _SETTINGS_KEYS:
            raise ConfigError(f"unknown key 'pipeline.{key}'; valid keys: {', '.join(_SETTINGS_KEYS)}")
        default = getattr(PipelineSettings, key)
        settings[key] = _coerce(f"pipeline.{key}", value, type(default))
    out["pipeline"] = settings
    for role in ROLES:
        section = cfg.get(role)
        if section is None or section == "none":
            section = {"backend": "none"}
        if isinstance(section, str):
            section = {"backend": section}
        if not isinstance(section, dict):
            raise ConfigError(f"section {role!r} must be a mapping with a 'backend' key")
        section = dict(section)
        backend = section.get("backend")
        if backend is None:
            raise ConfigError(f"section {role!r} has no 'backend'; set {role}.backend=NAME")
        if backend == "none":
            if role not in OPTIONAL_ROLES:
                raise ConfigError(f"{role} is required; it cannot be 'none'")
            if len(section) > 1:
                raise ConfigError(f"{role}.backend is 'none' but other keys are set: {sorted(set(section) - {'backend'})}")
        else:
            builder = resolve(role, str(backend))
            valid = parameters(builder)
            hints = _type_hints(builder)
            for key, value in section.items():
                if key == "backend":
                    continue
                if key not in valid:
                    raise ConfigError(f"unknown key '{role}.{key}' for {role} backend {backend!r}; valid keys: "
                                      f"{', '.join(['backend', *sorted(valid)])}")
                if value is None:
                    continue
                typ = hints.get(key)
                default = valid[key].default
                if typ is None and default is not None and default is not valid[key].empty:
                    typ = type(default)
                if typ is not None:
                    section[key] = _coerce(f"{role}.{key}", value, typ)
        out[role] = section
    return out


def _type_hints(builder: Any) -> dict[str, type]:
    """Plain scalar type of each constructor argument (``int | None`` → ``int``), where one is clear."""
    import typing

    target = builder.__init__ if isinstance(builder, type) else builder
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back to the defaults' types
        return {}
    out: dict[str, type] = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if len(args) == 1 and args[0] in (int, float, bool, str):
            out[name] = args[0]
    return out


def _coerce(key: str, value: Any, typ: type) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(value)
    if typ is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ is str and isinstance(value, str):
        return value
    if typ in (tuple, list) and isinstance(value, (list, tuple)):
        return typ(value)
    if typ in (int, float, str, tuple, list):
        raise ConfigError(f"{key} must be of type {typ.__name__}, got {value!r}")
    return value


def load_config(name_or_path: str | os.PathLike, overrides: Mapping[str, Any] | Sequence[str] | None = None) -> dict[str, Any]:
    """Read, override and validate a pipeline config."""
    return validate(apply_overrides(read_yaml(name_or_path), overrides))


def build_stages(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build every stage of a validated config (``None`` for ``backend: none``)."""
    stages = {}
    for role in ROLES:
        section = dict(cfg[role])
        backend = section.pop("backend")
        stages[role] = None if backend == "none" else build(role, backend, section)
    return stages


def dump_config(cfg: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a config dict as YAML (atomically)."""
    from layerkit.io.atomic import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(yaml.safe_dump(_plain(cfg), sort_keys=False))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ---------------------------------------------------------------------- config specs
# A *config spec* is a shipped config name or a YAML path, optionally followed by ``+OVERLAY``
# parts. An overlay is a partial pipeline config, ``layerkit/configs/overlay/OVERLAY.yaml`` (or a
# YAML path), applied on top of the base config exactly like dotted overrides (changing a stage's
# ``backend`` drops the old backend's keys): ``classical+hfa`` = ``classical.yaml`` with
# ``overlay/hfa.yaml`` on top.

def overlay_dir() -> Path:
    """Folder of the shipped overlays (``layerkit/configs/overlay``)."""
    return config_dir("overlay")


def available_overlays() -> list[str]:
    """Names of the shipped overlays."""
    d = overlay_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """``"classical+hfa+x"`` → ``("classical", ["hfa", "x"])``; an existing file path is kept whole.

    Raises:
        ConfigError: an empty part (``"classical+"``).
    """
    spec = spec.strip()
    if Path(spec).is_file():
        return spec, []
    parts = [p.strip() for p in spec.split("+")]
    if not parts or any(not p for p in parts):
        raise ConfigError(f"config spec {spec!r} is not valid; use NAME_OR_YAML[+OVERLAY...], e.g. classical+hfa")
    return parts[0], parts[1:]


def overlay_path(name: str, spec: str = "") -> Path:
    """Path of overlay ``name`` (a shipped overlay's name or a YAML path).

    Raises:
        ConfigError: no such overlay; the message lists the available ones.
    """
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"overlay file {name!r} does not exist")
        return p
    p = overlay_dir() / f"{name}.yaml"
    if not p.is_file():
        avail = ", ".join(available_overlays()) or "none shipped"
        raise ConfigError(f"unknown overlay {name!r}{f' in config spec {spec!r}' if spec else ''}; available overlays: "
                          f"{avail} (files layerkit/configs/overlay/NAME.yaml), or give a path to a .yaml file")
    return p


def flatten_overlay(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A partial config as dotted overrides, each section's ``backend`` first.

    ``{"refiner": {"backend": "hfa", "levels": 2}, "grounder": "none"}`` →
    ``{"refiner.backend": "hfa", "refiner.levels": 2, "grounder.backend": "none"}``.
    """
    out: dict[str, Any] = {}
    for section, body in cfg.items():
        if isinstance(body, Mapping):
            keys = sorted(body, key=lambda k: k != "backend")  # stable: backend first
            for k in keys:
                out[f"{section}.{k}"] = body[k]
        else:  # "refiner: none" / "matter: vitmatte" name the backend only
            out[f"{section}.backend"] = body
    return out


def spec_overrides(spec: str, overrides: Sequence[str] | Mapping[str, Any] = ()) -> tuple[str, dict[str, Any]]:
    """The base config and the ordered dotted overrides that a spec plus ``--set`` items mean.

    Later parts win: each overlay over the ones before it, user overrides over all overlays. A
    part that sets a stage's ``backend`` drops the earlier parts' keys of that stage, so that
    ``classical+hfa`` with ``refiner.backend=wavelet`` is plain ``classical``'s refiner, not a
    wavelet refiner handed HFA's ``checkpoint``.

    Returns:
        ``(base_name_or_path, overrides)``, ready for ``Pipeline.from_config``.
    """
    base, overlays = parse_spec(spec)
    merged: dict[str, Any] = {}

    def put(part: Mapping[str, Any] | Any) -> None:
        items = list(part.items()) if isinstance(part, Mapping) else list(part)
        for section in {k.split(".")[0] for k, _ in items if k.endswith(".backend")}:
            for key in [k for k in merged if k.split(".")[0] == section]:
                del merged[key]
        for k, v in items:
            merged.pop(k, None)
            merged[k] = v

    for name in overlays:
        put(flatten_overlay(read_yaml(str(overlay_path(name, spec)), kind="overlay")))
    put(overrides if isinstance(overrides, Mapping) else (parse_override(s) for s in overrides))
    merged.setdefault("pipeline.name", spec)
    return base, merged
