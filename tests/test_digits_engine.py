"""The digit model's host-free parts (avi_core/digits, spec section 12): IDX reading, the held-out split, style
measures, prompts and the text encoder, the exact latent map, the classifier and the identity measures."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from avi_core.digits import classifier, data, identity, latent_map, prompts, style
from avi_core.errors import DatasetError, FileFormatError, ParameterError, ShapeMismatchError

MNIST = Path("/work/shared/data/mnist")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _mnist_dir() -> Path:
    for folder in (REPO_ROOT.parent.parent / "shared" / "data" / "mnist", MNIST):
        if (folder / (data.IMAGES_FILE + ".gz")).is_file() or (folder / data.IMAGES_FILE).is_file():
            return folder
    pytest.skip("the MNIST test set (../shared/data/mnist) is not on this machine")


@pytest.fixture(scope="module")
def mnist() -> data.Digits:
    return data.load_mnist(_mnist_dir())


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


# --- IDX and the split --------------------------------------------------------------------------------------


def test_idx_round_trip_plain_and_gzip(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (tmp_path / "a").write_bytes(_idx(images))
    (tmp_path / "b.gz").write_bytes(gzip.compress(_idx(images)))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a"), images)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "b"), images)  # finds b.gz


@pytest.mark.parametrize(
    "body, reason",
    [(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") * 3 + b"\x00" * 7, "truncated"), (b"PK\x03\x04rest", "foreign")],
)
def test_idx_refuses_truncated_and_foreign(tmp_path, body, reason):
    (tmp_path / "x").write_bytes(body)
    with pytest.raises(FileFormatError) as info:
        data.read_idx(tmp_path / "x")
    assert info.value.reason == reason


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        data.read_idx(tmp_path / "nothing")


def test_split_is_fixed_balanced_and_disjoint():
    labels = np.repeat(np.arange(10), 150)
    train, held = data.held_out_split(labels)
    assert len(held) == 1000 and len(train) == 500
    assert np.bincount(labels[held]).tolist() == [100] * 10
    assert not set(train) & set(held)
    again, held_again = data.held_out_split(labels)
    np.testing.assert_array_equal(held, held_again)
    _, other = data.held_out_split(labels, seed=data.SPLIT_SEED + 1)
    assert not np.array_equal(held, other)
    with pytest.raises(DatasetError, match="only 5 images of digit"):
        data.held_out_split(np.repeat(np.arange(10), 5))


def test_mnist_loads_and_splits(mnist):
    assert mnist.images.shape == (10000, 28, 28) and mnist.labels.shape == (10000,)
    train, held = data.held_out_split(mnist.labels)
    assert len(train) == 9000 and len(held) == 1000
    assert np.bincount(mnist.labels[held]).tolist() == [100] * 10


def test_frame_is_64_square_in_unit_range(mnist):
    frames = data.to_frame(mnist.images[:5])
    assert frames.shape == (5, 1, 64, 64) and frames.dtype == torch.float32
    assert float(frames.min()) >= 0 and float(frames.max()) <= 1
    assert float(frames[:, :, :4].abs().max()) == 0  # the black border
    with pytest.raises(ShapeMismatchError):
        data.to_frame(np.zeros((2, 32, 32)))


# --- style ---------------------------------------------------------------------------------------------------


def _bar(width: int, shear: float = 0.0) -> np.ndarray:
    """A vertical bar of `width` px, 40 rows tall, its top moved right by shear px per row up."""
    img = np.zeros((64, 64))
    for row in range(12, 52):
        left = int(round(30 + shear * (32 - row)))
        img[row, left : left + width] = 1.0
    return img


def test_skeleton_of_a_bar_is_one_pixel_wide():
    skeleton = style.zhang_suen(_bar(5)[None] > 0.5)[0]
    assert skeleton.sum(axis=1).max() == 1
    assert 30 <= skeleton.sum() <= 40


def test_thickness_measures_stroke_width():
    widths = style.thickness(np.stack([_bar(2), _bar(4), _bar(7)]))
    assert widths[0] < widths[1] < widths[2]
    assert abs(widths[1] - 4 * 40 / 36) < 1.0  # area / skeleton length ~ width (the skeleton is a bit shorter)


def test_slant_sign_and_order():
    s = style.slant(np.stack([_bar(4, -0.3), _bar(4), _bar(4, 0.3)]))
    assert s[0] < -0.2 and abs(s[1]) < 0.02 and s[2] > 0.2
    assert style.classify(s, (-0.05, 0.05), style.SLANT) == ["left", "upright", "right"]


def test_empty_image_measures_zero():
    assert style.thickness(np.zeros((1, 64, 64)))[0] == 0 and style.slant(np.zeros((1, 64, 64)))[0] == 0


def test_stored_edges_are_ordered_and_split_training_data_in_thirds(mnist):
    edges = style.load_edges()
    assert edges["thickness"][0] < edges["thickness"][1] and edges["slant"][0] < edges["slant"][1]
    train, _ = data.held_out_split(mnist.labels)
    frames = data.to_frame(mnist.images[train[::10]])  # the file's first and second halves differ in style
    for name, measure, names in (("thickness", style.thickness, style.THICKNESS), ("slant", style.slant, style.SLANT)):
        counts = [style.classify(measure(frames), edges[name], names).count(n) for n in names]
        assert all(220 < c < 380 for c in counts), (name, counts)


def test_bad_edges_file_is_refused(tmp_path):
    path = tmp_path / "edges.json"
    path.write_text(json.dumps({"thickness": [2, 1], "slant": [0, 1]}))
    with pytest.raises(FileFormatError):
        style.load_edges(path)
    path.write_text("{")
    with pytest.raises(FileFormatError):
        style.load_edges(path)


# --- prompts and the encoder ------------------------------------------------------------------------------


def test_build_and_parse_round_trip():
    assert prompts.build_prompt(3, "thick", "right") == "a thick handwritten 3, slanted right"
    assert prompts.build_prompt(7) == "a handwritten 7"
    assert prompts.build_prompt() == "a handwritten digit"
    for d in (None, 0, 9):
        for t in (None, *style.THICKNESS):
            for s in (None, *style.SLANT):
                assert prompts.parse_prompt(prompts.build_prompt(d, t, s)) == prompts.DigitPrompt(d, t, s)
    assert prompts.parse_prompt("Three, THIN, upright") == prompts.DigitPrompt(3, "thin", "upright")


def test_bad_prompts_are_refused():
    with pytest.raises(ParameterError, match="more than one digit"):
        prompts.parse_prompt("a 3 or a 5")
    with pytest.raises(ParameterError):
        prompts.build_prompt(10)
    with pytest.raises(ParameterError):
        prompts.build_prompt(3, "bold")


def test_encoder_is_deterministic_and_separates_parts():
    a = prompts.encode("a thick handwritten 3, slanted right")
    assert a.shape == (1, prompts.TOKENS, prompts.CONTEXT_DIM) and a.dtype == torch.float32
    torch.testing.assert_close(a, prompts.encode("a thick handwritten 3, slanted right"), rtol=0, atol=0)
    b = prompts.encode("a thin handwritten 3, slanted right")
    assert torch.equal(a[0, :2], b[0, :2]) and not torch.equal(a[0, 2], b[0, 2]) and torch.equal(a[0, 3], b[0, 3])
    torch.testing.assert_close(prompts.encode(""), prompts.encode("a handwritten digit"), rtol=0, atol=0)
    assert prompts.encode(["a 1", "a 2", ""]).shape == (3, 4, 64)
    assert 0.7 < float(a.std()) < 1.3  # unit-size tokens


# --- the latent map -------------------------------------------------------------------------------------


def test_latent_map_is_exact_and_sd_scaled():
    pixels = torch.rand(3, 1, 64, 64)
    latent = latent_map.encode(pixels)
    assert latent.shape == (3, 4, 32, 32)
    torch.testing.assert_close(latent_map.decode(latent), pixels, rtol=0, atol=1e-6)
    seen = latent * latent_map.SCALE_FACTOR  # what the UNet sees
    assert float(seen.min()) >= -1 - 1e-6 and float(seen.max()) <= 1 + 1e-6
    # each channel is one pixel of every 2 x 2 block
    torch.testing.assert_close(seen[:, 0], pixels[:, 0, 0::2, 0::2] * 2 - 1)
    torch.testing.assert_close(seen[:, 3], pixels[:, 0, 1::2, 1::2] * 2 - 1)
    with pytest.raises(ShapeMismatchError):
        latent_map.decode(torch.zeros(1, 3, 8, 8))


# --- classifier and identity ---------------------------------------------------------------------------------


def test_classifier_file_is_small_and_accurate_on_held_out(mnist):
    assert classifier.WEIGHTS_FILE.stat().st_size <= 1_000_000
    model = classifier.load_classifier()
    _, held = data.held_out_split(mnist.labels)
    predicted = classifier.predict(model, data.to_frame(mnist.images[held]))
    accuracy = float((predicted == torch.as_tensor(mnist.labels[held])).float().mean())
    assert accuracy >= 0.97, accuracy


def test_classifier_refuses_foreign_and_nonfinite_files(tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(FileFormatError) as info:
        classifier.load_classifier(foreign)
    assert info.value.reason == "foreign"
    model = classifier.DigitClassifier()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["head.bias"][0] = math.nan
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad), metadata={"format": classifier.FORMAT})
    with pytest.raises(FileFormatError) as info:
        classifier.load_classifier(bad)
    assert info.value.reason == "nonfinite"
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(classifier.WEIGHTS_FILE.read_bytes()[:5000])
    with pytest.raises(FileFormatError):
        classifier.load_classifier(truncated)


def test_ssim_and_feature_distance():
    torch.manual_seed(0)
    a = torch.from_numpy(np.stack([_bar(4), _bar(6, 0.3)])).float()[:, None]
    noisy = (a + 0.3 * torch.rand_like(a)).clamp(0, 1)
    same = identity.ssim(a, a)
    torch.testing.assert_close(same, torch.ones(2), rtol=0, atol=1e-5)
    assert (identity.ssim(a, noisy) < 0.9).all()
    assert float(identity.ssim(a[:1], torch.zeros_like(a[:1]))) < 0.9  # the black background still matches
    model = classifier.DigitClassifier().eval()
    assert float(identity.feature_distance(model, a, a).max()) < 1e-5
    assert (identity.feature_distance(model, a, a.flip(0)) > 0).all()
    with pytest.raises(ShapeMismatchError):
        identity.ssim(a, a[:1])


# --- the model file --------------------------------------------------------------------------------------------


def _model_file(path: Path, tensors: dict, **meta) -> Path:
    from safetensors.torch import save_file

    base = {"format": "avi_digit_unet", "version": 1, "unet_config": {"model_channels": 32}}
    base.update(meta)
    save_file(tensors, str(path), metadata={k: json.dumps(v) for k, v in base.items()})
    return path


def test_model_file_reads_and_refuses(tmp_path):
    from avi_core.digits import unet_file
    from avi_core.errors import FileVersionError

    good = _model_file(tmp_path / "good.safetensors", {"w": torch.ones(2, dtype=torch.float16)}, steps=5)
    read = unet_file.read_digit_unet(good)
    assert read.state_dict["w"].dtype == torch.float32 and read.meta["steps"] == 5
    assert read.unet_config == {"model_channels": 32}
    with pytest.raises(FileFormatError) as info:
        unet_file.read_digit_unet(_model_file(tmp_path / "f.safetensors", {"w": torch.ones(2)}, format="other"))
    assert info.value.reason == "foreign"
    with pytest.raises(FileVersionError):
        unet_file.read_digit_unet(_model_file(tmp_path / "v.safetensors", {"w": torch.ones(2)}, version=99))
    with pytest.raises(FileFormatError) as info:
        unet_file.read_digit_unet(_model_file(tmp_path / "n.safetensors", {"w": torch.tensor([math.inf])}))
    assert info.value.reason == "nonfinite"
    with pytest.raises(FileFormatError) as info:
        unet_file.read_digit_unet(tmp_path / "none.safetensors")
    assert info.value.reason == "missing"
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:20])
    with pytest.raises(FileFormatError):
        unet_file.read_digit_unet(tmp_path / "cut.safetensors")


def test_bundled_model_file_is_small_and_of_sd20_layout():
    from avi_core.digits import unet_file

    if not unet_file.WEIGHTS_FILE.is_file():
        pytest.skip("the digit model weights are not in this checkout")
    assert unet_file.WEIGHTS_FILE.stat().st_size <= 10 * 1024 * 1024
    read = unet_file.read_digit_unet()
    assert read.unet_config["context_dim"] == prompts.CONTEXT_DIM
    assert "input_blocks.0.0.weight" in read.state_dict and "out.2.weight" in read.state_dict
    assert read.state_dict["input_blocks.0.0.weight"].shape[1] == latent_map.CHANNELS
