"""h-space directions (spec section 8, Haas et al. 2023): the engine, host-free (PyTorch; never ComfyUI).

h is the output of the UNet's middle block (SD 2.1 at 512 px: `[1280, 8, 8]` per image). Every function takes h
of any shape: a batch of samples is `[N, *shape]`, a direction `[*shape]`, a set of directions `[K, *shape]`
(or `[S, K, *shape]`, one per stored step). Flattening is row-major (`reshape(-1)`). Arithmetic is float32 or
better (float64 for Gram matrices, projections and inner products), on the inputs' device; every result is
checked finite (NonFiniteError).

Modules, one job each:

- `pca`: principal directions of N samples (Gram route for N << D, no D x D matrix), stds sigma_i / sqrt(N-1).
- `supervised`: the mean-difference direction, its separation, and `disentangle` (projection of section 8).
- `jacobian`: power iteration for the top right singular vectors of the denoiser's Jacobian w.r.t. h.
- `signs`: the sign rule (largest-magnitude entry positive; consecutive steps agree).
- `steps`: the step of a sigma in the sampler's schedule, and edit windows as fractions of the sampling.
- `apply`: adding directions to h during sampling (`apply_directions`, `HEdit`), with cond/uncond selection.
- `direction_files`: `DirectionSet` and its safetensors file (safe reader, atomic writer).
- `collection`: folders of captured h (float16 shards, one per queue run, safe with concurrent writers).
- `recipes`: collection -> DirectionSet for PCA and supervised directions; power-iteration results -> DirectionSet.
- `plots`: explained variance, singular values and supervised projections as IMAGE tensors.
"""

from __future__ import annotations

from .apply import TARGETS, HEdit, HSweep, add_delta, apply_directions, combine, row_mask
from .collection import (
    COLLECTION_FORMAT,
    COLLECTION_FORMAT_VERSION,
    HCollection,
    append_h,
    check_record,
    collection_folder,
    count_samples,
    list_collections,
    make_record,
    read_collection,
    sanitize_collection_name,
    shard_paths,
)
from .direction_files import (
    DIRECTION_FORMAT,
    DIRECTION_FORMAT_VERSION,
    METHODS,
    DirectionSet,
    load_directions,
    read_direction_metadata,
    save_directions,
)
from .jacobian import PowerIterationResult, jacobian_directions, jacobian_power_iteration
from .pca import (
    PCAResult,
    pca_directions,
    pca_directions_per_step,
    principal_components,
    principal_components_per_step,
)
from .plots import render_explained_variance, render_projections, render_singular_values
from .recipes import jacobian_direction_set, pair_collections, pca_from_collection, supervised_from_collection
from .signs import align_across_steps, fix_signs, largest_entry_signs
from .steps import in_window, nearest_stored_step, step_of_sigma, window_steps
from .supervised import disentangle, mean_difference_direction, separation

__all__ = [
    "COLLECTION_FORMAT",
    "COLLECTION_FORMAT_VERSION",
    "DIRECTION_FORMAT",
    "DIRECTION_FORMAT_VERSION",
    "METHODS",
    "TARGETS",
    "DirectionSet",
    "HCollection",
    "HEdit",
    "HSweep",
    "PCAResult",
    "PowerIterationResult",
    "add_delta",
    "align_across_steps",
    "append_h",
    "apply_directions",
    "check_record",
    "collection_folder",
    "combine",
    "count_samples",
    "disentangle",
    "fix_signs",
    "in_window",
    "jacobian_direction_set",
    "jacobian_directions",
    "jacobian_power_iteration",
    "largest_entry_signs",
    "list_collections",
    "load_directions",
    "make_record",
    "mean_difference_direction",
    "nearest_stored_step",
    "pair_collections",
    "pca_directions",
    "pca_directions_per_step",
    "pca_from_collection",
    "principal_components",
    "principal_components_per_step",
    "read_collection",
    "read_direction_metadata",
    "render_explained_variance",
    "render_projections",
    "render_singular_values",
    "row_mask",
    "sanitize_collection_name",
    "save_directions",
    "separation",
    "shard_paths",
    "step_of_sigma",
    "supervised_from_collection",
    "window_steps",
]
