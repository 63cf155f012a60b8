"""Nodes of the small digit model (spec section 12): load it as a ComfyUI MODEL + VAE, and write its prompts."""
