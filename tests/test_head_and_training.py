import pytest
import torch
from helpers import synthetic_pairs

from avi_core import (
    AttributeHead,
    HeadSizeMismatchError,
    NonFiniteError,
    ShapeMismatchError,
    attribute_vectors,
    avi_loss,
    compose,
    train_head,
)
from avi_core.avi.loss import loss_from_bases


def test_head_shapes_and_architecture():
    head = AttributeHead(12, 8, hidden=32)
    s, ds = head(torch.randn(3, 4, 12, 8))
    assert s.shape == (3, 4, 8) and ds.shape == (3, 4, 8)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(96, 32), (32, 32), (32, 32), (32, 8), (32, 8)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in head.modules()) == 3
    assert head.k == 4
    assert {n: tuple(p.shape) for n, p in head.state_dict().items()} == AttributeHead.parameter_shapes(12, 8, 32)


def test_paper_size_head_matches_the_paper():
    with torch.device("meta"):
        head = AttributeHead(64, 64)
    assert head.hidden == 4096 and head.rank == 64 and head.k == 32


def test_head_refuses_other_sizes_naming_both():
    head = AttributeHead(64, 64, hidden=8)
    with pytest.raises(HeadSizeMismatchError) as err:
        head(torch.randn(1, 4, 96, 96))
    assert "64x64" in str(err.value) and "96x96" in str(err.value)


def test_loss_terms_follow_the_spec():
    g = torch.Generator().manual_seed(0)
    x, z = (
        torch.randn(3, 2, 6, 6, generator=g, dtype=torch.float64),
        torch.randn(3, 2, 6, 6, generator=g, dtype=torch.float64),
    )
    s, ds = (
        torch.rand(3, 2, 6, generator=g, dtype=torch.float64),
        torch.randn(3, 2, 6, generator=g, dtype=torch.float64),
    )
    total, terms = avi_loss(x, z, s, ds, k=3, rho=0.7, lambdas=(1, 2, 3, 4))
    u_hat, v_hat, s_x, s_z = attribute_vectors(x, z, 3, 0.7)
    y_hat = compose(u_hat, s, v_hat)
    y_tilde = compose(u_hat[..., ::1].flip(-1), s + ds, v_hat.flip(-2))
    expected = [
        ((y_hat - z) ** 2).sum((-1, -2)).mean(),
        ((y_tilde - x) ** 2).sum((-1, -2)).mean(),
        ((s - s_z) ** 2).sum(-1).mean(),
        ((s + ds - s_x) ** 2).sum(-1).mean(),
    ]
    torch.testing.assert_close(terms, torch.stack(expected))
    torch.testing.assert_close(total, sum(w * t for w, t in zip((1, 2, 3, 4), expected, strict=True)))


def test_loss_is_zero_for_a_perfect_prediction_at_rho_zero():
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    u_hat, v_hat, s_x, _ = attribute_vectors(x, x, 4, 0.0)
    # y~ reverses U^ and V^: S + ds must be Sx reversed for y~ = x; y^ = x needs S = Sx.
    _, terms = loss_from_bases(x, x, u_hat, v_hat, s_x, s_x, s_x, s_x.flip(-1) - s_x)
    assert terms[0] < 1e-20 and terms[2] < 1e-20
    assert terms[1] < 1e-20


def _fast_kwargs(**extra):
    kwargs = dict(epochs=3, batch_size=32, hidden=64, samples_per_epoch=512, seed=0)
    kwargs.update(extra)
    return kwargs


def test_training_lowers_every_weighted_loss():
    x, z = synthetic_pairs(16, size=16, seed=1)
    result = train_head(x, z, **_fast_kwargs(epochs=4))
    history = result.history
    assert result.steps == 4 * 16 == history.shape[0]
    first, last = history[:4].mean(0), history[-4:].mean(0)
    weighted_first, weighted_last = first * torch.tensor([3.0, 10, 10, 10]), last * torch.tensor([3.0, 10, 10, 10])
    assert (weighted_last < weighted_first).all(), (weighted_first, weighted_last)
    assert result.total_history[-4:].mean() < 0.5 * result.total_history[:4].mean()
    assert torch.isfinite(history).all()
    assert result.metadata["pairs"] == 16 and result.metadata["channel_samples"] == 64
    assert result.metadata["samples_per_epoch"] == 512 and result.metadata["k"] == 8


def test_training_is_bit_reproducible_and_seed_dependent():
    x, z = synthetic_pairs(4, size=8, seed=2)
    a = train_head(x, z, **_fast_kwargs(epochs=1))
    b = train_head(x, z, **_fast_kwargs(epochs=1))
    c = train_head(x, z, **_fast_kwargs(epochs=1, seed=1))
    for (name, pa), pb in zip(a.head.state_dict().items(), b.head.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert torch.equal(a.history, b.history)
    assert not torch.equal(a.head.trunk[0].weight, c.head.trunk[0].weight)


def test_epoch_size_is_max_of_data_and_minimum():
    x, z = synthetic_pairs(40, channels=4, size=8)  # D = 160 channel samples
    small = train_head(x, z, **_fast_kwargs(epochs=2, samples_per_epoch=100))
    assert small.steps == 2 * 5  # ceil(160 / 32): the whole dataset, once per epoch
    big = train_head(x, z, **_fast_kwargs(epochs=2, samples_per_epoch=330))
    assert big.steps == 2 * 11  # ceil(330 / 32): drawn with replacement


def test_training_leaves_inference_mode_and_does_not_touch_inputs():
    x, z = synthetic_pairs(2, size=8)
    with torch.inference_mode():
        xi, zi = x.clone(), z.clone()
        result = train_head(xi, zi, **_fast_kwargs(epochs=1))
    assert result.steps > 0 and torch.equal(xi, x)
    assert not result.head.trunk[0].weight.is_inference()


def test_progress_callback_sees_every_step_and_can_stop():
    x, z = synthetic_pairs(2, size=8)
    seen = []

    def progress(step, total, losses):
        seen.append((step, total, sorted(losses)))
        return step < 5

    result = train_head(x, z, progress=progress, **_fast_kwargs())
    assert result.stopped and result.steps == 5 and len(seen) == 5
    assert seen[0] == (1, 3 * 16, ["L1", "L2", "L3", "L4", "total"])


def test_exceptions_from_progress_propagate():
    class Interrupted(Exception):
        pass

    def progress(step, total, losses):
        raise Interrupted

    x, z = synthetic_pairs(2, size=8)
    with pytest.raises(Interrupted):
        train_head(x, z, progress=progress, **_fast_kwargs())


def test_divergence_is_reported():
    x, z = synthetic_pairs(2, size=8)
    with pytest.raises(NonFiniteError, match="diverged") as info:
        train_head(x * 1e30, z * 1e30, progress=lambda *a: None, **_fast_kwargs(learning_rate=1e3))
    assert info.value.reason == "diverged"


def test_bad_training_inputs():
    x, z = synthetic_pairs(2, size=8)
    with pytest.raises(ShapeMismatchError, match="same shape"):
        train_head(x, z[:1], **_fast_kwargs())
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        train_head(bad, z, **_fast_kwargs())


def test_progress_is_called_every_step_with_current_losses_on_cpu():
    x, z = synthetic_pairs(2, size=8)
    seen = []
    result = train_head(x, z, progress=lambda step, total, losses: seen.append((step, dict(losses))), **_fast_kwargs())
    assert [step for step, _ in seen] == list(range(1, result.steps + 1))
    for step, losses in seen:
        assert losses["L1"] == pytest.approx(float(result.history[step - 1, 0]))
        assert losses["total"] == pytest.approx(float(result.total_history[step - 1]))


def test_report_every_lags_the_losses_but_never_the_callback():
    from avi_core.avi.training import LossReporter

    history = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    totals = torch.arange(10, dtype=torch.float32) * 100
    reporter = LossReporter(history, totals, every=3)
    reported = [reporter.latest(step) for step in range(1, 11)]
    # Copies at steps 3, 6, 9 and the last (10); in between, the newest finished copy is reported.
    assert [step for step, _ in reported] == [0, 0, 3, 3, 3, 6, 6, 6, 9, 10]
    assert reported[0][1] == {}
    step, losses = reported[4]
    assert losses == {"L1": 8.0, "L2": 9.0, "L3": 10.0, "L4": 11.0, "total": 200.0} and step == 3
