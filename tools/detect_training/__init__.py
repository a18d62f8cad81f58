"""Training and evaluation tools for the detect service's segmentation model (needs torch)."""
