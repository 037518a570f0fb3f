#!/usr/bin/env python
"""Fit the weights of the ``cues`` orderer (``layerkit/modules/orderer/cues.py``) on tuning stacks.

For every pair of objects in the ``layerkit make-dataset`` folders given, the antisymmetric cue
features of :func:`layerkit.modules.orderer.cues.pair_features` are computed on the first-pass
alphas that ``benchmarks/ordering.py`` cached (``CACHE/ID.npz``); pairs whose GT alphas overlap
are labelled by their GT depth order. A logistic regression without intercept (each pair added in
both argument orders; every weight but ``cover``'s held ``>= 0``) is fitted for several L2 strengths; the strength with
the best stack-grouped 5-fold cross-validated pairwise accuracy is refitted on all pairs and its
weights printed (paste them into ``IMAGE_WEIGHTS``, or with ``--base-only`` into ``WEIGHTS``).
Only the tuning folders are fitted on; ``--eval DATA=CACHE`` (repeatable) then scores the fitted
weights on other stacks (pairwise / whole, as ``benchmarks/ordering.py`` does) and, for comparison,
the shipped ones, in the same run.

Usage:
    python benchmarks/ordering.py tune/ -o bench_tune/            # caches bench_tune/alphas
    python benchmarks/ordering_fit.py tune/=bench_tune/alphas [more/=cache ...] -o fit.json [--base-only]
        [--eval unseen/=bench_unseen/alphas ...]

``--base-only`` fits the first ``cues.BASE_FEATURES`` features only (the previous orderer's cues).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from layerkit.errors import DataError, one_line_errors  # noqa: E402
from layerkit.evaluation.dataset import find_layer_samples  # noqa: E402
from layerkit.io.image import load_image  # noqa: E402
from layerkit.modules.orderer import cues  # noqa: E402
from layerkit.modules.orderer.evidence import object_box  # noqa: E402

CS = (0.03, 0.1, 0.3, 1.0, 3.0)


def features(data: Path, cache: Path, extra: bool = True) -> tuple[np.ndarray, list[str]]:
    """Per GT-overlapping pair ``(a below b)``: features of ``(a, b)`` (``a`` is behind) and the pair's stack.
    Without ``extra`` the features after the first ``cues.BASE_FEATURES`` are 0 (not measured)."""
    rows, groups = [], []
    for s in find_layer_samples(data):
        al = np.load(cache / f"{s.id}.npz")["alphas"].astype(np.float32)
        gt, img, prompts = s.ground_truth(), load_image(s.path / "composite.png"), s.prompts("box")
        for a in range(len(al)):
            for b in range(a + 1, len(al)):
                if float(np.minimum(gt[a + 1].alpha, gt[b + 1].alpha).sum()) > 0:
                    rows.append(cues.pair_features(img, al[a], al[b], object_box(al[a], prompts[a]),
                                                   object_box(al[b], prompts[b]), cues._prompt_box(prompts[a]),
                                                   cues._prompt_box(prompts[b]), extra))
                    groups.append(f"{data}:{s.id}")
    return np.array(rows), groups


#: features whose weight may take either sign; every other cue is evidence in its designed direction
#: (``> 0``: the first object is in front), so its weight is held ``>= 0`` — without that, cues that
#: move together on the fitting stacks get weights of opposite signs that do not carry to other objects
FREE_SIGN = ("cover",)


def fit(x: np.ndarray, c: float) -> np.ndarray:
    """Weights of a no-intercept, L2-regularised logistic regression of "first is in front" on ``±x``
    (all rows: first behind), each weight but :data:`FREE_SIGN`'s held ``>= 0`` (SciPy L-BFGS-B)."""
    from scipy.optimize import minimize

    xa = np.concatenate([x, -x])
    ya = np.concatenate([np.zeros(len(x)), np.ones(len(x))])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = xa @ w
        return (float(np.sum(np.logaddexp(0.0, z) - ya * z) + 0.5 / c * w @ w),
                xa.T @ (1.0 / (1.0 + np.exp(-z)) - ya) + w / c)

    free = {cues.FEATURES.index(n) for n in FREE_SIGN}
    bounds = [(None, None) if k in free else (0.0, None) for k in range(x.shape[1])]
    return minimize(loss, np.zeros(x.shape[1]), jac=True, bounds=bounds, method="L-BFGS-B").x


def _split(item: str) -> tuple[Path, Path]:
    data, sep, cache = item.partition("=")
    if not sep or not Path(cache).is_dir():
        raise DataError(f"{item!r} must be DATA=CACHE, CACHE the alpha folder that "
                         f"benchmarks/ordering.py wrote for DATA (OUT/alphas)")
    find_layer_samples(Path(data))  # a missing or malformed folder: one line
    return Path(data), Path(cache)


@one_line_errors("ordering_fit.py")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sets", nargs="+", help="DATA=CACHE: a make-dataset folder and its first-pass alpha cache")
    p.add_argument("--eval", action="append", default=[], metavar="DATA=CACHE",
                   help="stacks to score the fitted weights on (and the shipped ones), repeatable")
    p.add_argument("-o", "--output", type=Path, required=True, help="JSON with the weights and the CV figures")
    p.add_argument("--base-only", action="store_true", help=f"fit the first {cues.BASE_FEATURES} features only")
    args = p.parse_args(argv)
    sets, evals = [_split(i) for i in args.sets], [_split(i) for i in args.eval]
    xs, groups = [], []
    for data, cache in sets:
        x, g = features(data, cache, extra=not args.base_only)
        xs.append(x)
        groups += g
    x = np.concatenate(xs)
    feats = cues.FEATURES[:cues.BASE_FEATURES] if args.base_only else cues.FEATURES
    x = x[:, :len(feats)]
    names = sorted(set(groups))
    fold = {g: k % 5 for k, g in enumerate(np.random.default_rng(0).permutation(names))}
    f = np.array([fold[g] for g in groups])
    single = {n: {"right": float(np.mean(x[:, k] < 0)), "wrong": float(np.mean(x[:, k] > 0))}
              for k, n in enumerate(feats)}
    cv = {}
    for c in CS:
        s = np.zeros(len(x))
        for k in range(5):
            s[f == k] = x[f == k] @ fit(x[f != k], c)
        cv[c] = float(np.mean(s < 0))
    best = max(CS, key=lambda c: (cv[c], -c))
    w = fit(x, best)
    out = {"features": list(feats), "weights": [round(float(v), 3) for v in w], "C": best,
           "cv_pairwise": cv, "pairs": len(x), "stacks": len(names), "single_cue": single}
    if evals:
        from ordering import SEED, score

        fitted, shipped = cues.CueOrderer(weights=tuple(w)), cues.CueOrderer()
        out["eval"] = {str(d): {"fitted": score(d, c, fitted, SEED, None), "shipped": score(d, c, shipped, SEED, None)}
                       for d, c in evals}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1))
    for n, r in single.items():
        print(f"{n:12s} right {r['right']:.3f} wrong {r['wrong']:.3f}")
    print("CV pairwise by C:", {c: round(v, 3) for c, v in cv.items()})
    print(f"C={best} weights:", out["weights"])
    for d, r in out.get("eval", {}).items():
        f, sh = r["fitted"], r["shipped"]
        print(f"{d}: fitted pairwise {f['pairwise']:.3f} whole {f['whole']:.3f}; shipped pairwise "
              f"{sh['pairwise']:.3f} whole {sh['whole']:.3f} ({f['pairs']} pairs, {f['stacks']} stacks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
