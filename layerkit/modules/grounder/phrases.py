"""Text-side and result-side glue shared by the grounders.

* The foreground phrase ``T_F`` of LayeringDiff is given either as a string or as the word
  indices ``I_F`` into the full prompt ``T``: :func:`foreground_phrase` turns either (or
  nothing) into the phrase a grounder looks for; :func:`indices_of_phrase` goes the other way.
* :func:`grounding_caption` writes a phrase the way Grounding DINO was trained on (lower case,
  ``"."``-separated, ending with ``"."``); :func:`split_queries` makes one query per phrase for
  OWLv2.
* :func:`to_detections` turns raw boxes into :class:`~layerkit.modules.base.Detections`:
  clipped to the image, boxes under a pixel dropped, best first, duplicates removed by NMS.

Words are maximal runs of letters/digits, with inner apostrophes or hyphens
(``"sun-lit"``, ``"dog's"``); punctuation is not a word.

Example:
    >>> words("A bird flying at sunset over the mountains.")
    ['A', 'bird', 'flying', 'at', 'sunset', 'over', 'the', 'mountains']
    >>> foreground_phrase("A bird flying at sunset over the mountains", [0, 1, 2])
    'A bird flying'
    >>> indices_of_phrase("A bird flying at sunset", "bird flying")
    [1, 2]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from layerkit.errors import PromptError
from layerkit.modules.base import Detections

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
#: Words that end the subject phrase when no foreground is given ("A bird flying | at sunset").
BREAK_WORDS = frozenset(
    "at over in on under with near behind beside above below across against along among around by from into "
    "inside through toward towards onto upon beneath between during while within without underneath next atop amid "
    "amidst alongside beyond outside".split())


def words(text: str) -> list[str]:
    """The words of ``text`` in order (see the module docstring for what a word is)."""
    return _WORD.findall(text)


def phrase_from_indices(text: str, indices: Sequence[int]) -> str:
    """Join the words of ``text`` at ``indices`` (0-based, taken in increasing order).

    Raises:
        PromptError: no index, a repeated index, or an index outside ``[0, len(words))``.
    """
    w = words(text)
    idx = [int(i) for i in indices]
    if not idx:
        raise PromptError("the foreground word indices are empty; give at least one index such as 0,1")
    if len(set(idx)) != len(idx):
        raise PromptError(f"foreground word indices {idx} repeat an index")
    bad = [i for i in idx if not 0 <= i < len(w)]
    if bad:
        raise PromptError(f"foreground word index {bad[0]} is outside the prompt's {len(w)} words "
                          f"(0..{len(w) - 1}: {' '.join(f'{k}:{x}' for k, x in enumerate(w))})")
    return " ".join(w[i] for i in sorted(idx))


def indices_of_phrase(text: str, phrase: str) -> list[int]:
    """Word indices ``I_F`` of the first occurrence of ``phrase`` in ``text`` (case-insensitive).

    Raises:
        PromptError: ``phrase`` has no word or does not occur in ``text`` as consecutive words.
    """
    w = [x.casefold() for x in words(text)]
    p = [x.casefold() for x in words(phrase)]
    if not p:
        raise PromptError(f"foreground phrase {phrase!r} has no word")
    for start in range(len(w) - len(p) + 1):
        if w[start:start + len(p)] == p:
            return list(range(start, start + len(p)))
    raise PromptError(f"foreground phrase {phrase!r} does not occur in the prompt {text!r}; "
                      "use words of the prompt or give word indices")


def default_foreground(text: str) -> str:
    """The subject phrase of ``text``: the words of its first clause up to the first break word.

    Clauses are separated by ``,``, ``;``, ``:`` or ``.``; a clause that starts with a
    :data:`BREAK_WORDS` word ("On a table") is passed over, so
    ``"A bird flying at sunset over the mountains"`` → ``"A bird flying"`` and
    ``"On a table, a red apple"`` → ``"a red apple"``. When every clause starts with a break
    word, the first clause is used whole.

    Raises:
        PromptError: ``text`` has no word.
    """
    clauses = [w for w in (words(part) for part in re.split(r"[.,;:\n]+", text)) if w]
    if not clauses:
        raise PromptError(f"prompt {text!r} has no word")
    for w in clauses:
        if w[0].casefold() in BREAK_WORDS:
            continue
        out = [w[0]]
        for x in w[1:]:
            if x.casefold() in BREAK_WORDS:
                break
            out.append(x)
        return " ".join(out)
    return " ".join(clauses[0])


def foreground_phrase(text: str, foreground: str | Sequence[int] | None = None) -> str:
    """The phrase to ground in an image generated from ``text``.

    Args:
        text: the full prompt ``T``.
        foreground: the phrase ``T_F`` itself, its word indices ``I_F`` into ``text``, or None
            for :func:`default_foreground`.

    Raises:
        PromptError: empty phrase, bad indices, or a prompt without words.
    """
    if foreground is None:
        return default_foreground(text)
    if isinstance(foreground, str):
        phrase = " ".join(words(foreground))
        if not phrase:
            raise PromptError(f"foreground phrase {foreground!r} has no word")
        return phrase
    return phrase_from_indices(text, list(foreground))


def grounding_caption(text: str) -> str:
    """Grounding DINO's caption form: ``"The Bird , a lens"`` → ``"the bird. a lens."``.

    Commas, semicolons and periods separate phrases; every phrase ends with ``"."``.
    """
    return " ".join(f"{q.lower()}." for q in split_queries(text))


def split_queries(text: str) -> list[str]:
    """One query per phrase: ``"glass. lens, water"`` → ``["glass", "lens", "water"]``.

    Raises:
        PromptError: ``text`` holds no phrase.
    """
    out = [" ".join(words(part)) for part in re.split(r"[.,;\n]+", text)]
    out = [q for q in out if q]
    if not out:
        raise PromptError(f"text prompt {text!r} holds no phrase to look for")
    return out


def detector_forward(processor: Any, model: Any, image: np.ndarray, device: Any, dtype: Any, text: Any) -> tuple[Any, Any]:
    """Run a transformers open-vocabulary detector on one image.

    Args:
        processor: the model's processor.
        model: the detection model (Grounding DINO, OWLv2).
        image: ``H×W×3`` float32 RGB in ``[0, 1]``.
        device: torch device of the model.
        dtype: torch dtype of the model's pixel input.
        text: the processor's ``text`` argument (a caption or a list of queries).

    Returns:
        ``(outputs, inputs)``; ``outputs.logits`` and ``outputs.pred_boxes`` are float32.
    """
    import torch

    from layerkit.io.image import to_pil

    inputs = processor(images=to_pil(image), text=text, return_tensors="pt").to(device)
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    with torch.inference_mode():
        out = model(**inputs)
    out.logits = out.logits.float()
    out.pred_boxes = out.pred_boxes.float()
    return out, inputs


def to_detections(boxes: np.ndarray, scores: np.ndarray, labels: Sequence[str], size: tuple[int, int],
                  nms_iou: float = 0.7, max_detections: int = 20, min_size: float = 1.0) -> Detections:
    """Clean raw detections: clip, drop boxes under 1 px, sort by score, class-agnostic NMS, cap.

    Args:
        boxes: ``N×4`` xyxy pixel boxes (may reach outside the image).
        scores: ``N`` confidences in ``[0, 1]``.
        labels: ``N`` phrases.
        size: ``(height, width)`` of the image.
        nms_iou: a box overlapping a better one by more than this IoU is dropped (``>= 1``: no NMS).
        max_detections: keep at most this many.
        min_size: drop boxes narrower or lower than this (pixels, after clipping).

    Returns:
        :class:`Detections`, best first, float32 boxes inside ``[0, w] × [0, h]``.
    """
    h, w = size
    b = np.clip(np.asarray(boxes, np.float64).reshape(-1, 4), 0, [w, h, w, h])
    s = np.asarray(scores, np.float64).reshape(-1)
    if len(b) != len(s) or len(labels) != len(s):
        raise ValueError(f"boxes ({len(b)}), scores ({len(s)}) and labels ({len(labels)}) must have one entry per detection")
    keep = np.flatnonzero((b[:, 2] - b[:, 0] >= min_size) & (b[:, 3] - b[:, 1] >= min_size))
    keep = keep[np.argsort(-s[keep], kind="stable")]
    if nms_iou < 1 and len(keep) > 1:
        import torch
        from torchvision.ops import nms

        kept = nms(torch.from_numpy(b[keep]), torch.from_numpy(s[keep]), float(nms_iou)).numpy()
        keep = keep[np.sort(kept)]
    keep = keep[:max_detections]
    return Detections(boxes=b[keep].astype(np.float32), scores=s[keep].astype(np.float32),
                      labels=[str(labels[i]) for i in keep])
