"""AVI Train Attribute Head: learn an attribute from pairs of captured latents, save it as a head file."""

from __future__ import annotations

import logging
import os

import torch
from comfy_api.latest import io, ui

from ...avi_core.avi.head_files import save_head
from ...avi_core.avi.training import train_head
from ...avi_core.avi.training_data import training_pairs
from ...avi_core.files.datasets import dataset_fingerprint
from ...avi_core.files.names import SAFETENSORS_SUFFIX, sanitize_name
from ...avi_core.plots.loss_plot import render_loss_plot
from .. import host
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import advanced_input, schema
from .types import Head

logger = logging.getLogger("avi.nodes.train")


def _weight(name: str, default: float, term: str) -> io.Float.Input:
    return advanced_input(
        io.Float.Input,
        name,
        default=default,
        min=0.0,
        max=1000.0,
        step=0.1,
        tooltip=f"Weight of {term} (the paper: {default:g}).",
    )


class AVITrainAttributeHead(io.ComfyNode):
    """Trains a head on ComfyUI's device, with a progress bar, Cancel, and a loss plot."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVITrainAttributeHead",
            display_name="AVI Train Attribute Head",
            category=CATEGORY,
            search_aliases=["attribute", "slider", "edit", "svd", "train", "learn attribute"],
            description=(
                "Trains an AVI attribute head from pairs (original x at 0.8T, target z at 0.5T, same seeds): either "
                "the two captured latent batches or a dataset of many pairs. Saves models/avi_heads/<name>.safetensors "
                "and outputs the head and a plot of the four loss terms. Training runs on ComfyUI's device; Cancel "
                "stops it."
            ),
            is_output_node=True,
            inputs=[
                io.String.Input(
                    "name",
                    default="my_attribute",
                    tooltip="File name of the head in models/avi_heads (letters, digits, '-', '_'; other characters "
                    "become '_'). An existing head of that name is replaced.",
                ),
                io.String.Input(
                    "description",
                    default="",
                    multiline=True,
                    tooltip="What the head does, e.g. the prompt pair; stored in the file, shown by Load.",
                ),
                io.Int.Input("epochs", default=5, min=1, max=1000, tooltip="Training epochs (the paper: 5)."),
                advanced_input(
                    io.Int.Input,
                    "batch_size",
                    default=256,
                    min=1,
                    max=65536,
                    tooltip="Channel matrices per step (the paper: 256).",
                ),
                advanced_input(
                    io.Float.Input,
                    "learning_rate",
                    default=0.001,
                    min=1e-6,
                    max=1.0,
                    step=0.0001,
                    round=False,
                    tooltip="Adam learning rate (the paper: 0.001).",
                ),
                advanced_input(
                    io.Int.Input,
                    "k",
                    default=0,
                    min=0,
                    max=4096,
                    tooltip="x directions kept whole; 0 = r/2 (the paper: 32 for 512 px).",
                ),
                _weight("lambda1", 3.0, "L1 = ||y^ - Z||^2"),
                _weight("lambda2", 10.0, "L2 = ||y~ - X||^2"),
                _weight("lambda3", 10.0, "L3 = ||S - Sz||^2"),
                _weight("lambda4", 10.0, "L4 = ||S + ds - Sx||^2"),
                advanced_input(
                    io.Int.Input,
                    "hidden",
                    default=4096,
                    min=8,
                    max=16384,
                    tooltip="Width of the head's three hidden layers (the paper: 4096).",
                ),
                advanced_input(
                    io.Int.Input,
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    tooltip="Seed of the head's initial weights and of the sample order.",
                ),
                io.Latent.Input(
                    "original",
                    optional=True,
                    tooltip="x: original-prompt latents from 'AVI Capture Latent at Step' (stop_at 0.8), one per "
                    "seed. Leave unconnected when training from a dataset.",
                ),
                io.Latent.Input(
                    "target",
                    optional=True,
                    tooltip="z: target-prompt latents (stop_at 0.5) from the same seeds, same batch size.",
                ),
                io.String.Input(
                    "dataset",
                    optional=True,
                    default="",
                    tooltip="Train from models/avi_datasets/<dataset> instead of the latents (leave the latents "
                    "unconnected). Empty = use the latents.",
                ),
            ],
            outputs=[
                Head.Output(
                    "head",
                    display_name="head",
                    tooltip="The trained attribute head (also saved to models/avi_heads/<name>.safetensors).",
                ),
                io.Image.Output(
                    "loss_plot",
                    display_name="loss_plot",
                    tooltip="The four unweighted loss terms L1..L4 over the training steps, log scale.",
                ),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, dataset: str = "", **_: object) -> str:
        # Appending pairs to the dataset must retrain on the next queue, although no widget changed.
        return dataset_fingerprint(host.dataset_roots(), dataset) if (dataset or "").strip() else ""

    @classmethod
    @explains_errors
    def execute(
        cls,
        name: str,
        description: str,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        k: int,
        lambda1: float,
        lambda2: float,
        lambda3: float,
        lambda4: float,
        hidden: int,
        seed: int,
        original: dict | None = None,
        target: dict | None = None,
        dataset: str = "",
    ) -> io.NodeOutput:
        safe_name = sanitize_name(name, "head")
        roots = host.dataset_roots() if (dataset or "").strip() else []
        pairs = training_pairs(original, target, dataset, roots)
        device = host.torch_device()
        bar = None

        def progress(step: int, total: int, losses: dict[str, float]) -> None:
            nonlocal bar
            host.throw_if_interrupted()  # Cancel: comfy's exception propagates through train_head untouched
            if bar is None:
                bar = host.progress_bar(total)
            bar.update_absolute(step, total)

        # ComfyUI runs nodes under torch.inference_mode; training needs autograd and tensors made outside it.
        with torch.inference_mode(False), torch.enable_grad():
            result = train_head(
                pairs.x.detach().clone(),
                pairs.z.detach().clone(),
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
        head.metadata.update(pairs.info)
        head.metadata.update(name=safe_name, description=description)
        path = os.path.join(host.heads_save_folder(), safe_name + SAFETENSORS_SUFFIX)
        if os.path.exists(path):
            logger.warning("AVI training: replacing the existing head %s", path)
        save_head(head, path)
        logger.info("AVI training: saved %s (%d pairs, %d steps)", path, pairs.x.shape[0], result.steps)
        plot = render_loss_plot(result.history)
        return io.NodeOutput(head, plot, ui=ui.PreviewImage(plot, cls=cls))


NODES: list[type[io.ComfyNode]] = [AVITrainAttributeHead]
