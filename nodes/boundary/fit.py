"""AVI Fit Boundary: a linear SVM between two sides captured at one step; across steps, the mixing-step search."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from comfy_api.latest import io, ui

from ...avi_core.boundary import DEFAULT_TOLERANCE, mixing_step_search, save_boundary
from ...avi_core.boundary.fit import DEFAULT_C, DEFAULT_HOLDOUT
from ...avi_core.boundary.plots import render_search
from ...avi_core.files.names import SAFETENSORS_SUFFIX, sanitize_name
from .. import host
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import advanced_input, schema
from .latents import choose_sides, collection_fingerprint, collection_sides, find_collection, latent_sides
from .types import BoundaryType

logger = logging.getLogger("avi.nodes.boundary.fit")


class AVIFitBoundary(io.ComfyNode):
    """Fits the boundary at each step the sides were captured at, shows the accuracy curve, saves the chosen one."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIFitBoundary",
            display_name="AVI Fit Boundary",
            category=CATEGORY,
            search_aliases=[
                "boundary",
                "attribute",
                "edit",
                "boundarydiffusion",
                "semantic boundary",
                "svm",
                "fit",
                "mixing step",
            ],
            description=(
                "Fits a semantic boundary (BoundaryDiffusion): a hyperplane that separates latents of prompt A "
                "(side a) from latents of prompt B (side b) captured at the SAME step, as a linear SVM, and measures "
                "its accuracy on held-out images. With a collection from 'AVI Collect Boundary Samples' holding "
                "several steps, it fits at every step, plots the held-out accuracy against the step and picks the "
                "mixing step: the noisiest step within 'tolerance' of the best accuracy. Saves that step's boundary "
                "to models/avi_boundaries/<name>.safetensors. AVI datasets (x and z at two different steps) cannot be "
                "used. The fit runs on the CPU in float64; Cancel stops it between steps."
            ),
            is_output_node=True,
            inputs=[
                io.String.Input(
                    "collection",
                    default="my_boundary",
                    tooltip="The collection to fit on: a folder in models/avi_boundary_collections filled by 'AVI "
                    "Collect Boundary Samples'. Clear it when side_a and side_b are connected.",
                ),
                io.String.Input(
                    "name",
                    default="my_boundary",
                    tooltip="File name of the boundary in models/avi_boundaries (letters, digits, '-', '_'). An "
                    "existing boundary of that name is replaced.",
                ),
                io.String.Input(
                    "description",
                    default="",
                    multiline=True,
                    tooltip="What the boundary separates, e.g. the two prompts; stored in the file, shown by Load.",
                ),
                io.Int.Input(
                    "step",
                    default=-1,
                    min=-1,
                    max=10000,
                    tooltip="-1: fit at every step the collection holds and choose the mixing step by the rule. A "
                    "step number: fit at that step only.",
                ),
                advanced_input(
                    io.Float.Input,
                    "tolerance",
                    default=DEFAULT_TOLERANCE,
                    min=0.0,
                    max=1.0,
                    step=0.005,
                    tooltip="The rule's margin: the chosen step is the noisiest whose held-out accuracy is at least "
                    "the best minus this (0.02 = 2 points).",
                ),
                advanced_input(
                    io.Float.Input,
                    "holdout",
                    default=DEFAULT_HOLDOUT,
                    min=0.05,
                    max=0.9,
                    step=0.05,
                    tooltip="Fraction of each side held out to measure the accuracy (the boundary itself is then "
                    "fitted on all images).",
                ),
                advanced_input(
                    io.Float.Input,
                    "C",
                    default=DEFAULT_C,
                    min=1e-4,
                    max=1e6,
                    step=0.1,
                    round=False,
                    tooltip="The SVM's soft-margin constant on normalised latents: larger fits the training images "
                    "more tightly.",
                ),
                advanced_input(
                    io.Int.Input,
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    tooltip="Seed of the held-out split (the same images are held out at every step).",
                ),
                io.Latent.Input(
                    "side_a",
                    optional=True,
                    tooltip="Instead of a collection: prompt A's latents from 'AVI Capture Latent at Step' (one step).",
                ),
                io.Latent.Input(
                    "side_b",
                    optional=True,
                    tooltip="Instead of a collection: prompt B's latents captured at the same step, same seeds.",
                ),
            ],
            outputs=[
                BoundaryType.Output(
                    "boundary",
                    display_name="boundary",
                    tooltip="The boundary at the chosen step (also saved to models/avi_boundaries/<name>.safetensors).",
                ),
                io.Image.Output(
                    "accuracy_plot",
                    display_name="accuracy_plot",
                    tooltip="Held-out accuracy by step, the rule's band and the chosen mixing step.",
                ),
                io.Int.Output(
                    "chosen_step",
                    display_name="chosen_step",
                    tooltip="The chosen mixing step: capture the latent to edit there (stop_step) and resume there "
                    "(start_at_step).",
                ),
                io.String.Output(
                    "summary",
                    display_name="summary",
                    tooltip="The held-out accuracy at each step, the choice, and the file written.",
                ),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, collection: str = "", **_: object) -> str:
        # Collecting more into the same collection must refit on the next queue, with unchanged widgets.
        return collection_fingerprint(host.boundary_collection_roots(), host.dataset_roots(), collection)

    @classmethod
    @explains_errors
    def execute(
        cls,
        collection: str,
        name: str,
        description: str,
        step: int,
        tolerance: float,
        holdout: float,
        C: float,
        seed: int,
        side_a: dict | None = None,
        side_b: dict | None = None,
    ) -> io.NodeOutput:
        safe_name = sanitize_name(name, "boundary")
        if choose_sides(side_a, side_b, collection) == "latents":
            candidates = latent_sides(side_a, side_b)
            if step >= 0 and step not in candidates:
                logger.warning("AVI Fit Boundary: step %d ignored, the side latents are at %s", step, list(candidates))
        else:
            folder = find_collection(host.boundary_collection_roots(), host.dataset_roots(), collection.strip())
            candidates = collection_sides(folder, step)
        bar = host.progress_bar(len(candidates) + 1)

        def progress(done: int, total: int) -> None:
            host.throw_if_interrupted()  # Cancel: comfy's exception propagates through the search untouched
            bar.update_absolute(done, total + 1)

        host.throw_if_interrupted()
        search = mixing_step_search(candidates, holdout, seed, tolerance=tolerance, C=C, progress=progress, paired=True)
        boundary = replace(
            search.boundary, info={**search.boundary.info, "name": safe_name, "description": description}
        )
        host.throw_if_interrupted()  # Cancel after the last fit: nothing is written
        path = os.path.join(host.boundaries_save_folder(), safe_name + SAFETENSORS_SUFFIX)
        if os.path.exists(path):
            logger.warning("AVI Fit Boundary: replacing the existing boundary %s", path)
        save_boundary(boundary, path)
        bar.update_absolute(len(candidates) + 1, len(candidates) + 1)
        plot = render_search(search)
        summary = f"{search.summary()}\n{boundary.summary()}\nsaved {path}"
        logger.info("AVI Fit Boundary: %s", summary)
        return io.NodeOutput(boundary, plot, search.chosen, summary, ui=ui.PreviewImage(plot, cls=cls))


NODES: list[type[io.ComfyNode]] = [AVIFitBoundary]
