"""Semantic boundaries (BoundaryDiffusion, spec section 9), host-free.

Two labelled sets of samples at one mixing step, side a (say the original prompt's latents) and side b (the
target prompt's), are separated by a hyperplane fitted as a linear SVM. Samples are paper-space latents
`[C, H, W]` (spec section 1) or flattened h `[1280, 8, 8]`; any per-sample shape works, flattened in C order
(row-major: for `[C, H, W]`, feature `c * H * W + h * W + w`, as `tensor.reshape(N, -1)` does).

Sign convention, everywhere: s(x) = n . x + offset with |n| = 1, and s > 0 on side b's side, so a positive
distance moves towards b (the target prompt). Distances given to and returned by the editing functions are in
units of the boundary's `unit`, the median |s| of the samples it was fitted on (spec: "a strength of 1 means as
far as a typical example of the other kind").

Modules, one job each:

- `samples`: checking and flattening the two sides.
- `svm`: the linear SVM itself (centred Gram matrix + libsvm), the seeded stratified split.
- `fit`: `fit_boundary` and the `Boundary` it returns.
- `edit`: `signed_distance`, `move_to_distance`, `sweep_distances`, the distance list, the editing checks.
- `search`: `choose_mixing_step` (the rule) and `mixing_step_search` (fit at each step, then the rule).
- `captures`: the two sides (per step) from captured latents' records, e.g. from a dataset's shards.
- `files`: boundary files (safetensors, the safety rules of every file kind).
- `plots`: the held-out accuracy across steps with the chosen step marked, as an IMAGE (import
  `avi_core.boundary.plots` itself; it needs matplotlib).
"""

from __future__ import annotations

from .captures import StepSides, capture_info, dataset_sides
from .edit import (
    DISTANCE_RANGE,
    check_edit_target,
    move_to_distance,
    parse_distances,
    signed_distance,
    sweep_distances,
)
from .files import (
    BOUNDARY_FORMAT,
    BOUNDARY_FORMAT_VERSION,
    BOUNDARY_KIND,
    load_boundary,
    read_boundary_metadata,
    save_boundary,
)
from .fit import Boundary, fit_boundary
from .search import DEFAULT_TOLERANCE, StepSearch, choose_mixing_step, mixing_step_search

__all__ = [
    "BOUNDARY_FORMAT",
    "BOUNDARY_FORMAT_VERSION",
    "BOUNDARY_KIND",
    "Boundary",
    "DEFAULT_TOLERANCE",
    "DISTANCE_RANGE",
    "StepSearch",
    "StepSides",
    "capture_info",
    "check_edit_target",
    "choose_mixing_step",
    "dataset_sides",
    "fit_boundary",
    "load_boundary",
    "mixing_step_search",
    "move_to_distance",
    "parse_distances",
    "read_boundary_metadata",
    "save_boundary",
    "signed_distance",
    "sweep_distances",
]
