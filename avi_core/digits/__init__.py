"""The small digit model's host-free parts (spec section 12): MNIST data, style measures, prompts, the tiny
text encoder, the exact pixel <-> latent map, the scoring classifier and the identity measures.

Nothing here imports ComfyUI; the nodes (nodes/digits/) and the tools (tools/train_digit_*.py,
tools/edit_benchmark.py) put these parts around ComfyUI's own SD2 UNet.
"""
