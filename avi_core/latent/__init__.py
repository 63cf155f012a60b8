"""The latent itself, shared by every method: ComfyUI <-> paper-space conventions, the channel SVD and its
backends, capture records (which step a latent was stopped at, and at what noise) and captured pairs."""
