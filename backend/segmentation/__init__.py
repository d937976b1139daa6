"""Masks of what the artist points at: SAM 2 click-to-mask (sam2_masks.py), run by the
engine's segment jobs; weights found by library.annotator_files."""
