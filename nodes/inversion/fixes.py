"""What to do about the inversion's errors, in a ComfyUI user's words (host-free; see nodes/fixes.py).

`INVERSION_FIXES` joins the pack's NODE_FIXES (one line at the end of nodes/fixes.py): advice for reasons only
the inversion raises. `INVERT_NODE_FIXES` is what 'AVI Invert' itself reads: NODE_FIXES with the few entries
whose general advice is about another node (a diverging inversion is not a diverging training run).
"""

from __future__ import annotations

import functools
from collections import ChainMap
from collections.abc import Callable
from typing import Any, TypeVar

from ...avi_core.errors import FixTable, NonFiniteError, ParameterError, UnsupportedSamplerError

INVERT = "'AVI Invert'"

INVERSION_FIXES: FixTable = {
    (UnsupportedSamplerError, "inversion"): (
        f"Set sampler_name to euler or ddim on {INVERT}, and use the same sampler in every sampler that resumes "
        "its latents."
    ),
    (ParameterError, "source"): (
        f"Connect either the LATENT of a VAE Encode to encoded, or an IMAGE (Load Image) to image and the "
        f"checkpoint's VAE to vae, on {INVERT}."
    ),
}

_INVERT_ONLY: FixTable = {
    (NonFiniteError, "diverged"): (
        f"Lower cfg on {INVERT} and on the sampler that resumes (for example to 3), or raise steps, and queue again."
    ),
    (NonFiniteError, "model"): (
        "The model's prediction is NaN or infinite: check the checkpoint, and try a lower cfg or fp32 "
        "(ComfyUI's --force-fp32)."
    ),
}

_Execute = TypeVar("_Execute", bound=Callable[..., Any])


def invert_node_fixes() -> ChainMap:
    """NODE_FIXES (with every method's table merged in) under the entries only 'AVI Invert' gives."""
    from ..fixes import NODE_FIXES

    return ChainMap(dict(_INVERT_ONLY), dict(NODE_FIXES))


def explains_inversion_errors(execute: _Execute) -> _Execute:
    """`nodes.fixes.explains_errors` with the inversion's own advice first (put it below @classmethod)."""
    from ..fixes import user_errors

    @functools.wraps(execute)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors(invert_node_fixes()):
            return execute(*args, **kwargs)

    wrapper.__avi_explains_errors__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
