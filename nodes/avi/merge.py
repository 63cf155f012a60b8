"""AVI Merge: replace the original latent x by the merge of x and the target latent z (Algorithm 1)."""

from __future__ import annotations

from comfy_api.latest import io

from ...avi_core.avi.head import AttributeHead
from ...avi_core.avi.latent_merge import merge_latents
from ...avi_core.avi.merge import MERGE_MODES, RHO_RANGE
from ...avi_core.values import values_or_default
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import advanced_input, schema
from .types import Head


class AVIMerge(io.ComfyNode):
    """Attribute Vector Integration on two captured latents, at one strength or a sweep of them."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIMerge",
            display_name="AVI Merge",
            category=CATEGORY,
            search_aliases=["attribute", "slider", "edit", "svd", "attribute vector", "blend", "rho"],
            description=(
                "Attribute Vector Integration: merges the original latent x (captured at 0.8T) with the target "
                "latent z (captured at 0.5T from the same seed) using an attribute head, in the paper's latent "
                "space, and returns a latent at x's noise level. Resume it with KSamplerAdvanced (start_at_step = "
                "x's step, add_noise disable, the ORIGINAL prompt). A rho list returns the whole sweep as one batch."
            ),
            inputs=[
                io.Latent.Input(
                    "original",
                    tooltip="x: the original-prompt latent from 'AVI Capture Latent at Step' (stop_at 0.8).",
                ),
                io.Latent.Input(
                    "target",
                    tooltip="z: the target-prompt latent from 'AVI Capture Latent at Step' (stop_at 0.5), same seed "
                    "and batch size as x.",
                ),
                Head.Input("head", tooltip="The attribute head, from 'AVI Load Attribute Head' or training."),
                io.Float.Input(
                    "rho",
                    default=1.0,
                    min=0.0,
                    max=2.0,
                    step=0.05,
                    display_mode=io.NumberDisplay.slider,
                    tooltip="Strength of the attribute: 0 keeps x's directions, 1 is the paper's edit, above 1 "
                    "extrapolates.",
                ),
                advanced_input(
                    io.Int.Input,
                    "k",
                    default=0,
                    min=0,
                    max=4096,
                    tooltip="How many of x's leading singular directions are kept whole; 0 = the head's (the paper: "
                    "r/2, 32 for 512 px).",
                ),
                io.Combo.Input(
                    "mode",
                    options=list(MERGE_MODES),
                    default="paper",
                    tooltip="paper: singular values from the head (Algorithm 1). anchored: blend x's singular values "
                    "with the head's by rho, so rho = 0 returns x exactly.",
                ),
                io.String.Input(
                    "rho_list",
                    default="",
                    multiline=False,
                    tooltip="Optional comma-separated rho values, e.g. '0, 0.25, 0.5, 0.75, 1': returns the sweep as "
                    "one batch (rho-major) and ignores rho. Empty = use rho.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    "latent",
                    display_name="latent",
                    tooltip="The merged latent in ComfyUI's convention at x's sigma, with x's capture record and "
                    "other keys; for a rho list, all rhos as one batch, rho-major (all images of the first rho, then "
                    "the next).",
                ),
            ],
        )

    @classmethod
    @explains_errors
    def execute(
        cls,
        original: dict,
        target: dict,
        head: AttributeHead,
        rho: float,
        k: int,
        mode: str,
        rho_list: str = "",
    ) -> io.NodeOutput:
        rhos = values_or_default(rho_list, "rho_list", rho, *RHO_RANGE)
        return io.NodeOutput(merge_latents(original, target, head, rhos, k=k, mode=mode))


NODES: list[type[io.ComfyNode]] = [AVIMerge]
