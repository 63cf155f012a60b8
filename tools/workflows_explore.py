"""The real-photo and explorer workflows (issue 11): "edit a photo" and "explore the latent".

Registered by tools/build_workflows.py (`BUILDERS.update(...builders(globals()))`): `builders(tool)` takes the
builder's namespace (its Workflow class, CORE_NODES, SIZES and shared constants), adds the core nodes these
workflows use (Load Image, Upscale Image, VAE Encode) to CORE_NODES and SIZES, and returns {name: builder}.
It never imports build_workflows itself, so the tests' and the script's copies of it each get their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PHOTO = "example.png"
"""The image ComfyUI ships in its input/ folder; the artist picks their own photo."""
PHOTO_SIZE = 512
EXPLORE_PROMPT = "a close-up portrait photo of a person, natural light, detailed face, 50mm"
EXPLORE_BATCH = 4
TRAJECTORY_AT = "1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0"

CORE_NODES: dict[str, dict[str, Any]] = {
    "LoadImage": {
        "display": "Load Image",
        "inputs": [("image", "COMBO", {"values": "<input images>", "image_upload": True})],
        "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
    },
    "ImageScale": {
        "display": "Upscale Image",
        "inputs": [
            ("image", "IMAGE", {}),
            ("upscale_method", "COMBO", {"values": ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]}),
            ("width", "INT", {"default": 512, "min": 0, "max": 16384}),
            ("height", "INT", {"default": 512, "min": 0, "max": 16384}),
            ("crop", "COMBO", {"values": ["disabled", "center"]}),
        ],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "VAEEncode": {
        "display": "VAE Encode",
        "inputs": [("pixels", "IMAGE", {}), ("vae", "VAE", {})],
        "outputs": [("LATENT", "LATENT")],
    },
}
SIZES: dict[str, tuple[float, float]] = {
    "LoadImage": (340, 330),
    "ImageScale": (320, 130),
    "VAEEncode": (200, 50),
    "AVIInvert": (320, 330),
    "AVICaptureTrajectory": (340, 330),
    "AVIPlotSingularSpectrum": (320, 130),
    "AVIPlotSubspaceDistance": (320, 130),
    "AVIRankOneViews": (320, 260),
}


def builders(tool: dict[str, Any]) -> dict[str, Callable[[dict[str, dict[str, Any]]], Any]]:
    """Register this module's core nodes and sizes in the builder's namespace `tool`; {name: builder}."""
    for name, spec in CORE_NODES.items():
        tool["CORE_NODES"].setdefault(name, spec)
    for name, size in SIZES.items():
        tool["SIZES"].setdefault(name, size)
    workflow = tool["Workflow"]
    steps, seed, cfg = tool["STEPS"], tool["SEED"], tool["CFG"]
    sampler, scheduler = tool["SAMPLER"], tool["SCHEDULER"]

    def prompts(wf: Any, ckpt: Any, x0: float, texts: list[tuple[str, str, str, str]]) -> dict[str, Any]:
        out = {}
        for number, (key, text, title, colour) in enumerate(texts):
            node = wf.add(
                "CLIPTextEncode",
                (x0, number * 210),
                {"text": text},
                title=title,
                color=f"#{colour[0]}",
                bgcolor=f"#{colour[1]}",
            )
            wf.connect(ckpt, 1, node, "clip")
            out[key] = node
        return out

    def resume(wf: Any, n: dict[str, Any], latent: Any, pos: tuple[float, float], title: str) -> Any:
        """KSamplerAdvanced resuming at the inverted step with the original prompt, noise off."""
        ks = wf.add(
            "KSamplerAdvanced",
            pos,
            {
                "add_noise": "disable",
                "noise_seed": seed,
                "steps": steps,
                "cfg": cfg,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "start_at_step": 10,
                "end_at_step": 10000,
                "return_with_leftover_noise": "disable",
            },
            title=title,
            control={"noise_seed": "fixed"},
        )
        wf.connect(n["ckpt"], 0, ks, "model")
        wf.connect(n["pos"], 0, ks, "positive")
        wf.connect(n["neg"], 0, ks, "negative")
        wf.connect(latent, 0, ks, "latent_image")
        wf.connect(n["steps"], 0, ks, "steps")
        wf.connect(n["invert"], 1, ks, "start_at_step")
        return ks

    def decode(wf: Any, n: dict[str, Any], latent: Any, pos: tuple[float, float]) -> Any:
        dec = wf.add("VAEDecode", pos)
        wf.connect(latent, 0, dec, "samples")
        wf.connect(n["ckpt"], 2, dec, "vae")
        return dec

    def edit_photo(specs: dict[str, dict[str, Any]]) -> Any:
        wf = workflow("avi_edit_photo", specs)
        wf.note(
            "EDIT A PHOTO (AVI on a real image)\n\n"
            "1. Load Checkpoint: SD 2.1 base, the model the head was trained with.\n"
            "2. Load Image: your photo. Upscale Image makes it 512 x 512 (center crop), the head's size.\n"
            "3. Original prompt: describe the photo as it is. Target prompt: the same plus the attribute.\n"
            "4. AVI Invert runs the sampler backwards from the photo with the ORIGINAL prompt: x at 0.8T "
            "(step 10 of 50) and the fully inverted noise at step 0. Only euler and ddim can be inverted.\n"
            "5. Capture z samples the TARGET prompt from that noise (add_noise disable, the photo's seed) to 0.5T.\n"
            "6. AVI Merge with your head; both samplers resume at x's step with the original prompt.\n"
            "7. Queue: the reconstruction (the photo through inversion, unedited) and the edit side by side. "
            "If the reconstruction drifts from the photo, lower cfg on Invert, Capture z and both samplers "
            "together (e.g. 3), or raise Invert's refine (advanced).",
            (0, -20),
            size=(400, 400),
            title="Read me: edit a photo",
        )
        n: dict[str, Any] = {}
        n["ckpt"] = wf.add("CheckpointLoaderSimple", (0, 430), {"ckpt_name": tool["CHECKPOINT"]}, size=(380, 100))
        n["steps"] = wf.add(
            "PrimitiveInt",
            (0, 580),
            {"value": steps},
            title="steps (shared by every sampler)",
            control={"value": "fixed"},
            size=(380, 82),
        )
        n["photo"] = wf.add("LoadImage", (0, 710), {"image": PHOTO}, title="Your photo", size=(380, 330))
        n["scale"] = wf.add(
            "ImageScale",
            (0, 1080),
            {"upscale_method": "lanczos", "width": PHOTO_SIZE, "height": PHOTO_SIZE, "crop": "center"},
            size=(380, 130),
        )
        wf.connect(n["photo"], 0, n["scale"], "image")
        n["encode"] = wf.add("VAEEncode", (0, 1250))
        wf.connect(n["scale"], 0, n["encode"], "pixels")
        wf.connect(n["ckpt"], 2, n["encode"], "vae")
        n.update(
            prompts(
                wf,
                n["ckpt"],
                440,
                [
                    ("pos", tool["ORIGINAL_PROMPT"], "Original prompt: what the photo shows", ("232", "353")),
                    ("target", tool["TARGET_PROMPT"], "Target prompt (z): the attribute", ("223", "335")),
                    ("neg", tool["NEGATIVE_PROMPT"], "Negative prompt", ("322", "533")),
                ],
            )
        )
        n["invert"] = wf.add(
            "AVIInvert",
            (900, 0),
            {
                "steps": steps,
                "cfg": cfg,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "stop_at": 0.8,
                "stop_step": 0,
                "refine": 0,
            },
            title="AVI Invert: the photo to x at 0.8T",
        )
        wf.connect(n["ckpt"], 0, n["invert"], "model")
        wf.connect(n["pos"], 0, n["invert"], "positive")
        wf.connect(n["neg"], 0, n["invert"], "negative")
        wf.connect(n["steps"], 0, n["invert"], "steps")
        wf.connect(n["encode"], 0, n["invert"], "encoded")
        n["cap_z"] = wf.add(
            "AVICaptureLatentAtStep",
            (900, 380),
            {
                "add_noise": "disable",
                "noise_seed": seed,
                "steps": steps,
                "cfg": cfg,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "stop_at": 0.5,
                "stop_step": 0,
            },
            title="Capture z: target prompt from the inverted noise, 0.5T",
            control={"noise_seed": "fixed"},
        )
        wf.connect(n["ckpt"], 0, n["cap_z"], "model")
        wf.connect(n["target"], 0, n["cap_z"], "positive")
        wf.connect(n["neg"], 0, n["cap_z"], "negative")
        wf.connect(n["invert"], 2, n["cap_z"], "latent_image")
        wf.connect(n["invert"], 3, n["cap_z"], "noise_seed")
        wf.connect(n["steps"], 0, n["cap_z"], "steps")
        head = wf.add("AVILoadAttributeHead", (1280, 0), {"head_name": f"{tool['ATTRIBUTE']}.safetensors"})
        merge = wf.add("AVIMerge", (1280, 140), {"rho": 1.0, "k": 0, "mode": "paper", "rho_list": ""})
        wf.connect(n["invert"], 0, merge, "original")
        wf.connect(n["cap_z"], 0, merge, "target")
        wf.connect(head, 0, merge, "head")
        edited = resume(wf, n, merge, (1640, 0), "Resume the edit (original prompt)")
        plain = resume(wf, n, n["invert"], (1640, 400), "Resume x unedited: the reconstruction")
        dec_edit = decode(wf, n, edited, (2000, 0))
        dec_plain = decode(wf, n, plain, (2000, 400))
        save_plain = wf.add(
            "SaveImage",
            (2240, 0),
            {"filename_prefix": "AVI/photo_reconstruction"},
            title="Reconstruction (unedited)",
            size=(420, 480),
        )
        save_edit = wf.add(
            "SaveImage", (2680, 0), {"filename_prefix": "AVI/photo_edited"}, title="Edited", size=(420, 480)
        )
        wf.connect(dec_plain, 0, save_plain, "images")
        wf.connect(dec_edit, 0, save_edit, "images")
        shown = wf.add("PreviewImage", (2240, 540), title="The photo (512 x 512)", size=(420, 420))
        wf.connect(n["scale"], 0, shown, "images")
        wf.group("Invert, then z", (880, -80, 380, 840), color="#8A8")
        wf.group("Merge with the head", (1260, -80, 360, 420), color="#A88")
        wf.group("Resume both at x's step, no new noise", (1620, -80, 600, 840), color="#88A")
        wf.group("Reconstruction | Edited", (2220, -80, 900, 1060), color="#b58b2a")
        return wf

    def explore_latent(specs: dict[str, dict[str, Any]]) -> Any:
        wf = workflow("avi_explore_latent", specs)
        wf.note(
            "EXPLORE THE LATENT (the AVI paper's Figures 2-5)\n\n"
            "1. Load Checkpoint and a prompt. Empty Latent Image: batch_size = the seeds the plots average over.\n"
            "2. AVI Capture Trajectory samples once and keeps the latent at each fraction of T in 'at' "
            "(1 = pure noise ... 0 = finished).\n"
            "3. Singular Spectrum: each channel's singular values at each step (Figure 2).\n"
            "4. Subspace Distance: how far the top-k singular subspaces move between steps (Figure 5; k = 4).\n"
            "5. Rank-One Views: the finished image with one singular pair scaled (rows = pairs, columns = "
            "factors; 1 = unchanged) or, with alone, that pair only (Figures 3-4).\n"
            "Queue; change the prompt or the seed and compare.",
            (0, -20),
            size=(400, 340),
            title="Read me: explore the latent",
        )
        ckpt = wf.add("CheckpointLoaderSimple", (0, 370), {"ckpt_name": tool["CHECKPOINT"]}, size=(380, 100))
        seed_node = wf.add(
            "PrimitiveInt",
            (0, 520),
            {"value": seed},
            title="seed",
            control={"value": "fixed"},
            size=(380, 82),
        )
        latent = wf.add(
            "EmptyLatentImage", (0, 650), {"width": 512, "height": 512, "batch_size": EXPLORE_BATCH}, size=(380, 110)
        )
        texts = prompts(
            wf,
            ckpt,
            440,
            [
                ("pos", EXPLORE_PROMPT, "Prompt", ("232", "353")),
                ("neg", tool["NEGATIVE_PROMPT"], "Negative prompt", ("322", "533")),
            ],
        )
        trajectory = wf.add(
            "AVICaptureTrajectory",
            (900, 0),
            {
                "add_noise": "enable",
                "noise_seed": seed,
                "steps": steps,
                "cfg": cfg,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "at": TRAJECTORY_AT,
            },
            control={"noise_seed": "fixed"},
        )
        wf.connect(ckpt, 0, trajectory, "model")
        wf.connect(texts["pos"], 0, trajectory, "positive")
        wf.connect(texts["neg"], 0, trajectory, "negative")
        wf.connect(latent, 0, trajectory, "latent_image")
        wf.connect(seed_node, 0, trajectory, "noise_seed")
        spectrum = wf.add(
            "AVIPlotSingularSpectrum",
            (1280, 0),
            {"mode": "index", "top": 0, "log_scale": True, "width": 768, "height": 512},
        )
        distance = wf.add(
            "AVIPlotSubspaceDistance",
            (1280, 560),
            {"k": 4, "side": "left", "kind": "both", "width": 768, "height": 384},
        )
        views = wf.add(
            "AVIRankOneViews",
            (1280, 1000),
            {
                "pairs": "0, 1, 2, 3",
                "scales": "0, 1, 2, 4",
                "alone": False,
                "channels": "",
                "batch_index": 0,
                "cell": 128,
                "cfg": cfg,
            },
        )
        wf.connect(trajectory, 0, spectrum, "trajectory")
        wf.connect(trajectory, 0, distance, "trajectory")
        wf.connect(trajectory, 1, views, "latent")
        wf.connect(ckpt, 2, views, "vae")
        decoded = wf.add("VAEDecode", (900, 400))
        wf.connect(trajectory, 1, decoded, "samples")
        wf.connect(ckpt, 2, decoded, "vae")
        show_images = wf.add("PreviewImage", (900, 500), title="The images (one per seed)", size=(340, 420))
        wf.connect(decoded, 0, show_images, "images")
        for node, pos, title, size in (
            (spectrum, (1640, 0), "Singular values per channel across steps (Figure 2)", (800, 560)),
            (distance, (1640, 600), "Subspace distance between steps (Figure 5)", (800, 440)),
            (views, (1640, 1080), "Rank-one views: one singular pair scaled (Figures 3-4)", (800, 680)),
        ):
            shown = wf.add("PreviewImage", pos, title=title, size=size)
            wf.connect(node, 0, shown, "images")
        wf.group("Sample, keep each step", (880, -80, 380, 1040), color="#8A8")
        wf.group("The three plots", (1260, -80, 1200, 1860), color="#b58b2a")
        return wf

    return {"avi_edit_photo": edit_photo, "avi_explore_latent": explore_latent}
