"""The measured stages of ``benchmarks/gpu.py``: one function per layerkit stage, each building
its random network(s) (:mod:`gpu_models`), loading them through the layerkit stage class and
timing rows with :class:`gpu_harness.Bench`. The training-step stages are in :mod:`gpu_train`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gpu_harness import Bench, n_params, pipe_modules, test_image
from gpu_models import (
    build_fbdd,
    build_grounding_dino,
    build_hfa,
    build_owlv2,
    build_sam_hf,
    build_sd2,
    build_sdxl,
    build_segment_anything,
    build_tiny_segment_anything,
    build_vitmatte,
)
from gpu_train import stage_fbdd_train, stage_hfa_train

PROMPT = "A bird flying at sunset over the mountains"
GROUNDING_TEXT = "a bird flying"
OWL_TEXT = "a bird. a cloud"


# ================================================================================================ stages
def stage_generator(b: Bench, stage: str) -> None:
    """SDXL (or SD2) through ``DiffusersGenerator``: UNet step, VAE decode, 1-step and N-step calls, CPU offload."""
    from layerkit.errors import LayerkitError
    from layerkit.modules.generator.diffusers_t2i import DiffusersGenerator

    args = b.args
    res = b.res(args.resolution, 64)
    kind = args.generator
    with b.tempdir(stage) as tmp:
        def build_save() -> None:
            pipe = (build_sdxl if kind == "sdxl" else build_sd2)(b.tiny, b.build_device, tmp / "tok")
            pipe.to(dtype=b.save_dtype)
            pipe.save_pretrained(tmp / "model")
        b.timed_load(stage, f"built random {kind} and saved it", build_save)
        b.free()
        gen = DiffusersGenerator(model=str(tmp / "model"), steps=args.gen_steps, guidance_scale=5.0, dtype=b.dtype).to(b.device)
        pipe, load_s = b.timed_load(stage, "loaded through DiffusersGenerator", lambda: gen.loaded)
        dt = pipe.unet.dtype
        total = n_params(*pipe_modules(pipe))
        lk = f"layerkit: DiffusersGenerator(model=DIR) [{type(pipe).__name__}]"
        state = {"nonfinite": False}

        def call() -> None:
            try:
                gen(PROMPT, height=res, width=res, seed=0)
            except LayerkitError as e:  # random weights may overflow; the whole pipeline has run by then
                if "non-finite" not in str(e):
                    raise
                state["nonfinite"] = True

        # one denoising step of the UNet (classifier-free guidance: batch 2)
        f = pipe.vae_scale_factor
        g = torch.Generator().manual_seed(0)
        lat = torch.randn(2, 4, res // f, res // f, generator=g).to(b.device, dt)
        seq = pipe.tokenizer.model_max_length
        ehs = torch.randn(2, seq, pipe.unet.config.cross_attention_dim, generator=g).to(b.device, dt)
        kw: dict[str, Any] = {}
        if kind == "sdxl":
            kw["added_cond_kwargs"] = {
                "text_embeds": torch.randn(2, pipe.text_encoder_2.config.projection_dim, generator=g).to(b.device, dt),
                "time_ids": torch.tensor([[res, res, 0, 0, res, res]] * 2, dtype=dt, device=b.device)}
        t = torch.tensor(500, device=b.device)

        def unet_step() -> None:
            with torch.inference_mode():
                pipe.unet(lat, t, encoder_hidden_states=ehs, **kw)

        b.row(stage, f"UNet step {res}² (CFG batch 2)", unet_step, path="raw: pipe.unet forward", dtype=dt,
              params=n_params(pipe.unet), load_s=load_s)
        z = lat[:1] / pipe.vae.config.scaling_factor

        def vae_decode() -> None:
            with torch.inference_mode():
                pipe.vae.decode(z)

        b.row(stage, f"VAE decode {res}²", vae_decode, path="raw: pipe.vae.decode", dtype=pipe.vae.dtype,
              params=n_params(pipe.vae))
        gen.steps = 1
        b.row(stage, f"{res}², 1 step (text enc + 1 step + decode)", call, path=lk, dtype=dt, params=total)
        gen.steps = args.gen_steps
        r = b.row(stage, f"{res}², {args.gen_steps} steps, guidance 5", call, path=lk, dtype=dt, params=total)
        if state["nonfinite"]:
            r["note"] = "output non-finite (random weights); timed to the end of the pipeline"
        del pipe, gen, call, unet_step, vae_decode, lat, ehs, kw, z
        b.free()
        if b.cuda and not args.no_offload:
            import importlib.util

            if importlib.util.find_spec("accelerate") is None:
                b.add({"stage": stage, "setting": "cpu_offload", "error": "accelerate is not installed"})
                return
            gen = DiffusersGenerator(model=str(tmp / "model"), steps=args.gen_steps, guidance_scale=5.0, dtype=b.dtype,
                                     cpu_offload=True).to(b.device)
            pipe, load_s = b.timed_load(stage, "loaded with cpu_offload", lambda: gen.loaded)

            def call_off() -> None:
                try:
                    gen(PROMPT, height=res, width=res, seed=0)
                except LayerkitError as e:
                    if "non-finite" not in str(e):
                        raise

            b.row(stage, f"{res}², {args.gen_steps} steps, cpu_offload", call_off, path=lk + " cpu_offload=true",
                  dtype=dt, params=total, min_runs=2, load_s=load_s)
            del pipe, gen


def _detector_rows(b: Bench, stage: str, cls: Any, folder: Path, text: str, dtypes: list[str], kw: dict[str, Any]) -> None:
    from layerkit.modules.grounder.phrases import detector_forward, grounding_caption, split_queries

    h, w = (96, 128) if b.tiny else (b.args.resolution, b.args.resolution)  # tiny: the tests' size
    image, _ = test_image(h, w)
    for dt in dtypes:
        g = cls(str(folder), dtype=dt, **kw).to(b.device)
        parts, load_s = b.timed_load(stage, f"loaded through {cls.__name__} ({dt})", lambda: g.loaded)
        model, proc = parts["model"], parts["processor"]
        params = n_params(model)
        b.row(stage, f"{h}×{w} input, call (preprocess + forward + boxes)", lambda: g(image, text),
              path=f"layerkit: {cls.__name__}(DIR)", dtype=g.torch_dtype, params=params, load_s=load_s)
        query = grounding_caption(text) if cls.__name__.startswith("Grounding") else [split_queries(text)]
        _, inputs = detector_forward(proc, model, image, g.device, g.torch_dtype, query)
        side = tuple(inputs["pixel_values"].shape[-2:])

        def fwd() -> None:
            with torch.inference_mode():
                model(**inputs)

        b.row(stage, f"forward at {side[0]}×{side[1]} px", fwd, path="raw: model forward", dtype=g.torch_dtype, params=params)
        del g, parts, model, proc, inputs, fwd
        b.free()


def stage_grounding_dino(b: Bench, stage: str) -> None:
    """Grounding DINO (base by default) through ``GroundingDinoGrounder``: fp32 (the config default) and --dtype."""
    from layerkit.modules.grounder.grounding_dino import GroundingDinoGrounder

    with b.tempdir(stage) as tmp:
        name = "tiny-test" if b.tiny else b.args.gdino
        b.save_random(stage, f"built random grounding-dino-{name} and saved it",
                      lambda: build_grounding_dino(b.tiny, b.build_device, tmp / "tok", b.args.gdino), tmp / "model")
        dtypes = list(dict.fromkeys(["float32", b.dtype]))
        _detector_rows(b, stage, GroundingDinoGrounder, tmp / "model", GROUNDING_TEXT, dtypes,
                       dict(box_threshold=0.3, text_threshold=0.25))


def stage_owlv2(b: Bench, stage: str) -> None:
    """OWLv2 base/16 (960 px) through ``Owlv2Grounder``."""
    from layerkit.modules.grounder.owlv2 import Owlv2Grounder

    with b.tempdir(stage) as tmp:
        b.save_random(stage, "built random owlv2 and saved it", lambda: build_owlv2(b.tiny, b.build_device, tmp / "tok"),
                      tmp / "model")
        _detector_rows(b, stage, Owlv2Grounder, tmp / "model", OWL_TEXT, [b.dtype], dict(box_threshold=0.15))


def stage_sam_hf(b: Bench, stage: str) -> None:
    """SAM ViT-H (transformers) through ``HFSamSegmenter``: box call, image encoder, mask decoder."""
    from layerkit.modules.segmenter.sam_hf import HFSamSegmenter
    from layerkit.types import Prompt

    res = b.res(1024, 64)
    image, _ = test_image(res, res)
    box = [res * 0.25, res * 0.25, res * 0.75, res * 0.75]
    with b.tempdir(stage) as tmp:
        b.save_random(stage, "built random SAM ViT-H (transformers) and saved it",
                      lambda: build_sam_hf(b.tiny, b.build_device), tmp / "model")
        seg = HFSamSegmenter(str(tmp / "model"), dtype=b.dtype).to(b.device)
        parts, load_s = b.timed_load(stage, "loaded through HFSamSegmenter", lambda: seg.loaded)
        model, proc = parts["model"], parts["processor"]
        dt = seg.torch_dtype
        lk = "layerkit: HFSamSegmenter(DIR)"
        b.row(stage, f"{res}², box prompt (encoder + decoder + masks)", lambda: seg(image, Prompt(boxes=[box])), path=lk,
              dtype=dt, params=n_params(model), load_s=load_s)
        b.row(stage, f"{res}², 1 click, 3 masks", lambda: seg(image, Prompt(points=[[res // 2, res // 2]])), path=lk,
              dtype=dt, params=n_params(model))
        from layerkit.io.image import to_uint8

        inputs = proc(images=to_uint8(image), input_boxes=[[box]], return_tensors="pt")
        pix = inputs["pixel_values"].to(b.device, dt)
        boxes = inputs["input_boxes"].to(b.device, dt)

        def encoder() -> Any:
            with torch.inference_mode():
                return model.get_image_embeddings(pix)

        b.row(stage, f"image encoder {tuple(pix.shape[-2:])[0]}²", encoder, path="raw: SamModel.get_image_embeddings",
              dtype=dt, params=n_params(model.vision_encoder))
        emb = encoder()

        def decoder() -> None:
            with torch.inference_mode():
                model(image_embeddings=emb, input_boxes=boxes, multimask_output=False)

        b.row(stage, "prompt encoder + mask decoder (1 box)", decoder, path="raw: SamModel(image_embeddings=...)", dtype=dt,
              params=n_params(model.prompt_encoder, model.mask_decoder))
        del seg, parts, model, proc, emb, pix, boxes


def stage_sam(b: Bench, stage: str) -> None:
    """SAM ViT-H (segment_anything, always float32) through ``SamSegmenter``: a box call and its set_image part."""
    from segment_anything import sam_model_registry

    from layerkit.io.image import to_uint8
    from layerkit.modules.segmenter.sam import SamSegmenter
    from layerkit.types import Prompt

    res = b.res(1024, 64)
    image, _ = test_image(res, res)
    box = [res * 0.25, res * 0.25, res * 0.75, res * 0.75]
    model_type = "vit_tiny_bench" if b.tiny else "vit_h"
    if b.tiny:
        sam_model_registry[model_type] = build_tiny_segment_anything
    try:
        with b.tempdir(stage) as tmp:
            ckpt = tmp / "sam.pth"

            def build_save() -> None:
                torch.save({k: v.cpu() for k, v in build_segment_anything(b.tiny, b.build_device).state_dict().items()}, ckpt)
            b.timed_load(stage, "built random SAM ViT-H (segment_anything) and saved it", build_save)
            b.free()
            seg = SamSegmenter(str(ckpt), model_type=model_type).to(b.device)
            parts, load_s = b.timed_load(stage, "loaded through SamSegmenter", lambda: seg.loaded)
            params = n_params(parts["model"])
            b.row(stage, f"{res}², box prompt (set_image + predict)", lambda: seg(image, Prompt(boxes=[box])),
                  path="layerkit: SamSegmenter(checkpoint=FILE)", dtype=torch.float32, params=params, load_s=load_s)
            pred = parts["predictor"]
            img8 = to_uint8(image)

            def set_image() -> None:
                with torch.inference_mode():
                    pred.set_image(img8, image_format="RGB")

            b.row(stage, f"set_image {res}² (image encoder)", set_image, path="raw: SamPredictor.set_image",
                  dtype=torch.float32, params=n_params(parts["model"].image_encoder))
            del seg, parts, pred
    finally:
        if b.tiny:
            sam_model_registry.pop(model_type, None)


def stage_vitmatte(b: Bench, stage: str) -> None:
    """ViTMatte-B through ``VitMatteMatter``: one 1024² pass, the tiled path on a 2048² image, the raw forward."""
    from layerkit.modules.matter.vitmatte import VitMatteMatter, matte_input, tile_starts

    args = b.args
    res = b.res(args.resolution, 96)
    tile, overlap = (64, 16) if b.tiny else (args.vitmatte_tile, 128)
    with b.tempdir(stage) as tmp:
        b.save_random(stage, "built random ViTMatte-B and saved it", lambda: build_vitmatte(b.tiny, b.build_device),
                      tmp / "model")
        m = VitMatteMatter(str(tmp / "model"), tile=max(tile, res), overlap=overlap, context=64, dtype=b.dtype).to(b.device)
        parts, load_s = b.timed_load(stage, "loaded through VitMatteMatter", lambda: m.loaded)
        model, proc = parts["model"], parts["processor"]
        params, dt = n_params(model), m.torch_dtype

        def inputs(side: int) -> tuple[np.ndarray, np.ndarray]:
            img, _ = test_image(side, side)
            tri = np.full((side, side), 0.5, np.float32)  # unknown everywhere: the ROI is the whole image
            tri[: side // 8, : side // 8] = 0.0
            tri[side // 2 - side // 16: side // 2 + side // 16, side // 2 - side // 16: side // 2 + side // 16] = 1.0
            return img, tri

        img, tri = inputs(res)
        b.row(stage, f"{res}², unknown everywhere (one pass)", lambda: m(img, tri), path="layerkit: VitMatteMatter(DIR)",
              dtype=dt, params=params, load_s=load_s)
        big = 2 * res
        m.tile = tile
        n_tiles = len(tile_starts(big, tile, overlap)) ** 2
        img2, tri2 = inputs(big)
        b.row(stage, f"{big}², tiled: {n_tiles} tiles of {tile}² (overlap {overlap})", lambda: m(img2, tri2),
              path="layerkit: VitMatteMatter(DIR) tile path", dtype=dt, params=params, min_runs=2)
        x = matte_input(img, tri, proc.image_mean, proc.image_std).to(b.device, dt)

        def fwd() -> None:
            with torch.inference_mode():
                model(pixel_values=x)

        b.row(stage, f"forward {res}²", fwd, path="raw: VitMatteForImageMatting forward", dtype=dt, params=params)
        del m, parts, model, proc, x


def stage_fbdd(b: Bench, stage: str) -> None:
    """FBDD full decomposition through ``FBDDDecomposer``: batch_layers true/false, bf16 and fp32."""
    from layerkit.modules.decomposer.fbdd import FBDDDecomposer

    args = b.args
    res = b.res(args.fbdd_resolution, 64)
    steps = args.steps
    image, alpha = test_image(res, res)
    dtypes = [d for d in (args.fbdd_dtypes.split(",") if b.cuda else ["fp32"]) if d]
    with b.tempdir(stage) as tmp:
        def build_save() -> None:
            model = build_fbdd(b.tiny, b.build_device)
            model.to(b.save_dtype).save_pretrained(tmp / "fbdd")
        b.timed_load(stage, f"built random FBDD ({'tiny' if b.tiny else '2 SD2-inpainting-size UNets + SD VAE'}) and saved it",
                     build_save)
        b.free()
        for short in dtypes:
            dt = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}[short]
            dec = FBDDDecomposer(model=str(tmp / "fbdd"), scheduler=args.fbdd_scheduler, steps=steps, resolution=res,
                                 batch_layers=True, dtype=dt).to(b.device)
            model, load_s = b.timed_load(stage, f"loaded through FBDDDecomposer ({dt})", lambda: dec.loaded)
            params = n_params(model.unet_fg, model.unet_bg, model.vae)
            lk = "layerkit: FBDDDecomposer(model=DIR)"
            f = model.vae_factor
            g = torch.Generator().manual_seed(0)
            x = torch.randn(1, model.unet_fg.config.in_channels, res // f, res // f, generator=g).to(b.device, dec.torch_dtype)
            emb = model.null_embeds.to(x)
            t = torch.tensor(500, device=b.device)

            def unet() -> None:
                with torch.inference_mode():
                    model.unet_fg(x, t, encoder_hidden_states=emb)

            b.row(stage, f"one UNet forward, latent {res // f}² ({model.unet_fg.config.in_channels} ch in)", unet,
                  path="raw: unet_fg forward", dtype=dec.torch_dtype, params=n_params(model.unet_fg), load_s=load_s)
            b.row(stage, f"{res}², {args.fbdd_scheduler} {steps} steps, batch_layers=true", lambda: dec(image, alpha),
                  path=lk, dtype=dec.torch_dtype, params=params)
            dec2 = FBDDDecomposer(model=str(tmp / "fbdd"), scheduler=args.fbdd_scheduler, steps=steps, resolution=res,
                                  batch_layers=False, dtype=dt).to(b.device)
            dec2._loaded = model  # share the weights; _place keeps only the VAE on the device
            dec2._place(model, dec2.torch_dtype)
            del dec, x, emb
            b.free()
            b.row(stage, f"{res}², {args.fbdd_scheduler} {steps} steps, batch_layers=false", lambda: dec2(image, alpha),
                  path=lk, dtype=dec2.torch_dtype, params=params,
                  note="one UNet on the device at a time; host<->device copies included")
            del dec2, model
            b.free()


def stage_hfa(b: Bench, stage: str) -> None:
    """HFA refinement (FAN + BAN, hfa.yaml size) through ``HFARefiner``."""
    from layerkit.modules.refiner.hfa import HFARefiner
    from layerkit.modules.refiner.hfa_nets import save_checkpoint

    res = b.res(b.args.resolution, 64)
    image, alpha = test_image(res, res)
    rng = np.random.default_rng(1)
    fhat = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
    bhat = np.clip(image[::-1] + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
    with b.tempdir(stage) as tmp:
        fan, ban = build_hfa(b.tiny, "cpu")
        save_checkpoint(tmp / "hfa.pt", fan, ban, {"note": "random weights (benchmarks/gpu.py)"})
        ref = HFARefiner(checkpoint=str(tmp / "hfa.pt")).to(b.device)
        (fan, ban), load_s = b.timed_load(stage, "loaded through HFARefiner", ref.nets)
        params = n_params(fan, ban)
        cfg = f"channels {list(fan.channels)}"
        b.row(stage, f"{res}², FAN + BAN ({cfg})", lambda: ref(image, alpha, fhat, bhat),
              path="layerkit: HFARefiner(checkpoint=FILE)",
              dtype=torch.float32, params=params, load_s=load_s)
        c = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].to(b.device)
        a = torch.from_numpy(alpha[None, None].copy()).to(b.device)
        x = torch.from_numpy(fhat.transpose(2, 0, 1).copy())[None].to(b.device)

        def fwd() -> None:
            with torch.inference_mode():
                fan(c, a, x)

        b.row(stage, f"FAN forward {res}²", fwd, path="raw: AlignmentNet forward", dtype=torch.float32, params=n_params(fan))
        del ref, fan, ban


STAGES: dict[str, Callable[[Bench, str], None]] = {
    "generator": stage_generator,
    "grounding_dino": stage_grounding_dino,
    "owlv2": stage_owlv2,
    "sam_hf": stage_sam_hf,
    "sam": stage_sam,
    "vitmatte": stage_vitmatte,
    "fbdd": stage_fbdd,
    "hfa": stage_hfa,
    "fbdd_train": stage_fbdd_train,
    "hfa_train": stage_hfa_train,
}
ALIASES: dict[str, list[str]] = {
    "grounding": ["grounding_dino", "owlv2"],
    "segmentation": ["sam_hf", "sam"],
    "train": ["fbdd_train", "hfa_train"],
    "all": list(STAGES),
}
