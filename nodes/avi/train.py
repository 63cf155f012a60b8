"""AVI Train Attribute Head: learn an attribute from pairs of captured latents, save it as a head file."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch

from ...avi_core.avi.head_files import save_head
from ...avi_core.errors import CaptureRecordError, DatasetError
from ...avi_core.files.names import SAFETENSORS_SUFFIX as HEAD_SUFFIX
from ...avi_core.files.names import sanitize_name
from ...avi_core.latent.capture import check_pair, dataset_capture_metadata, get_record, pair_metadata
from ...avi_core.latent.conventions import to_paper_space


def sanitize_head_name(name):
    return sanitize_name(name, "head")


from ...avi_core.avi.training import train_head
from ...avi_core.plots.loss_plot import render_loss_plot
from .. import host
from ..common import CATEGORY, HEAD_TYPE

logger = logging.getLogger("avi.nodes.train")


def pairs_from_latents(original: Mapping[str, Any], target: Mapping[str, Any]):
    """Paper-space (x, z) [P, C, H, W] and the head metadata from two captured LATENTs of P pairs."""
    x_record = get_record(original, "original")
    z_record = get_record(target, "target")
    check_pair(x_record, z_record)
    x = to_paper_space(original["samples"], x_record["sigma"], x_record["scale_factor"])
    z = to_paper_space(target["samples"], z_record["sigma"], z_record["scale_factor"])
    if x.shape != z.shape:
        raise CaptureRecordError(
            f"the original latents are {tuple(x.shape)} but the targets {tuple(z.shape)}: capture both from the same "
            "Empty Latent Image"
        )
    return x, z, pair_metadata(x_record, z_record)


def resolve_dataset(name: str):
    """Read the dataset `name` from the avi_datasets folders (avi_core.files.datasets.read_dataset)."""
    try:
        from ...avi_core import datasets
    except ImportError as err:  # the dataset module ships with the pack; a broken install lands here
        raise DatasetError(
            f"training from a dataset needs avi_core.files.datasets, which cannot be imported: {err}"
        ) from err
    roots = host.dataset_roots()
    for root in roots:
        folder = datasets.dataset_folder(root, name)
        if folder.is_dir():
            return datasets.read_dataset(folder)
    available = sorted({n for root in roots for n in datasets.list_datasets(root)})
    raise DatasetError(
        f"no dataset named {name!r} in {', '.join(roots)}. "
        + (f"Available: {', '.join(available)}. " if available else "There is no dataset yet. ")
        + "Build one by queueing the 'build a dataset' workflow (AVI Append To Dataset), or clear `dataset` and "
        "connect the original and target latents."
    )


class AVITrainAttributeHead:
    DESCRIPTION = (
        "Trains an AVI attribute head from pairs (original x at 0.8T, target z at 0.5T, same seeds): either the two "
        "captured latent batches or a dataset of many pairs. Saves models/avi_heads/<name>.safetensors and outputs "
        "the head and a plot of the four loss terms. Training runs on ComfyUI's device; Cancel stops it."
    )
    CATEGORY = CATEGORY
    FUNCTION = "train"
    OUTPUT_NODE = True
    RETURN_TYPES = (HEAD_TYPE, "IMAGE")
    RETURN_NAMES = ("head", "loss_plot")
    OUTPUT_TOOLTIPS = (
        "The trained attribute head (also saved to models/avi_heads/<name>.safetensors).",
        "The four unweighted loss terms L1..L4 over the training steps, log scale.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "name": (
                    "STRING",
                    {
                        "default": "my_attribute",
                        "tooltip": "File name of the head in models/avi_heads (letters, digits, '-', '_'; other "
                        "characters become '_'). An existing head of that name is replaced.",
                    },
                ),
                "description": (
                    "STRING",
                    {
                        "default": "",
                        "multiline": True,
                        "tooltip": "What the head does, e.g. the prompt pair; stored in the file, shown by Load.",
                    },
                ),
                "epochs": (
                    "INT",
                    {"default": 5, "min": 1, "max": 1000, "tooltip": "Training epochs (the paper: 5)."},
                ),
                "batch_size": (
                    "INT",
                    {
                        "default": 256,
                        "min": 1,
                        "max": 65536,
                        "tooltip": "Channel matrices per step (the paper: 256).",
                    },
                ),
                "learning_rate": (
                    "FLOAT",
                    {
                        "default": 0.001,
                        "min": 1e-6,
                        "max": 1.0,
                        "step": 0.0001,
                        "round": False,
                        "tooltip": "Adam learning rate (the paper: 0.001).",
                    },
                ),
                "k": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 4096,
                        "tooltip": "x directions kept whole; 0 = r/2 (the paper: 32 for 512 px).",
                    },
                ),
                "lambda1": (
                    "FLOAT",
                    {
                        "default": 3.0,
                        "min": 0.0,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "Weight of L1 = ||y^ - Z||^2 (the paper: 3).",
                    },
                ),
                "lambda2": (
                    "FLOAT",
                    {
                        "default": 10.0,
                        "min": 0.0,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "Weight of L2 = ||y~ - X||^2 (the paper: 10).",
                    },
                ),
                "lambda3": (
                    "FLOAT",
                    {
                        "default": 10.0,
                        "min": 0.0,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "Weight of L3 = ||S - Sz||^2 (the paper: 10).",
                    },
                ),
                "lambda4": (
                    "FLOAT",
                    {
                        "default": 10.0,
                        "min": 0.0,
                        "max": 1000.0,
                        "step": 0.1,
                        "tooltip": "Weight of L4 = ||S + ds - Sx||^2 (the paper: 10).",
                    },
                ),
                "hidden": (
                    "INT",
                    {
                        "default": 4096,
                        "min": 8,
                        "max": 16384,
                        "tooltip": "Width of the head's three hidden layers (the paper: 4096).",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 0xFFFFFFFFFFFFFFFF,
                        "tooltip": "Seed of the head's initial weights and of the sample order.",
                    },
                ),
            },
            "optional": {
                "original": (
                    "LATENT",
                    {
                        "tooltip": "x: original-prompt latents from 'AVI Capture Latent at Step' (stop_at 0.8), one "
                        "per seed. Leave unconnected when training from a dataset."
                    },
                ),
                "target": (
                    "LATENT",
                    {"tooltip": "z: target-prompt latents (stop_at 0.5) from the same seeds, same batch size."},
                ),
                "dataset": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Train from models/avi_datasets/<dataset> instead of the latents (leave the "
                        "latents unconnected). Empty = use the latents.",
                    },
                ),
            },
        }

    def train(
        self,
        name,
        description,
        epochs,
        batch_size,
        learning_rate,
        k,
        lambda1,
        lambda2,
        lambda3,
        lambda4,
        hidden,
        seed,
        original=None,
        target=None,
        dataset="",
    ):
        safe_name = sanitize_head_name(name)
        dataset = (dataset or "").strip()
        if dataset:
            if original is not None or target is not None:
                raise ValueError(
                    "AVI Train Attribute Head got both latents and a dataset name: disconnect the original and "
                    "target inputs to train from the dataset, or clear `dataset` to train from the latents."
                )
            data = resolve_dataset(dataset)
            for path, reason in data.skipped:
                logger.warning("AVI training: dataset shard %s skipped (%s)", path, reason)
            x, z = data.x, data.z
            info = dataset_capture_metadata(data.records)
            info["source"] = f"dataset '{data.folder.name}' ({len(data.shards)} shard(s))"
        else:
            if original is None or target is None:
                raise ValueError(
                    "AVI Train Attribute Head needs pairs: connect both the original (x, stop_at 0.8) and target "
                    "(z, stop_at 0.5) latents from two 'AVI Capture Latent at Step' nodes, or type a dataset name."
                )
            x, z, info = pairs_from_latents(original, target)
            info["source"] = "captured latents"

        device = host.torch_device()
        bar = None

        def progress(step: int, total: int, losses: dict[str, float]) -> None:
            nonlocal bar
            host.throw_if_interrupted()  # Cancel: comfy's exception propagates through train_head untouched
            if bar is None:
                bar = host.progress_bar(total)
            bar.update_absolute(step, total)

        with torch.inference_mode(False), torch.enable_grad():
            result = train_head(
                x.detach().clone(),
                z.detach().clone(),
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                k=int(k) or None,
                lambdas=(lambda1, lambda2, lambda3, lambda4),
                hidden=hidden,
                seed=seed,
                device=device,
                progress=progress,
            )
        head = result.head.to("cpu").eval()
        head.requires_grad_(False)
        info.update(name=safe_name, description=description)
        head.metadata.update(info)
        path = os.path.join(host.heads_save_folder(), safe_name + HEAD_SUFFIX)
        if os.path.exists(path):
            logger.warning("AVI training: replacing the existing head %s", path)
        save_head(head, path)
        logger.info("AVI training: saved %s (%d pairs, %d steps)", path, x.shape[0], result.steps)
        plot = render_loss_plot(result.history)
        return (head, plot)


NODE_CLASS_MAPPINGS = {"AVITrainAttributeHead": AVITrainAttributeHead}
NODE_DISPLAY_NAME_MAPPINGS = {"AVITrainAttributeHead": "AVI Train Attribute Head"}
