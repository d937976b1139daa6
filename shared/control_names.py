"""A control model's type from its file name (or a preprocessor's name), as A1111's
ControlNet extension names them. One table for the backend (which model serves a unit) and
for infotext parsing (which type a recorded unit had)."""

from __future__ import annotations

import re

# Most specific first: "lineart_anime" before "lineart", "softedge" aliases before "seg"...
TYPE_PATTERNS = (
    ("ip-adapter", r"ip_?adapter"),  # before "ip2p"; the file's layout confirms it
    # CrucibleAI's ControlNetMediaPipeFace (control_v2p_sd15/sd21_mediapipe_face): named by
    # "mediapipe", never by "face" alone, which IP-Adapter FaceID files (above) also hold.
    ("mediapipe_face", r"mediapipe"),
    ("lineart_anime", r"lineart_?anime|anime_?lineart"),
    ("lineart", r"lineart|line_?art"),
    ("softedge", r"softedge|soft_edge|\bhed\b|_hed|hed_|pidi|pidinet|teed"),
    ("normalbae", r"normalbae|normal_bae|normal"),
    ("openpose", r"openpose|dwpose|keypose|\bpose\b|_pose"),
    ("depth", r"depth|midas|zoe"),
    ("canny", r"canny"),
    ("mlsd", r"mlsd"),
    ("scribble", r"scribble|sketch"),
    ("shuffle", r"shuffle"),
    ("tile", r"tile"),
    ("inpaint", r"inpaint"),
    ("ip2p", r"ip2p|instruct_?p2p|pix2pix"),
    ("seg", r"seg|ade20k|coco"),
    ("color", r"(?<!re)colou?r"),  # the T2I-Adapter color model (not "recolor")
    ("style", r"style"),  # the T2I-Adapter style model (CLIP-vision input, refused)
)


def type_from_name(name: str) -> str | None:
    """The type named by the last path component of `name` (any separator), or None."""
    stem = re.split(r"[/\\]", name)[-1].lower().replace("-", "_").replace(" ", "_")
    for kind, pattern in TYPE_PATTERNS:
        if re.search(pattern, stem):
            return kind
    return None
