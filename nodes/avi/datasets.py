"""AVI Append To Dataset: collect the captured pairs of each queue run into a named dataset folder."""

from __future__ import annotations

import logging

from ...avi_core.files.datasets import append_latent_pair, count_pairs, dataset_folder, sanitize_dataset_name
from .. import host
from ..common import CATEGORY

logger = logging.getLogger("avi.nodes.datasets")


class AVIAppendToDataset:
    DESCRIPTION = (
        "Appends the pairs captured in this queue run (original x at 0.8T, target z at 0.5T, same seed) to "
        "the dataset models/avi_datasets/<dataset>/, as one new shard file. Queue the workflow many times "
        "(batch count, seed set to increment) to collect hundreds of pairs, then type the dataset name into "
        "'AVI Train Attribute Head'. Several ComfyUI instances may add to the same dataset at once."
    )
    CATEGORY = CATEGORY
    FUNCTION = "append"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("summary",)
    OUTPUT_TOOLTIPS = ("What was written: pairs added, the dataset's size so far, and the shard file.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "original": (
                    "LATENT",
                    {"tooltip": "x: the original-prompt latents from 'AVI Capture Latent at Step' (stop_at 0.8)."},
                ),
                "target": (
                    "LATENT",
                    {
                        "tooltip": "z: the target-prompt latents from 'AVI Capture Latent at Step' "
                        "(stop_at 0.5), same seed and batch size as x."
                    },
                ),
                "dataset": (
                    "STRING",
                    {
                        "default": "my_attribute",
                        "multiline": False,
                        "tooltip": "Name of the dataset: a folder in models/avi_datasets (letters, digits, '-', "
                        "'_'; other characters become '_'). Type the same name into 'AVI Train "
                        "Attribute Head' to train from it.",
                    },
                ),
            }
        }

    def append(self, original, target, dataset):
        name = sanitize_dataset_name(dataset)
        folder = dataset_folder(host.dataset_roots()[0], name)
        shard = append_latent_pair(folder, original, target)
        shards, pairs = count_pairs(folder)
        added = int(original["samples"].shape[0])
        summary = f"added {added} pair(s) to dataset '{name}': now {pairs} pair(s) in {shards} shard(s) ({shard})"
        logger.info("AVI dataset: %s", summary)
        return {"ui": {"text": [summary]}, "result": (summary,)}


NODE_CLASS_MAPPINGS = {"AVIAppendToDataset": AVIAppendToDataset}
NODE_DISPLAY_NAME_MAPPINGS = {"AVIAppendToDataset": "AVI Append To Dataset"}
