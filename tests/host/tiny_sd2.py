"""A tiny SD2-architecture model for host tests (no weights can be downloaded).

Usage (in a host test; pytest puts tests/host on sys.path, so `import tiny_sd2` works):

    import tiny_sd2
    tiny_sd2.require_host()                  # pytest.skip(...) unless COMFYUI_DIR points at a ComfyUI this
                                             # python can import
    model = tiny_sd2.tiny_model(seed=0)      # a comfy.model_patcher.ModelPatcher, i.e. a ComfyUI MODEL
    pos = tiny_sd2.random_conditioning(seed=1)   # a ComfyUI CONDITIONING for that model
    latent = tiny_sd2.empty_latent(batch=2)      # {"samples": zeros [2, 4, 16, 16]}
    comfy_nodes = tiny_sd2.host_nodes()      # the host's nodes.py module (KSamplerAdvanced, ...)
    avi = tiny_sd2.avi_node_classes(pack)    # {node id: V3 class} through the pack's comfy_entrypoint
    out = tiny_sd2.ksampler_advanced(model, pos, neg, latent, seed=1, steps=50, end=10, leftover_noise=True)
    executor, server = tiny_sd2.run_prompt(api_prompt)   # the host's real PromptExecutor (validate + run)
    tiny_sd2.execution_error(server)         # its execution_error message (exception_message...) or None

run_prompt needs every class_type in the host's nodes.NODE_CLASS_MAPPINGS: add the pack's (avi_node_classes())
and any test nodes there first. It installs a progress hook like the server's, so
ProgressBar ticks arrive in server.messages as ("progress", {"value", "max", "node"}).

The model is `comfy.supported_models.SD20` (eps prediction, the SD 2.x discrete schedule with T = 1000,
the SD latent format with scale factor 0.18215, linear transformers, cross-attention) with a small
unet_config: model_channels 32, one res block per level, two levels, context_dim 32. Its weights are
initialised explicitly from a seeded generator (ComfyUI creates them uninitialised), so the same seed gives
the same model bit for bit. A 50-step sampling of a 16x16 latent takes about a second on an idle CPU
(the first call in a process several more, while torch warms up).

`require_host()` must run before anything else here: it puts $COMFYUI_DIR first on sys.path (ahead of the
pack's own `nodes/` folder, which `python -m pytest` would otherwise expose as a top-level `nodes`), forces
ComfyUI onto the CPU and redirects its models/output/temp/input folders into a temporary directory so that
no test writes into the host tree.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The pack's folder (what a user clones into ComfyUI's custom_nodes/)."""
CONTEXT_DIM = 32
"""Width of the conditioning tokens the tiny UNet cross-attends to."""
TOKENS = 8
"""Tokens per conditioning (77 for a real CLIP; fewer keeps tests fast)."""
LATENT_SIZE = 16
"""Default latent height and width (a real SD 2.1 512 px image gives 64)."""
LATENT_CHANNELS = 4

UNET_CONFIG: dict[str, Any] = {
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "adm_in_channels": None,
    "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1],
    "channel_mult": [1, 2],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": True,
    "context_dim": CONTEXT_DIM,
    "use_temporal_resblock": False,
    "use_temporal_attention": False,
}
HEAD_CHANNELS = 16
"""Attention head width (SD 2.x uses 64, wider than this tiny model's 32 channels)."""

_TMP: tempfile.TemporaryDirectory | None = None


def comfyui_dir() -> Path | None:
    """The host named by $COMFYUI_DIR, or None when unset or not a ComfyUI folder."""
    value = os.environ.get("COMFYUI_DIR", "").strip()
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not (path / "comfy" / "supported_models.py").is_file() or not (path / "nodes.py").is_file():
        return None
    return path


SKIP_MESSAGE = (
    "host test: set COMFYUI_DIR to a ComfyUI checkout and run with its python, e.g. "
    "COMFYUI_DIR=/path/to/ComfyUI /path/to/ComfyUI/.venv/bin/python -m pytest tests/host"
)
_UNAVAILABLE: str | None = None
"""Why the host cannot be used by this Python (set by the first require_host() that found out)."""


def _skip(message: str):
    import pytest

    pytest.skip(message)


def require_host() -> Path:
    """Prepare the host ComfyUI for in-process use, or skip the calling test (pytest) when there is none.

    Skips when COMFYUI_DIR is unset, and also when it is set but the running Python cannot import the host
    (for example the project's own venv or a CI venv without ComfyUI's requirements): a host test needs the
    host's python. Idempotent. Returns the temporary base folder that now holds ComfyUI's
    models/output/temp/input folders.
    """
    global _TMP, _UNAVAILABLE
    host = comfyui_dir()
    if host is None:
        _skip(SKIP_MESSAGE)
    if _UNAVAILABLE is not None:
        _skip(_UNAVAILABLE)
    if _TMP is not None:
        return Path(_TMP.name)

    host_str = str(host)
    if host_str in sys.path:
        sys.path.remove(host_str)
    sys.path.insert(0, host_str)
    loaded = sys.modules.get("nodes")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() != host / "nodes.py":
        # Something (the pack's own nodes/ folder, seen through the cwd entry of sys.path) was imported as
        # the top-level `nodes`; drop it so the host's nodes.py is found.
        del sys.modules["nodes"]

    try:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        comfy.cli_args.args.disable_all_custom_nodes = False
        import comfy.model_management  # noqa: F401
        import comfy_api.latest  # noqa: F401
        import folder_paths
    except ImportError as err:
        sys.path.remove(host_str)
        _UNAVAILABLE = (
            f"host test: COMFYUI_DIR={host} is set, but this Python ({sys.executable}) cannot import ComfyUI "
            f"({type(err).__name__}: {err}); run the host tests with the host's python, e.g. "
            f"COMFYUI_DIR={host} {host}/.venv/bin/python -m pytest tests/host"
        )
        _skip(_UNAVAILABLE)

    _TMP = tempfile.TemporaryDirectory(prefix="avi-host-")
    base = Path(_TMP.name)
    for sub in ("models", "output", "temp", "input", "user"):
        (base / sub).mkdir()
    folder_paths.set_output_directory(str(base / "output"))
    folder_paths.set_temp_directory(str(base / "temp"))
    folder_paths.set_input_directory(str(base / "input"))
    folder_paths.models_dir = str(base / "models")
    # Existing registrations point into the host tree: keep reads working but never write there.
    return base


def temp_base() -> Path:
    """The temporary folder created by require_host()."""
    if _TMP is None:
        raise RuntimeError("call tiny_sd2.require_host() first")
    return Path(_TMP.name)


def host_nodes():
    """The host's nodes.py module (KSamplerAdvanced, common_ksampler, load_custom_node, ...)."""
    require_host()
    import nodes as comfy_nodes

    return comfy_nodes


def avi_node_classes(pack) -> dict[str, type]:
    """{node id: class} of the pack's V3 nodes, as ComfyUI gets them: through the root's comfy_entrypoint."""
    require_host()
    import asyncio

    extension = asyncio.run(pack.comfy_entrypoint())
    classes = asyncio.run(extension.get_node_list())
    assert pack.nodes.IMPORT_ERRORS == {}, pack.nodes.IMPORT_ERRORS
    return {cls.GET_SCHEMA().node_id: cls for cls in classes}


def _init_weights(module: torch.nn.Module, seed: int) -> None:
    """Fill every parameter from a seeded generator: fan-in scaled normals, unit norms, zero biases."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.ndim >= 2:
                fan_in = param[0].numel()
                values = torch.randn(param.shape, generator=generator, dtype=torch.float32) / math.sqrt(fan_in)
            elif "norm" in name and name.endswith("weight"):
                values = torch.ones(param.shape)
            else:
                values = torch.randn(param.shape, generator=generator, dtype=torch.float32) * 0.02
            param.copy_(values.to(param.dtype))
        for name, buf in module.named_buffers():
            if not torch.isfinite(buf).all():
                raise RuntimeError(f"tiny model buffer {name} is not finite")


def _calibrate_output(unet: torch.nn.Module, seed: int) -> None:
    """Rescale the last conv so the UNet's prediction has unit standard deviation, like a trained one.

    Random weights otherwise predict noise tens of times too large and sampling ends far from the data scale.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    x = torch.randn((2, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE), generator=generator)
    context = torch.randn((2, TOKENS, CONTEXT_DIM), generator=generator)
    with torch.no_grad():
        out = unet(x, timesteps=torch.tensor([500.0, 900.0]), context=context)
        scale = float(out.std())
        if not math.isfinite(scale) or scale <= 0:
            raise RuntimeError("tiny model output is degenerate; try another seed")
        last = unet.out[-1]
        last.weight.div_(scale)
        if last.bias is not None:
            last.bias.div_(scale)


def tiny_model(seed: int = 0, model_type: str = "eps"):
    """A ComfyUI MODEL (comfy.model_patcher.ModelPatcher) of SD2 architecture, tiny, with seeded weights.

    model_type "eps" is SD 2.1 base (512 px); "v" gives SD 2.1 768-v's v-prediction. Runs on CPU.
    """
    require_host()
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SD20(dict(UNET_CONFIG))
    config.unet_config["num_head_channels"] = HEAD_CHANNELS
    config.set_inference_dtype(torch.float32, None)
    kind = {"eps": comfy.model_base.ModelType.EPS, "v": comfy.model_base.ModelType.V_PREDICTION}[model_type]
    device = comfy.model_management.get_torch_device()
    with torch.inference_mode(False):
        model = comfy.model_base.BaseModel(config, model_type=kind, device=device)
        _init_weights(model.diffusion_model, seed)
        _calibrate_output(model.diffusion_model, seed)
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def flow_model(seed: int = 0):
    """A tiny model whose model_sampling is a flow (CONST) one, as SD3 uses: AVI must refuse it."""
    require_host()
    import comfy.model_base

    patcher = tiny_model(seed)
    flow = comfy.model_base.model_sampling(patcher.model.model_config, comfy.model_base.ModelType.FLOW)
    patcher.add_object_patch("model_sampling", flow)
    return patcher


def random_conditioning(batch: int = 1, seed: int = 1, tokens: int = TOKENS) -> list:
    """A ComfyUI CONDITIONING ([[cond [batch, tokens, CONTEXT_DIM], {"pooled_output": None}]]) from a seed."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    cond = torch.randn((batch, tokens, CONTEXT_DIM), generator=generator, dtype=torch.float32)
    return [[cond, {"pooled_output": None}]]


def empty_latent(batch: int = 1, size: int = LATENT_SIZE) -> dict:
    """An EmptyLatentImage-style LATENT: {"samples": zeros [batch, 4, size, size]}."""
    return {"samples": torch.zeros((batch, LATENT_CHANNELS, size, size))}


def ksampler_advanced(
    model,
    positive,
    negative,
    latent,
    *,
    seed: int,
    steps: int,
    start: int = 0,
    end: int = 10000,
    add_noise: bool = True,
    leftover_noise: bool = False,
    cfg: float = 7.5,
    sampler_name: str = "euler",
    scheduler: str = "normal",
) -> dict:
    """Run the host's own KSamplerAdvanced node and return its LATENT."""
    comfy_nodes = host_nodes()
    (out,) = comfy_nodes.KSamplerAdvanced().sample(
        model,
        "enable" if add_noise else "disable",
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        positive,
        negative,
        latent,
        start,
        end,
        "enable" if leftover_noise else "disable",
    )
    return out


class RecordingServer:
    """The few PromptServer members the executor uses; every message it sends is kept in `.messages`."""

    def __init__(self) -> None:
        self.client_id = "avi-test"
        self.last_node_id = None
        self.messages: list[tuple[str, dict]] = []

    def send_sync(self, event: str, data: dict, sid=None) -> None:
        self.messages.append((event, data))

    def queue_updated(self) -> None:
        pass


def run_prompt(prompt: dict, prompt_id: str = "avi-test") -> tuple[Any, RecordingServer]:
    """Validate and execute an API-format prompt with the host's real executor (execution.PromptExecutor).

    Nodes the prompt names must be in the host's nodes.NODE_CLASS_MAPPINGS (register test nodes there
    first). Returns (executor, server): executor.success, executor.history_result, executor.caches, and
    server.messages (("execution_error", {...}) among them when a node raised). Raises AssertionError with
    ComfyUI's validation errors when the prompt does not validate.
    """
    import asyncio

    host_nodes()
    import execution

    valid = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    if not valid[0]:
        raise AssertionError(f"prompt does not validate: {valid[1]} {valid[3]}")
    server = RecordingServer()
    executor = execution.PromptExecutor(server, cache_type=False)
    import comfy.model_management
    import comfy.utils
    from comfy_execution.utils import get_executing_context

    def progress_hook(value, total, preview, prompt_id=None, node_id=None):
        # What the server's hook (main.hijack_progress) does, minus the websocket: a "progress" message
        # naming the executing node, and Cancel checked on every tick.
        context = get_executing_context()
        node = node_id if node_id is not None else (context.node_id if context is not None else None)
        comfy.model_management.throw_exception_if_processing_interrupted()
        server.send_sync("progress", {"value": value, "max": total, "node": node}, server.client_id)

    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(progress_hook)
    try:
        executor.execute(prompt, prompt_id, {"client_id": server.client_id}, valid[2])
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
    return executor, server


def execution_error(server: RecordingServer) -> dict | None:
    """The execution_error message of a run (node_type, exception_type, exception_message...), or None."""
    for event, data in server.messages:
        if event == "execution_error":
            return data
    return None
