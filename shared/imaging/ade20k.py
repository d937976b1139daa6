"""The ADE20K palette and class names used by ControlNet's segmentation annotator.

ControlNet 1.1's seg model was trained on UniFormer/UperNet ADE20K maps coloured with the
mmseg ADE20K palette; class id i (0-based, 150 classes, no background class) is drawn in
PALETTE[i]. The table below is that palette verbatim. Note that it is not injective: road
(6) and skyscraper (48) share (140, 140, 140) in the original, and we keep it that way,
because the model saw exactly these colours. Class names keep the original spelling
('bed ' has a trailing space there); `class_id()` matches names loosely.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = (
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed ",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
)

# RGB, index = class id.
PALETTE = (
    (120, 120, 120),
    (180, 120, 120),
    (6, 230, 230),
    (80, 50, 50),
    (4, 200, 3),
    (120, 120, 80),
    (140, 140, 140),
    (204, 5, 255),
    (230, 230, 230),
    (4, 250, 7),
    (224, 5, 255),
    (235, 255, 7),
    (150, 5, 61),
    (120, 120, 70),
    (8, 255, 51),
    (255, 6, 82),
    (143, 255, 140),
    (204, 255, 4),
    (255, 51, 7),
    (204, 70, 3),
    (0, 102, 200),
    (61, 230, 250),
    (255, 6, 51),
    (11, 102, 255),
    (255, 7, 71),
    (255, 9, 224),
    (9, 7, 230),
    (220, 220, 220),
    (255, 9, 92),
    (112, 9, 255),
    (8, 255, 214),
    (7, 255, 224),
    (255, 184, 6),
    (10, 255, 71),
    (255, 41, 10),
    (7, 255, 255),
    (224, 255, 8),
    (102, 8, 255),
    (255, 61, 6),
    (255, 194, 7),
    (255, 122, 8),
    (0, 255, 20),
    (255, 8, 41),
    (255, 5, 153),
    (6, 51, 255),
    (235, 12, 255),
    (160, 150, 20),
    (0, 163, 255),
    (140, 140, 140),
    (250, 10, 15),
    (20, 255, 0),
    (31, 255, 0),
    (255, 31, 0),
    (255, 224, 0),
    (153, 255, 0),
    (0, 0, 255),
    (255, 71, 0),
    (0, 235, 255),
    (0, 173, 255),
    (31, 0, 255),
    (11, 200, 200),
    (255, 82, 0),
    (0, 255, 245),
    (0, 61, 255),
    (0, 255, 112),
    (0, 255, 133),
    (255, 0, 0),
    (255, 163, 0),
    (255, 102, 0),
    (194, 255, 0),
    (0, 143, 255),
    (51, 255, 0),
    (0, 82, 255),
    (0, 255, 41),
    (0, 255, 173),
    (10, 0, 255),
    (173, 255, 0),
    (0, 255, 153),
    (255, 92, 0),
    (255, 0, 255),
    (255, 0, 245),
    (255, 0, 102),
    (255, 173, 0),
    (255, 0, 20),
    (255, 184, 184),
    (0, 31, 255),
    (0, 255, 61),
    (0, 71, 255),
    (255, 0, 204),
    (0, 255, 194),
    (0, 255, 82),
    (0, 10, 255),
    (0, 112, 255),
    (51, 0, 255),
    (0, 194, 255),
    (0, 122, 255),
    (0, 255, 163),
    (255, 153, 0),
    (0, 255, 10),
    (255, 112, 0),
    (143, 255, 0),
    (82, 0, 255),
    (163, 255, 0),
    (255, 235, 0),
    (8, 184, 170),
    (133, 0, 255),
    (0, 255, 92),
    (184, 0, 255),
    (255, 0, 31),
    (0, 184, 255),
    (0, 214, 255),
    (255, 0, 112),
    (92, 255, 0),
    (0, 224, 255),
    (112, 224, 255),
    (70, 184, 160),
    (163, 0, 255),
    (153, 0, 255),
    (71, 255, 0),
    (255, 0, 163),
    (255, 204, 0),
    (255, 0, 143),
    (0, 255, 235),
    (133, 255, 0),
    (255, 0, 235),
    (245, 0, 255),
    (255, 0, 122),
    (255, 245, 0),
    (10, 190, 212),
    (214, 255, 0),
    (0, 204, 255),
    (20, 0, 255),
    (255, 255, 0),
    (0, 153, 255),
    (0, 41, 255),
    (0, 255, 204),
    (41, 0, 255),
    (41, 255, 0),
    (173, 0, 255),
    (0, 245, 255),
    (71, 0, 255),
    (122, 0, 255),
    (0, 255, 184),
    (0, 92, 255),
    (184, 255, 0),
    (0, 133, 255),
    (255, 214, 0),
    (25, 194, 194),
    (102, 255, 0),
    (92, 0, 255),
)

NUM_CLASSES = len(CLASS_NAMES)
_PALETTE_ARRAY = np.array(PALETTE, dtype=np.uint8)


def _norm(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


_BY_NAME = {_norm(n): i for i, n in enumerate(CLASS_NAMES)}
# A few everyday synonyms artists type for classes ADE20K names differently.
_ALIASES = {
    "window": "windowpane",
    "trash can": "ashcan",
    "bin": "ashcan",
    "tv": "television receiver",
    "television": "television receiver",
    "carpet": "rug",
    "cupboard": "cabinet",
    "bush": "plant",
    "ground": "earth",
    "street": "road",
    "stone": "rock",
    "water surface": "water",
    "statue": "sculpture",
    "human": "person",
    "character": "person",
}


def class_id(value: int | str) -> int | None:
    """A class id from an id, a class name (case and spacing ignored) or a common alias."""
    if isinstance(value, (int, np.integer)):
        return int(value) if 0 <= int(value) < NUM_CLASSES else None
    key = _norm(str(value))
    if key.isdigit():
        return class_id(int(key))
    if key in _BY_NAME:
        return _BY_NAME[key]
    alias = _ALIASES.get(key)
    return _BY_NAME[alias] if alias else None


def class_name(cid: int) -> str:
    return CLASS_NAMES[cid].strip()


def color_of(value: int | str) -> tuple[int, int, int]:
    cid = class_id(value)
    if cid is None:
        raise ValueError(f"unknown ADE20K class: {value!r}")
    return PALETTE[cid]


def colorize(labels: np.ndarray, background=(0, 0, 0)) -> np.ndarray:
    """Label map (H x W ints; class id, or < 0 for nothing) -> H x W x 3 uint8 RGB."""
    labels = np.asarray(labels)
    out = np.empty(labels.shape + (3,), dtype=np.uint8)
    out[...] = np.asarray(background, dtype=np.uint8)
    valid = (labels >= 0) & (labels < NUM_CLASSES)
    out[valid] = _PALETTE_ARRAY[labels[valid]]
    return out


def nearest_labels(image: np.ndarray, block: int = 16384) -> np.ndarray:
    """RGB image -> class ids by nearest palette colour (-1 for pure black); for reading
    segmentation maps painted by hand. Shared colours resolve to the lower id."""
    rgb = np.asarray(image)[..., :3]
    flat = rgb.reshape(-1, 3).astype(np.int32)
    pal = _PALETTE_ARRAY.astype(np.int32)
    labels = np.empty(len(flat), dtype=np.int32)
    for start in range(0, len(flat), block):
        chunk = flat[start : start + block]
        d = ((chunk[:, None, :] - pal[None]) ** 2).sum(-1)
        labels[start : start + block] = d.argmin(-1)
    labels[(flat == 0).all(-1)] = -1
    return labels.reshape(rgb.shape[:-1])
