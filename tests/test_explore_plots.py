"""The explorer's figures are ComfyUI IMAGE tensors [1, H, W, 3] in 0..1, drawn headless."""

from __future__ import annotations

import pytest
import torch

from avi_core.errors import NonFiniteError, ParameterError, ShapeMismatchError
from avi_core.explore import (
    plot_singular_spectrum,
    plot_subspace_distance,
    plot_view_grid,
    rank_one_grid,
    singular_spectrum,
    trajectory_distances,
    view_labels,
)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def assert_image(image: torch.Tensor, width: int | None = None, height: int | None = None) -> None:
    assert image.dim() == 4 and image.shape[0] == 1 and image.shape[-1] == 3
    assert image.dtype == torch.float32 and image.min() >= 0 and image.max() <= 1
    assert image.std() > 0.01  # something was drawn
    if width is not None:
        assert (image.shape[2], image.shape[1]) == (width, height)


def test_singular_spectrum_plots_in_both_modes():
    trajectory = randn(10, 2, 4, 8, 8) * torch.linspace(3, 1, 10).reshape(10, 1, 1, 1, 1)
    spectra = singular_spectrum(trajectory)  # [S, B, C, r], averaged over B; 10 steps: a colour bar, no legend
    labels = [f"{t}" for t in range(999, 0, -100)]
    assert_image(plot_singular_spectrum(spectra, labels, width=640, height=400), 640, 400)
    image = plot_singular_spectrum(spectra[:3, 0, :1], labels[:3], mode="step", top=3, log=False, width=512, height=320)
    assert_image(image, 512, 320)
    with pytest.raises(ParameterError):
        plot_singular_spectrum(spectra, mode="sideways")
    with pytest.raises(ParameterError):
        plot_singular_spectrum(spectra, ["one label"])
    with pytest.raises(ShapeMismatchError):
        plot_singular_spectrum(spectra[0, 0])
    with pytest.raises(NonFiniteError):
        plot_singular_spectrum(torch.full((2, 4, 8), float("nan")))


def test_view_grid_lays_out_decoded_views_with_labels():
    grid = rank_one_grid(randn(1, 4, 8, 8), [0, 1], [0.0, 1.0, 2.0])  # [G=2, N=3, 1, 4, 8, 8]
    decoded = (grid.flatten(0, 2)[:, :3].permute(0, 2, 3, 1) * 0.2 + 0.5).clamp(0, 1)  # a stand-in for VAE decode
    rows, columns = view_labels([0, 1], [0.0, 1.0, 2.0])
    image = plot_view_grid(decoded, 2, rows, columns, title="rank-one views at 0.8T", cell=64)
    assert_image(image)
    assert image.shape[1] > 2 * 64 and image.shape[2] > 3 * 64
    assert_image(plot_view_grid(decoded[:, :, :, :1], 3))  # grey images, no labels
    with pytest.raises(ParameterError):
        plot_view_grid(decoded, 4)
    with pytest.raises(ShapeMismatchError):
        plot_view_grid(decoded[0], 1)


@pytest.mark.parametrize("kind", ["heatmap", "curve", "both"])
def test_subspace_distance_plots(kind):
    distances = trajectory_distances(randn(5, 2, 4, 8, 8), 4)
    assert_image(plot_subspace_distance(distances, [f"t{j}" for j in range(5)], kind=kind, k=4), 768, 384)


def test_subspace_distance_plot_checks_its_input():
    with pytest.raises(ParameterError):
        plot_subspace_distance(torch.zeros(3, 3), kind="pie")
    with pytest.raises(ShapeMismatchError):
        plot_subspace_distance(torch.zeros(3, 2))
    assert_image(plot_subspace_distance(torch.zeros(1, 1, 4), kind="both"))  # one step: an empty curve panel
