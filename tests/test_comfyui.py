"""The ComfyUI nodes called as ComfyUI calls them, with ComfyUI-shaped tensors (IMAGE B×H×W×C, MASK B×H×W)."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from conftest import make_composite

from layerkit import LayerStack
from layerkit.errors import LayerkitError, PromptError
from layerkit.integrations import comfyui
from layerkit.integrations.comfyui.nodes import LayerkitDecompose, LayerkitLayers, LayerkitSaveLayers, parse_points


@pytest.fixture(scope="module")
def comp() -> dict[str, np.ndarray]:
    return make_composite(96, 128)


def _image(comp: dict[str, np.ndarray], batch: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.repeat(comp["image"][None], batch, axis=0))


def test_mappings_describe_every_node():
    mod = importlib.import_module("layerkit.integrations.comfyui")
    assert set(mod.NODE_CLASS_MAPPINGS) == set(mod.NODE_DISPLAY_NAME_MAPPINGS) == {
        "LayerkitDecompose", "LayerkitLayers", "LayerkitSaveLayers"}
    for cls in comfyui.NODE_CLASS_MAPPINGS.values():
        spec = cls.INPUT_TYPES()
        assert "required" in spec and callable(getattr(cls(), cls.FUNCTION))
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)


def test_decompose_box_returns_comfy_shapes_and_both_mask_conventions(comp):
    box = ",".join(str(int(v)) for v in comp["box"])
    fg, alpha, bg, transparency = LayerkitDecompose().run(_image(comp, 2), "classical", box=box)
    assert fg.shape == (2, 96, 128, 4) and bg.shape == (2, 96, 128, 3)
    assert alpha.shape == (2, 96, 128) and fg.dtype == torch.float32
    assert torch.allclose(transparency, 1 - alpha)
    gt = comp["alpha"] >= 0.5
    a = alpha[0].numpy() >= 0.5
    assert (a & gt).sum() / (a | gt).sum() > 0.85
    assert torch.allclose(fg[..., 3], alpha)


def test_decompose_mask_prompt_and_loadimage_convention(comp):
    gt = comp["alpha"] >= 0.5
    painted = torch.from_numpy(gt.astype(np.float32))[None]  # mask-editor convention: painted = 1
    _, alpha, _, _ = LayerkitDecompose().run(_image(comp), "classical", mask=painted)
    a = alpha[0].numpy() >= 0.5
    assert (a & gt).sum() / (a | gt).sum() > 0.9
    # an alpha-style mask (1 = transparent, as LoadImage gives for a cut-out) with invert_mask
    _, alpha2, _, _ = LayerkitDecompose().run(_image(comp), "classical", mask=1 - painted, invert_mask=True)
    assert torch.allclose(alpha, alpha2)


def test_decompose_points(comp):
    _, alpha, _, _ = LayerkitDecompose().run(_image(comp), "classical", points="64,48; 3,3,0")
    assert alpha[0, 48, 64] > 0.9 and alpha[0, 3, 3] < 0.1


def test_layers_and_save_psd_ora(comp, tmp_path):
    prompts = json.dumps([{"boxes": [comp["box"].tolist()], "name": "disc"}, {"points": [[10, 10]], "name": "corner"}])
    layers, alphas, names = LayerkitLayers().run(_image(comp), prompts, "classical+peel")
    assert layers.ndim == 4 and layers.shape[1:] == (96, 128, 4) and alphas.shape == layers.shape[:3]
    assert json.loads(names)[0] == "background" and "disc" in json.loads(names)
    for fmt in ("psd", "ora"):
        out = LayerkitSaveLayers().save(layers, "test", fmt, names=names, output_dir=str(tmp_path))
        path = out["result"][0]
        assert path.endswith(f"test_00001.{fmt}") and out["ui"]["text"] == [path]
        back = LayerStack.load(path)
        assert back.names == json.loads(names)
        assert np.abs(back[1].alpha - layers[1, ..., 3].numpy()).max() <= 1 / 255 + 1e-6
    again = LayerkitSaveLayers().save(layers, "test", "psd", output_dir=str(tmp_path))["result"][0]
    assert again.endswith("test_00002.psd")  # never overwrites an earlier save


def test_bad_inputs_raise_one_line_errors(comp, tmp_path):
    node = LayerkitDecompose()
    with pytest.raises(PromptError, match="IMAGE must be"):
        node.run(torch.zeros(1, 8, 8), "classical", box="0,0,4,4")
    with pytest.raises(PromptError, match="box"):
        node.run(_image(comp), "classical", box="1,2,3")
    with pytest.raises(PromptError, match="point"):
        parse_points("10,20,5")
    with pytest.raises(PromptError, match="MASK must be"):
        node.run(_image(comp), "classical", mask=torch.ones(1, 10, 10))
    with pytest.raises(PromptError, match="grounding stage"):
        node.run(_image(comp), "classical", text="the disc")
    with pytest.raises(PromptError, match="empty prompt"):
        node.run(_image(comp), "classical")
    with pytest.raises(LayerkitError, match="unknown"):
        node.run(_image(comp), "no_such_config", box="0,0,4,4")
    with pytest.raises(PromptError, match="not valid JSON"):
        LayerkitLayers().run(_image(comp), "[{", "classical+peel")
    with pytest.raises(PromptError, match="one image"):
        LayerkitLayers().run(_image(comp, 2), '[{"points": [[5, 5]]}]', "classical+peel")
    with pytest.raises(PromptError, match="N×H×W×4"):
        LayerkitSaveLayers().save(torch.zeros(4, 4), "x", "psd", output_dir=str(tmp_path))
