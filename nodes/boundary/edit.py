"""AVI Boundary Edit: move a captured latent to a signed distance from a boundary, in one step."""

from __future__ import annotations

from comfy_api.latest import io

from ...avi_core.boundary import DISTANCE_RANGE, Boundary, parse_distances
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import schema
from .latents import edit_latent
from .types import BoundaryType


class AVIBoundaryEdit(io.ComfyNode):
    """x' = x + (d - s(x)) n on a latent captured at the boundary's step, at one distance or a sweep of them."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIBoundaryEdit",
            display_name="AVI Boundary Edit",
            category=CATEGORY,
            search_aliases=[
                "boundary",
                "attribute",
                "edit",
                "boundarydiffusion",
                "semantic boundary",
                "distance",
                "cross",
            ],
            description=(
                "Crosses a semantic boundary in one move (BoundaryDiffusion): the latent, captured with 'AVI Capture "
                "Latent at Step' at the boundary's step, is moved along the boundary's normal so that it lies at the "
                "given signed distance (x' = x + (d - s(x)) n); nothing else about it changes. Positive distances are "
                "on prompt B's side, negative on prompt A's; 1 is as far as a typical captured image, and crossing "
                "convincingly may take 5 to 20. The result stays at the same noise level with its capture record: "
                "resume it with KSamplerAdvanced (start_at_step = the step, add_noise disable, the ORIGINAL prompt). "
                "A latent captured at another step, schedule or size is refused."
            ),
            inputs=[
                io.Latent.Input(
                    "captured",
                    tooltip="The latent to edit, from 'AVI Capture Latent at Step' with stop_step = the boundary's "
                    "step ('AVI Load Boundary' outputs it) and the collection's steps, sampler and scheduler.",
                ),
                BoundaryType.Input("boundary", tooltip="The boundary, from 'AVI Load Boundary' or 'AVI Fit Boundary'."),
                io.Float.Input(
                    "distance",
                    default=5.0,
                    min=DISTANCE_RANGE[0],
                    max=DISTANCE_RANGE[1],
                    step=0.1,
                    display_mode=io.NumberDisplay.slider,
                    tooltip="Where to put the latent: its signed distance from the boundary, in units of a typical "
                    "image's distance. > 0: prompt B's side, < 0: prompt A's, 0: on the boundary. The 'info' "
                    "output shows where the latent was.",
                ),
                io.String.Input(
                    "distance_list",
                    default="",
                    tooltip="Optional comma-separated distances, e.g. '-10, -5, 0, 5, 10': returns the sweep as one "
                    "batch (distance-major) and ignores distance. Empty = use distance.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    "latent",
                    display_name="latent",
                    tooltip="The moved latent at the captured noise level, with the capture record; for a distance "
                    "list, every distance as one batch (all images at the first distance, then the next).",
                ),
                io.String.Output(
                    "info",
                    display_name="info",
                    tooltip="The signed distance of each latent before the move, and the distances it was moved to.",
                ),
            ],
        )

    @classmethod
    @explains_errors
    def execute(cls, captured: dict, boundary: Boundary, distance: float, distance_list: str = "") -> io.NodeOutput:
        distances = parse_distances(distance_list, default=distance)
        out, before = edit_latent(captured, boundary, distances)
        info = (
            f"signed distance before: {', '.join(f'{float(v):.3f}' for v in before)}; moved to: "
            f"{', '.join(f'{d:g}' for d in distances)} (units of {boundary.unit:.4g}; > 0 is prompt B's side)"
        )
        return io.NodeOutput(out, info)


NODES: list[type[io.ComfyNode]] = [AVIBoundaryEdit]
