#!/usr/bin/env python
"""Multi-layer decomposition over a folder of images: resumable, one failure never stops the run.

Usage:
    python scripts/decompose_layers.py IMAGES_DIR --prompts prompts.jsonl -o OUT_DIR
    python scripts/decompose_layers.py IMAGES_DIR --auto --max-layers 8 -o OUT_DIR --format psd
    python scripts/decompose_layers.py multi3/ --pattern '*/composite.png' --id-from parent --auto -o stacks/

``prompts.jsonl`` holds one JSON object per line: ``{"image": ID, "objects": [...], "order": ...}``
where ID is the image's id (see ``--id-from``), its path relative to IMAGES_DIR or its file name,
``objects`` are records as in ``layerkit layers --prompts`` (box/boxes, point/points, labels, mask,
text, name) and ``order`` is optional (``auto``, ``given`` or indices front-most first).

Per image ID the stack goes to ``OUT_DIR/ID`` (folder), ``ID.psd`` or ``ID.ora`` and its report
to ``OUT_DIR/reports/ID.json``. An image whose stack exists is skipped (writes are atomic, so an
existing stack is a finished one): rerun the same command to resume. A failing image is logged
to ``OUT_DIR/failures.jsonl`` and stderr and the run goes on. ``OUT_DIR/summary.json`` sums up
the run. Exit code: 0 when every image succeeded (or was already done), 1 when some failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from layerkit.cli.common import MULTILAYER_CONFIG, HelpFormatter, add_pipeline_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("images", help="folder of images")
    p.add_argument("--prompts", default=None, help="JSON-lines file of objects per image")
    p.add_argument("--auto", action="store_true", help="images without prompts are decomposed automatically")
    p.add_argument("--pattern", default="*", help="glob (relative to IMAGES_DIR) selecting the images")
    p.add_argument("--id-from", choices=("stem", "parent"), default="stem",
                   help="image id: file name without suffix, or the name of its folder (for DIR/ID/composite.png)")
    p.add_argument("--order", default="auto", help="default order: auto, given")
    p.add_argument("--max-layers", type=int, default=20, help="most layers per image, background included (2..20)")
    p.add_argument("--format", choices=("folder", "psd", "ora"), default="folder", help="stack format")
    p.add_argument("--limit", type=int, default=None, help="process at most N images")
    p.add_argument("-o", "--output", required=True, help="output folder (created; reused to resume)")
    add_pipeline_args(p, MULTILAYER_CONFIG)
    return p.parse_args(argv)


def find_images(root: Path, pattern: str, id_from: str) -> list[tuple[str, Path]]:
    """``(id, path)`` of the images under ``root`` matching ``pattern``, sorted by id."""
    files = sorted(f for f in root.glob(pattern) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    out = [(f.parent.name if id_from == "parent" else f.stem, f) for f in files]
    ids = [i for i, _ in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SystemExit(f"decompose_layers: image ids are not unique ({dup[:5]}); use --id-from or --pattern")
    return out


def read_prompts(path: Path | None) -> dict[str, dict[str, Any]]:
    """JSON lines → ``{image key: record}`` (keys: the record's ``image`` field)."""
    if path is None:
        return {}
    table: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            table[str(rec["image"])] = rec
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"decompose_layers: {path}:{n} is not a valid record ({e}); expected {{\"image\": ..., \"objects\": [...]}}") from None
    return table


def target(out: Path, image_id: str, fmt: str) -> Path:
    return out / image_id if fmt == "folder" else out / f"{image_id}.{fmt}"


def process(pipe: Any, image_id: str, path: Path, rec: dict[str, Any] | None, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Decompose one image and write its stack and report; returns the report."""
    from layerkit.cli.layers import parse_order, prompts_from_records
    from layerkit.errors import PromptError
    from layerkit.io.atomic import atomic_path
    from layerkit.pipelines.sequential import peel_layers

    if rec is None and not args.auto:
        raise PromptError("no prompts for this image in --prompts (add --auto to decompose it automatically)")
    prompts, names = prompts_from_records(rec.get("objects", [])) if rec else ([], [])
    order = rec.get("order", args.order) if rec else args.order
    res = peel_layers(pipe, str(path), prompts or None, order=parse_order(order) if isinstance(order, str) else order,
                      max_layers=args.max_layers, names=names or None)
    if not any(o.status == "layer" for o in res.objects):
        raise PromptError("no object was found; nothing to layer")
    res.stack.save(target(out, image_id, args.format), overwrite=True)
    report = {"id": image_id, "image": str(path), **res.to_dict()}
    with atomic_path(out / "reports" / f"{image_id}.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from layerkit.cli.common import build_pipeline
    from layerkit.errors import LayerkitError
    from layerkit.io.atomic import atomic_path

    root, out = Path(args.images), Path(args.output)
    if not root.is_dir():
        print(f"decompose_layers: {root} is not a folder", file=sys.stderr)
        return 2
    images = find_images(root, args.pattern, args.id_from)[:args.limit]
    table = read_prompts(Path(args.prompts) if args.prompts else None)
    out.mkdir(parents=True, exist_ok=True)
    try:
        pipe = build_pipeline(args)
    except LayerkitError as e:
        print(f"decompose_layers: error: {e}", file=sys.stderr)
        return 2
    done = skipped = failed = 0
    seconds: list[float] = []
    t_start = time.perf_counter()
    for k, (image_id, path) in enumerate(images, 1):
        tag = f"[{k}/{len(images)}] {image_id}"
        if target(out, image_id, args.format).exists():
            skipped += 1
            print(f"{tag}: done before, skipped", file=sys.stderr, flush=True)
            continue
        rec = table.get(image_id) or table.get(str(path.relative_to(root))) or table.get(path.name)
        t0 = time.perf_counter()
        try:
            rep = process(pipe, image_id, path, rec, args, out)
        except Exception as e:  # one bad image must not stop the run
            failed += 1
            msg = str(e) if isinstance(e, LayerkitError) else f"{type(e).__name__}: {e}"
            with open(out / "failures.jsonl", "a") as f:
                f.write(json.dumps({"id": image_id, "image": str(path), "error": msg,
                                    "trace": None if isinstance(e, LayerkitError) else traceback.format_exc()}) + "\n")
            print(f"{tag}: FAILED: {msg}", file=sys.stderr, flush=True)
            continue
        dt = time.perf_counter() - t0
        done += 1
        seconds.append(dt)
        eta = (len(images) - k) * sum(seconds) / len(seconds)
        print(f"{tag}: {len(rep['layers'])} layers, PSNR {rep['recompose_psnr_db']} dB, {dt:.1f} s (ETA {eta / 60:.1f} min)",
              file=sys.stderr, flush=True)
    summary = {"images": len(images), "done": done, "skipped_done_before": skipped, "failed": failed,
               "mean_seconds": round(sum(seconds) / len(seconds), 3) if seconds else None,
               "wall_seconds": round(time.perf_counter() - t_start, 1)}
    with atomic_path(out / "summary.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
