"""Image-specific h-space directions: the top right singular vectors of the denoiser's Jacobian with respect to h
(spec section 8, Haas et al.), by power iteration with Jacobian-vector and vector-Jacobian products.

f maps h (one image's bottleneck at one step, any shape) to the denoiser's output eps_theta(x_t, t, h). Its
Jacobian J `[Dy, D]` is never formed. For each of `count` directions, one after another:

    u <- random unit vector (seeded), orthogonal to the directions already found
    repeat up to `iters` times:
        w = J u                           (a Jacobian-vector product; sigma = |w|)
        u' = P (J^T w) / |P (J^T w)|      (a vector-Jacobian product; P projects out the earlier directions)
        stop when |u' - u| <= tol (u, sigma and w are kept as a consistent triple), else u <- u'

This is the power iteration on J^T J in h-space, restricted to the complement of the earlier directions; its
fixed points are those of the spec's v <- J (J^T v) in output space, with u = J^T v / sigma, and it keeps each
h-space direction orthogonal to the earlier ones to rounding. The tolerance bounds the last step of the
direction itself (not of sigma, whose error is about the square of the direction's): with r = (sigma_2 /
sigma_1)^2 for the two leading singular values left, the direction's error at the stop is about tol / (1 - r).

Returned: the unit directions u `[count, *shape]`, the singular values sigma = |J u| `[count]` (non-increasing
up to the tolerance), and the output-space vectors J u / sigma. Each direction is signed by the rule of `signs`
(largest-magnitude entry positive). When the Jacobian has fewer than `count` non-zero singular values, the rest
come back with sigma = 0 and an arbitrary direction orthogonal to the others.

Products. `mode="forward"` takes J u with forward-mode autograd (dual tensors of `torch.autograd.forward_ad`,
one evaluation of f per product) and J^T w by reverse mode on one retained evaluation of f.
`mode="double_vjp"` takes both from that one retained evaluation: J^T w by `torch.autograd.grad`, and J u as the
gradient of (J^T v) . u with respect to v (the "double VJP" trick, as J^T v is linear in v), for models with
operations that have no forward-mode formula. `mode="auto"` (default) tries forward mode on the first product
and falls back to the double VJP when torch reports forward mode unsupported. `math_attention=True` (default)
runs f with torch's math kernel for `scaled_dot_product_attention`, which supports both modes; torch 2.13's
fused CPU flash kernel supports neither (checked), and the fused CUDA kernels are expected to behave alike.

Autograd runs even when the caller is under `torch.inference_mode()` (ComfyUI executes nodes in it): the work is
done under `torch.inference_mode(False)` and `torch.enable_grad()`, on a clone of h. Tensors f closes over that
were created in inference mode must be cloned by the caller outside inference mode, or autograd refuses to
save them. Arithmetic of the iteration is float32 (float64 when h is float64) whatever f's dtype; each product's
input is cast to the dtype of h (J u) or of f's output (J^T w).

`per_sample=True` treats h `[B, *item]` as B independent images (f must not mix samples, as a UNet does not):
one batched evaluation serves all B problems, and the results gain a leading B dimension.

Start vectors come from a CPU `torch.Generator` seeded with `seed`, so results are reproducible on any device.
`progress(done, total)` is called after every iteration (total = count * iters); returning False stops the
iteration, keeping the directions found so far and the current one (marked not converged); exceptions it
raises (a cancel) propagate.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.autograd import forward_ad

from ..errors import ParameterError, ShapeMismatchError
from ._tensors import check_finite, working_dtype
from .signs import largest_entry_signs

logger = logging.getLogger("avi.hspace.jacobian")

MODES = ("auto", "forward", "double_vjp")
DEFAULT_COUNT = 3
DEFAULT_ITERS = 50
DEFAULT_TOL = 1e-5

Progress = Callable[[int, int], "bool | None"]


@dataclass(frozen=True)
class PowerIterationResult:
    """directions `[count, *shape]` (per_sample: `[B, count, *item]`), unit norm, mutually orthogonal;
    singular_values `[count]` (`[B, count]`); output_directions `[count, *out_shape]` (`[B, count, *out_item]`),
    J u / sigma (zero where sigma = 0); iterations and converged: per direction (per_sample: per direction, a list
    over B); mode: the products used ("forward" or "double_vjp"); stopped: the progress callback stopped it.
    """

    directions: torch.Tensor
    singular_values: torch.Tensor
    output_directions: torch.Tensor
    iterations: list = field(default_factory=list)
    converged: list = field(default_factory=list)
    mode: str = "forward"
    stopped: bool = False


@contextlib.contextmanager
def _math_attention(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3: no backend selection; leave attention as it is
        yield
        return
    with sdpa_kernel([SDPBackend.MATH]):
        yield


class _Products:
    """J u and J^T w of f at h0, by the chosen mode, on one retained evaluation of f."""

    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor], h0: torch.Tensor, mode: str) -> None:
        self.f = f
        self.h0 = h0
        self.mode = "forward" if mode == "auto" else mode
        self.auto = mode == "auto"
        self.h = h0.clone().requires_grad_(True)
        y = f(self.h)
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            raise ParameterError(
                f"f must return a floating-point tensor, got {type(y).__name__}"
                + (f" of {y.dtype}" if isinstance(y, torch.Tensor) else ""),
                reason="output",
                name="f",
            )
        check_finite(y.detach(), "the output of f at h")
        if not y.requires_grad:
            raise ParameterError(
                "the output of f does not depend on h (autograd finds no path from h to it)", reason="no_grad", name="f"
            )
        self.y = y
        self._dual: torch.Tensor | None = None
        self._twice: torch.Tensor | None = None
        if self.mode == "double_vjp":
            self._prepare_double_vjp()

    def _prepare_double_vjp(self) -> None:
        self._dual = torch.zeros_like(self.y, requires_grad=True)
        (self._twice,) = torch.autograd.grad(self.y, self.h, grad_outputs=self._dual, create_graph=True)

    def vjp(self, w: torch.Tensor) -> torch.Tensor:
        """J^T w: w shaped like f's output -> shaped like h."""
        (grad,) = torch.autograd.grad(
            self.y, self.h, grad_outputs=w.to(self.y.dtype).reshape(self.y.shape), retain_graph=True, allow_unused=True
        )
        return torch.zeros_like(self.h) if grad is None else grad

    def jvp(self, u: torch.Tensor) -> torch.Tensor:
        """J u: u shaped like h -> shaped like f's output."""
        tangent = u.to(self.h0.dtype).reshape(self.h0.shape)
        if self.mode == "forward":
            try:
                with forward_ad.dual_level():
                    with warnings.catch_warnings():
                        # torch loads its forward-mode decompositions on first use through torch.jit.script,
                        # which warns that torch.jit.script is deprecated: torch's own business, not the caller's.
                        # (a DeprecationWarning in torch 2.13, a FutureWarning in the ComfyUI host's torch)
                        for category in (DeprecationWarning, FutureWarning):
                            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=category)
                        dual = forward_ad.make_dual(self.h0, tangent)
                    out = self.f(dual)
                    found = forward_ad.unpack_dual(out).tangent if isinstance(out, torch.Tensor) else None
                    return torch.zeros_like(self.y) if found is None else found.clone()
            except (NotImplementedError, RuntimeError) as err:
                if not self.auto or isinstance(err, torch.OutOfMemoryError):
                    raise
                logger.info("forward-mode autograd is not supported by f (%s); using double VJPs", err)
                self.mode = "double_vjp"
                self._prepare_double_vjp()
        assert self._twice is not None and self._dual is not None
        (out,) = torch.autograd.grad(
            self._twice, self._dual, grad_outputs=tangent, retain_graph=True, allow_unused=True
        )
        return torch.zeros_like(self.y) if out is None else out


def _check_arguments(h: torch.Tensor, count: int, iters: int, tol: float, mode: str) -> None:
    if not isinstance(h, torch.Tensor) or not h.is_floating_point() or h.numel() == 0:
        raise ShapeMismatchError(f"h must be a non-empty floating-point tensor, got {h!r:.60}")
    for name, value in (("count", count), ("iters", iters)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{name} = {value!r} must be a whole number >= 1", name=name, value=value, low=1)
    if not tol >= 0:
        raise ParameterError(f"tol = {tol!r} must be >= 0", name="tol", value=tol, low=0)
    if mode not in MODES:
        raise ParameterError(f"mode {mode!r} is not one of {', '.join(MODES)}", name="mode", value=mode)


def _project(u: torch.Tensor, found: list[torch.Tensor]) -> torch.Tensor:
    """u `[B, D]` minus its components along each earlier direction `[B, D]` (twice, for rounding)."""
    for _ in range(2):
        for prev in found:
            u = u - (u * prev).sum(dim=1, keepdim=True) * prev
    return u


def jacobian_power_iteration(
    f: Callable[[torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    count: int = DEFAULT_COUNT,
    iters: int = DEFAULT_ITERS,
    tol: float = DEFAULT_TOL,
    *,
    seed: int = 0,
    mode: str = "auto",
    per_sample: bool = False,
    progress: Progress | None = None,
    math_attention: bool = True,
) -> PowerIterationResult:
    """The `count` top right singular vectors of f's Jacobian at h, with their singular values (module doc).

    h: `[*shape]` (or `[B, *item]` with per_sample). f: h -> any floating-point tensor (per_sample: `[B, ...]`).
    """
    _check_arguments(h, count, iters, tol, mode)
    if per_sample and h.dim() < 2:
        raise ShapeMismatchError(f"per-sample h must be [B, ...], got shape {tuple(h.shape)}")
    check_finite(h, "h")
    dtype = working_dtype(h)
    device = h.device
    rows = int(h.shape[0]) if per_sample else 1
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    total = count * iters
    stopped = False
    found: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    iterations: list = []
    converged_all: list = []

    with torch.inference_mode(False), torch.enable_grad(), _math_attention(math_attention):
        h0 = h.detach().clone()
        products = _Products(f, h0, mode)
        y_shape = tuple(products.y.shape)
        if per_sample and (len(y_shape) < 1 or y_shape[0] != rows):
            raise ShapeMismatchError(
                f"per-sample f must keep the batch: h has {rows} samples but f(h) has shape {y_shape}",
                reason="shape",
                first="h",
                first_shape=tuple(h.shape),
                second="f(h)",
                second_shape=y_shape,
            )
        width = h0.numel() // rows
        for index in range(count):
            start = torch.randn(rows, width, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
            u = _project(start, found)
            u = u / u.norm(dim=1, keepdim=True)
            sigma = torch.zeros(rows, dtype=dtype, device=device)
            w_rows = torch.zeros(rows, products.y.numel() // rows, dtype=dtype, device=device)
            active = torch.ones(rows, dtype=torch.bool, device=device)
            done = torch.zeros(rows, dtype=torch.bool, device=device)
            used = torch.zeros(rows, dtype=torch.long)
            # Below this, a singular value is rounding noise of the largest one: the rest of the spectrum is 0.
            floor = (
                values[0] * (100 * torch.finfo(dtype).eps) if values else torch.zeros(rows, dtype=dtype, device=device)
            )
            for step in range(iters):
                w = products.jvp(u.detach()).detach().reshape(rows, -1).to(dtype)
                check_finite(w, "a Jacobian-vector product of f")
                current = w.norm(dim=1)
                sigma = torch.where(active, current, sigma)
                w_rows = torch.where(active.unsqueeze(1), w, w_rows)
                used += active.cpu().long()
                g = products.vjp(w.detach()).detach().reshape(rows, -1).to(dtype)
                check_finite(g, "a vector-Jacobian product of f")
                g = _project(g, found)
                norm = g.norm(dim=1, keepdim=True)
                vanished = active & ((current <= floor) | (norm.squeeze(1) == 0))
                sigma = torch.where(vanished, torch.zeros_like(sigma), sigma)
                done |= vanished
                active &= ~vanished
                proposal = g / norm.clamp_min(torch.finfo(dtype).tiny)
                settled = active & ((proposal - u).norm(dim=1) <= tol)
                done |= settled
                active &= ~settled
                u = torch.where(active.unsqueeze(1), proposal, u)
                if progress is not None and progress(index * iters + step + 1, total) is False:
                    stopped = True
                    break
                if not bool(active.any()):
                    break
            if progress is not None and not stopped and step + 1 < iters:
                progress((index + 1) * iters, total)
            signs = largest_entry_signs(u).unsqueeze(1)
            u = u * signs
            left = torch.where(
                sigma.unsqueeze(1) > 0, w_rows * signs / sigma.clamp_min(torch.finfo(dtype).tiny).unsqueeze(1), 0.0
            )
            found.append(u)
            values.append(sigma)
            outputs.append(left)
            iterations.append(used.tolist())
            converged_all.append(done.cpu().tolist())
            if not bool(done.all()):
                logger.warning(
                    "power iteration for direction %d of %d stopped before converging (%s iterations, tol %g)",
                    index + 1,
                    count,
                    used.tolist(),
                    tol,
                )
            if stopped:
                break
        used_mode = products.mode
        del products

    found_count = len(found)
    directions = torch.stack(found, dim=1)  # [rows, found, width]
    sigmas = torch.stack(values, dim=1)
    lefts = torch.stack(outputs, dim=1)
    if per_sample:
        directions = directions.reshape(rows, found_count, *h.shape[1:])
        lefts = lefts.reshape(rows, found_count, *y_shape[1:])
    else:
        directions = directions.reshape(found_count, *h.shape)
        sigmas = sigmas.reshape(found_count)
        lefts = lefts.reshape(found_count, *y_shape)
        iterations = [item[0] for item in iterations]
        converged_all = [item[0] for item in converged_all]
    return PowerIterationResult(
        directions=check_finite(directions, "the Jacobian directions"),
        singular_values=check_finite(sigmas, "the Jacobian singular values"),
        output_directions=lefts,
        iterations=iterations,
        converged=converged_all,
        mode=used_mode,
        stopped=stopped,
    )


def jacobian_directions(
    f: Callable[[torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    count: int = DEFAULT_COUNT,
    iters: int = DEFAULT_ITERS,
    tol: float = DEFAULT_TOL,
    **options: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(directions `[count, *h.shape]`, singular_values `[count]`): `jacobian_power_iteration` without the extras.

    options: seed, mode, per_sample, progress, math_attention (see `jacobian_power_iteration`).
    """
    result = jacobian_power_iteration(f, h, count, iters, tol, **options)  # type: ignore[arg-type]
    return result.directions, result.singular_values
