"""The semantic-boundary workflows (BoundaryDiffusion, spec section 9): collect, fit, edit.

Registered in build_workflows.BUILDERS; built from the same helpers (Workflow, the shared prompts and sampler
settings), written by `python tools/build_workflows.py` as workflows/<name>.json and workflows/api/<name>.json.

- avi_boundary_collect: prompt A (side a) and prompt B (side b) from the same seeds, both kept at steps
  5, 10, ..., 30 of 50 and appended to the collection; queued many times with the seed set to increment.
- avi_boundary_fit: the boundary at every collected step, the accuracy curve, the chosen mixing step, the file.
- avi_boundary_edit: Load Boundary gives the step; the capture stops there; Boundary Edit moves the latent to a
  sweep of distances; the sweep is resumed as one batch beside the unedited image.
"""

from __future__ import annotations

from typing import Any

from build_workflows import (
    CFG,
    CHECKPOINT,
    NEGATIVE_PROMPT,
    ORIGINAL_PROMPT,
    SAMPLER,
    SCHEDULER,
    SEED,
    STEPS,
    TARGET_PROMPT,
    Node,
    Workflow,
)

BOUNDARY = "smile"
CAPTURE_STEPS = "5, 10, 15, 20, 25, 30"
DISTANCES = "-20, -10, 0, 10, 20"
SIZE = {
    "AVICollectBoundarySamples": (340, 330),
    "AVIFitBoundary": (400, 360),
    "AVILoadBoundary": (320, 110),
    "AVIBoundaryEdit": (320, 150),
}
SAME_SCHEDULE = (
    "Keep steps (50), sampler (euler) and scheduler (normal) the same in collecting and editing: a boundary "
    "belongs to one step of one schedule, and the edit refuses a latent captured elsewhere, with the numbers."
)


def _model_and_prompts(
    wf: Workflow, *, seed_control: str, batch: int, prompt_b: bool, height: float = 820
) -> dict[str, Node]:
    """Checkpoint, seed, latent, prompt A (and B), negative."""
    n: dict[str, Node] = {}
    n["ckpt"] = wf.add("CheckpointLoaderSimple", (0, 330), {"ckpt_name": CHECKPOINT}, size=(380, 100))
    n["seed"] = wf.add(
        "PrimitiveInt",
        (0, 480),
        {"value": SEED},
        title="seed (shared by every sampler)",
        control={"value": seed_control},
        size=(380, 82),
    )
    n["latent"] = wf.add(
        "EmptyLatentImage", (0, 610), {"width": 512, "height": 512, "batch_size": batch}, size=(380, 110)
    )
    n["a"] = wf.add(
        "CLIPTextEncode",
        (430, 0),
        {"text": ORIGINAL_PROMPT},
        title="Prompt A: side a (the original)",
        color="#232",
        bgcolor="#353",
    )
    if prompt_b:
        n["b"] = wf.add(
            "CLIPTextEncode",
            (430, 210),
            {"text": TARGET_PROMPT},
            title="Prompt B: side b (the target)",
            color="#223",
            bgcolor="#335",
        )
    n["neg"] = wf.add(
        "CLIPTextEncode",
        (430, 420),
        {"text": NEGATIVE_PROMPT},
        title="Negative prompt",
        color="#322",
        bgcolor="#533",
    )
    for key in ("a", "b", "neg"):
        if key in n:
            wf.connect(n["ckpt"], 1, n[key], "clip")
    wf.group("Model, prompts, seed", (-20, -80, 870, height))
    return n


def boundary_collect(specs: dict[str, dict[str, Any]]) -> Workflow:
    wf = Workflow("avi_boundary_collect", specs)
    wf.note(
        "COLLECT BOUNDARY SAMPLES (semantic boundary)\n\n"
        "Each queue run samples prompt A and prompt B from the same seeds and adds both latents, at every step of "
        "capture_steps, to models/avi_boundary_collections/<collection>/.\n"
        "1. Load Checkpoint: Stable Diffusion 2.1 base. Prompt A: the subject; prompt B: the same words plus the "
        "attribute.\n"
        "2. seed is set to 'increment': every run uses new seeds.\n"
        "3. Set the run count next to the Queue/Run button (e.g. 50 runs x batch 4 = 200 images per side) and "
        "queue.\n"
        "4. Then open 'boundary fit'.\n\n" + SAME_SCHEDULE,
        (0, -20),
        size=(380, 300),
        title="Read me: collect boundary samples",
    )
    n = _model_and_prompts(wf, seed_control="increment", batch=4, prompt_b=True)
    collect = wf.add(
        "AVICollectBoundarySamples",
        (880, 0),
        {
            "noise_seed": SEED,
            "steps": STEPS,
            "cfg": CFG,
            "sampler_name": SAMPLER,
            "scheduler": SCHEDULER,
            "capture_steps": CAPTURE_STEPS,
            "collection": BOUNDARY,
        },
        size=SIZE["AVICollectBoundarySamples"],
        control={"noise_seed": "fixed"},
    )
    wf.connect(n["ckpt"], 0, collect, "model")
    wf.connect(n["a"], 0, collect, "positive_a")
    wf.connect(n["b"], 0, collect, "positive_b")
    wf.connect(n["neg"], 0, collect, "negative")
    wf.connect(n["latent"], 0, collect, "latent_image")
    wf.connect(n["seed"], 0, collect, "noise_seed")
    show = wf.add("PreviewAny", (880, 380), title="What was written", size=(400, 200))
    wf.connect(collect, 0, show, "source")
    wf.group("Collect both sides", (860, -80, 440, 700), color="#8A8")
    return wf


def boundary_fit(specs: dict[str, dict[str, Any]]) -> Workflow:
    wf = Workflow("avi_boundary_fit", specs)
    wf.note(
        "FIT A BOUNDARY (semantic boundary)\n\n"
        "1. collection: the name used in 'boundary collect' (a folder in models/avi_boundary_collections).\n"
        "2. name: the boundary file to write (models/avi_boundaries/<name>.safetensors).\n"
        "3. step -1 fits at every collected step and picks the mixing step: the noisiest step whose held-out "
        "accuracy is within tolerance (2 points) of the best. A step number fits there only.\n"
        "4. Queue. The plot shows the accuracy per step and the choice; the summary the numbers. No checkpoint "
        "is loaded: the latents were captured already.",
        (0, -20),
        size=(380, 300),
        title="Read me: fit a boundary",
    )
    fit = wf.add(
        "AVIFitBoundary",
        (430, 0),
        {
            "collection": BOUNDARY,
            "name": BOUNDARY,
            "description": f"'{ORIGINAL_PROMPT}' (a) | '{TARGET_PROMPT}' (b)",
            "step": -1,
            "tolerance": 0.02,
            "holdout": 0.2,
            "C": 1.0,
            "seed": 0,
        },
        size=SIZE["AVIFitBoundary"],
        control={"seed": "fixed"},
    )
    plot = wf.add("PreviewImage", (880, 0), title="Held-out accuracy by step", size=(560, 400))
    wf.connect(fit, 1, plot, "images")
    summary = wf.add("PreviewAny", (880, 430), title="Accuracy, chosen step, file", size=(560, 200))
    wf.connect(fit, 3, summary, "source")
    wf.group("Fit at every step, choose the mixing step, save", (410, -80, 1050, 740), color="#A88")
    return wf


def _resume(wf: Workflow, n: dict[str, Node], latent: Node, start: Node, pos: tuple[float, float], title: str) -> Node:
    """KSamplerAdvanced resuming at the captured step with prompt A, no new noise."""
    ks = wf.add(
        "KSamplerAdvanced",
        pos,
        {
            "add_noise": "disable",
            "noise_seed": SEED,
            "steps": STEPS,
            "cfg": CFG,
            "sampler_name": SAMPLER,
            "scheduler": SCHEDULER,
            "start_at_step": 10,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
        },
        title=title,
        control={"noise_seed": "fixed"},
    )
    wf.connect(n["ckpt"], 0, ks, "model")
    wf.connect(n["a"], 0, ks, "positive")
    wf.connect(n["neg"], 0, ks, "negative")
    wf.connect(latent, 0, ks, "latent_image")
    wf.connect(n["seed"], 0, ks, "noise_seed")
    wf.connect(n["steps"], 0, ks, "steps")
    wf.connect(start, 1, ks, "start_at_step")
    return ks


def boundary_edit(specs: dict[str, dict[str, Any]]) -> Workflow:
    wf = Workflow("avi_boundary_edit", specs)
    wf.note(
        "EDIT WITH A BOUNDARY (semantic boundary)\n\n"
        "1. Load Checkpoint and prompt A as in 'boundary collect' (prompt A is the image you edit).\n"
        "2. Load Boundary: pick the boundary; its step drives the capture's stop_step.\n"
        "3. Boundary Edit: distance = where the latent goes, in units of a typical image's distance from the "
        "boundary: > 0 prompt B's side, < 0 prompt A's. distance_list (here -20 .. 20) gives the whole sweep in "
        "one queue; clear it to use the slider.\n"
        "4. Queue: the sweep strip and the unedited image (same seed).\n\n" + SAME_SCHEDULE,
        (0, -20),
        size=(380, 300),
        title="Read me: edit with a boundary",
    )
    n = _model_and_prompts(wf, seed_control="fixed", batch=1, prompt_b=False, height=940)
    n["steps"] = wf.add(
        "PrimitiveInt",
        (0, 750),
        {"value": STEPS},
        title="steps (the collection's)",
        control={"value": "fixed"},
        size=(380, 82),
    )
    load = wf.add(
        "AVILoadBoundary", (880, 0), {"boundary_name": f"{BOUNDARY}.safetensors"}, size=SIZE["AVILoadBoundary"]
    )
    about = wf.add("PreviewAny", (880, 140), title="Boundary info", size=(320, 200))
    wf.connect(load, 2, about, "source")
    capture = wf.add(
        "AVICaptureLatentAtStep",
        (880, 380),
        {
            "add_noise": "enable",
            "noise_seed": SEED,
            "steps": STEPS,
            "cfg": CFG,
            "sampler_name": SAMPLER,
            "scheduler": SCHEDULER,
            "stop_at": 0.8,
            "stop_step": 10,
        },
        title="Capture prompt A at the boundary's step",
        control={"noise_seed": "fixed"},
    )
    wf.connect(n["ckpt"], 0, capture, "model")
    wf.connect(n["a"], 0, capture, "positive")
    wf.connect(n["neg"], 0, capture, "negative")
    wf.connect(n["latent"], 0, capture, "latent_image")
    wf.connect(n["seed"], 0, capture, "noise_seed")
    wf.connect(n["steps"], 0, capture, "steps")
    wf.connect(load, 1, capture, "stop_step")
    edit = wf.add(
        "AVIBoundaryEdit",
        (1240, 0),
        {"distance": 5.0, "distance_list": DISTANCES},
        size=SIZE["AVIBoundaryEdit"],
        title="AVI Boundary Edit (distance sweep)",
    )
    wf.connect(capture, 0, edit, "captured")
    wf.connect(load, 0, edit, "boundary")
    where = wf.add("PreviewAny", (1240, 190), title="Where the latent was", size=(320, 160))
    wf.connect(edit, 1, where, "source")
    swept = _resume(wf, n, edit, capture, (1600, 0), "Resume the sweep (prompt A)")
    plain = _resume(wf, n, capture, capture, (1600, 400), "Resume unedited (prompt A)")
    for ks, pos, prefix, title, size in (
        (swept, (1960, 0), "AVI/boundary_sweep", "Distance sweep", (1000, 480)),
        (plain, (1960, 520), "AVI/boundary_unedited", "Unedited", (420, 480)),
    ):
        dec = wf.add("VAEDecode", pos)
        wf.connect(ks, 0, dec, "samples")
        wf.connect(n["ckpt"], 2, dec, "vae")
        save = wf.add("SaveImage", (pos[0] + 240, pos[1]), {"filename_prefix": prefix}, title=title, size=size)
        wf.connect(dec, 0, save, "images")
    wf.group("Capture at its step", (860, -80, 360, 940), color="#8A8")
    wf.group("Edit, resume as one batch", (1220, -80, 720, 940), color="#A88")
    wf.group("Distance sweep | Unedited", (1940, -80, 1320, 1120), color="#b58b2a")
    return wf


BOUNDARY_BUILDERS = {
    "avi_boundary_collect": boundary_collect,
    "avi_boundary_fit": boundary_fit,
    "avi_boundary_edit": boundary_edit,
}
