"""What the boundary nodes do, host-free (nodes/boundary/latents.py): collections of the two sides at one step,
the choice of source, and the edit of a captured LATENT (identity at its own distance, distance-major sweeps,
the capture record kept, refusals with the numbers)."""

from __future__ import annotations

import pytest
import torch
from conftest import load_pack

# The nodes import the engine as part of the pack (avi_pack.avi_core): its error classes are those to catch.
load_pack()
from avi_pack.avi_core.boundary import capture_info, fit_boundary, signed_distance  # noqa: E402
from avi_pack.avi_core.errors import (  # noqa: E402
    CaptureRecordError,
    DatasetError,
    ParameterError,
    ShapeMismatchError,
    StepMismatchError,
)
from avi_pack.avi_core.latent.capture import make_record  # noqa: E402
from avi_pack.avi_core.latent.conventions import from_paper_space, to_paper_space  # noqa: E402

SIZE = 8


@pytest.fixture(scope="module")
def logic(pack):
    import avi_pack.nodes.boundary.latents as latents

    return latents


def record(step=10, batch=4, sigma=None, steps=50, size=SIZE):
    return make_record(
        step=step,
        steps=steps,
        sigma=sigma if sigma is not None else 10.0 / (1 + step),
        timestep=1000 - 20 * step,
        num_timesteps=1000,
        scale_factor=0.18215,
        seed=3,
        batch=batch,
        sampler="euler",
        scheduler="normal",
        shape=(batch, 4, size, size),
    )


def sides(n=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 4, SIZE, SIZE, generator=generator)
    direction = torch.randn(4, SIZE, SIZE, generator=generator)
    return noise - direction, noise + direction


@pytest.fixture(scope="module")
def boundary():
    a, b = sides()
    return fit_boundary(a, b, 0.2, 0, info=capture_info(record(), record()), paired=True)


def captured(batch=2, step=10, size=SIZE, seed=5):
    generator = torch.Generator().manual_seed(seed)
    rec = record(step=step, batch=batch, size=size)
    paper = torch.randn(batch, 4, size, size, generator=generator)
    samples = from_paper_space(paper, rec["sigma"], rec["scale_factor"]).float()
    return {"samples": samples, "avi_capture": rec, "batch_index": list(range(3, 3 + batch))}


def test_the_edit_at_the_latents_own_distance_changes_nothing(logic, boundary):
    latent = captured(batch=1)
    rec = latent["avi_capture"]
    own = float(signed_distance(to_paper_space(latent["samples"].double(), rec["sigma"], 0.18215), boundary)[0])
    out, before = logic.edit_latent(latent, boundary, [own])
    assert torch.equal(out["samples"], latent["samples"]) and float(before[0]) == own


def test_a_sweep_is_distance_major_lands_at_each_distance_and_keeps_the_record(logic, boundary):
    latent = captured(batch=2)
    kept = latent["samples"].clone()
    out, before = logic.edit_latent(latent, boundary, [-6.0, 0.0, 6.0])
    assert torch.equal(latent["samples"], kept) and latent["avi_capture"]["batch"] == 2  # input untouched
    assert out["samples"].shape == (6, 4, SIZE, SIZE) and out["samples"].dtype == torch.float32
    rec = out["avi_capture"]
    assert rec["batch"] == 6 and rec["step"] == 10 and rec["boundary_edit"]["distances"] == [-6.0, 0.0, 6.0]
    assert out["batch_index"] == [3, 4, 3, 4, 3, 4]
    after = signed_distance(to_paper_space(out["samples"].double(), rec["sigma"], 0.18215), boundary)
    expected = torch.tensor([-6.0, -6.0, 0.0, 0.0, 6.0, 6.0], dtype=torch.float64)
    assert torch.allclose(after, expected, atol=1e-4)
    # only the component along the normal changed
    paper_in = to_paper_space(kept.double(), rec["sigma"], 0.18215).repeat(3, 1, 1, 1)
    change = to_paper_space(out["samples"].double(), rec["sigma"], 0.18215) - paper_in
    normal = boundary.normal.reshape(-1)
    residual = change.reshape(6, -1) - (change.reshape(6, -1) @ normal)[:, None] * normal
    assert float(residual.abs().max()) < 1e-4
    assert before.shape == (2,)


def test_the_edit_refuses_another_step_schedule_or_size_with_the_numbers(logic, boundary):
    with pytest.raises(StepMismatchError, match=r"captured at step 12 of 50 but the boundary was fitted on .* step 10"):
        logic.edit_latent(captured(step=12), boundary, [1.0])
    other = captured()
    other["avi_capture"] = dict(other["avi_capture"], sigma=7.0)
    with pytest.raises(StepMismatchError, match="sigma 7 but the boundary's captures at the same step were at sigma"):
        logic.edit_latent(other, boundary, [1.0])
    with pytest.raises(ShapeMismatchError, match=r"shape \(4, 8, 8\) but the input sample has shape \(4, 12, 12\)"):
        logic.edit_latent(captured(size=12), boundary, [1.0])
    with pytest.raises(CaptureRecordError, match="no capture record"):
        logic.edit_latent({"samples": torch.zeros(1, 4, SIZE, SIZE)}, boundary, [1.0])


def test_a_collection_reads_back_per_step_and_refuses_sides_at_two_steps(logic, tmp_path):
    folder = tmp_path / "collections" / "smile"
    for step in (5, 10):
        a, b = sides(8, seed=step)
        logic.append_sides(folder, a, b, record(step=step, batch=8), record(step=step, batch=8))
    got = logic.collection_sides(folder)
    assert sorted(got) == [5, 10] and got[5].a.shape == (8, 4, SIZE, SIZE) and got[10].info["collection"] == "smile"
    assert list(logic.collection_sides(folder, 10)) == [10]
    with pytest.raises(DatasetError, match=r"holds captures at step\(s\) 5, 10, not at step 7") as caught:
        logic.collection_sides(folder, 7)
    assert caught.value.reason == "no_step"
    a, b = sides(8)
    with pytest.raises(StepMismatchError, match="both sides of a boundary must be captured at the same step"):
        logic.append_sides(folder, a, b, record(step=5, batch=8), record(step=10, batch=8))

    roots, datasets = [str(tmp_path / "collections")], [str(tmp_path / "datasets")]
    assert logic.find_collection(roots, datasets, "smile") == folder
    with pytest.raises(DatasetError, match="no boundary collection named 'frown'.*collections there: smile"):
        logic.find_collection(roots, datasets, "frown")
    before = logic.collection_fingerprint(roots, datasets, "smile")
    logic.append_sides(folder, a, b, record(step=5, batch=8), record(step=5, batch=8))
    assert logic.collection_fingerprint(roots, datasets, "smile") != before
    assert logic.collection_fingerprint(roots, datasets, "frown") == ""


def test_the_fit_takes_latents_or_a_collection_never_both(logic):
    latent = captured()
    assert logic.choose_sides(latent, latent, "") == "latents"
    assert logic.choose_sides(None, None, "smile") == "collection"
    for args, reason in (
        ((latent, latent, "smile"), "boundary_sources"),
        ((None, None, " "), "no_boundary_sides"),
        ((latent, None, "smile"), "no_boundary_sides"),
    ):
        with pytest.raises(ParameterError) as caught:
            logic.choose_sides(*args)
        assert caught.value.reason == reason


def test_sides_from_two_captured_latents(logic):
    a, b = captured(batch=4, seed=1), captured(batch=4, seed=2)
    got = logic.latent_sides(a, b)
    assert list(got) == [10] and got[10].a.shape == (4, 4, SIZE, SIZE) and got[10].info["pairs"] == 4
    b["avi_capture"] = record(step=11, batch=4)
    with pytest.raises(StepMismatchError, match="side a .* step 10 of 50 .* side b .* step 11 of 50"):
        logic.latent_sides(a, b)


def test_the_description_says_where_and_how_well(logic, boundary):
    text = logic.describe_boundary(boundary, "smile")
    assert text.startswith("smile: boundary at step 10: 24 + 24 samples of 4x8x8")
    assert "captured at step 10 of 50 (sigma 0.9091, timestep 800), euler / normal" in text
