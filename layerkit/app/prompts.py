"""Prompts as JSON, for the API endpoints and the ComfyUI nodes (no Gradio needed)."""

from __future__ import annotations

import json
from typing import Any

from layerkit.errors import PromptError
from layerkit.types import Prompt

EXAMPLE = '[{"boxes": [[10, 20, 200, 300]], "name": "cat"}, {"points": [[300, 200]], "labels": [1]}]'


def prompt_from_json(text: str | dict | None) -> tuple[Prompt, str | None]:
    """``{"points", "labels", "boxes", "text", "name"}`` (JSON text or dict) → (Prompt, name).

    Raises:
        PromptError: not JSON, not an object, unknown keys, or an invalid prompt.
    """
    if isinstance(text, dict):
        d: Any = text
    else:
        try:
            d = json.loads(text or "")
        except json.JSONDecodeError as e:
            raise PromptError(f"prompt is not valid JSON ({e.msg}); e.g. {{\"boxes\": [[10, 20, 200, 300]]}}") from None
    if not isinstance(d, dict):
        raise PromptError("a prompt must be a JSON object such as {\"points\": [[250, 260]], \"labels\": [1]}")
    unknown = set(d) - {"points", "labels", "boxes", "text", "name"}
    if unknown:
        raise PromptError(f"unknown prompt key(s) {sorted(unknown)}; use points, labels, boxes, text, name")
    try:
        prompt = Prompt(points=d.get("points"), labels=d.get("labels"), boxes=d.get("boxes"), text=d.get("text"))
    except (TypeError, ValueError) as e:
        raise PromptError(f"invalid prompt {d}: {e}") from None
    return prompt, d.get("name")


def prompts_from_json(text: str | list | None) -> tuple[list[Prompt], list[str]]:
    """A JSON list of prompt objects → (prompts, names); unnamed ones become ``object_N``.

    Raises:
        PromptError: not JSON, not a non-empty list, or an invalid item.
    """
    if isinstance(text, list):
        items: Any = text
    else:
        try:
            items = json.loads(text or "")
        except json.JSONDecodeError as e:
            raise PromptError(f"prompts are not valid JSON ({e.msg}); give a list such as {EXAMPLE}") from None
    if not isinstance(items, list) or not items:
        raise PromptError(f"prompts must be a non-empty JSON list of prompt objects, such as {EXAMPLE}")
    parsed = [prompt_from_json(d) for d in items]
    return [p for p, _ in parsed], [n or f"object_{i + 1}" for i, (_, n) in enumerate(parsed)]
