"""Plots as images: matplotlib (Agg backend) figures turned into ComfyUI IMAGE tensors or PNG files.

Every plot function returns an IMAGE tensor `[1, H, W, 3]`, float32 in 0..1, so a node can show it with
Preview Image and the command line can save it (`figure.save_png`).
"""
