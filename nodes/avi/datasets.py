"""AVI Append To Dataset: collect the captured pairs of each queue run into a named dataset folder."""

from __future__ import annotations

import logging

from comfy_api.latest import io, ui

from ...avi_core.files.datasets import append_latent_pair, count_pairs, dataset_folder, sanitize_dataset_name
from .. import host
from ..common import CATEGORY
from ..fixes import explains_errors
from ..schema_compat import schema

logger = logging.getLogger("avi.nodes.datasets")


class AVIAppendToDataset(io.ComfyNode):
    """Writes this run's pairs as one new shard of a dataset; shows what was written."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            io.Schema,
            node_id="AVIAppendToDataset",
            display_name="AVI Append To Dataset",
            category=CATEGORY,
            search_aliases=["attribute", "slider", "svd", "dataset", "collect pairs", "training data"],
            description=(
                "Appends the pairs captured in this queue run (original x at 0.8T, target z at 0.5T, same seed) to "
                "the dataset models/avi_datasets/<dataset>/, as one new shard file. Queue the workflow many times "
                "(batch count, seed set to increment) to collect hundreds of pairs, then type the dataset name into "
                "'AVI Train Attribute Head'. Several ComfyUI instances may add to the same dataset at once."
            ),
            is_output_node=True,
            inputs=[
                io.Latent.Input(
                    "original",
                    tooltip="x: the original-prompt latents from 'AVI Capture Latent at Step' (stop_at 0.8).",
                ),
                io.Latent.Input(
                    "target",
                    tooltip="z: the target-prompt latents from 'AVI Capture Latent at Step' (stop_at 0.5), same seed "
                    "and batch size as x.",
                ),
                io.String.Input(
                    "dataset",
                    default="my_attribute",
                    multiline=False,
                    tooltip="Name of the dataset: a folder in models/avi_datasets (letters, digits, '-', '_'; other "
                    "characters become '_'). Type the same name into 'AVI Train Attribute Head' to train from it.",
                ),
            ],
            outputs=[
                io.String.Output(
                    "summary",
                    display_name="summary",
                    tooltip="What was written: pairs added, the dataset's size so far, and the shard file.",
                ),
            ],
        )

    @classmethod
    @explains_errors
    def execute(cls, original: dict, target: dict, dataset: str) -> io.NodeOutput:
        name = sanitize_dataset_name(dataset)
        folder = dataset_folder(host.dataset_roots()[0], name)
        shard = append_latent_pair(folder, original, target)
        shards, pairs = count_pairs(folder)
        added = int(original["samples"].shape[0])
        summary = f"added {added} pair(s) to dataset '{name}': now {pairs} pair(s) in {shards} shard(s) ({shard})"
        logger.info("AVI dataset: %s", summary)
        return io.NodeOutput(summary, ui=ui.PreviewText(summary))


NODES: list[type[io.ComfyNode]] = [AVIAppendToDataset]
