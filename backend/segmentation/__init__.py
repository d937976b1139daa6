"""Masks of what the artist points at: SAM 2 click-to-mask (sam2_masks.py) and the
picture's subject by rembg's background-removal models (subject_masks.py), run by the
engine's segment jobs."""
