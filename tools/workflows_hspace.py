"""The h-space example workflows (issue 9), built with tools/build_workflows.py's helpers.

- avi_hspace_learn_direction: capture h of two prompts (many seeds), find the supervised direction between them,
  and apply it to one seed as a strength sweep, in one queue.
- avi_hspace_pca_explorer: capture h of one prompt (many seeds), find the top principal directions, and show
  their effect on one seed as a grid (a row per direction, a column per strength).

build_workflows.py imports this module at the end of its BUILDERS block (under its own name, so the helpers
here are its own) and adds HSPACE_BUILDERS.
"""

from __future__ import annotations

from typing import Any

import build_workflows as bw

HSPACE_SIZES: dict[str, tuple[float, float]] = {
    "AVIHSpaceCapture": (320, 160),
    "AVIHSpaceFindPCA": (360, 330),
    "AVIHSpaceFindSupervised": (360, 400),
    "AVIHSpaceFindJacobian": (360, 420),
    "AVIHSpaceLoadDirection": (320, 80),
    "AVIHSpaceApplyDirection": (340, 290),
    "AVIImageGrid": (300, 110),
}
bw.SIZES.update(HSPACE_SIZES)

PLAIN_PROMPT = "a close-up portrait photo of a person, natural light, detailed face, 50mm"
SMILING_PROMPT = "a close-up portrait photo of a smiling person, natural light, detailed face, 50mm"
EXPLORER_PROMPT = "a portrait photo of a person in a street, natural light, detailed, 50mm"
LEARN_BATCH = 8
STRENGTHS = "-1, 0, 1, 2"
EXPLORER_DIRECTIONS = "1, 2, 3, 4"
EXPLORER_STRENGTHS = "-2, 0, 2"


def _sampler(wf: bw.Workflow, n: dict[str, bw.Node], pos: tuple[float, float], title: str, seed: str) -> bw.Node:
    ks = wf.add(
        "KSamplerAdvanced",
        pos,
        {
            "add_noise": "enable",
            "noise_seed": bw.SEED,
            "steps": bw.STEPS,
            "cfg": bw.CFG,
            "sampler_name": bw.SAMPLER,
            "scheduler": bw.SCHEDULER,
            "start_at_step": 0,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
        },
        title=title,
        control={"noise_seed": "fixed"},
    )
    wf.connect(n[seed], 0, ks, "noise_seed")
    wf.connect(n["steps"], 0, ks, "steps")
    wf.connect(n["neg"], 0, ks, "negative")
    return ks


def _common(wf: bw.Workflow, prompts: dict[str, tuple[str, str]], batch: int) -> dict[str, bw.Node]:
    """Checkpoint, prompts, negative, the capture seed (increment), the edit seed (fixed), steps, two latents."""
    n: dict[str, bw.Node] = {}
    n["ckpt"] = wf.add("CheckpointLoaderSimple", (0, 330), {"ckpt_name": bw.CHECKPOINT}, size=(380, 100))
    n["seed"] = wf.add(
        "PrimitiveInt",
        (0, 480),
        {"value": 1000},
        title="capture seed (increment: new images every queue)",
        control={"value": "increment"},
        size=(380, 82),
    )
    n["edit_seed"] = wf.add(
        "PrimitiveInt",
        (0, 610),
        {"value": bw.SEED},
        title="seed of the edited image",
        control={"value": "fixed"},
        size=(380, 82),
    )
    n["steps"] = wf.add(
        "PrimitiveInt",
        (0, 740),
        {"value": bw.STEPS},
        title="steps (shared by every sampler)",
        control={"value": "fixed"},
        size=(380, 82),
    )
    n["batch"] = wf.add(
        "EmptyLatentImage", (0, 870), {"width": 512, "height": 512, "batch_size": batch}, size=(380, 110),
        title="images per capture run",
    )  # fmt: skip
    n["one"] = wf.add(
        "EmptyLatentImage", (0, 1020), {"width": 512, "height": 512, "batch_size": 1}, size=(380, 110),
        title="the image to edit",
    )  # fmt: skip
    y = 0
    for key, (text, title) in prompts.items():
        n[key] = wf.add("CLIPTextEncode", (430, y), {"text": text}, title=title, color="#232", bgcolor="#353")
        wf.connect(n["ckpt"], 1, n[key], "clip")
        y += 210
    n["neg"] = wf.add(
        "CLIPTextEncode",
        (430, y),
        {"text": bw.NEGATIVE_PROMPT},
        title="Negative prompt",
        color="#322",
        bgcolor="#533",
    )
    wf.connect(n["ckpt"], 1, n["neg"], "clip")
    wf.group("Model, prompts, seeds", (-20, -80, 870, 1230))
    return n


def _capture(
    wf: bw.Workflow, n: dict[str, bw.Node], pos: tuple[float, float], collection: str, prompt: str, title: str
) -> bw.Node:
    """Capture h on the checkpoint's model, sampled with `prompt` over the capture batch; returns the sampler."""
    cap = wf.add(
        "AVIHSpaceCapture",
        pos,
        {"collection": collection, "label": "", "steps": "all", "pass": "cond"},
        title=f"Capture h: {title}",
    )
    wf.connect(n["ckpt"], 0, cap, "model")
    ks = _sampler(wf, n, (pos[0] + 360, pos[1]), f"Sample {title} (records h)", "seed")
    wf.connect(cap, 0, ks, "model")
    wf.connect(n[prompt], 0, ks, "positive")
    wf.connect(n["batch"], 0, ks, "latent_image")
    return ks


def _decode_and(wf: bw.Workflow, n: dict[str, bw.Node], latent: bw.Node, pos: tuple[float, float]) -> bw.Node:
    dec = wf.add("VAEDecode", pos)
    wf.connect(latent, 0, dec, "samples")
    wf.connect(n["ckpt"], 2, dec, "vae")
    return dec


def learn_direction(specs: dict[str, dict[str, Any]]) -> bw.Workflow:
    wf = bw.Workflow("avi_hspace_learn_direction", specs)
    wf.note(
        "LEARN AN h-SPACE DIRECTION (Haas et al.)\n\n"
        "1. Load Checkpoint: Stable Diffusion 2.1 base (or any SD 1.x / 2.x / SDXL checkpoint).\n"
        "2. Prompt A: the subject. Prompt B: the same words plus the attribute (here 'smiling').\n"
        f"3. Queue. Each run samples {LEARN_BATCH} new seeds of each prompt; 'AVI Capture h' stores their "
        "bottleneck h in models/avi_hspace_collections/plain and /smiling. The supervised direction (mean of B "
        "minus mean of A) is saved as models/avi_directions/smile.safetensors and applied at once.\n"
        "4. Queue a few more times: every run adds images and refines the direction (the plot shows the two "
        "sets drifting apart along it).\n"
        f"5. The sweep: strengths {STRENGTHS} on one seed (1 = the distance between the two sets). "
        "start / end limit the edit to part of the sampling.",
        (0, -20),
        size=(380, 300),
        title="Read me: learn an h-space direction",
    )
    n = _common(
        wf,
        {"plain": (PLAIN_PROMPT, "Prompt A (plain)"), "smiling": (SMILING_PROMPT, "Prompt B: the attribute")},
        LEARN_BATCH,
    )
    ks_a = _capture(wf, n, (880, 0), "plain", "plain", "prompt A")
    ks_b = _capture(wf, n, (880, 380), "smiling", "smiling", "prompt B")
    wf.group("Capture h of both prompts", (860, -80, 720, 820), color="#8A8")
    find = wf.add(
        "AVIHSpaceFindSupervised",
        (1620, 0),
        {
            "collection_a": "plain",
            "collection_b": "smiling",
            "name": "smile",
            "step": -1,
            "label_a": "",
            "label_b": "",
            "pass": "cond",
            "description": f"'{PLAIN_PROMPT}' -> '{SMILING_PROMPT}'",
        },
    )
    wf.connect(ks_a, 0, find, "samples_a")
    wf.connect(ks_b, 0, find, "samples_b")
    plot = wf.add("PreviewImage", (1620, 440), title="Where the two sets lie along the direction", size=(420, 330))
    wf.connect(find, 1, plot, "images")
    info = wf.add("PreviewAny", (1620, 800), title="Direction info", size=(360, 200))
    wf.connect(find, 2, info, "source")
    wf.group("Find the direction A -> B", (1600, -80, 460, 1120), color="#A88")
    apply = wf.add(
        "AVIHSpaceApplyDirection",
        (2100, 0),
        {
            "strength": 1.0,
            "direction": 1,
            "start": 0.0,
            "end": 1.0,
            "target": "both",
            "strength_list": STRENGTHS,
            "direction_list": "",
        },
        title="Apply the direction (strength sweep)",
    )
    wf.connect(n["ckpt"], 0, apply, "model")
    wf.connect(find, 0, apply, "directions")
    wf.connect(n["one"], 0, apply, "latent")
    ks = _sampler(wf, n, (2100, 340), "Sample the sweep (prompt A)", "edit_seed")
    wf.connect(apply, 0, ks, "model")
    wf.connect(n["plain"], 0, ks, "positive")
    wf.connect(apply, 1, ks, "latent_image")
    dec = _decode_and(wf, n, ks, (2460, 0))
    save = wf.add(
        "SaveImage", (2460, 100), {"filename_prefix": "AVI/hspace_smile_sweep"}, title="strength sweep", size=(900, 480)
    )
    wf.connect(dec, 0, save, "images")
    wf.group("Apply it to one seed: a strength sweep", (2080, -80, 1300, 800), color="#88A")
    return wf


def pca_explorer(specs: dict[str, dict[str, Any]]) -> bw.Workflow:
    wf = bw.Workflow("avi_hspace_pca_explorer", specs)
    wf.note(
        "h-SPACE PCA EXPLORER (Haas et al.)\n\n"
        "1. Load Checkpoint: Stable Diffusion 2.1 base (or any SD 1.x / 2.x / SDXL checkpoint).\n"
        f"2. Queue. Each run samples {LEARN_BATCH} new seeds of the prompt; 'AVI Capture h' stores their h in "
        "models/avi_hspace_collections/explorer, and 'AVI Find h-space Directions (PCA)' finds the directions "
        "along which they vary most (one per step), saved as models/avi_directions/explorer_pca.\n"
        f"3. The grid: one row per direction ({EXPLORER_DIRECTIONS}), one column per strength "
        f"({EXPLORER_STRENGTHS}, in standard deviations), all from one seed. The middle column is the unedited "
        "image.\n"
        "4. Queue more times: more images, steadier directions. Directions worth keeping: load the file with "
        "'AVI Load h-space Direction' and apply it with a strength slider.",
        (0, -20),
        size=(380, 300),
        title="Read me: PCA explorer",
    )
    n = _common(wf, {"prompt": (EXPLORER_PROMPT, "Prompt")}, LEARN_BATCH)
    ks_capture = _capture(wf, n, (880, 0), "explorer", "prompt", "the prompt")
    wf.group("Capture h (many seeds)", (860, -80, 720, 420), color="#8A8")
    find = wf.add(
        "AVIHSpaceFindPCA",
        (1620, 0),
        {
            "collection": "explorer",
            "name": "explorer_pca",
            "count": 4,
            "step": -1,
            "pass": "cond",
            "description": f"PCA of '{EXPLORER_PROMPT}'",
        },
    )
    wf.connect(ks_capture, 0, find, "samples")
    plot = wf.add("PreviewImage", (1620, 380), title="Variance explained per direction and step", size=(420, 330))
    wf.connect(find, 1, plot, "images")
    info = wf.add("PreviewAny", (1620, 740), title="Directions info", size=(360, 200))
    wf.connect(find, 2, info, "source")
    wf.group("Find the top directions", (1600, -80, 460, 1060), color="#A88")
    apply = wf.add(
        "AVIHSpaceApplyDirection",
        (2100, 0),
        {
            "strength": 1.0,
            "direction": 1,
            "start": 0.0,
            "end": 1.0,
            "target": "both",
            "strength_list": EXPLORER_STRENGTHS,
            "direction_list": EXPLORER_DIRECTIONS,
        },
        title="Apply every direction at every strength",
    )
    wf.connect(n["ckpt"], 0, apply, "model")
    wf.connect(find, 0, apply, "directions")
    wf.connect(n["one"], 0, apply, "latent")
    ks = _sampler(wf, n, (2100, 340), "Sample the grid (one seed)", "edit_seed")
    wf.connect(apply, 0, ks, "model")
    wf.connect(n["prompt"], 0, ks, "positive")
    wf.connect(apply, 1, ks, "latent_image")
    dec = _decode_and(wf, n, ks, (2460, 0))
    grid = wf.add(
        "AVIImageGrid",
        (2460, 100),
        {"columns": len(EXPLORER_STRENGTHS.split(",")), "gap": 4},
        title="Grid: a row per direction",
    )
    wf.connect(dec, 0, grid, "images")
    save = wf.add(
        "SaveImage", (2780, 0), {"filename_prefix": "AVI/hspace_pca_grid"}, title="PCA directions x strengths",
        size=(700, 760),
    )  # fmt: skip
    wf.connect(grid, 0, save, "images")
    wf.group("Grid: a row per direction, a column per strength", (2080, -80, 1420, 880), color="#88A")
    return wf


HSPACE_BUILDERS = {
    "avi_hspace_learn_direction": learn_direction,
    "avi_hspace_pca_explorer": pca_explorer,
}
