"""The depth library (sd-webui-depth-lib's idea): ready-made depth maps of hands and poses
that an artist places onto a depth control layer.

The plugin ships a small bundle (`depth_maps/<category>/<name>.png`, made by
scripts/make_depth_library.py); the artist adds their own under Krita's resource folder,
`dreamwire/depth/<category>/<name>.png`, beside the styles. A map is grey, near = white;
black (or transparent) is "nothing there". Placing one composites by max, nearer wins, as
depth-lib's canvas does: Krita's "Lighten" blending is exactly that, so each placed map
can stay a layer of its own in a depth group and the group's projection is the control
image (`composite_max` is the same rule in numpy, for checks and for flattening).

Plain logic: no Krita imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dreamwire.shared.codec import CodecError, decode_png, read_png_header

from .controls import ControlMark
from .geometry import Rect

BUNDLED = Path(__file__).resolve().parents[1] / "depth_maps"
SUBFOLDER = ("dreamwire", "depth")  # under Krita's resource folder
GENERAL = "General"  # the category of a map lying directly in a library folder
# Larger maps are refused when listed: a depth map is a stamp, not a picture.
MAX_SIDE = 4096
GROUP_NAME = "Depth library"
BLENDING = "lighten"  # Krita's composite op for max(under, over) per channel


def user_folder(resource_dir: str | Path) -> Path:
    return Path(resource_dir).joinpath(*SUBFOLDER)


class DepthAssetError(ValueError):
    """A map that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Asset:
    category: str
    name: str  # the file's stem, shown with _ as spaces
    path: Path
    builtin: bool

    @property
    def key(self) -> str:
        return f"{self.category}/{self.name}"

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")


@dataclass
class Listing:
    assets: list[Asset] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per file skipped

    def categories(self) -> list[str]:
        return sorted({a.category for a in self.assets}, key=str.casefold)

    def in_category(self, category: str) -> list[Asset]:
        return [a for a in self.assets if a.category == category]


def list_assets(bundled: Path = BUNDLED, user: Path | None = None) -> Listing:
    """The bundled maps, then the artist's (a map with the same category and name replaces
    the bundled one), sorted by category and name. Only each file's PNG header is read; a
    file that is not a usable PNG is named in `problems` and skipped."""
    found: dict[str, Asset] = {}
    out = Listing()
    for root, builtin in ((bundled, True), (user, False)):
        if root is None or not Path(root).is_dir():
            continue
        for path in sorted(Path(root).rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            rel = path.relative_to(root)
            if path.suffix.lower() != ".png":
                out.problems.append(f"{rel.as_posix()}: not a PNG; depth maps are read as PNG")
                continue
            category = rel.parts[0] if len(rel.parts) > 1 else GENERAL
            try:
                check(path.read_bytes()[:64], rel.as_posix())
            except OSError as exc:
                out.problems.append(f"{rel.as_posix()}: could not be read ({exc})")
                continue
            except DepthAssetError as exc:
                out.problems.append(str(exc))
                continue
            asset = Asset(category, path.stem, path, builtin)
            found[asset.key.casefold()] = asset
    out.assets = sorted(found.values(), key=lambda a: (a.category.casefold(), a.name.casefold()))
    return out


def check(header: bytes, name: str) -> tuple[int, int]:
    """(width, height) from a PNG's first bytes; DepthAssetError naming the file."""
    try:
        w, h, _c, _depth = read_png_header(header)
    except CodecError as exc:
        raise DepthAssetError(f"{name}: {exc}") from None
    if max(w, h) > MAX_SIDE:
        raise DepthAssetError(f"{name}: {w}x{h} is larger than {MAX_SIDE} px a side")
    return w, h


def decode(data: bytes, name: str) -> np.ndarray:
    """A PNG as an H x W uint8 depth map: grey as is, colour as its luma, 16-bit scaled to
    8, and alpha multiplied in (transparent = nothing there)."""
    check(data[:64], name)
    try:
        raw = decode_png(data)
    except CodecError as exc:
        raise DepthAssetError(f"{name}: {exc}") from None
    arr = raw.astype(np.float64) / (257.0 if raw.dtype == np.uint16 else 1.0)
    c = arr.shape[2]
    colour = arr[:, :, :3] @ np.array([0.299, 0.587, 0.114]) if c >= 3 else arr[:, :, 0]
    if c in (2, 4):
        colour = colour * arr[:, :, c - 1] / 255.0
    return np.clip(np.floor(colour + 0.5), 0, 255).astype(np.uint8)


def load(asset: Asset) -> np.ndarray:
    try:
        data = asset.path.read_bytes()
    except OSError as exc:
        raise DepthAssetError(f"{asset.key}: could not be read ({exc})") from None
    return decode(data, asset.key)


@dataclass(frozen=True)
class Placement:
    """Where a map goes: its centre in document pixels, its scale (1 = one map pixel per
    document pixel), a clockwise rotation in degrees, a left-right flip (a right hand
    becomes a left one), and a depth factor (below 1: the map lies further back)."""

    x: float
    y: float
    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    depth: float = 1.0

    def __post_init__(self) -> None:
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError("the scale must be above 0")
        if not 0.0 <= self.depth <= 1.0:
            raise ValueError("the depth factor must be within 0..1")


def fitting(shape: tuple[int, int], canvas: Rect, at: Rect | None = None) -> Placement:
    """A first placement: centred on `at` (the selection) or the canvas, its longer side
    half the shorter side of that area (a hand on a portrait, a figure on a scene)."""
    area = at if at is not None and not at.empty() else canvas
    h, w = shape
    scale = max(0.01, min(area.w, area.h) / 2 / max(h, w))
    return Placement(area.x + area.w / 2, area.y + area.h / 2, round(scale, 3))


@dataclass(frozen=True)
class Placed:
    rect: Rect  # in document pixels, inside the canvas
    rgba: np.ndarray  # rect's size: grey, opaque where the map has depth, transparent elsewhere


def place(depth: np.ndarray, p: Placement, canvas: Rect) -> Placed | None:
    """The map transformed onto the canvas (bilinear), cropped to it; None when none of it
    lands on the canvas. Pixels with no depth stay transparent, so whatever lies under
    them is untouched."""
    h, w = depth.shape
    theta = math.radians(p.rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    hw, hh = w * p.scale / 2, h * p.scale / 2
    xs = [p.x + dx * cos - dy * sin for dx in (-hw, hw) for dy in (-hh, hh)]
    ys = [p.y + dx * sin + dy * cos for dx in (-hw, hw) for dy in (-hh, hh)]
    box = Rect(
        math.floor(min(xs)),
        math.floor(min(ys)),
        math.ceil(max(xs)) - math.floor(min(xs)),
        math.ceil(max(ys)) - math.floor(min(ys)),
    ).intersect(canvas)
    if box.empty():
        return None
    # Each document pixel's centre, back into the map: unrotate, unscale, unflip.
    gx = np.arange(box.x, box.right) + 0.5 - p.x
    gy = np.arange(box.y, box.bottom) + 0.5 - p.y
    dx, dy = gx[None, :], gy[:, None]
    u = (dx * cos + dy * sin) / p.scale
    v = (-dx * sin + dy * cos) / p.scale
    if p.flip:
        u = -u
    grey = _bilinear(depth.astype(np.float64), u + w / 2 - 0.5, v + h / 2 - 0.5) * p.depth
    g = np.clip(np.floor(grey + 0.5), 0, 255).astype(np.uint8)
    alpha = np.where(g > 0, 255, 0).astype(np.uint8)
    rgba = np.stack([g, g, g, alpha], axis=2)
    if not alpha.any():
        return None
    return Placed(box, rgba)


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """img sampled at (x, y) in pixel-centre coordinates; outside the map is 0."""
    h, w = img.shape
    pad = np.zeros((h + 2, w + 2))
    pad[1:-1, 1:-1] = img
    x = np.clip(x + 1, 0, w + 1)
    y = np.clip(y + 1, 0, h + 1)
    x0 = np.minimum(np.floor(x).astype(np.intp), w)
    y0 = np.minimum(np.floor(y).astype(np.intp), h)
    fx, fy = x - x0, y - y0
    top = pad[y0, x0] * (1 - fx) + pad[y0, x0 + 1] * fx
    bottom = pad[y0 + 1, x0] * (1 - fx) + pad[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def composite_max(under: np.ndarray, over: np.ndarray) -> np.ndarray:
    """`over` (a placed map) onto `under` (RGBA, the same size) by max, nearer wins:
    where `over` has depth the result is opaque, each channel the larger of the two (the
    layer under it read over black, as the control image reads it); elsewhere `under` is
    kept as it was. Krita's Lighten blending does the same."""
    out = under.copy()
    has = over[:, :, 3] > 0
    a = under[:, :, 3:4].astype(np.uint16)
    flat = ((under[:, :, :3].astype(np.uint16) * a + 127) // 255).astype(np.uint8)
    out[:, :, :3][has] = np.maximum(flat, over[:, :, :3])[has]
    out[:, :, 3][has] = 255
    return out


# -- where a placed map goes ---------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    type: str  # Krita's node type: "paintlayer", "grouplayer", ...


@dataclass(frozen=True)
class Target:
    """ "group": a new Lighten layer in the depth group `node_id` (one undo step, and the
    map stays movable with Krita's Transform tool); "merge": the depth paint layer
    `node_id` takes the map through a Lighten layer merged down (Krita 5.1's scripting
    writes pixels without undo, but adding and merging a layer are undoable: two steps);
    "new": no depth layer is active, so a new depth group holding the map goes above the
    active layer (one step)."""

    kind: str
    node_id: str | None = None


def target(
    chain: list[NodeInfo], marks: dict[str, ControlMark], recent: str | None = None
) -> Target:
    """Where to place, from the active node and its parents (`chain`, active first): the
    nearest depth control among them; else the depth group the library placed into last
    (`recent`, still in the document: the artist's own layer stays active after a
    placement, and the next map joins the same group); else a new group."""
    for i, node in enumerate(chain):
        mark = marks.get(node.node_id)
        if mark is None or mark.type != "depth":
            continue
        if node.type == "grouplayer":
            return Target("group", node.node_id)
        if node.type == "paintlayer" and i == 0:
            return Target("merge", node.node_id)
    mark = marks.get(recent or "")
    if mark is not None and mark.type == "depth":
        return Target("group", recent)
    return Target("new")


def layer_name(asset: Asset) -> str:
    return f"Depth: {asset.label}"
