"""The scoring classifier of the digit benchmark: a small CNN that reads a 64 x 64 digit image.

Input [N, 1, 64, 64] in [0, 1] (the model's frame: grey digits on black). Architecture: average-pool to
32 x 32, four 3 x 3 convolutions (16, 32, 64, 64 channels; ReLU; 2 x 2 max-pool after the last three), a
Linear layer to FEATURES = 128 values (ReLU: the penultimate features the identity measure compares), and a
Linear layer to the 10 digit logits. Trained by tools/train_digit_classifier.py on the 9,000 training images;
the weights are avi_core/digits/weights/digit_classifier.safetensors (under 1 MB).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FileFormatError, ShapeMismatchError

logger = logging.getLogger(__name__)

FEATURES = 128
WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "digit_classifier.safetensors"
FORMAT = "avi_digit_classifier"


class DigitClassifier(nn.Module):
    """[N, 1, 64, 64] in [0, 1] -> logits [N, 10]; `features` gives the penultimate [N, FEATURES]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 4 * 4, FEATURES)
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [N, FEATURES] (after ReLU)."""
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 64, 64):
            raise ShapeMismatchError(f"the classifier reads [N, 1, 64, 64] images, got {tuple(x.shape)}")
        x = F.avg_pool2d(x.to(torch.float32) * 2.0 - 1.0, 2)
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = F.max_pool2d(F.relu(self.conv4(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def save_classifier(model: DigitClassifier, path: str | Path, meta: dict) -> None:
    """Write the weights (fp32 safetensors with JSON metadata) to a temporary name, then rename."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(tmp), metadata={"format": FORMAT, **{k: json.dumps(v) for k, v in meta.items()}})
    tmp.replace(path)


def load_classifier(path: str | Path = WEIGHTS_FILE) -> DigitClassifier:
    """The trained classifier (eval mode, CPU). Refuses a missing, foreign, truncated or non-finite file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"classifier file {path} does not exist", reason="missing", path=str(path))
    model = DigitClassifier()
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:  # safetensors raises its own types for truncated or corrupt files
        raise FileFormatError(
            f"{path} is not a readable safetensors file ({err})", reason="corrupt", path=str(path)
        ) from err
    if meta.get("format") != FORMAT:
        raise FileFormatError(f"{path} is not a digit classifier file", reason="foreign", path=str(path))
    expected = model.state_dict()
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise FileFormatError(f"{path} does not hold this classifier's tensors", reason="foreign", path=str(path))
    if not all(torch.isfinite(v).all() for v in tensors.values()):
        raise FileFormatError(f"{path} holds NaN or infinite weights", reason="nonfinite", path=str(path))
    model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    return model.eval()


@torch.no_grad()
def predict(model: DigitClassifier, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """The digit read from each image: int64 [N]."""
    return torch.cat([model(images[i : i + batch]).argmax(1) for i in range(0, images.shape[0], batch)])
