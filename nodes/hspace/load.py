"""AVI Load h-space Direction: pick a direction file from models/avi_directions."""

from __future__ import annotations

import logging
import os

from comfy_api.latest import io

from ...avi_core.errors import FileFormatError
from ...avi_core.hspace.direction_files import DirectionSet, load_directions
from .. import host
from ..schema_compat import schema
from .fixes import explained_hspace, explains_hspace_errors
from .types import HSPACE_CATEGORY, Directions

logger = logging.getLogger("avi.nodes.hspace.load")

_METHOD_NAMES = {
    "pca": "PCA (unsupervised)",
    "supervised": "supervised (two sets)",
    "jacobian": "Jacobian (one image)",
    "custom": "custom",
}
_UNITS = {
    "std": "a strength of 1 = one standard deviation of the images",
    "separation": "a strength of 1 = the distance between the two sets",
    "h_norm": "a strength of 1 = the image's |h| (0.1 = 10 %)",
    "norm": "a strength of 1 = the stored vector",
}


def describe_directions(directions: DirectionSet, name: str = "") -> str:
    """A few lines for an artist: what the set is, how it was made, and what a strength of 1 means."""
    info = directions.info
    lines = [
        f"h-space directions{f' {name!r}' if name else ''}: {directions.count} "
        f"{_METHOD_NAMES.get(directions.method, directions.method)}, h of shape "
        f"{'x'.join(map(str, directions.shape))}"
        + (f", one per step ({len(directions.sigmas or [])} steps)" if directions.per_step else ""),
        _UNITS.get(directions.scale_unit, f"strength unit: {directions.scale_unit}"),
    ]
    story = []
    for key in ("model", "collection", "label_a", "label_b", "samples", "samples_a", "samples_b", "step", "steps"):
        if key in info and info[key] not in (None, ""):
            story.append(f"{key} {info[key]}")
    if story:
        lines.append("made from: " + ", ".join(story))
    if "explained_variance" in info:
        values = info["explained_variance"]
        first = values[0] if values and not isinstance(values[0], list) else None
        if first is not None:
            lines.append("variance explained: " + ", ".join(f"{100 * v:.1f}%" for v in values[:8]))
    if "singular_values" in info:
        lines.append("singular values: " + ", ".join(f"{v:.4g}" for v in info["singular_values"][:8]))
    if info.get("description"):
        lines.append(str(info["description"]))
    return "\n".join(lines)


class AVIHSpaceLoadDirection(io.ComfyNode):
    """Loads a direction file (safetensors only) and describes it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIHSpaceLoadDirection",
            display_name="AVI Load h-space Direction",
            category=HSPACE_CATEGORY,
            search_aliases=["h-space", "hspace", "edit", "semantic direction", "load direction", "pca"],
            description=(
                "Loads h-space directions (.safetensors) from models/avi_directions, for 'AVI Apply h-space "
                "Direction'. Also outputs a description: how they were made (PCA, supervised, Jacobian), from "
                "what, and what a strength of 1 means."
            ),
            inputs=[
                io.Combo.Input(
                    "direction_name",
                    options=host.direction_files(),
                    tooltip="A direction file in models/avi_directions (make one with a Find node, or copy a "
                    "shared .safetensors file there and press R to refresh).",
                ),
            ],
            outputs=[
                Directions.Output(
                    "directions", display_name="directions", tooltip="The directions, for the Apply node."
                ),
                io.String.Output(
                    "info",
                    display_name="info",
                    tooltip="How the directions were made and the unit of their strength.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, direction_name: str) -> bool | str:
        try:
            host.direction_path(direction_name)
        except FileFormatError as err:
            return explained_hspace(err)
        return True

    @classmethod
    def fingerprint_inputs(cls, direction_name: str) -> float:
        # A direction file made again under the same name must be reloaded.
        try:
            return os.path.getmtime(host.direction_path(direction_name))
        except (OSError, FileFormatError):
            return float("nan")

    @classmethod
    @explains_hspace_errors
    def execute(cls, direction_name: str) -> io.NodeOutput:
        path = host.direction_path(direction_name)
        directions = load_directions(path)
        label = os.path.splitext(os.path.basename(direction_name))[0]
        logger.info("AVI: loaded h-space directions %s", path)
        return io.NodeOutput(directions, describe_directions(directions, label))


NODES: list[type[io.ComfyNode]] = [AVIHSpaceLoadDirection]
