"""Occlusion ordering (layerkit/modules/orderer/occlusion.py): the continuation cue, the ranking, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.modules.orderer.evidence import object_box
from layerkit.modules.orderer.occlusion import continuation_score, occlusion_order, pair_score, rank, split_contested

H, W = 80, 120


def scene() -> tuple[list[np.ndarray], np.ndarray]:
    """A disc with its right part behind a square, a bar far away; alphas of the visible parts, image."""
    yy, xx = np.mgrid[:H, :W]
    disc = ((xx - 40) ** 2 + (yy - 40) ** 2 <= 22 ** 2).astype(np.float32)
    square = ((xx >= 50) & (xx < 80) & (yy >= 25) & (yy < 60)).astype(np.float32)
    bar = ((xx >= 95) & (xx < 115) & (yy >= 5) & (yy < 75)).astype(np.float32)
    image = np.zeros((H, W, 3), np.float32)
    image[disc > 0] = (0.9, 0.3, 0.1)
    image[square > 0] = (0.1, 0.2, 0.9)
    image[bar > 0] = (0.2, 0.8, 0.2)
    return [disc * (1 - square), square, bar], image


def test_continuation_points_at_the_object_behind() -> None:
    (disc, square, _), _ = scene()
    assert continuation_score(square > 0.5, disc > 0.5) > 0.5       # the disc continues behind the square
    assert continuation_score(disc > 0.5, square > 0.5) < -0.5      # antisymmetric
    empty = np.zeros_like(disc, bool)
    assert continuation_score(empty, disc > 0.5) == 0.0             # no evidence


@pytest.mark.parametrize("perm", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_order_puts_the_occluder_first_whatever_the_given_order(perm: tuple[int, int, int]) -> None:
    alphas, image = scene()
    a = [alphas[i] for i in perm]
    order = occlusion_order(a, [object_box(x) for x in a], image)
    pos = {perm[k]: r for r, k in enumerate(order)}
    assert pos[1] < pos[0]                                          # square before disc
    assert sorted(order) == [0, 1, 2]


def test_swallowed_occluder_is_split_by_colour() -> None:
    (disc, square, _), image = scene()
    swallowing = np.maximum(disc, square * (np.mgrid[:H, :W][1] < 62))   # the disc's mask took part of the square
    si, sj = split_contested(image, swallowing > 0.5, square > 0.5)
    assert not (si & sj).any() and sj.sum() == (square > 0.5).sum()
    assert pair_score(square, swallowing, object_box(square), object_box(swallowing), image) > 0


def test_rank_is_the_best_agreeing_permutation_and_greedy_above_the_limit() -> None:
    s = np.array([[0, -1, 0.2], [1, 0, 0.5], [-0.2, -0.5, 0]])
    assert rank(s) == [1, 0, 2]
    assert rank(np.zeros((3, 3))) == [0, 1, 2]                      # ties keep the given order
    n = 9
    big = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            big[i, j] = np.sign(j - i)                              # i in front of every later j
    assert rank(big) == list(range(n))


def test_bad_input() -> None:
    alphas, image = scene()
    with pytest.raises(ValueError, match="alphas but"):
        occlusion_order(alphas, [None], image)
