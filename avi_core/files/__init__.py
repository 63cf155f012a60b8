"""Files: atomic writes, the safe safetensors reader shared by every file kind, ComfyUI .latent files,
datasets of captured pairs, and names typed by users."""
