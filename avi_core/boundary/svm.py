"""The linear SVM of a boundary: scikit-learn's libsvm `SVC` on a precomputed linear kernel, and the seeded split.

Why a precomputed kernel: a boundary has far fewer samples N (tens to thousands) than features D (16,384 for a
512 px SD latent, 81,920 for h). `SVC(kernel="linear")`, the authors' choice, evaluates every kernel value
inside libsvm without BLAS: 7 s at N = 200 and 278 s at N = 1000 (D = 16,384, 2 CPU cores). The same problem
on the Gram matrix X X^T, computed here with one float64 matrix product, gives the same solution (same dual,
same normal) in 0.3 s and 1.9 s, and N = 4000 in about 25 s, almost all of it the matrix product.

Scale: the samples are centred on their mean and divided by r, the root mean square distance of the
(training) samples to their mean, so that C means the same for latents of any size and for h: the kernel's
mean diagonal is 1. A hard-margin-like fit on raw paper-space latents (the authors' C = 1 on |x|^2 ~ D)
corresponds to C ~ D here; C = 1 was as good or better on held-out data in our measurements, and is the default.
Centring and one global scale change neither the family of hyperplanes nor the normal's direction of a separable
problem; the normal and offset are mapped back to raw feature space (s(x) = n . x + offset, |n| = 1).

Everything runs in float64, block by block (`BLOCK_ELEMENTS` values of X at a time), on `device`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import BackendUnavailableError, DatasetError, ParameterError

logger = logging.getLogger("avi.boundary.svm")

BLOCK_ELEMENTS = 1 << 25  # float64 values of X converted at a time (256 MiB)
SVM_TOLERANCE = 1e-4  # libsvm's stopping tolerance on the (scaled) dual
SOLVER = "libsvm SVC, linear kernel precomputed as a float64 Gram matrix of centred, scaled samples"


@dataclass(frozen=True)
class LinearFit:
    """A fitted hyperplane in raw feature space: s(x) = normal . x + offset, |normal| = 1, s > 0 on label 1's side.

    normal: float64 `[D]` on the CPU. support: the number of support vectors.
    """

    normal: torch.Tensor
    offset: float
    support: int


def stratified_split(
    labels: torch.Tensor, holdout: float, seed: int, *, paired: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) row indices, int64, sorted: `holdout` of each side held out, seeded.

    Per side of n samples, round(holdout * n) are held out (ties away from zero), at least 1 and at most n - 1,
    so every side has at least one sample in each part. The choice is a `torch.randperm` of each side (side 0
    first) from one generator seeded with `seed`: the same labels, holdout and seed always give the same split,
    and the same sample positions are held out at every step of a search.

    paired=True: the sides are pairs (sample i of side 0 and sample i of side 1 come from one seed, as a boundary
    collection's prompt A and prompt B are), so both samples of a pair are held out together: side 1 holds out
    the positions side 0 holds out (one `torch.randperm` of side 0). An unpaired split of paired samples leaks:
    the partner of a held-out sample, nearly the same latent at a noisy step, is a training sample of the
    other side, and the held-out accuracy falls far below chance. Needs equal sides.
    """
    if not 0.0 < float(holdout) < 1.0:
        raise ParameterError(
            f"holdout = {holdout} must lie strictly between 0 and 1 (the fraction of each side held out)",
            reason="range",
            name="holdout",
            value=holdout,
            low=0,
            high=1,
        )
    generator = torch.Generator().manual_seed(int(seed))
    train, held = [], []
    if paired:
        rows = [torch.nonzero(labels == label).flatten() for label in (0, 1)]
        n = int(rows[0].numel())
        if int(rows[1].numel()) != n:
            raise ParameterError(
                f"paired sides must hold as many samples each, got {n} and {int(rows[1].numel())}",
                reason="paired",
                name="paired",
                value=[n, int(rows[1].numel())],
            )
        count = min(max(int(math.floor(holdout * n + 0.5)), 1), n - 1)
        order = torch.randperm(n, generator=generator)
        for side in rows:
            held.append(side[order[:count]])
            train.append(side[order[count:]])
        return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(held)).values
    for label in (0, 1):
        rows = torch.nonzero(labels == label).flatten()
        n = int(rows.numel())
        count = min(max(int(math.floor(holdout * n + 0.5)), 1), n - 1)
        order = rows[torch.randperm(n, generator=generator)]
        held.append(order[:count])
        train.append(order[count:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(held)).values


def _blocks(count: int, dim: int) -> list[tuple[int, int]]:
    rows = max(1, BLOCK_ELEMENTS // max(dim, 1))
    return [(start, min(start + rows, count)) for start in range(0, count, rows)]


def feature_mean(features: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The float64 mean `[D]` of the rows of `features` `[N, D]`, on `device`."""
    total = torch.zeros(features.shape[1], dtype=torch.float64, device=device)
    for start, stop in _blocks(features.shape[0], features.shape[1]):
        total += features[start:stop].to(device, torch.float64).sum(dim=0)
    return total / features.shape[0]


def centred_gram(features: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """K[i, j] = (x_i - mean) . (x_j - mean), float64 `[N, N]` on the CPU, from `features` `[N, D]`.

    Computed on `mean`'s device, block by block; K is exactly symmetric.
    """
    count, dim = features.shape
    device = mean.device
    gram = torch.empty(count, count, dtype=torch.float64)
    spans = _blocks(count, dim)
    for i, (i0, i1) in enumerate(spans):
        left = features[i0:i1].to(device, torch.float64) - mean
        for j0, j1 in spans[i:]:
            right = left if j0 == i0 else features[j0:j1].to(device, torch.float64) - mean
            block = (left @ right.T).cpu()
            gram[i0:i1, j0:j1] = block
            gram[j0:j1, i0:i1] = block.T
    return gram


def _svc_class() -> type:
    try:
        from sklearn.svm import SVC
    except ImportError as err:  # a runtime dependency of the pack; missing only in a broken install
        raise BackendUnavailableError(
            f"scikit-learn cannot be imported ({err}); boundaries are fitted with its SVC", reason="sklearn"
        ) from None
    return SVC


def fit_on_gram(
    gram: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, C: float
) -> tuple[torch.Tensor, float, float]:
    """Fit the SVM on the samples `rows` of a centred Gram matrix `gram` `[N, N]`.

    Returns (coef `[len(rows)]`, b0, r2): the decision function of a sample x is
    f(x) = sum_i coef_i K(x_rows[i], x) / r2 + b0 (K centred as `gram` is), f > 0 on label 1's side; r2 is the mean
    squared distance of the rows' samples to their own mean (the scale of module doc).
    """
    if not (math.isfinite(C) and C > 0):
        raise ParameterError(f"C = {C} must be a positive number", reason="range", name="C", value=C, low=0)
    sub = gram[rows][:, rows]
    r2 = float(sub.diagonal().mean() - sub.mean())  # mean |x_i - mean(rows)|^2, from the kernel alone
    if not r2 > 1e-300:
        raise DatasetError(
            f"the {len(rows)} samples used to fit are all identical: no hyperplane separates the two sides",
            reason="degenerate",
            samples=int(len(rows)),
        )
    svc = _svc_class()(kernel="precomputed", C=float(C), tol=SVM_TOLERANCE, cache_size=200.0)
    svc.fit(np.ascontiguousarray((sub / r2).numpy()), labels[rows].numpy())
    coef = torch.zeros(len(rows), dtype=torch.float64)
    coef[torch.from_numpy(svc.support_.astype(np.int64))] = torch.from_numpy(svc.dual_coef_[0].astype(np.float64))
    return coef, float(svc.intercept_[0]), r2


def hyperplane(
    features: torch.Tensor,
    gram: torch.Tensor,
    mean: torch.Tensor,
    rows: torch.Tensor,
    coef: torch.Tensor,
    b0: float,
    r2: float,
) -> LinearFit:
    """The fit of `fit_on_gram` in raw feature space: w = sum_i coef_i (x_i - mean) / r2, then
    normal = w / |w| and offset = (b0 - w . mean) / |w| (so s(x) = f(x) / |w|, a Euclidean distance)."""
    sub = gram[rows][:, rows]
    w_norm = math.sqrt(max(float(coef @ sub @ coef), 0.0)) / r2
    if not w_norm * math.sqrt(r2) > 1e-9:
        raise DatasetError(
            "the SVM found no direction that separates the two sides (its normal is zero): the sides overlap "
            "completely",
            reason="degenerate",
            samples=int(len(rows)),
        )
    used = torch.nonzero(coef).flatten()
    w = torch.zeros(features.shape[1], dtype=torch.float64, device=mean.device)
    picked = rows[used]
    weights = coef[used].to(mean.device)
    for start, stop in _blocks(len(picked), features.shape[1]):
        block = features[picked[start:stop]].to(mean.device, torch.float64) - mean
        w += weights[start:stop] @ block
    w /= r2
    norm = w.norm()
    normal = (w / norm).cpu()
    offset = (b0 - float(w @ mean)) / float(norm)
    if not (bool(torch.isfinite(normal).all()) and math.isfinite(offset)):
        raise DatasetError("the fitted boundary is not finite", reason="degenerate", samples=int(len(rows)))
    return LinearFit(normal=normal, offset=offset, support=int(used.numel()))


def decision(gram: torch.Tensor, rows: torch.Tensor, coef: torch.Tensor, b0: float, r2: float) -> torch.Tensor:
    """f(x_j) for every sample j of `gram` `[N, N]` (float64 `[N]`), from the fit on `rows`: sign only matters."""
    return (coef @ gram[rows]) / r2 + b0
