"""Results kept in the docker: previews to choose from, re-insert, or copy parameters back.

A finished job's images arrive here first as previews (Krita AI Diffusion's history): a
batch of 4 is one choice among 4, shown one at a time in a preview layer, and only the
image the artist applies becomes a layer. The entries are saved into the document (a
Krita annotation, `dump`/`load`) so the choice survives closing and reopening the .kra.
"""

from __future__ import annotations

import contextlib
import json
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .geometry import Rect
from .naming import short_prompt
from .params import MASKED_CONTENT, Params
from .regions import Plan
from .styles import unmerge_prompt

MAX_ENTRIES = 64
# The thumbnails' longer side: readable in the docker's list, ~10-20 KB each compressed.
THUMB_SIDE = 80
# Full images go into the document only for entries not applied yet (an applied one is in
# a layer already), newest first, until this many compressed bytes: a batch of four 512 px
# results fits, a long session of large ones keeps only thumbnails and settings.
FULL_IMAGE_BUDGET = 8 * 1024 * 1024
ANNOTATION_TYPE = "dreamwire-history"
ANNOTATION_TEXT = "Dreamwire generation history"
# The one layer that shows the result being chosen, on top of the stack until applied.
PREVIEW_LAYER = "Dreamwire result preview"
# Actions whose results wait in the history as previews (the others land at once: an
# upscale rescales the document, edit and layers results are what the artist asked for).
PREVIEW_ACTIONS = ("generate", "refine", "inpaint")
NO_FULL_IMAGE = (
    "Only the thumbnail of this result was kept with the document: "
    "Reuse settings and generate it again."
)
_MAGIC = b"DWH1"


@dataclass
class Entry:
    image: np.ndarray | None  # RGBA as placed (cropped to plan.target); None: thumbnail only
    seed: int
    infotext: str
    params: Params
    plan: Plan
    mask: np.ndarray | None = None
    layer_name: str = ""
    job_id: str = ""  # the job it came from: a batch's images share it
    applied: bool = False  # placed on the canvas (Apply) at least once
    thumb: np.ndarray | None = None  # small RGBA for the list; made from image if absent
    # The document it belongs to (its root node's id this session; not saved): its
    # annotation holds this entry.
    doc_key: str = ""
    # Each array compressed once (by `dump`): the history is saved on every change, and
    # compressing a batch of large images again each time would stall the docker.
    packed: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.thumb is None and self.image is not None:
            self.thumb = thumbnail(self.image)

    @property
    def key(self) -> str:
        """Stable across saving: the job and the seed name one image of a batch."""
        return f"{self.job_id}:{self.seed}"

    def summary(self) -> str:
        """The list's text: the prompt first, then what made the image."""
        p = self.plan.target
        state = "applied" if self.applied else "not applied"
        model = f" · {self.params.model}" if self.params.model else ""
        return (
            f"{short_prompt(self.params.prompt)}\n"
            f"seed {self.seed} · {self.params.steps} steps · {self.params.sampler} · "
            f"CFG {self.params.cfg:g} · {p.w}x{p.h}{model} · {self.plan.action} · {state}"
        )


@dataclass
class History:
    entries: list[Entry] = field(default_factory=list)
    version: int = 0  # moves on every change, so the docker knows to refill its list

    def changed(self) -> None:
        self.version += 1

    def add(self, entry: Entry) -> None:
        self.add_batch([entry])

    def add_batch(self, batch: list[Entry]) -> None:
        """A job's images, in their order, before everything older; entries already known
        (the same key, e.g. loaded twice from the document) are not repeated."""
        known = {e.key for e in self.entries}
        new = [e for e in batch if not e.job_id or e.key not in known]
        self.entries[:0] = new
        del self.entries[MAX_ENTRIES:]
        self.changed()

    def add_saved(self, saved: list[Entry], doc_key: str) -> int:
        """A document's saved entries (loaded from document `doc_key`), after everything
        this session made (they are older); returns how many were new. An entry already
        here (the document was closed and opened again) now belongs to `doc_key`."""
        known = {e.key: e for e in self.entries}
        for e in saved:
            e.doc_key = doc_key
            if e.key in known:
                known[e.key].doc_key = doc_key
        new = [e for e in saved if e.key not in known]
        room = max(0, MAX_ENTRIES - len(self.entries))
        self.entries.extend(new[:room])
        self.changed()
        return len(new[:room])

    def of_document(self, doc_key: str) -> list[Entry]:
        return [e for e in self.entries if e.doc_key == doc_key]

    def index(self, key: str) -> int | None:
        for i, e in enumerate(self.entries):
            if e.key == key:
                return i
        return None

    def remove(self, index: int) -> Entry:
        entry = self.entries.pop(index)
        self.changed()
        return entry

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Entry:
        return self.entries[i]


def matches(entry: Entry, query: str) -> bool:
    """Every word of `query` in the entry's prompt, ignoring case (KAD #1183)."""
    text = entry.params.prompt.lower()
    return all(word in text for word in query.lower().split())


def search(history: History, query: str) -> list[int]:
    """The indices of the entries whose prompt matches `query`, newest first."""
    return [i for i, e in enumerate(history.entries) if matches(e, query)]


def thumbnail(rgba: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """`rgba` shrunk so its longer side is at most `side` (box filter over whole pixels)."""
    h, w = rgba.shape[:2]
    step = max(1, -(-max(h, w) // side))
    if step == 1:
        return np.ascontiguousarray(rgba)
    th, tw = h // step, w // step
    if th == 0 or tw == 0:  # a sliver: keep every step-th pixel instead
        return np.ascontiguousarray(rgba[::step, ::step])
    blocks = rgba[: th * step, : tw * step].reshape(th, step, tw, step, -1)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


# -- saved with the document ------------------------------------------------------------
# One header (JSON) and the arrays after it as zlib-compressed raw bytes: numpy and the
# standard library only, as Krita's Python has no image codecs outside Qt.


def dump(entries: list[Entry], budget: int = FULL_IMAGE_BUDGET) -> bytes:
    """The entries as bytes for a document annotation: settings and thumbnails for all,
    full images (and masks) for entries not applied yet while `budget` lasts."""
    blobs: list[bytes] = []
    heads = []

    def pack(e: Entry, name: str) -> bytes:
        if name not in e.packed:
            raw = np.ascontiguousarray(getattr(e, name), np.uint8).tobytes()
            e.packed[name] = zlib.compress(raw, 1)  # fast: most of the size is the images
        return e.packed[name]

    def put(e: Entry, name: str) -> dict | None:
        a = getattr(e, name)
        if a is None:
            return None
        blobs.append(pack(e, name))
        return {"shape": list(a.shape), "blob": len(blobs) - 1}

    left = budget
    for e in entries:
        head = {
            "seed": e.seed,
            "infotext": e.infotext,
            "params": e.params.to_dict(),
            "plan": [e.plan.action, *_rect(e.plan.region), *_rect(e.plan.target), e.plan.masked],
            "layer_name": e.layer_name,
            "job_id": e.job_id,
            "applied": e.applied,
            "thumb": put(e, "thumb"),
            "image": None,
            "mask": None,
        }
        if not e.applied and e.image is not None:
            size = len(pack(e, "image"))
            if size <= left:
                left -= size
                head["image"], head["mask"] = put(e, "image"), put(e, "mask")
        heads.append(head)
    header = json.dumps({"entries": heads, "sizes": [len(b) for b in blobs]}).encode()
    return _MAGIC + struct.pack("<I", len(header)) + header + b"".join(blobs)


def load(data: bytes | None) -> list[Entry]:
    """What `dump` wrote; empty for no data, data of another format, or damaged data (a
    document's history is a convenience: it never stops the document from opening)."""
    if not data or not data.startswith(_MAGIC):
        return []
    try:
        (n,) = struct.unpack_from("<I", data, len(_MAGIC))
        start = len(_MAGIC) + 4
        header = json.loads(data[start : start + n])
        offsets, at = [], start + n
        for size in header["sizes"]:
            offsets.append((at, at + size))
            at += size

        def get(ref: dict | None) -> np.ndarray | None:
            if ref is None:
                return None
            a, b = offsets[ref["blob"]]
            raw = zlib.decompress(data[a:b])
            return np.frombuffer(raw, np.uint8).reshape(ref["shape"]).copy()

        out = []
        for h in header["entries"]:
            action, *nums, masked = h["plan"]
            plan = Plan(action, Rect(*nums[:4]), Rect(*nums[4:]), bool(masked))
            out.append(
                Entry(
                    image=get(h["image"]),
                    seed=int(h["seed"]),
                    infotext=str(h["infotext"]),
                    params=Params.from_dict(h["params"]),
                    plan=plan,
                    mask=get(h["mask"]),
                    layer_name=str(h["layer_name"]),
                    job_id=str(h["job_id"]),
                    applied=bool(h["applied"]),
                    thumb=get(h["thumb"]),
                )
            )
        return out
    except (ValueError, KeyError, TypeError, IndexError, struct.error, zlib.error):
        return []


def _rect(r: Rect) -> list[int]:
    return [r.x, r.y, r.w, r.h]


def params_from_infotext(text: str, base: Params | None = None) -> Params:
    """The docker's parameters as stored in a result's PNG infotext.

    Fields the infotext does not carry keep their value from `base` (the panel as it is),
    so copying back never blanks what the artist set.
    """
    from dreamwire.shared.infotext import parse_infotext

    info = parse_infotext(text)
    out = Params.from_dict((base or Params()).to_dict())
    # The artist's prompts back out of the merged ones, so the active style's template is
    # not applied twice (logic/styles.py).
    out.prompt = unmerge_prompt(info.prompt, out.style_prompt)
    out.negative = unmerge_prompt(info.negative_prompt, out.style_negative)
    if info.steps is not None:
        out.steps = int(info.steps)
    if info.sampler:
        sched = info.schedule_type
        # Newer A1111 writes "Sampler: DPM++ 2M, Schedule type: Karras"; the docker's
        # list holds the combined name.
        # Flux's "Simple" (Forge's infotext) is the model's own schedule: plain "Euler".
        if sched and sched not in ("Automatic", "Simple") and not info.sampler.endswith(sched):
            out.sampler = f"{info.sampler} {sched}"
        else:
            out.sampler = info.sampler
    if info.cfg_scale is not None:
        out.cfg = float(info.cfg_scale)
    if info.seed is not None:
        out.seed = int(info.seed)
    if info.model:
        out.model = info.model
    # With Hires.fix A1111's "Denoising strength" is the second pass's (so is a two-pass
    # Generate's), not the strength Refine and Inpaint use.
    hires = info.hires_upscale is not None or info.hires_resize is not None
    if info.denoising_strength is not None and not hires:
        out.strength = float(info.denoising_strength)
    # A1111 writes "Masked content" only where it is not "original", and its paste leaves
    # the choice alone when the key is absent; so does this.
    fill = info.extras.get("Masked content")
    if fill in MASKED_CONTENT:
        out.inpaint_fill = fill
    # Forge's name for it; written for models that take one (Flux dev).
    with contextlib.suppress(ValueError):
        out.distilled_cfg = float(info.extras.get("Distilled CFG Scale", out.distilled_cfg))
    # The CFG rescale extension's key and the SLG scale; absent, left alone as above.
    with contextlib.suppress(ValueError):
        out.cfg_rescale = float(info.extras.get("CFG Rescale", out.cfg_rescale))
    with contextlib.suppress(ValueError):
        out.slg_scale = float(info.extras.get("SLG Scale", out.slg_scale))
    return out
