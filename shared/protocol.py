"""Framing of dreamwire messages: [tag, header JSON, body JSON, *binary frames].

The page that defines the wire is PROTOCOL.md beside this file; this module is its code and
the two are kept in step (PROTOCOL_VERSION here is the version the page documents).

Decoding is defensive because the backend accepts connections from hosts it does not
control: every size is checked against `Limits` from the header alone, before a JSON body is
parsed or an array is built, and every failure is a `ProtocolError` with a stable code, never
another exception type. Nothing here imports pickle or uses base64.

It comes in two steps so that a server can look at a message before paying for it:
`open_envelope` checks the frames' sizes, the header and the buffer descriptions (cheap, the
header is at most 64 KiB); `open_content` parses the body and decodes the arrays, which a
server may do on another thread, with a deadline. `decode` does both.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import codec
from .errors import DreamwireError, ErrorCode
from .job import Job
from .lora_training import MAX_TRAINING_PICTURES
from .result import GeneratedImage, HeatMap, JobResult, Progress

PROTOCOL_VERSION = 1
TAG_PREFIX = b"dreamwire/"
TAG = TAG_PREFIX + str(PROTOCOL_VERSION).encode()

# Message types. Requests go client -> backend, replies and events backend -> client.
HELLO = "hello"
WELCOME = "welcome"
SUBMIT = "submit"
ACCEPTED = "accepted"
PROGRESS = "progress"
RESULT = "result"
ERROR = "error"
CANCEL = "cancel"
CANCELLED = "cancelled"
LIST_MODELS = "list_models"
MODELS = "models"
# Pushed, unasked, to a client whose hello listed it in `events`: the library changed.
MODELS_CHANGED = "models_changed"
FETCH_RESULT = "fetch_result"
HEARTBEAT = "heartbeat"

CLIENT_TYPES = frozenset({HELLO, SUBMIT, CANCEL, LIST_MODELS, FETCH_RESULT, HEARTBEAT})
SERVER_TYPES = frozenset(
    {WELCOME, ACCEPTED, PROGRESS, RESULT, ERROR, CANCELLED, MODELS, MODELS_CHANGED, HEARTBEAT}
)
ALL_TYPES = CLIENT_TYPES | SERVER_TYPES

# Element types an array frame may carry. Kept small on purpose: each one is a type the
# engine or a host actually uses, and anything else is refused before it is interpreted.
DTYPES = {
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype("<u2"),
    "int32": np.dtype("<i4"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
}
FORMATS = ("raw", "png", "zlib")
# Compression effort for png/zlib frames: level 1 is several times faster than the default 6
# and loses little on photographic images, which are most of what travels.
WIRE_ZLIB_LEVEL = 1
MAX_NDIM = 3
# JSON integers longer than this are refused while parsing: no field needs more than a
# 64-bit seed (20 digits), and int() of a long digit string is quadratic.
MAX_INT_DIGITS = 20
# Longest string a header field (msg_id, type, job_id, reply_to) may hold.
MAX_HEADER_TEXT = 256


class ProtocolError(DreamwireError):
    """A message that cannot be accepted; `code` says why (stable ErrorCode)."""


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts. The backend announces its limits in `welcome`."""

    max_message_bytes: int = 320 * 1024 * 1024  # also ZMQ_MAXMSGSIZE on the socket
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 4 * 1024 * 1024
    max_pixels: int = 8192 * 8192  # per image or array (H * W)
    max_images: int = 32  # binary frames per message
    max_queue: int = 64  # jobs waiting on the backend (enforced by the server)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        known = {k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def training_picture_limit(welcome_limits: dict | None) -> int:
    """How many pictures one train_lora job may carry to a backend whose welcome lists
    `welcome_limits`: one binary frame each (its `max_images`, else the wire's default),
    and never more than a job takes (lora_training.MAX_TRAINING_PICTURES)."""
    value = (welcome_limits or {}).get("max_images")
    limit = value if isinstance(value, int) and value > 0 else Limits().max_images
    return min(limit, MAX_TRAINING_PICTURES)


@dataclass
class BufferSpec:
    """Header description of one binary frame: what array it decodes to and how."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int  # length of the frame as sent
    format: str = "raw"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "nbytes": self.nbytes,
            "format": self.format,
        }


@dataclass
class Message:
    type: str
    body: dict[str, Any] = field(default_factory=dict)
    buffers: list[np.ndarray] = field(default_factory=list)
    job_id: str = ""
    reply_to: str = ""  # msg_id of the request this answers (Jupyter's parent_header)
    msg_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    sent: float = 0.0  # sender's wall clock, informative only


@dataclass
class Envelope:
    """A message whose frame sizes, header and buffer descriptions are checked and whose body
    and binary frames are still undecoded (`open_envelope`; `open_content` decodes them)."""

    type: str
    msg_id: str
    job_id: str
    reply_to: str
    sent: float
    specs: list[BufferSpec]
    body: Any  # the body frame
    frames: list[Any]  # the binary frames, one per spec

    @property
    def body_bytes(self) -> int:
        return frame_len(self.body)

    @property
    def decoded_bytes(self) -> int:
        """What the arrays take once decoded (checked against the limits already)."""
        return sum(codec.frame_size(s.shape, DTYPES[s.dtype]) for s in self.specs)

    def error(self, code: ErrorCode, text: str) -> ProtocolError:
        """An error about this message, carrying its job id."""
        return ProtocolError(code, text, self.job_id[:64])


def new_msg_id() -> str:
    return uuid.uuid4().hex


def reply(request: Message, type: str, body: dict[str, Any] | None = None, **kw: Any) -> Message:
    """A message answering `request`, with its job id and reply_to filled in."""
    kw.setdefault("job_id", request.job_id)
    return Message(type, body or {}, reply_to=request.msg_id, **kw)


def error_message(code: ErrorCode, text: str, job_id: str = "", reply_to: str = "") -> Message:
    err = DreamwireError(code, text, job_id)
    return Message(ERROR, err.to_dict(), job_id=job_id, reply_to=reply_to)


# -- encoding ------------------------------------------------------------------------------


def encode(msg: Message, image_format: str = "raw") -> list[Any]:
    """Frames for `msg`. With "raw" the arrays themselves are returned as frames, so
    `send_multipart(frames, copy=False)` sends them without a copy; "png" (uint8 images) and
    "zlib" (other arrays) compress for slow remote links."""
    if msg.type not in ALL_TYPES:
        raise ValueError(f"unknown message type {msg.type!r}")
    specs: list[dict[str, Any]] = []
    frames: list[Any] = []
    for arr in msg.buffers:
        spec, frame = _encode_array(arr, image_format)
        specs.append(spec.to_dict())
        frames.append(frame)
    header = {
        "msg_id": msg.msg_id,
        "type": msg.type,
        "job_id": msg.job_id,
        "reply_to": msg.reply_to,
        "sent": msg.sent or time.time(),
        "buffers": specs,
    }
    return [TAG, _dumps(header), _dumps(msg.body), *frames]


def _dumps(obj: Any) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON and other languages' parsers reject them.
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _encode_array(arr: np.ndarray, image_format: str) -> tuple[BufferSpec, Any]:
    arr = np.asarray(arr)
    name = _dtype_name(arr.dtype)
    if name is None:
        raise ValueError(f"arrays of {arr.dtype} cannot go on the wire; use one of {list(DTYPES)}")
    if not 0 < arr.ndim <= MAX_NDIM or arr.size == 0:
        raise ValueError(f"arrays must have 1..{MAX_NDIM} non-empty dimensions, got {arr.shape}")
    # Little-endian C order is the wire layout; astype/ascontiguousarray copy only if needed.
    arr = codec.raw_frame(arr.astype(DTYPES[name], copy=False))
    shape = tuple(int(s) for s in arr.shape)
    if image_format == "png" and codec.png_encodable(arr):
        data = codec.encode_png(arr, WIRE_ZLIB_LEVEL)
        return BufferSpec(name, shape, len(data), "png"), data
    if image_format in ("png", "zlib"):
        data = codec.encode_zlib(arr, WIRE_ZLIB_LEVEL)
        return BufferSpec(name, shape, len(data), "zlib"), data
    if image_format != "raw":
        raise ValueError(f"unknown image format {image_format!r}; known: {FORMATS}")
    return BufferSpec(name, shape, arr.nbytes, "raw"), arr


def _dtype_name(dtype: np.dtype) -> str | None:
    for name, dt in DTYPES.items():
        if dtype.kind == dt.kind and dtype.itemsize == dt.itemsize:
            return name
    return None


# -- decoding ------------------------------------------------------------------------------


def check_tag(tag: bytes) -> None:
    """Refuse anything but this protocol version, saying which version the peer speaks."""
    if tag == TAG:
        return
    if tag.startswith(TAG_PREFIX) and len(tag) <= 32:
        theirs = tag[len(TAG_PREFIX) :].decode("ascii", "replace")
        raise ProtocolError(
            ErrorCode.PROTOCOL_VERSION,
            f"incompatible protocol: peer speaks dreamwire/{theirs}, this side speaks "
            f"dreamwire/{PROTOCOL_VERSION}; update the older of the two",
        )
    raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, "not a dreamwire message (bad protocol tag)")


def frame_len(frame: Any) -> int:
    if isinstance(frame, bytes | bytearray):
        return len(frame)
    buf = getattr(frame, "buffer", None)  # zmq.Frame
    if buf is not None:
        return buf.nbytes
    return memoryview(frame).nbytes


def _as_bytes(frame: Any) -> bytes | memoryview:
    if isinstance(frame, bytes | bytearray):
        return frame
    buf = getattr(frame, "buffer", None)
    return buf if buf is not None else memoryview(frame)


def peek_header(frames: list[Any], limits: Limits) -> dict[str, Any]:
    """The parsed header of a message, for replying to a message whose body is bad."""
    if len(frames) < 2:
        return {}
    try:
        raw = _as_bytes(frames[1])
        if len(raw) > limits.max_header_bytes:
            return {}
        # Lenient on purpose: a header refused for a number (1e999, 10**400) still names
        # the msg id and job id its error reply should carry.
        header = json.loads(bytes(raw))
        return header if isinstance(header, dict) else {}
    except Exception:  # noqa: BLE001 - only a courtesy for the error reply
        return {}


def reply_address(frames: list[Any], limits: Limits) -> tuple[str, str]:
    """(job_id, msg_id) of a message that failed to decode, as far as its header says, so
    the error reply can name them; "" where the header does not (or not sanely). A msg id a
    header may carry comes back whole: a client matches its reply by all of it."""
    head = peek_header(frames, limits)
    job_id = head.get("job_id", "")
    msg_id = head.get("msg_id", "")
    return (
        job_id[:64] if isinstance(job_id, str) else "",
        msg_id if isinstance(msg_id, str) and len(msg_id) <= MAX_HEADER_TEXT else "",
    )


def decode(frames: list[Any], limits: Limits, writable: bool = False) -> Message:
    """Parse a frame list (without ROUTER identity frames) into a Message: `open_envelope`
    and `open_content` in one go."""
    return open_content(open_envelope(frames, limits), writable)


def open_envelope(frames: list[Any], limits: Limits) -> Envelope:
    """Check a frame list's sizes, header and buffer descriptions; decode nothing else.

    Order matters: tag, frame count, then every length against `limits`, then the header's
    buffer descriptions against the actual frame lengths and the limits (what the arrays
    will take decoded included). A hostile peer therefore cannot make the receiver allocate
    more than it sent, or more than a raw message of the largest size would hold.
    """
    if not frames:
        raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, "empty message")
    check_tag(bytes(_as_bytes(frames[0])[:64]))
    if len(frames) < 3:
        raise ProtocolError(
            ErrorCode.MALFORMED_MESSAGE,
            f"truncated message: {len(frames)} frames, need tag, header and body",
        )
    n_buffers = len(frames) - 3
    if n_buffers > limits.max_images:
        raise ProtocolError(
            ErrorCode.LIMIT_EXCEEDED,
            f"{n_buffers} binary frames, the limit is {limits.max_images}",
        )
    sizes = [frame_len(f) for f in frames]
    if sum(sizes) > limits.max_message_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"message of {sum(sizes)} bytes, the limit is {limits.max_message_bytes}",
        )
    if sizes[1] > limits.max_header_bytes:
        raise ProtocolError(ErrorCode.LIMIT_EXCEEDED, f"header of {sizes[1]} bytes is too large")
    if sizes[2] > limits.max_body_bytes:
        raise ProtocolError(ErrorCode.LIMIT_EXCEEDED, f"body of {sizes[2]} bytes is too large")

    header = _loads(_as_bytes(frames[1]), "header")
    msg_type = _field(header, "type", str)
    if msg_type not in ALL_TYPES:  # a str, so hashable
        raise ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown message type {msg_type!r}")
    msg_id = _field(header, "msg_id", str)
    job_id = _field(header, "job_id", str, "")
    reply_to = _field(header, "reply_to", str, "")
    sent = header.get("sent", 0.0)
    if not isinstance(sent, int | float) or isinstance(sent, bool) or not math.isfinite(sent):
        raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, "header field 'sent' must be a number")
    raw_specs = _field(header, "buffers", list, [])
    if len(raw_specs) != n_buffers:
        raise ProtocolError(
            ErrorCode.MALFORMED_MESSAGE,
            f"header describes {len(raw_specs)} binary frames but {n_buffers} arrived",
        )
    specs = [_check_spec(s, sizes[3 + i], limits, i) for i, s in enumerate(raw_specs)]
    env = Envelope(
        msg_type, msg_id, job_id, reply_to, float(sent), specs, frames[2], list(frames[3:])
    )
    if env.decoded_bytes > limits.max_message_bytes:
        # Compressed frames may not decode to more than a raw message could carry.
        raise ProtocolError(
            ErrorCode.LIMIT_EXCEEDED,
            f"the arrays would take {env.decoded_bytes} bytes decoded, the limit is "
            f"{limits.max_message_bytes}",
        )
    return env


# A PNG decoder: (data, expect_shape, expect_dtype, deadline=...) -> array, as codec.decode_png.
PngDecoder = Callable[..., np.ndarray]


def open_content(
    env: Envelope,
    writable: bool = False,
    png: PngDecoder | None = None,
    deadline: float | None = None,
) -> Message:
    """The whole message: body JSON parsed, arrays decoded (with `png`, codec.decode_png by
    default). Past `deadline` (time.monotonic()) it stops with `limit_exceeded`."""
    body = _loads(_as_bytes(env.body), "body")
    buffers = []
    for i, (spec, frame) in enumerate(zip(env.specs, env.frames, strict=True)):
        try:
            codec.check_deadline(deadline)
            buffers.append(
                _decode_array(spec, _as_bytes(frame), writable, png or codec.decode_png, deadline)
            )
        except codec.DecodeTimeout:
            raise ProtocolError(
                ErrorCode.LIMIT_EXCEEDED,
                f"binary frame {i}: decoding took longer than this backend allows",
            ) from None
        except codec.CodecError as exc:
            raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, f"binary frame {i}: {exc}") from None
    return Message(env.type, body, buffers, env.job_id, env.reply_to, env.msg_id, env.sent)


def _json_loads(raw: bytes | memoryview) -> Any:
    """Strict JSON: no NaN/Infinity tokens, no number that overflows to infinity (1e999),
    no integer of more than MAX_INT_DIGITS digits."""
    return json.loads(
        bytes(raw).decode("utf-8"),
        parse_constant=_no_constants,
        parse_float=_finite_float,
        parse_int=_bounded_int,
    )


def _loads(raw: bytes | memoryview, what: str) -> dict[str, Any]:
    try:
        obj = _json_loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(
            ErrorCode.MALFORMED_MESSAGE, f"{what} is not valid JSON: {exc}"
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, f"{what} must be a JSON object")
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(text)} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


_MISSING = object()


def _field(d: dict[str, Any], name: str, kind: type, default: Any = _MISSING) -> Any:
    value = d.get(name, default)
    if value is _MISSING:
        raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, f"header lacks {name!r}")
    if not isinstance(value, kind) or (
        len(value) > MAX_HEADER_TEXT if isinstance(value, str) else False
    ):
        raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, f"header field {name!r} has a bad value")
    return value


def _check_spec(raw: Any, actual: int, limits: Limits, i: int) -> BufferSpec:
    """A buffer description, checked before any arithmetic on its numbers: every dimension a
    positive integer no larger than `max_pixels` (so no product can be absurd), the pixels
    and channels within the limits, and for raw frames the exact byte count."""
    where = f"binary frame {i}"
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, f"{where}: description must be an object")
    dtype = raw.get("dtype")
    fmt = raw.get("format", "raw")
    shape = raw.get("shape")
    nbytes = raw.get("nbytes")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, f"{where}: unsupported dtype {dtype!r}")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ProtocolError(ErrorCode.MALFORMED_MESSAGE, f"{where}: unknown format {fmt!r}")
    if (
        not isinstance(shape, list)
        or not 0 < len(shape) <= MAX_NDIM
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise ProtocolError(
            ErrorCode.MALFORMED_MESSAGE,
            f"{where}: bad shape {str(shape)[:80]}: 1..{MAX_NDIM} positive integers",
        )
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes != actual:
        raise ProtocolError(
            ErrorCode.MALFORMED_MESSAGE,
            f"{where}: header says {str(nbytes)[:40]} bytes but the frame has {actual}",
        )
    if any(s > limits.max_pixels for s in shape) or (len(shape) == 3 and shape[2] > 4):
        raise ProtocolError(
            ErrorCode.LIMIT_EXCEEDED,
            f"{where}: array of shape {tuple(shape)} exceeds the limit of "
            f"{limits.max_pixels} pixels (or 4 channels)",
        )
    # Pixels are H * W: the first two axes (a 1-D array counts its length).
    pixels = shape[0] * (shape[1] if len(shape) > 1 else 1)
    if pixels > limits.max_pixels:
        raise ProtocolError(
            ErrorCode.LIMIT_EXCEEDED,
            f"{where}: array of shape {tuple(shape)} exceeds the limit of "
            f"{limits.max_pixels} pixels",
        )
    expected = codec.frame_size(shape, DTYPES[dtype])
    if fmt == "raw" and expected != actual:
        raise ProtocolError(
            ErrorCode.MALFORMED_MESSAGE,
            f"{where}: {dtype} {tuple(shape)} needs {expected} bytes but the frame has {actual}",
        )
    return BufferSpec(dtype, tuple(shape), actual, fmt)


def _decode_array(
    spec: BufferSpec,
    data: bytes | memoryview,
    writable: bool,
    png: PngDecoder,
    deadline: float | None,
) -> np.ndarray:
    dtype = DTYPES[spec.dtype]
    if spec.format == "raw":
        return codec.array_from_frame(data, spec.shape, dtype, writable)
    if spec.format == "png":
        return png(data, spec.shape, dtype, deadline=deadline)
    return codec.decode_zlib(data, spec.shape, dtype)


# -- typed bodies --------------------------------------------------------------------------
# Conversions between the shared dataclasses and message bodies live here so the server and
# the client cannot disagree about field names.


def result_message(result: JobResult, reply_to: str = "") -> Message:
    body = {
        "job_id": result.job_id,
        "model": result.model,
        "tag": result.tag,
        "timings": {k: float(v) for k, v in result.timings.items()},
        "images": [_image_meta(g) for g in result.images],
    }
    # The images' frames first, then each image's heat maps in order (named in its meta).
    frames = [g.image for g in result.images]
    frames += [h.image for g in result.images for h in g.heat_maps]
    return Message(RESULT, body, frames, job_id=result.job_id, reply_to=reply_to)


def _image_meta(g: GeneratedImage) -> dict[str, Any]:
    meta: dict[str, Any] = {"seed": int(g.seed), "infotext": g.infotext, "path": g.path}
    if g.map:  # a materials job's map; other results are what they always were
        meta["map"] = g.map
    if g.layer >= 0:  # a layers job's RGBA layer, bottom first
        meta["layer"] = g.layer
    if g.heat_maps:  # the job's attention_maps: the words, their frames after the images
        meta["heat_maps"] = [h.word for h in g.heat_maps]
    return meta


def parse_result(msg: Message) -> JobResult:
    b = msg.body
    try:
        metas = b["images"]
        if not isinstance(metas, list):
            raise ValueError("images must be a list")
        words = [[str(w) for w in m.get("heat_maps", [])] for m in metas]
        if len(metas) + sum(map(len, words)) != len(msg.buffers):
            raise ValueError("image descriptions and binary frames differ in number")
        maps = iter(msg.buffers[len(metas) :])
        images = [
            GeneratedImage(
                arr,
                int(m["seed"]),
                str(m["infotext"]),
                str(m.get("path", "")),
                str(m.get("map", "")),
                int(m.get("layer", -1)),
                [HeatMap(w, next(maps)) for w in ws],
            )
            for m, arr, ws in zip(metas, msg.buffers, words, strict=False)
        ]
        timings = {str(k): float(v) for k, v in dict(b.get("timings", {})).items()}
        return JobResult(
            str(b.get("job_id", msg.job_id)),
            images,
            timings,
            str(b.get("model", "")),
            str(b.get("tag", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(
            ErrorCode.MALFORMED_MESSAGE, f"bad result body: {exc}", msg.job_id
        ) from None


def progress_message(p: Progress) -> Message:
    body = {"state": p.state, "step": int(p.step), "total": int(p.total), "message": p.message}
    # Only a training job's progress carries them, so every other body is as it was; a
    # diverged loss (NaN, inf) is left out, as strict JSON has no word for it.
    for name in ("loss", "eta"):
        value = getattr(p, name)
        if value is not None and math.isfinite(value):
            body[name] = float(value)
    buffers = [p.preview] if p.preview is not None else []
    return Message(PROGRESS, body, buffers, job_id=p.job_id)


def parse_progress(msg: Message) -> Progress:
    b = msg.body
    try:
        return Progress(
            msg.job_id,
            str(b["state"]),
            int(b.get("step", 0)),
            int(b.get("total", 0)),
            msg.buffers[0] if msg.buffers else None,
            str(b.get("message", "")),
            None if b.get("loss") is None else float(b["loss"]),
            None if b.get("eta") is None else float(b["eta"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(
            ErrorCode.MALFORMED_MESSAGE, f"bad progress body: {exc}", msg.job_id
        ) from None


def submit_message(job: Job) -> Message:
    body, arrays = job.to_wire()
    return Message(SUBMIT, body, arrays, job_id=job.job_id)


def parse_submit(msg: Message) -> Job:
    """The job in a submit message, validated (the second validation, on arrival)."""
    try:
        job = Job.from_wire(msg.body, msg.buffers)
        if job.job_id != msg.job_id:
            raise DreamwireError(
                ErrorCode.INVALID_JOB, "job id in header and body differ", msg.job_id
            )
        return job.validate()
    except DreamwireError as exc:
        exc.job_id = exc.job_id or msg.job_id
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        # Job.validate compares and converts fields; a value of the wrong JSON type (a
        # string for a number, null for an object) ends up here instead of as a traceback.
        raise DreamwireError(ErrorCode.INVALID_JOB, f"malformed job: {exc}", msg.job_id) from None
