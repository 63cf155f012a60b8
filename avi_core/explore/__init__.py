"""The latent explorer (spec 11; the paper's section 4, Figures 2-5): singular spectra across steps, rank-one
views, and subspace distances between steps. Host-free; plots are IMAGE tensors, decoding is the node's job.

- `spectrum`: `singular_spectrum`, `paper_trajectory` (captured ComfyUI latents -> paper space).
- `rank_one`: `rank_one_views`, `rank_one_grid` (a latent with chosen singular pairs scaled or kept alone).
- `subspace`: `principal_angles`, `subspace_distance`, `trajectory_distances` (Grassmann geodesic distance).
- `plots`: `plot_singular_spectrum`, `plot_view_grid`, `plot_subspace_distance`.
"""

from __future__ import annotations

from .plots import plot_singular_spectrum, plot_subspace_distance, plot_view_grid
from .rank_one import rank_one_grid, rank_one_views, view_labels
from .spectrum import paper_trajectory, singular_spectrum
from .subspace import PAPER_K, SIDES, principal_angles, subspace_distance, top_basis, trajectory_distances

__all__ = [
    "PAPER_K",
    "SIDES",
    "paper_trajectory",
    "plot_singular_spectrum",
    "plot_subspace_distance",
    "plot_view_grid",
    "principal_angles",
    "rank_one_grid",
    "rank_one_views",
    "singular_spectrum",
    "subspace_distance",
    "top_basis",
    "trajectory_distances",
    "view_labels",
]
