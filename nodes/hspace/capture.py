"""AVI Capture h: a MODEL that records the UNet's bottleneck h while any sampler runs, into a collection."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import torch
from comfy_api.latest import io

from ...avi_core.errors import ParameterError
from ...avi_core.hspace.collection import append_h, collection_folder, make_record, sanitize_collection_name
from ...avi_core.hspace.steps import step_of_sigma
from ...avi_core.values import parse_number_list
from .. import host
from ..schema_compat import schema
from .fixes import explains_hspace_errors, hspace_errors
from .types import HSPACE_CATEGORY

logger = logging.getLogger("avi.nodes.hspace.capture")

H_BLOCK = ("output", 0)
"""transformer_options["block"] when an output_block_patch receives h, the middle block's output (spec 8)."""
PASSES = {"cond": ("cond",), "uncond": ("uncond",), "both": ("cond", "uncond")}
WRAPPER_KEY = "avi_hspace_capture"


def parse_steps(text: str) -> list[int] | None:
    """'all' or '' -> None (every step); '0, 10, 25' -> [0, 10, 25]. ParameterError for anything else."""
    cleaned = (text or "").strip().lower()
    if cleaned in ("", "all", "*"):
        return None
    values = parse_number_list(cleaned, "steps", 0, 100000)
    steps = []
    for value in values:
        if value != int(value):
            raise ParameterError(
                f"steps: {value:g} is not a whole step number", reason="list", name="steps", value=value, low=0
            )
        steps.append(int(value))
    return sorted(set(steps))


@dataclass
class _Run:
    """What one sampling records: h chunks `[b, *item]` (float16, CPU) and one record per row."""

    seed: int
    h: list[torch.Tensor] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    seen: set[tuple[int, str]] = field(default_factory=set)
    steps: int = 0


class HRecorder:
    """The output-block patch and the outer-sample wrapper of one Capture h node.

    The wrapper opens a run around each sampling (seed, schedule), the patch adds the h of the chosen steps and
    passes (the first evaluation of each step: a multistage sampler's second evaluation is skipped), and the
    wrapper writes the run as one shard when sampling ends. A sampling that raises (Cancel) writes nothing.
    """

    def __init__(
        self,
        folder,
        label: str,
        steps: list[int] | None,
        passes: tuple[str, ...],
        model_sampling,
        run_info: dict[str, Any],
    ) -> None:
        self.folder = folder
        self.label = label
        self.steps = steps
        self.passes = passes
        self.model_sampling = model_sampling
        self.run_info = run_info
        self._local = threading.local()

    @property
    def current(self) -> _Run | None:
        return getattr(self._local, "run", None)

    def patch(self, h: torch.Tensor, hsp: torch.Tensor, transformer_options: dict):
        """output_block_patch: records h (never changes it)."""
        run = self.current
        if run is None or transformer_options.get("block") != H_BLOCK:
            return h, hsp
        schedule = transformer_options.get("sample_sigmas")
        sigmas = transformer_options.get("sigmas")
        if schedule is None or sigmas is None:
            return h, hsp
        with hspace_errors():
            step = step_of_sigma(sigmas, schedule)
            if self.steps is not None and step not in self.steps:
                return h, hsp
            kinds = list(transformer_options.get("cond_or_uncond") or [0])
            per_chunk = h.shape[0] // len(kinds)
            sigma = float(sigmas.reshape(-1)[0]) if isinstance(sigmas, torch.Tensor) else float(sigmas)
            timestep = float(self.model_sampling.timestep(torch.tensor([sigma])).reshape(-1)[0])
            run.steps = max(1, int(schedule.numel()) - 1)
            for index, kind in enumerate(kinds):
                pass_ = "cond" if int(kind) == 0 else "uncond"
                if pass_ not in self.passes or (step, pass_) in run.seen:
                    continue
                run.seen.add((step, pass_))
                chunk = h[index * per_chunk : (index + 1) * per_chunk]
                run.h.append(chunk.detach().to("cpu", torch.float16))
                run.records.extend(
                    make_record(step, run.steps, sigma, timestep, self.label, run.seed, pass_, batch_index=b)
                    for b in range(per_chunk)
                )
        return h, hsp

    def wrapper(self, executor, *args, **kwargs):
        """OUTER_SAMPLE wrapper: one run per sampling; its shard is written when the sampling returns."""
        seed = kwargs.get("seed", args[7] if len(args) > 7 else None)
        previous = self.current
        run = _Run(seed=int(seed) if seed is not None else 0)
        self._local.run = run
        try:
            out = executor(*args, **kwargs)
        finally:
            self._local.run = previous
        self.write(run)
        return out

    def write(self, run: _Run) -> None:
        if not run.h:
            logger.warning(
                "AVI Capture h: the sampling evaluated none of the chosen steps %s; nothing written to %s",
                self.steps,
                self.folder,
            )
            return
        with hspace_errors():
            shard = append_h(self.folder, torch.cat(run.h), run.records, self.run_info)
        logger.info("AVI Capture h: %d h to %s", len(run.records), shard)


class AVIHSpaceCapture(io.ComfyNode):
    """Wraps a MODEL so that the sampler using it records h into a collection."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIHSpaceCapture",
            display_name="AVI Capture h",
            category=HSPACE_CATEGORY,
            search_aliases=["h-space", "hspace", "edit", "bottleneck", "capture", "semantic direction", "collect"],
            description=(
                "Returns the model with a recorder on the UNet's bottleneck (h, the middle block's output, Haas et "
                "al.). Any sampler that uses this MODEL records h at the chosen steps and, when it finishes, adds "
                "them to the collection models/avi_hspace_collections/<collection>/ as one new file. Queue many "
                "seeds (batch size, or several runs with the seed on increment) to collect images for 'AVI Find "
                "h-space Directions (PCA)' or two prompts for the supervised direction. The image itself is not "
                "changed. Several ComfyUI instances may add to the same collection at once."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (a UNet: Stable Diffusion 1.x, 2.x, SDXL)."),
                io.String.Input(
                    "collection",
                    default="my_collection",
                    tooltip="Name of the collection: a folder in models/avi_hspace_collections (letters, digits, "
                    "'-', '_'; other characters become '_'). Each sampling adds one file to it.",
                ),
                io.String.Input(
                    "label",
                    default="",
                    tooltip="What these images are of, stored with each h (e.g. 'smiling'). The supervised "
                    "direction goes from one label (or collection) to another. Empty = the collection's name.",
                ),
                io.String.Input(
                    "steps",
                    default="all",
                    tooltip="The sampling steps to record: 'all', or step numbers separated by commas (0 = the "
                    "first, noisiest step), e.g. '0, 10, 25'. After KSampler (Advanced)'s start_at_step the "
                    "steps count from there.",
                ),
                io.Combo.Input(
                    "pass",
                    options=list(PASSES),
                    default="cond",
                    tooltip="Which half of the classifier-free guidance batch to record: cond (the prompt, the "
                    "usual choice), uncond (the negative prompt) or both.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    "patched_model",
                    display_name="model",
                    tooltip="The same model with the recorder: connect it to the sampler. Its images are unchanged.",
                ),
            ],
        )

    @classmethod
    @explains_hspace_errors
    def execute(cls, model, collection: str, label: str, steps: str, **kwargs) -> io.NodeOutput:
        pass_ = kwargs.get("pass", "cond")
        if pass_ not in PASSES:
            raise ParameterError(f"pass {pass_!r} is not one of {', '.join(PASSES)}", name="pass", value=pass_)
        name = sanitize_collection_name(collection)
        folder = collection_folder(host.hspace_collection_roots()[0], name)
        chosen = parse_steps(steps)
        run_info = {"model": host.model_family(model), "collection": name}
        recorder = HRecorder(
            folder,
            (label or "").strip() or name,
            chosen,
            PASSES[pass_],
            model.get_model_object("model_sampling"),
            run_info,
        )
        patched = model.clone()
        patched.set_model_output_block_patch(recorder.patch)
        patched.add_wrapper_with_key(_outer_sample(), WRAPPER_KEY, recorder.wrapper)
        logger.info("AVI Capture h: recording steps %s (%s) into %s", chosen or "all", pass_, folder)
        return io.NodeOutput(patched)


def _outer_sample() -> str:
    import comfy.patcher_extension

    return comfy.patcher_extension.WrappersMP.OUTER_SAMPLE


NODES: list[type[io.ComfyNode]] = [AVIHSpaceCapture]
