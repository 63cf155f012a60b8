"""Train the digit benchmark's scoring classifier on the 9,000 training images (spec section 12, issue 12).

    python tools/train_digit_classifier.py      # writes avi_core/digits/weights/digit_classifier.safetensors

Also writes the style tercile edges (avi_core/digits/weights/style_edges.json) when they are missing. Seeded;
random shifts of up to 3 pixels as augmentation; reports the accuracy on the 1,000 held-out images.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avi_core.digits import classifier, data, style  # noqa: E402

logger = logging.getLogger("train_digit_classifier")


def shift(x: torch.Tensor, generator: torch.Generator, most: int = 3) -> torch.Tensor:
    """Each image moved by a random whole-pixel offset in [-most, most] (zeros come in)."""
    out = torch.zeros_like(x)
    offsets = torch.randint(-most, most + 1, (x.shape[0], 2), generator=generator)
    padded = F.pad(x, (most, most, most, most))
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, most + dy : most + dy + x.shape[2], most + dx : most + dx + x.shape[3]]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path, default=Path("/work/shared/data/mnist"))
    parser.add_argument("--out", type=Path, default=classifier.WEIGHTS_FILE)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    digits = data.load_mnist(args.mnist)
    train_index, held_index = data.held_out_split(digits.labels)
    x_train = data.to_frame(digits.images[train_index])
    y_train = torch.as_tensor(digits.labels[train_index])
    x_held = data.to_frame(digits.images[held_index])
    y_held = torch.as_tensor(digits.labels[held_index])
    if not style.EDGES_FILE.is_file():
        edges_t = style.tercile_edges(style.thickness(x_train))
        edges_s = style.tercile_edges(style.slant(x_train))
        style.save_edges(style.EDGES_FILE, edges_t, edges_s)
    model = classifier.DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    steps = args.epochs * (x_train.shape[0] // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(x_train.shape[0], generator=generator)
        for i in range(x_train.shape[0] // args.batch):
            index = order[i * args.batch : (i + 1) * args.batch]
            x = shift(x_train[index], generator)
            loss = F.cross_entropy(model(x), y_train[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        accuracy = float((classifier.predict(model, x_held) == y_held).float().mean())
        logger.info(
            "epoch %d loss %.4f held-out accuracy %.4f (%.0fs)", epoch + 1, float(loss), accuracy, time.time() - start
        )
    meta = {"held_out_accuracy": accuracy, "epochs": args.epochs, "seed": args.seed, "split_seed": data.SPLIT_SEED}
    classifier.save_classifier(model, args.out, meta)
    logger.info("wrote %s (%d bytes), held-out accuracy %.4f", args.out, args.out.stat().st_size, accuracy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
