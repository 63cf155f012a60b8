"""Unsupervised h-space directions: principal components of captured h (spec section 8, Haas et al.).

`principal_components(h, count)`: h `[N, *shape]` (N samples of h, e.g. N images at one step, any shape per
sample: SD 2.1 at 512 px `[1280, 8, 8]`) -> the `count` principal directions of the flattened (row-major) h,
unit norm, in descending variance, with

- `stds [count]`: the standard deviation of the data along each direction, sigma_i / sqrt(N - 1), where
  sigma_i is the i-th singular value of the centred data matrix; a strength of 1 is one standard deviation;
- the sign rule of `signs`: each direction's largest-magnitude entry is positive.

Method. The centred data matrix X `[N, D]` (D = 80 K at 512 px) is never turned into a D x D covariance when
N <= D: the N x N Gram matrix G = X X^T is accumulated in float64 over column chunks, G = V diag(sigma^2) V^T
by `torch.linalg.eigh`, and the directions are the rows of diag(1/sigma) V^T X (the right singular vectors of
X), computed in a second pass over the chunks. Memory is O(N^2 + N * chunk), never O(D^2) or a float64 copy of
h. When N > D the D x D covariance is used instead (accumulated over row chunks). Both give the SVD of the
centred data up to the sign of each direction. Centring leaves at most N - 1 directions with variance; asking
for more, or for more than the data spans (copies of one sample), is refused.

Float64 arithmetic runs on h's device, except on devices without float64 (Apple MPS), where the small
matrices are formed on the CPU. Results are float32 (float64 when h is float64) on h's device.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..errors import DatasetError, ParameterError
from ._tensors import check_finite, check_samples, flat, same_shape, working_dtype
from .signs import align_across_steps, fix_signs

logger = logging.getLogger("avi.hspace.pca")

# float64 values per chunk of the data matrix (32 MiB).
CHUNK_VALUES = 1 << 22
# A singular value below this fraction of the largest one counts as zero (no variance along it).
RANK_RTOL = 1e-6


@dataclass(frozen=True)
class PCAResult:
    """Principal components of N samples of h (one step), or of several steps (leading dim S).

    directions: `[count, *shape]` unit norm, descending variance, signs fixed (`[S, count, *shape]` per step).
    stds: `[count]` standard deviation along each direction, sigma_i / sqrt(N - 1) (`[S, count]`).
    singular_values: `[count]` sigma_i of the centred data matrix (`[S, count]`).
    total_variance: `[]` the sum of the variances of all D coordinates = sum over all i of stds_i^2 (`[S]`).
    mean: `[*shape]` the mean h (`[S, *shape]`). samples: N (per step: a list, one N per step).
    """

    directions: torch.Tensor
    stds: torch.Tensor
    singular_values: torch.Tensor
    total_variance: torch.Tensor
    mean: torch.Tensor
    samples: int | list[int]

    @property
    def explained_variance_ratio(self) -> torch.Tensor:
        """stds^2 / total_variance: the fraction of the variance each direction explains (`[count]` or `[S, count]`)."""
        total = self.total_variance.unsqueeze(-1) if self.total_variance.dim() else self.total_variance
        return self.stds.square() / total.clamp_min(torch.finfo(total.dtype).tiny)


def _float64_device(device: torch.device) -> torch.device:
    return torch.device("cpu") if device.type == "mps" else device


def _column_chunks(
    x: torch.Tensor, mean: torch.Tensor | None, device: torch.device
) -> Iterator[tuple[slice, torch.Tensor]]:
    """(columns, float64 chunk of x[:, columns] on device, centred when mean is given)."""
    n, d = x.shape
    width = max(1, CHUNK_VALUES // max(n, 1))
    for start in range(0, d, width):
        cols = slice(start, min(d, start + width))
        chunk = x[:, cols].to(device=device, dtype=torch.float64)
        if mean is not None:
            chunk = chunk - mean[cols]
        yield cols, chunk


def _row_chunks(x: torch.Tensor, device: torch.device) -> Iterator[torch.Tensor]:
    n, d = x.shape
    height = max(1, CHUNK_VALUES // max(d, 1))
    for start in range(0, n, height):
        yield x[start : start + height].to(device=device, dtype=torch.float64)


def _check_count(count: int, samples: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ParameterError(f"count = {count!r} must be a whole number >= 1", name="count", value=count, low=1)
    if count > samples - 1:
        raise ParameterError(
            f"count = {count} exceeds the {samples - 1} principal directions that {samples} samples of h determine "
            "(centring leaves N - 1)",
            reason="samples",
            name="count",
            value=count,
            low=1,
            high=samples - 1,
        )
    return count


def _too_few(samples: int) -> DatasetError:
    return DatasetError(
        f"PCA needs at least 2 samples of h, got {samples}", reason="too_few", samples=samples, needed=2
    )


def _gram_spectrum(x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N <= D: (mean [D], sigma [N] descending, V [N, N]) from the N x N Gram matrix of the centred rows."""
    n, d = x.shape
    mean = torch.empty(d, dtype=torch.float64, device=device)
    gram = torch.zeros(n, n, dtype=torch.float64, device=device)
    for cols, chunk in _column_chunks(x, None, device):
        mean[cols] = chunk.mean(dim=0)
        chunk = chunk - mean[cols]
        gram.addmm_(chunk, chunk.T)
    values, vectors = torch.linalg.eigh(gram)
    return mean, values.flip(0).clamp_min(0).sqrt(), vectors.flip(1)


def _covariance_spectrum(x: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N > D: (mean [D], sigma [D] descending, directions [D, D] as rows) from the D x D scatter matrix."""
    n, d = x.shape
    total = torch.zeros(d, dtype=torch.float64, device=device)
    for chunk in _row_chunks(x, device):
        total += chunk.sum(dim=0)
    mean = total / n
    scatter = torch.zeros(d, d, dtype=torch.float64, device=device)
    for chunk in _row_chunks(x, device):
        chunk = chunk - mean
        scatter.addmm_(chunk.T, chunk)
    values, vectors = torch.linalg.eigh(scatter)
    return mean, values.flip(0).clamp_min(0).sqrt(), vectors.flip(1).T.contiguous()


def principal_components(h: torch.Tensor, count: int) -> PCAResult:
    """The `count` leading principal directions of h `[N, *shape]` (see the module doc); N >= 2.

    Raises DatasetError (reason "too_few") for fewer than 2 samples, ParameterError for a count above N - 1 or
    above the number of directions along which the samples vary, NonFiniteError for NaN / infinity in h.
    """
    h = check_samples(h, "h")
    samples = int(h.shape[0])
    if samples < 2:
        raise _too_few(samples)
    _check_count(count, samples)
    check_finite(h, "h")
    out_dtype = working_dtype(h)
    device = _float64_device(h.device)
    x = flat(h)
    n, d = x.shape
    gram_route = n <= d
    mean, sigma, basis = _gram_spectrum(x, device) if gram_route else _covariance_spectrum(x, device)
    total_variance = sigma.square().sum() / (n - 1)
    rank = int((sigma > RANK_RTOL * sigma[0]).sum()) if float(sigma[0]) > 0 else 0
    if count > rank:
        raise ParameterError(
            f"the {samples} samples of h vary along only {rank} direction(s); count = {count} asks for more "
            "(some samples are copies or combinations of others)",
            reason="rank",
            name="count",
            value=count,
            low=1,
            high=rank,
        )
    top = sigma[:count]
    if gram_route:  # right singular vectors: rows of diag(1 / sigma) V^T X
        weights = basis[:, :count] / top  # [N, count]
        directions = torch.empty(count, d, dtype=torch.float64, device=device)
        for cols, chunk in _column_chunks(x, mean, device):
            directions[:, cols] = weights.T @ chunk
        # Rounding leaves the rows within ~1e-12 of unit norm; make it exact.
        directions = directions / directions.norm(dim=1, keepdim=True)
    else:
        directions = basis[:count]
    directions = fix_signs(directions)
    result = PCAResult(
        directions=check_finite(directions, "the PCA directions").to(h.device, out_dtype).reshape(count, *h.shape[1:]),
        stds=(top / math.sqrt(n - 1)).to(h.device, out_dtype),
        singular_values=top.to(h.device, out_dtype),
        total_variance=total_variance.to(h.device, out_dtype),
        mean=mean.to(h.device, out_dtype).reshape(h.shape[1:]),
        samples=samples,
    )
    logger.debug(
        "PCA of %d samples of h %s: %d direction(s), stds %s", samples, tuple(h.shape[1:]), count, result.stds.tolist()
    )
    return result


def pca_directions(h: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """h `[N, *shape]` -> (directions `[count, *shape]` unit norm, descending variance, sign rule; stds `[count]`).

    stds are sigma_i / sqrt(N - 1), the standard deviation of h along each direction. See `principal_components`.
    """
    result = principal_components(h, count)
    return result.directions, result.stds


def principal_components_per_step(h_steps: torch.Tensor | Sequence[torch.Tensor], count: int) -> PCAResult:
    """PCA at each step separately, signs made to agree across consecutive steps (`signs.align_across_steps`).

    h_steps: `[S, N, *shape]`, or a sequence of S tensors `[N_s, *shape]` (the steps may hold different numbers
    of samples, all of one shape). Returns a PCAResult with a leading step dimension: directions
    `[S, count, *shape]`, stds and singular_values `[S, count]`, total_variance `[S]`, mean `[S, *shape]`.
    """
    steps = list(h_steps.unbind(0)) if isinstance(h_steps, torch.Tensor) else list(h_steps)
    if not steps:
        raise DatasetError("per-step PCA needs at least one step of h samples, got none", reason="empty")
    results = []
    for index, h in enumerate(steps):
        check_samples(h, f"h of step {index}")
        same_shape(h.shape[1:], steps[0].shape[1:], f"h of step {index}", "h of step 0")
        results.append(principal_components(h, count))
    aligned, _ = align_across_steps(torch.stack([r.directions for r in results]))
    return PCAResult(
        directions=aligned,
        stds=torch.stack([r.stds for r in results]),
        singular_values=torch.stack([r.singular_values for r in results]),
        total_variance=torch.stack([r.total_variance for r in results]),
        mean=torch.stack([r.mean for r in results]),
        samples=[int(r.samples) for r in results],
    )


def pca_directions_per_step(
    h_steps: torch.Tensor | Sequence[torch.Tensor], count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(directions `[S, count, *shape]`, stds `[S, count]`): `principal_components_per_step` without the extras."""
    result = principal_components_per_step(h_steps, count)
    return result.directions, result.stds
