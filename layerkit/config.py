"""Configs → validated plain dicts, for pipelines and training runs alike: the one place YAML is
read, merged and validated.

One mechanism, on OmegaConf:

1. **Compose** — a config *spec* ``NAME_OR_YAML[+OVERLAY...]`` plus overrides is a list of layers,
   merged in order: the file, each overlay, then the overrides (``matter.backend=vitmatte`` strings,
   a mapping, or ``matter__backend=...`` keywords). Within one layer the order of keys does not
   matter: a layer that switches a stage's ``backend`` first drops the keys earlier layers gave that
   stage, then applies all of its own keys, so ``trimapper.band_ratio=0.05 trimapper.backend=X`` and
   the reverse mean the same.
2. **Validate** — every section against an OmegaConf structured config (a dataclass,
   :mod:`layerkit.schema`): the pipeline settings against :class:`PipelineSettings`, each stage
   against a schema made from its backend's constructor signature (``schema_of``), a training run
   against ``TrainConfig``, whose
   ``trainer`` section is made from ``lightning.Trainer``'s own signature, so every Trainer argument
   passes through. Errors name the key, where it was set (file, overlay or override) and the valid
   choices.

A pipeline config::

    pipeline: {name: classical, device: cpu, seed: 0}
    segmenter: {backend: grabcut, iterations: 5}
    matter: {backend: closed_form}
"""

from __future__ import annotations

import dataclasses
import os
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from layerkit.errors import ConfigError
from layerkit.registry import OPTIONAL_ROLES, ROLE_ALIASES, ROLES, build, resolve
from layerkit.schema import hints, schema_of, structured


@dataclass
class PipelineSettings:
    """Pipeline-wide settings (the ``pipeline:`` section).

    Attributes:
        name: config name, for logs and saved configs.
        device: torch device for learned stages ("cpu", "cuda", "cuda:1", "auto").
        seed: seed of every stochastic stage (GrabCut's k-means, PatchMatch, diffusion samplers,
            the generator); set on each stage with ``manual_seed`` before every run.
        max_pixels: refuse larger inputs (decompression-bomb guard).
        roi_margin: margin around the prompt's region, as a fraction of its larger side.
        roi_min_margin: smallest margin in pixels.
        coarse_side: long side of the downscaled full image used to locate an object given by
            points or text only, before the full-resolution pass on its region.
        point_whole: with points only, segment once on the whole image (at the segmenter's own
            working size) and take that mask, instead of locating the object at ``coarse_side``
            and segmenting its region again (on in ``classical``, where ``segmenter.point_select`` chooses the
            click's extent and segments the region itself when no candidate is stable).
        consistent: re-solve F from C, α and the final B (and B where that F would leave [0, 1]) so
            that the stack recomposes the input; honoured by single- and multi-layer runs.
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
    point_whole: bool = False
    consistent: bool = True
    consistent_min_alpha: float = 0.001


# ---------------------------------------------------------------------- files
def config_dir(kind: str = "pipeline") -> Path:
    """Folder of the configs shipped inside the package (``pipeline``, ``train`` or ``overlay``)."""
    return Path(str(resources.files("layerkit") / "configs" / kind))


def available_configs(kind: str = "pipeline") -> list[str]:
    return sorted(p.stem for p in config_dir(kind).glob("*.yaml"))


def overlay_dir() -> Path:
    """Folder of the shipped overlays (``layerkit/configs/overlay``)."""
    return config_dir("overlay")


def available_overlays() -> list[str]:
    """Names of the shipped overlays."""
    d = overlay_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def config_path(name_or_path: str | os.PathLike, kind: str = "pipeline") -> Path:
    """The file of a shipped config name (``classical``) or a YAML path.

    Raises:
        ConfigError: no such shipped config (the shipped ones are listed), a missing file, a folder.
    """
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = (overlay_dir() if kind == "overlay" else config_dir(kind)) / f"{name_or_path}.yaml"
        if not p.exists():
            listed = available_overlays() if kind == "overlay" else available_configs(kind)
            raise ConfigError(f"unknown {kind} config {str(name_or_path)!r}; shipped {kind} configs: "
                              f"{', '.join(listed) or 'none'} (or give a path to a .yaml file)")
    if p.is_dir():
        raise ConfigError(f"config {str(p)!r} is a folder; give a .yaml file or a shipped config name")
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    return p


def read_yaml(name_or_path: str | os.PathLike, kind: str = "pipeline") -> dict[str, Any]:
    """Read a shipped config by name or a YAML file by path (``${...}`` resolved).

    Raises:
        ConfigError: see :func:`config_path`; YAML that does not parse or is not a mapping.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    p = config_path(name_or_path, kind)
    try:
        data = OmegaConf.to_container(OmegaConf.load(p), resolve=True) or {}
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError, OSError) as e:
        raise ConfigError(f"config {str(p)!r} is not valid: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {str(p)!r} must be a mapping of sections, got {type(data).__name__}")
    return data


def dump_config(cfg: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write a config as YAML (atomically)."""
    from layerkit.io.atomic import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(yaml.safe_dump(_plain(cfg), sort_keys=False))


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ---------------------------------------------------------------------- compose
def parse_override(item: str) -> tuple[str, Any]:
    """``"matter.band=12"`` → ``("matter.band", 12)`` (the value parsed as YAML)."""
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


Overrides = Mapping[str, Any] | Sequence[str] | None


def overrides_layer(overrides: Overrides) -> dict[str, Any]:
    """Dotted overrides (strings ``key=value`` or a mapping, ``__`` for ``.``) as a nested mapping.

    Raises:
        ConfigError: a malformed item, or a key that is both a value and a section.
    """
    items = ([parse_override(s) for s in overrides] if isinstance(overrides, (list, tuple))
             else list((overrides or {}).items()))
    out: dict[str, Any] = {}
    for key, value in items:
        parts = str(key).replace("__", ".").split(".")
        if any(not p for p in parts):
            raise ConfigError(f"override key {key!r} is not valid; use section.key=value")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {key!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


@dataclass
class Composed:
    """A merged, not yet validated config.

    Attributes:
        data: the sections.
        sources: dotted key (``"trimapper.band"``, or a section name) → where it was last set
            (a file path, ``overlay NAME``, or ``override``).
        base: the spec's base config (name or path).
    """

    data: dict[str, Any]
    sources: dict[str, str]
    base: str

    def source(self, key: str) -> str:
        section = key.split(".")[0]
        return self.sources.get(key) or self.sources.get(section) or "the config"


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """``"classical+hfa+x"`` → ``("classical", ["hfa", "x"])``; an existing file path is kept whole.

    Raises:
        ConfigError: an empty part (``"classical+"``).
    """
    spec = str(spec).strip()
    if Path(spec).is_file() or "+" not in spec:
        if not spec:
            raise ConfigError("config spec is empty; use NAME_OR_YAML[+OVERLAY...], e.g. classical+hfa")
        return spec, []
    parts = [p.strip() for p in spec.split("+")]
    if any(not p for p in parts):
        raise ConfigError(f"config spec {spec!r} is not valid; use NAME_OR_YAML[+OVERLAY...], e.g. classical+hfa")
    return parts[0], parts[1:]


def compose(spec: str | os.PathLike, overrides: Overrides = None, kind: str = "pipeline") -> Composed:
    """Merge a config spec and overrides (file → overlays → overrides) without validating.

    Args:
        spec: shipped name or YAML path, optionally ``+OVERLAY`` parts (a shipped overlay of
            ``layerkit/configs/overlay/`` or a YAML path).
        overrides: dotted overrides, order-independent among themselves.
        kind: ``pipeline`` or ``train``.

    Raises:
        ConfigError: unknown config or overlay, unreadable YAML, a section that is not a mapping.
    """
    base, overlays = parse_spec(os.fspath(spec))
    layers: list[tuple[str, dict[str, Any]]] = [(str(config_path(base, kind)), read_yaml(base, kind))]
    for name in overlays:
        layers.append((f"overlay {name}", read_yaml(name, "overlay")))
    if overrides:
        layers.append(("override", overrides_layer(overrides)))
    stage_sections = set(ROLES) | set(ROLE_ALIASES) if kind == "pipeline" else set()
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for section, body in layer.items():
            section = _current_name(section, source) if kind == "pipeline" else section
            if section in stage_sections:
                _merge_stage(data, sources, section, body, source)
            else:
                _merge_plain(data, sources, section, body, source)
    return Composed(data, sources, base)


def _current_name(section: str, source: str) -> str:
    new = ROLE_ALIASES.get(section)
    if new is None:
        return section
    warnings.warn(f"config section {section!r} ({source}) is now called {new!r}; the old name will be removed "
                  "in the next release", DeprecationWarning, stacklevel=4)
    return new


def _merge_stage(data: dict[str, Any], sources: dict[str, str], role: str, body: Any, source: str) -> None:
    if body is None or isinstance(body, str):
        body = {"backend": body or "none"}
    if not isinstance(body, Mapping):
        raise ConfigError(f"{source}: section {role!r} must be a mapping with a 'backend' key (or a backend name), "
                          f"got {body!r}")
    current = data.get(role)
    if "backend" in body and (current is None or body["backend"] != current.get("backend")):
        current = {}
        for key in [k for k in sources if k.startswith(f"{role}.")]:
            del sources[key]
    current = dict(current or {})
    for key, value in body.items():
        current[str(key)] = value
        sources[f"{role}.{key}"] = source
    data[role] = current
    sources.setdefault(role, source)


def _merge_plain(data: dict[str, Any], sources: dict[str, str], section: str, body: Any, source: str,
                 prefix: str = "") -> None:
    key = f"{prefix}{section}"
    if isinstance(body, Mapping) and isinstance(data.get(section, {}), dict):
        node = data.setdefault(section, {})
        sources.setdefault(key, source)
        for k, v in body.items():
            _merge_plain(node, sources, str(k), v, source, prefix=f"{key}.")
    else:
        data[section] = body
        sources[key] = source


# ---------------------------------------------------------------------- pipelines
def validate(composed: Composed) -> dict[str, Any]:
    """Validate a composed pipeline config: every section, key and value; every role present.

    Raises:
        ConfigError: unknown section, unknown key (valid keys listed), wrong type, unknown backend,
            a required role set to ``none``.
    """
    cfg = composed.data
    for section in cfg:
        if section not in ("pipeline", *ROLES):
            raise ConfigError(f"{composed.source(section)}: unknown config section {section!r}; valid sections: "
                              f"pipeline, {', '.join(ROLES)}")
    settings = cfg.get("pipeline") or {}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{composed.source('pipeline')}: section 'pipeline' must be a mapping of settings "
                          f"({', '.join(f.name for f in dataclasses.fields(PipelineSettings))}), got {settings!r}")
    out: dict[str, Any] = {"pipeline": structured(PipelineSettings, settings, "pipeline", composed)}
    for role in ROLES:
        section = dict(cfg.get(role) or {"backend": "none"})
        backend = section.pop("backend", None)
        if backend is None:
            raise ConfigError(f"{composed.source(role)}: section {role!r} has no 'backend'; set {role}.backend=NAME")
        backend = str(backend)
        if backend == "none":
            if role not in OPTIONAL_ROLES:
                raise ConfigError(f"{composed.source(role + '.backend')}: {role} is required; it cannot be 'none'")
            if section:
                raise ConfigError(f"{composed.source(role)}: {role}.backend is 'none' but other keys are set: "
                                  f"{', '.join(sorted(section))}")
            out[role] = {"backend": "none"}
            continue
        builder = resolve(role, backend)
        params = structured(schema_of(builder), section, role, composed, what=f"for {role} backend {backend!r}",
                            fill=False)
        declared = hints(builder)
        for key, value in params.items():  # constructors that declare tuples get tuples back
            if isinstance(value, list) and typing.get_origin(declared.get(key)) is tuple:
                params[key] = tuple(value)
        out[role] = {"backend": backend, **params}
    return out


def load_config(spec: str | os.PathLike, overrides: Overrides = None) -> dict[str, Any]:
    """Compose and validate a pipeline config (see the module docstring)."""
    composed = compose(spec, overrides, "pipeline")
    cfg = validate(composed)
    spec = os.fspath(spec)
    named_by_user = composed.sources.get("pipeline.name") == "override"
    if not named_by_user and not spec.endswith((".yaml", ".yml")) and (
            "+" in spec or cfg["pipeline"]["name"] == "custom"):
        cfg["pipeline"]["name"] = spec  # "classical+hfa": the spec names the pipeline
    return cfg


def build_stages(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Build every stage of a validated config (``None`` for ``backend: none``)."""
    stages = {}
    for role in ROLES:
        section = dict(cfg[role])
        backend = section.pop("backend")
        stages[role] = None if backend == "none" else build(role, backend, section)
    return stages
