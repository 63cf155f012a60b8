"""AVI Load Boundary: pick a boundary file from models/avi_boundaries."""

from __future__ import annotations

import logging
import os

from comfy_api.latest import io

from ...avi_core.boundary import load_boundary
from ...avi_core.errors import FileFormatError
from .. import host
from ..common import CATEGORY
from ..fixes import explained, explains_errors
from ..schema_compat import schema
from .latents import describe_boundary
from .types import BoundaryType

logger = logging.getLogger("avi.nodes.boundary.load")


class AVILoadBoundary(io.ComfyNode):
    """Loads a boundary file (safetensors only), says where it was captured and how well it separates."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVILoadBoundary",
            display_name="AVI Load Boundary",
            category=CATEGORY,
            search_aliases=["boundary", "attribute", "edit", "boundarydiffusion", "semantic boundary", "load boundary"],
            description=(
                "Loads a semantic boundary (.safetensors) from models/avi_boundaries, for 'AVI Boundary Edit'. "
                "Outputs the step its sides were captured at: wire it into stop_step of the 'AVI Capture Latent at "
                "Step' that captures the latent to edit (same steps, sampler and scheduler as the collection), and "
                "a description: the prompts, the held-out accuracy, the accuracy by step."
            ),
            inputs=[
                io.Combo.Input(
                    "boundary_name",
                    options=host.boundary_files(),
                    tooltip="A boundary file in models/avi_boundaries (fit one with 'AVI Fit Boundary', or copy a "
                    "shared .safetensors boundary there and press R to refresh).",
                ),
            ],
            outputs=[
                BoundaryType.Output("boundary", display_name="boundary", tooltip="The boundary, for Boundary Edit."),
                io.Int.Output(
                    "step",
                    display_name="step",
                    tooltip="The step the boundary was fitted at (0 when the file does not say): the stop_step of "
                    "the capture to edit.",
                ),
                io.String.Output(
                    "info",
                    display_name="info",
                    tooltip="What the boundary is: description, samples, held-out accuracy, capture step and schedule.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, boundary_name: str) -> bool | str:
        # This host does not check a V3 combo's value against its options: name a missing file at queue time.
        try:
            host.boundary_path(boundary_name)
        except FileFormatError as err:
            return explained(err)
        return True

    @classmethod
    def fingerprint_inputs(cls, boundary_name: str) -> float:
        # A boundary fitted again under the same name must be reloaded.
        try:
            return os.path.getmtime(host.boundary_path(boundary_name))
        except (OSError, FileFormatError):
            return float("nan")

    @classmethod
    @explains_errors
    def execute(cls, boundary_name: str) -> io.NodeOutput:
        path = host.boundary_path(boundary_name)
        boundary = load_boundary(path)
        label = os.path.splitext(os.path.basename(boundary_name))[0]
        logger.info("AVI: loaded boundary %s", path)
        return io.NodeOutput(boundary, boundary.step or 0, describe_boundary(boundary, label))


NODES: list[type[io.ComfyNode]] = [AVILoadBoundary]
