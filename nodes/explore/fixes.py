"""What to do about the explorer nodes' errors, in a ComfyUI user's words (host-free; see nodes/fixes.py).

`EXPLORE_FIXES` joins the pack's NODE_FIXES (one line at the end of nodes/fixes.py).
"""

from __future__ import annotations

from ...avi_core.errors import FixTable, ParameterError, UnsupportedSamplerError

VIEWS = "'AVI Rank-One Views'"
TRAJECTORY = "'AVI Capture Trajectory'"

EXPLORE_FIXES: FixTable = {
    (UnsupportedSamplerError, "trajectory"): f"Pick another sampler_name on {TRAJECTORY}, for example euler or ddim.",
    (ParameterError, "pairs"): (
        "Write pairs as pair numbers separated by commas, for example '0, 1, 2, 3' (0 = the largest singular "
        "value); join numbers with '+' to scale several pairs together, for example '0+1, 2'."
    ),
    (ParameterError, "resume"): (
        f"Connect model, positive and negative to {VIEWS} so that it finishes sampling each view, or connect a "
        f"finished latent (KSampler's, or the final output of {TRAJECTORY})."
    ),
    (
        ParameterError,
        "no_steps",
    ): f"Write at least one fraction of T into 'at' on {TRAJECTORY}, for example '0.8, 0.5'.",
}
