"""AVI Find h-space Directions: PCA of a collection, the supervised direction between two sets, and the
image-specific directions of one latent at one step (the Jacobian's top singular vectors)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from comfy_api.latest import io, ui

from ...avi_core.errors import ParameterError
from ...avi_core.files.names import SAFETENSORS_SUFFIX, sanitize_name
from ...avi_core.hspace.collection import collection_folder, read_collection, sanitize_collection_name, shard_paths
from ...avi_core.hspace.direction_files import DirectionSet, save_directions
from ...avi_core.hspace.jacobian import jacobian_power_iteration
from ...avi_core.hspace.plots import render_explained_variance, render_projections, render_singular_values
from ...avi_core.hspace.recipes import (
    jacobian_direction_set,
    pair_collections,
    pca_from_collection,
    supervised_from_collection,
)
from .. import host
from ..schema_compat import advanced_input, schema
from .capture import H_BLOCK
from .fixes import explains_hspace_errors
from .load import describe_directions
from .types import HSPACE_CATEGORY, Directions

logger = logging.getLogger("avi.nodes.hspace.find")

PASS_CHOICES = ["cond", "uncond", "both"]


def _pass(value: str) -> str | None:
    if value not in PASS_CHOICES:
        raise ParameterError(f"pass {value!r} is not one of {', '.join(PASS_CHOICES)}", name="pass", value=value)
    return None if value == "both" else value


def find_collection(name: str) -> Path:
    """The folder of collection `name`: the first avi_hspace_collections folder that has it (else the first
    folder's, which read_collection then reports missing)."""
    safe = sanitize_collection_name(name)
    roots = host.hspace_collection_roots()
    for root in roots:
        folder = collection_folder(root, safe)
        if folder.is_dir():
            return folder
    return collection_folder(roots[0], safe)


def collection_state(*names: str) -> str:
    """The shards the named collections hold now (names and sizes): a Find node runs again when they change."""
    parts = []
    for name in names:
        try:
            folder = find_collection(name)
            parts += [f"{p.name}:{p.stat().st_size}" for p in shard_paths(folder)]
        except Exception as err:  # an unusable name or folder: execute reports it
            parts.append(f"{name}: {type(err).__name__}")
    return "|".join(parts)


def _after_input(name: str, which: str) -> io.Latent.Input:
    return io.Latent.Input(
        name,
        optional=True,
        tooltip=f"Optional: the LATENT output of the sampler that fills {which} in this same queue, so that this "
        "node runs after that sampling has added its h. Not used otherwise.",
    )


def save(directions: DirectionSet, name: str, description: str) -> str:
    """Write models/avi_directions/<name>.safetensors (atomically; an existing file is replaced)."""
    safe = sanitize_name(name, "direction")
    if description.strip():
        directions.info["description"] = description.strip()
    directions.info["name"] = safe
    path = os.path.join(host.directions_save_folder(), safe + SAFETENSORS_SUFFIX)
    if os.path.exists(path):
        logger.warning("AVI h-space: replacing the existing direction file %s", path)
    save_directions(path, directions)
    return path


def _name_input(default: str) -> io.String.Input:
    return io.String.Input(
        "name",
        default=default,
        tooltip="File name of the directions in models/avi_directions (letters, digits, '-', '_'; other characters "
        "become '_'). An existing file of that name is replaced.",
    )


def _description_input() -> io.String.Input:
    return io.String.Input(
        "description",
        default="",
        multiline=True,
        tooltip="What the directions do (e.g. the prompts); stored in the file, shown by the Load node.",
    )


def _step_input() -> io.Int.Input:
    return io.Int.Input(
        "step",
        default=-1,
        min=-1,
        max=10000,
        tooltip="The sampling step whose h to use. -1 = every step the collection holds, one direction per step "
        "(applied at the matching step), or its only step.",
    )


def _pass_input() -> io.Combo.Input:
    return advanced_input(
        io.Combo.Input,
        "pass",
        options=PASS_CHOICES,
        default="cond",
        tooltip="Which captured guidance pass to use: cond (the prompt's, as captured by default), uncond or both.",
    )


def _outputs(plot_tooltip: str) -> list:
    return [
        Directions.Output(
            "directions",
            display_name="directions",
            tooltip="The directions found (also saved to models/avi_directions/<name>.safetensors), for 'AVI Apply "
            "h-space Direction'.",
        ),
        io.Image.Output("plot", display_name="plot", tooltip=plot_tooltip),
        io.String.Output("info", display_name="info", tooltip="What was found, from what, and the file written."),
    ]


def _stored_steps(directions: DirectionSet) -> list[int] | None:
    steps = directions.info.get("steps_stored")
    return [int(s) for s in steps] if isinstance(steps, list) else None


class AVIHSpaceFindPCA(io.ComfyNode):
    """Principal directions of the h in a collection (unsupervised, global)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIHSpaceFindPCA",
            display_name="AVI Find h-space Directions (PCA)",
            category=HSPACE_CATEGORY,
            search_aliases=[
                "h-space",
                "hspace",
                "edit",
                "pca",
                "principal components",
                "semantic direction",
                "unsupervised",
            ],
            description=(
                "Finds the directions along which the captured h of a collection vary most (principal components, "
                "Haas et al.): each is a global edit that works on any image. A strength of 1 is one standard "
                "deviation of the images. Saves models/avi_directions/<name>.safetensors and plots how much of "
                "the variation each direction explains."
            ),
            is_output_node=True,
            inputs=[
                io.String.Input(
                    "collection",
                    default="my_collection",
                    tooltip="The collection to analyse: the name given to 'AVI Capture h' (a folder in "
                    "models/avi_hspace_collections). It needs more images than directions asked for.",
                ),
                _name_input("my_pca"),
                io.Int.Input(
                    "count",
                    default=4,
                    min=1,
                    max=256,
                    tooltip="How many directions to find (at most the number of images minus 1).",
                ),
                _step_input(),
                _pass_input(),
                _description_input(),
                _after_input("samples", "the collection"),
            ],
            outputs=_outputs(
                "The share of the variation each direction explains (bars) and the cumulative share; per step, "
                "a line per direction over the steps."
            ),
        )

    @classmethod
    def fingerprint_inputs(cls, collection: str, **kwargs: Any) -> str:
        return collection_state(collection)

    @classmethod
    @explains_hspace_errors
    def execute(
        cls, collection: str, name: str, count: int, step: int, description: str = "", **kwargs: Any
    ) -> io.NodeOutput:
        pass_ = _pass(kwargs.get("pass", "cond"))
        data = read_collection(find_collection(collection))
        held = (data.select(pass_=pass_) if pass_ else data).steps
        per_step = step < 0 and len(held) > 1
        made = pca_from_collection(data, count, step=None if step < 0 else step, per_step=per_step, pass_=pass_)
        path = save(made, name, description)
        plot = render_explained_variance(
            made.scales,
            torch.tensor(made.info["total_variance"], dtype=torch.float64),
            steps=_stored_steps(made),
            title=f"h-space PCA of '{data.folder.name}'",
        )
        text = f"{describe_directions(made, Path(path).stem)}\n{data.summary()}\nsaved {path}"
        logger.info("AVI h-space PCA: %s", text.replace("\n", "; "))
        return io.NodeOutput(made, plot, text, ui=ui.PreviewImage(plot, cls=cls))


class AVIHSpaceFindSupervised(io.ComfyNode):
    """The direction from one set of h to another (two prompts, or two labels), optionally disentangled."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIHSpaceFindSupervised",
            display_name="AVI Find h-space Direction (Supervised)",
            category=HSPACE_CATEGORY,
            search_aliases=[
                "h-space",
                "hspace",
                "edit",
                "supervised",
                "semantic direction",
                "attribute",
                "two prompts",
            ],
            description=(
                "Finds the direction from the h of set A to the h of set B (the difference of their means, Haas "
                "et al.): e.g. images of 'a person' (A) and of 'a smiling person' (B) captured with 'AVI Capture "
                "h'. A strength of 1 moves an image by the distance between the two sets. Optionally made "
                "orthogonal to other directions (disentangled), so that applying it does not also move along "
                "them. Saves models/avi_directions/<name>.safetensors and plots where the two sets lie along it."
            ),
            is_output_node=True,
            inputs=[
                io.String.Input(
                    "collection_a",
                    default="plain",
                    tooltip="The collection of set A (where the direction starts), e.g. captured with the plain "
                    "prompt.",
                ),
                io.String.Input(
                    "collection_b",
                    default="attribute",
                    tooltip="The collection of set B (where it points to), e.g. captured with the attribute "
                    "prompt. May be the same collection as A with other labels.",
                ),
                _name_input("my_direction"),
                _step_input(),
                io.String.Input(
                    "label_a",
                    default="",
                    tooltip="Only the h of collection A with this label ('AVI Capture h' label). Empty = all of it.",
                ),
                io.String.Input(
                    "label_b",
                    default="",
                    tooltip="Only the h of collection B with this label. Empty = all of it.",
                ),
                _pass_input(),
                _description_input(),
                _after_input("samples_a", "collection A"),
                _after_input("samples_b", "collection B"),
                Directions.Input(
                    "disentangle",
                    optional=True,
                    tooltip="Optional directions to stay orthogonal to (e.g. a PCA set, or another supervised "
                    "direction): the result is moved off each of them (per-step sets: off every step's).",
                ),
            ],
            outputs=_outputs(
                "Where the two sets lie along the direction (a histogram of h . d per set, means dashed): set B "
                "should sit to the right of set A."
            ),
        )

    @classmethod
    def fingerprint_inputs(cls, collection_a: str, collection_b: str, **kwargs: Any) -> str:
        return collection_state(collection_a, collection_b)

    @classmethod
    @explains_hspace_errors
    def execute(
        cls,
        collection_a: str,
        collection_b: str,
        name: str,
        step: int,
        label_a: str = "",
        label_b: str = "",
        description: str = "",
        disentangle: DirectionSet | None = None,
        **kwargs: Any,
    ) -> io.NodeOutput:
        pass_ = _pass(kwargs.get("pass", "cond"))
        first = read_collection(find_collection(collection_a))
        second = first if sanitize_collection_name(collection_a) == sanitize_collection_name(collection_b) else None
        second = second or read_collection(find_collection(collection_b))
        joined, key_a, key_b = pair_collections(first, second, label_a.strip() or None, label_b.strip() or None)
        chosen = joined.select(pass_=pass_) if pass_ else joined
        per_step = step < 0 and len(chosen.steps) > 1
        others = None
        if disentangle is not None:
            others = disentangle.directions.reshape(-1, *disentangle.shape)  # per-step sets: every step's rows
        made = supervised_from_collection(
            joined,
            key_a,
            key_b,
            step=None if step < 0 else step,
            per_step=per_step,
            others=others,
            pass_=pass_,
            info={"collection_a": first.folder.name, "collection_b": second.folder.name},
        )
        path = save(made, name, description)
        plot_step = _stored_steps(made)[0] if made.per_step else int(made.info["step"])
        part = chosen.select(step=plot_step)
        d = (made.directions[0, 0] if made.per_step else made.directions[0]).reshape(-1)
        projections = {
            key: part.select(label=key).h.reshape(-1, d.numel()).to(torch.float64) @ d.to(torch.float64)
            for key in (key_a, key_b)
        }
        plot = render_projections(
            projections[key_a],
            projections[key_b],
            label_a=f"A: {key_a}",
            label_b=f"B: {key_b}",
            title=f"supervised h-space direction at step {plot_step}",
        )
        text = f"{describe_directions(made, Path(path).stem)}\n{joined.summary()}\nsaved {path}"
        logger.info("AVI h-space supervised: %s", text.replace("\n", "; "))
        return io.NodeOutput(made, plot, text, ui=ui.PreviewImage(plot, cls=cls))


@contextlib.contextmanager
def autograd_weights(model: torch.nn.Module, modules: list[torch.nn.Module]) -> Iterator[int]:
    """Make `model` usable by autograd with respect to its activations, and put everything back after.

    ComfyUI loads checkpoints inside a node, under torch.inference_mode: the weights may be inference tensors
    (which autograd refuses to save for backward) that require grad (so every layer would record). While inside:
    no parameter of `model` requires grad, and the inference-mode parameters and buffers of `modules` (the layers
    h flows through) are replaced by normal copies. Call outside inference mode. Yields how many were copied.
    """
    frozen: list[torch.nn.Parameter] = []
    swapped: list[tuple[dict, str, torch.Tensor]] = []
    try:
        for param in model.parameters():
            if param.requires_grad:
                param.requires_grad_(False)
                frozen.append(param)
        for root in modules:
            for module in root.modules():
                for store in (module._parameters, module._buffers):
                    for key, value in list(store.items()):
                        if isinstance(value, torch.Tensor) and value.is_inference():
                            copy = value.detach().clone()
                            is_param = store is module._parameters
                            store[key] = torch.nn.Parameter(copy, requires_grad=False) if is_param else copy
                            swapped.append((store, key, value))
        yield len(swapped)
    finally:
        for store, key, value in reversed(swapped):
            store[key] = value
        for param in frozen:
            if param.is_inference():
                with torch.inference_mode():  # an inference tensor takes requires_grad only inside it
                    param.requires_grad_(True)
            else:
                param.requires_grad_(True)


def _after_bottleneck(diffusion_model: torch.nn.Module) -> list[torch.nn.Module]:
    """The parts of a UNet that h flows through (output blocks and the final layers); the whole model otherwise."""
    parts = [getattr(diffusion_model, name, None) for name in ("output_blocks", "out", "id_predictor")]
    parts = [p for p in parts if isinstance(p, torch.nn.Module)]
    return parts if parts and hasattr(diffusion_model, "output_blocks") else [diffusion_model]


class _JacobianSampler:
    """A one-step 'sampler' for comfy.sample.sample_custom that runs the power iteration at its sigma.

    Running inside ComfyUI's own sampling loads the model (weights, LoRAs, patches) and prepares the
    conditioning exactly as a sampler would. f(h) is the denoiser's noise prediction eps = (x - D(x, sigma)) /
    sigma with the bottleneck replaced by h (guidance 1: the prompt's pass alone, spec 8).
    """

    def __init__(self, diffusion_model, count: int, iters: int, tol: float, seed: int, progress) -> None:
        self.diffusion_model = diffusion_model
        self.count, self.iters, self.tol, self.seed = count, iters, tol, seed
        self.progress = progress
        self.result = None
        self.h = None
        self.sigma = None

    def __call__(self, model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        import comfy.model_patcher

        extra_args = dict(extra_args or {})
        base = extra_args.get("model_options", {})
        sigma = sigmas[0]
        state: dict[str, Any] = {}

        def with_patch(patch):
            options = comfy.model_patcher.create_model_options_clone(base)
            patches = options.setdefault("transformer_options", {}).setdefault("patches", {})
            patches["output_block_patch"] = list(patches.get("output_block_patch", [])) + [patch]
            return dict(extra_args, model_options=options)

        def record(h, hsp, transformer_options):
            if transformer_options.get("block") == H_BLOCK:
                state["h"] = h.detach().clone()
            return h, hsp

        def substitute(h, hsp, transformer_options):
            if transformer_options.get("block") == H_BLOCK:
                return state["replacement"].to(h.dtype), hsp
            return h, hsp

        s_in = x.new_ones([x.shape[0]])
        with torch.no_grad():
            model_k(x, sigma * s_in, **with_patch(record))
        h0 = state["h"]
        substituted = with_patch(substitute)
        with torch.inference_mode(False):
            x_in = x.detach().clone()
            sigma_in = (sigma * s_in).detach().clone()
            scale = float(sigma)

            def f(h: torch.Tensor) -> torch.Tensor:
                state["replacement"] = h
                denoised = model_k(x_in, sigma_in, **substituted)
                return (x_in - denoised) / scale

            with autograd_weights(self.diffusion_model, _after_bottleneck(self.diffusion_model)) as swapped:
                if swapped:
                    logger.info("AVI h-space Jacobian: %d inference-mode weights copied for autograd", swapped)
                self.result = jacobian_power_iteration(
                    f, h0.detach().clone(), self.count, self.iters, self.tol, seed=self.seed, progress=self.progress
                )
        self.h = h0.detach().to("cpu", torch.float32)
        self.sigma = float(sigma)
        return x


class AVIHSpaceFindJacobian(io.ComfyNode):
    """Image-specific directions: the top right singular vectors of the denoiser's Jacobian at one latent and step."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        from .. import host as _host

        return schema(
            io.Schema,
            node_id="AVIHSpaceFindJacobian",
            display_name="AVI Find h-space Directions (Jacobian)",
            category=HSPACE_CATEGORY,
            search_aliases=[
                "h-space",
                "hspace",
                "edit",
                "jacobian",
                "power iteration",
                "image-specific",
                "semantic direction",
            ],
            description=(
                "Finds the directions in h that change this one image the most at one step: the top singular "
                "vectors of the denoiser's Jacobian (Haas et al.), by power iteration (about 2 model passes per "
                "iteration; Cancel stops it). Give the latent the sampler has at that step (KSampler (Advanced) "
                "with end_at_step = step and return_with_leftover_noise enable, or 'AVI Capture Latent at "
                "Step'). A strength of 0.1 is 10 % of the image's |h|. Saves models/avi_directions/<name>"
                ".safetensors and plots the singular values."
            ),
            is_output_node=True,
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (a UNet: Stable Diffusion 1.x, 2.x, SDXL)."),
                io.Conditioning.Input("positive", tooltip="The prompt of the image (the Jacobian uses its pass)."),
                io.Latent.Input(
                    "latent",
                    tooltip="The noisy latent at the step: stopped there with its leftover noise, from the same "
                    "steps, sampler and scheduler as below.",
                ),
                _name_input("my_image_directions"),
                io.Int.Input("steps", default=50, min=1, max=10000, tooltip="Total sampling steps of the schedule."),
                io.Int.Input(
                    "step",
                    default=10,
                    min=0,
                    max=10000,
                    tooltip="The step the latent is at (end_at_step of the sampler that made it).",
                ),
                io.Combo.Input(
                    "sampler_name", options=_host.sampler_names(), tooltip="As in the sampler that made the latent."
                ),
                io.Combo.Input(
                    "scheduler",
                    options=_host.scheduler_names(),
                    default="normal",
                    tooltip="As in the sampler that made the latent.",
                ),
                io.Int.Input("count", default=3, min=1, max=32, tooltip="How many directions (Haas et al.: 3)."),
                advanced_input(
                    io.Int.Input,
                    "iterations",
                    default=50,
                    min=1,
                    max=1000,
                    tooltip="Most power iterations per direction (Haas et al.: 50).",
                ),
                advanced_input(
                    io.Float.Input,
                    "tolerance",
                    default=1e-5,
                    min=0.0,
                    max=1.0,
                    step=1e-6,
                    round=False,
                    tooltip="Stop a direction when it moves less than this per iteration (Haas et al.: 1e-5).",
                ),
                advanced_input(
                    io.Int.Input,
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    tooltip="Seed of the power iteration's start vectors.",
                ),
                advanced_input(
                    io.Int.Input,
                    "batch_index",
                    default=0,
                    min=0,
                    max=4095,
                    tooltip="Which image of the latent batch to analyse.",
                ),
                _description_input(),
            ],
            outputs=_outputs("The singular value of each direction: how strongly it changes the prediction."),
        )

    @classmethod
    @explains_hspace_errors
    def execute(
        cls,
        model,
        positive,
        latent: dict,
        name: str,
        steps: int,
        step: int,
        sampler_name: str,
        scheduler: str,
        count: int,
        iterations: int = 50,
        tolerance: float = 1e-5,
        seed: int = 0,
        batch_index: int = 0,
        description: str = "",
    ) -> io.NodeOutput:
        import comfy.sample
        import comfy.samplers

        samples = latent["samples"]
        if not 0 <= batch_index < samples.shape[0]:
            raise ParameterError(
                f"batch_index = {batch_index} but the latent holds {samples.shape[0]} image(s)",
                reason="range",
                name="batch_index",
                value=batch_index,
                low=0,
                high=samples.shape[0] - 1,
            )
        sigmas = host.ksampler_sigmas(model, steps, sampler_name, scheduler)
        last = sigmas.numel() - 2
        if not 0 <= step <= last or float(sigmas[step]) <= 0:
            raise ParameterError(
                f"step = {step} is outside the {last + 1} noisy steps of this schedule",
                reason="range",
                name="step",
                value=step,
                low=0,
                high=last,
            )
        image = comfy.sample.fix_empty_latent_channels(model, samples[batch_index : batch_index + 1])
        bar = host.progress_bar(count * iterations)

        def progress(done: int, total: int) -> None:
            host.throw_if_interrupted()  # Cancel: comfy's exception propagates through the sampler untouched
            bar.update_absolute(done, total)

        runner = _JacobianSampler(model.model.diffusion_model, count, iterations, tolerance, seed, progress)
        comfy.sample.sample_custom(
            model,
            torch.zeros_like(image),
            1.0,
            comfy.samplers.KSAMPLER(runner),
            sigmas[step : step + 2].clone(),
            positive,
            positive,
            image,
            disable_pbar=True,
            seed=seed,
        )
        result = runner.result
        sampling = model.get_model_object("model_sampling")
        made = jacobian_direction_set(
            result,
            runner.h,
            info={
                "model": host.model_family(model),
                "step": step,
                "steps": steps,
                "sigma": runner.sigma,
                "timestep": float(sampling.timestep(torch.tensor([runner.sigma])).reshape(-1)[0]),
                "sampler": sampler_name,
                "scheduler": scheduler,
                "height": int(image.shape[-2]),
                "width": int(image.shape[-1]),
                "batch_index": batch_index,
                "iterations": list(result.iterations),
                "mode": result.mode,
                "pass": "cond",
            },
        )
        path = save(made, name, description)
        plot = render_singular_values(made.info["singular_values"], title=f"Jacobian singular values, step {step}")
        converged = sum(bool(c) for c in result.converged)
        text = (
            f"{describe_directions(made, Path(path).stem)}\n{converged} of {len(result.converged)} direction(s) "
            f"converged ({result.mode} products)\nsaved {path}"
        )
        logger.info("AVI h-space Jacobian: %s", text.replace("\n", "; "))
        return io.NodeOutput(made, plot, text, ui=ui.PreviewImage(plot, cls=cls))


NODES: list[type[io.ComfyNode]] = [AVIHSpaceFindPCA, AVIHSpaceFindSupervised, AVIHSpaceFindJacobian]
