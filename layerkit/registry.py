"""The flat stage registry: ``role → {backend name → "module:Class"}``.

One dict, no scopes: jump-to-definition works on every entry. A backend name that is not listed
may be a dotted import path (``my_pkg.stages:MySegmenter``); the error for an unknown name lists
the valid ones. Builders are imported lazily, so heavy backends (transformers, diffusers) cost
nothing until used. The backend ``none`` leaves an optional stage out.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from layerkit.errors import ConfigError

ROLES = ("generator", "grounder", "segmenter", "trimapper", "matter", "decomposer", "refiner", "multilayer",
         "proposer", "orderer", "effects", "completion")
#: Roles a pipeline can run without (``backend: none``).
OPTIONAL_ROLES = ("generator", "grounder", "refiner", "multilayer", "proposer", "orderer", "effects", "completion")
#: Old config section names → today's (accepted with a DeprecationWarning for one release).
ROLE_ALIASES: dict[str, str] = {}
#: Old module paths of the stage folders (before each folder was named like its role) → today's;
#: a dotted backend path in an older saved config still resolves, with a DeprecationWarning.
MODULE_ALIASES: dict[str, str] = {
    f"layerkit.modules.{old}.": f"layerkit.modules.{new}." for old, new in (
        ("generation", "generator"), ("grounding", "grounder"), ("segmentation", "segmenter"),
        ("trimap", "trimapper"), ("matting", "matter"), ("decomposition", "decomposer"),
        ("refinement", "refiner"), ("proposal", "proposer"), ("ordering", "orderer"))}

REGISTRY: dict[str, dict[str, str]] = {
    "generator": {
        "diffusers": "layerkit.modules.generator.diffusers_t2i:DiffusersGenerator",
        "diffusers_layers": "layerkit.modules.generator.diffusers_inpaint:DiffusersLayerGenerator",  # + inpaint (LASAGNA modes)
    },
    "grounder": {
        "grounding_dino": "layerkit.modules.grounder.grounding_dino:GroundingDinoGrounder",
        "owlv2": "layerkit.modules.grounder.owlv2:Owlv2Grounder",
    },
    "segmenter": {
        "grabcut": "layerkit.modules.segmenter.grabcut:GrabCutSegmenter",
        "sam": "layerkit.modules.segmenter.sam:SamSegmenter",
        "sam_hf": "layerkit.modules.segmenter.sam_hf:HFSamSegmenter",
    },
    "trimapper": {
        "morphology": "layerkit.modules.trimapper.morphology:MorphologyTrimapper",
        "transparency": "layerkit.modules.trimapper.transparency:TransparencyTrimapper",
    },
    "matter": {
        "closed_form": "layerkit.modules.matter.closed_form:ClosedFormMatter",
        "vitmatte": "layerkit.modules.matter.vitmatte:VitMatteMatter",
    },
    "decomposer": {
        "classical": "layerkit.modules.decomposer.classical:ClassicalDecomposer",
        "fbdd": "layerkit.modules.decomposer.fbdd:FBDDDecomposer",
        "reflayer": "layerkit.modules.decomposer.reflayer:RefLayerDecomposer",
    },
    "refiner": {
        "wavelet": "layerkit.modules.refiner.wavelet:WaveletRefiner",
        "hfa": "layerkit.modules.refiner.hfa:HFARefiner",
    },
    # image → a whole stack in one call (Qwen-Image-Layered); used by Pipeline.layers(auto=True)
    "multilayer": {
        "qwen_layered": "layerkit.modules.multilayer.qwen_layered:QwenLayeredDecomposer",
    },
    # image → object candidates, for Pipeline.layers() without prompts
    "proposer": {
        "saliency": "layerkit.modules.proposer.saliency:SaliencyProposer",
        "grounded": "layerkit.modules.proposer.grounded:GroundedProposer",
    },
    # objects segmented on one image → front-to-back order, for Pipeline.layers(order="auto")
    "orderer": {
        "occlusion": "layerkit.modules.orderer.evidence:OcclusionOrderer",
        "cues": "layerkit.modules.orderer.cues:CueOrderer",
    },
    # (image, alpha, F, B) → object layer with its cast shadow / reflection, cleaned B (LASAGNA)
    "effects": {
        "shadow_reflection": "layerkit.modules.effects.shadow_reflection:ShadowReflectionEffects",
    },
    # finished stack → stack with each layer's hidden part completed; used by Pipeline.layers
    "completion": {
        "exemplar": "layerkit.modules.completion.exemplar:ExemplarCompleter",
    },
}


def resolve(role: str, backend: str) -> Callable[..., Any]:
    """Return the builder (class or function) of ``backend`` for ``role``.

    Raises:
        ConfigError: unknown role, unknown backend name (the message lists the valid names), or a
            dotted path that cannot be imported.
    """
    if role not in REGISTRY:
        raise ConfigError(f"unknown stage role {role!r}; valid roles: {', '.join(ROLES)}")
    target = REGISTRY[role].get(backend)
    if target is None:
        if ":" not in backend and "." not in backend:
            valid = sorted(REGISTRY[role]) + (["none"] if role in OPTIONAL_ROLES else [])
            raise ConfigError(f"unknown {role} backend {backend!r}; valid names: {', '.join(valid)} "
                              "(or a dotted import path such as 'my_pkg.module:MyClass')")
        target = backend
        for prefix, new in MODULE_ALIASES.items():
            if target.startswith(prefix):
                import warnings

                target = new + target[len(prefix):]
                warnings.warn(f"{role} backend {backend!r}: the module moved; use {target!r} (the old path is removed "
                              "in the next release)", DeprecationWarning, stacklevel=3)
    module_name, _, attr = target.partition(":") if ":" in target else target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"cannot import {role} backend {backend!r} ({module_name}): {e}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{module_name} has no attribute {attr!r} (from {role} backend {backend!r})") from None


def parameters(builder: Callable[..., Any], exclude: tuple[str, ...] | list[str] = ()) -> dict[str, inspect.Parameter]:
    """Keyword parameters a builder accepts (its config keys), less ``exclude``."""
    sig = inspect.signature(builder)
    return {n: p for n, p in sig.parameters.items()
            if n not in ("self", *exclude) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def build(role: str, backend: str, params: dict[str, Any] | None = None) -> Any:
    """Build a stage from its backend name and keyword parameters (the stage records them).

    Raises:
        ConfigError: unknown backend, a key the backend does not take (valid keys listed), or a
            value the backend refuses (its constructor's ``ValueError``, which names the key).
    """
    params = dict(params or {})
    builder = resolve(role, backend)
    valid = parameters(builder)
    for key in params:
        if key not in valid:
            raise ConfigError(f"unknown key '{role}.{key}' for {role} backend {backend!r}; valid keys: "
                              f"{', '.join(['backend', *sorted(valid)])}")
    try:
        stage = builder(**params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot build {role} backend {backend!r}: {e}") from None
    return stage


def backend_name(role: str, cls: type) -> str:
    """The registry name of ``cls`` for ``role``, else its import path ``module:Qualname``."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    for name, entry in REGISTRY.get(role, {}).items():
        if entry == target:
            return name
    return target
