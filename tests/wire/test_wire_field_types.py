"""Every field of a job, and of each object inside it, sent with values of the wrong JSON
type (and out-of-range values where a range matters) to one real backend: each gets an
`error` with `invalid_job` or the field's own code, naming the field, never `internal`, and
the backend still runs a good job afterwards.

The cases are built from the dataclasses' own fields, so a field added later without a type
check fails here. The bad jobs go out on a raw socket: the Client validates before sending,
a foreign or hostile peer does not.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
import typing

import numpy as np
import zmq

from dreamwire.shared import protocol as P
from dreamwire.shared.client import Client
from dreamwire.shared.errors import ErrorCode
from dreamwire.shared.job import (
    ControlUnit,
    HiresFix,
    Job,
    LoraRef,
    Outpaint,
    Region,
    Upscale,
)
from tests.support.wire import small_job, submit_frames

_IMG = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
_MASK = np.zeros((64, 64), np.uint8)
_MASK[:, :32] = 255

# Values of the wrong JSON type for each declared type.
WRONG = {
    str: [5, True, ["x"], {"a": "b"}, None],
    int: ["3", 2.5, True, None, [1]],
    float: ["0.5", True, None, [0.5], {"x": 1}],
    bool: [1, 0, "true", None],
    "optional bool": [1, "yes", []],
    "optional float": ["x", True, [1]],
    "optional enum": [5, True, "sketch", ["txt2img"], {"a": "b"}],
    list: [5, "x", {"a": 1}],
    "object": [3, "x", [1]],
    np.ndarray: ["abc", 5, [1, 2]],
}
# In range by type, out of range by meaning: (dotted path, value).
OUT_OF_RANGE = [
    ("mask_blur", -1),
    ("mask_blur", 10**6),
    ("inpaint_padding", -1),
    ("preview_every", -1),
    ("steps", 0),
    ("batch", 0),
    ("clip_skip", 13),
    ("cfg", -1),
    # 20 digits, the most the wire parses (longer integers are malformed_message there).
    ("seed", 2**64),
    ("subseed", -(2**64)),
    ("subseed_strength", 2),
    ("outpaint.left", -8),
    ("outpaint.top", 10**6),
    ("hires.steps", -1),
    ("hires.scale", 1e300),
    ("controls.0.weight", -0.5),
    ("controls.0.start", 2),
    ("controls.0.processor_res", 32),
    ("loras.0.weight", 1e9),
    ("loras.0.weight_te", -1e9),
    ("upscale.overlap", -1),
]
# Fields whose wrong values have a code of their own (else invalid_job).
CODES = {
    "prompt": ErrorCode.INVALID_PROMPT,
    "negative": ErrorCode.INVALID_PROMPT,
    "width": ErrorCode.INVALID_SIZE,
    "height": ErrorCode.INVALID_SIZE,
    "hires.width": ErrorCode.INVALID_SIZE,
    "hires.height": ErrorCode.INVALID_SIZE,
    "init_image": ErrorCode.INVALID_IMAGE,
    "mask": ErrorCode.INVALID_MASK,
    "controls.0.image": ErrorCode.INVALID_IMAGE,
    "upscale.tile": ErrorCode.INVALID_SIZE,
    "regions.0.prompt": ErrorCode.INVALID_REGION,
    "regions.0.mask": ErrorCode.INVALID_REGION,
    "regions.0.weight": ErrorCode.INVALID_REGION,
}
# The job each object's fields are patched in: one that has that object and is valid.
BASES = {
    "": lambda: small_job(init_image=_IMG, mask=_MASK),
    "outpaint.": lambda: small_job(init_image=_IMG, mask=_MASK, outpaint=Outpaint(left=8)),
    "hires.": lambda: small_job(hires=HiresFix(scale=1.5)),
    "upscale.": lambda: small_job(init_image=_IMG, upscale=Upscale(refine=False)),
    "controls.0.": lambda: small_job(init_image=_IMG, controls=[ControlUnit("canny", None)]),
    "loras.0.": lambda: small_job(loras=[LoraRef("some-lora", 0.5, 0.5)]),
    "regions.0.": lambda: small_job(regions=[Region("a barn", _MASK)]),
}
KINDS = {
    "": Job,
    "outpaint.": Outpaint,
    "hires.": HiresFix,
    "upscale.": Upscale,
    "controls.0.": ControlUnit,
    "loras.0.": LoraRef,
    "regions.0.": Region,
}


def _kind(hint) -> typing.Any:
    """The WRONG key for a field's type hint."""
    args = set(typing.get_args(hint))
    if hint in (str, int, float, bool, list, np.ndarray):
        return hint
    if typing.get_origin(hint) is list:
        return list
    if args == {bool, type(None)}:
        return "optional bool"
    if args == {float, type(None)}:
        return "optional float"
    if any(isinstance(a, type) and issubclass(a, enum.Enum) for a in args):
        return "optional enum"
    if np.ndarray in args:
        return np.ndarray
    if dataclasses.is_dataclass(hint) or any(dataclasses.is_dataclass(a) for a in args):
        return "object"
    raise AssertionError(f"no wrong values for {hint!r}: add them to WRONG")


def _cases() -> list[tuple[str, object, ErrorCode]]:
    cases = []
    for prefix, kind in KINDS.items():
        for name, hint in typing.get_type_hints(kind).items():
            path = prefix + name
            for value in WRONG[_kind(hint)]:
                cases.append((path, value, CODES.get(path, ErrorCode.INVALID_JOB)))
    for path, value in OUT_OF_RANGE:
        cases.append((path, value, CODES.get(path, ErrorCode.INVALID_JOB)))
    return cases


def _ends(msgs: list[P.Message]) -> dict[str, P.Message]:
    return {m.job_id: m for m in msgs if m.type in (P.RESULT, P.ERROR, P.CANCELLED)}


def test_every_field_of_the_wrong_type_is_refused_naming_it(backend):
    sent: dict[str, tuple[str, object, ErrorCode]] = {}
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(backend.address)
    msgs: list[P.Message] = []
    try:
        for path, value, code in _cases():
            prefix = next(p for p in sorted(BASES, key=len, reverse=True) if path.startswith(p))
            job = BASES[prefix]()
            sock.send_multipart(submit_frames(job, {path: value}))
            sent[job.job_id] = (path, value, code)
        deadline = time.monotonic() + 120
        while not set(sent) <= set(_ends(msgs)):
            assert time.monotonic() < deadline, len(set(sent) - set(_ends(msgs)))
            if sock.poll(1000):
                msgs.append(P.decode(sock.recv_multipart(), P.Limits()))
    finally:
        sock.close(0)
    ends = _ends(msgs)
    wrong = []
    for job_id, (path, value, code) in sent.items():
        end = ends[job_id]
        leaf = path.rsplit(".", 1)[-1]
        words = ("job id", "job_id") if leaf == "job_id" else (leaf, leaf.replace("_", " "))
        message = end.body.get("message", "").lower()
        ok = (
            end.type == P.ERROR
            and end.body.get("code") == code.value
            and any(w.lower() in message for w in words)
        )
        if not ok:
            wrong.append((path, json.dumps(value, default=str), end.type, end.body))
    assert not wrong, "\n".join(map(str, wrong))
    assert len(sent) > 250  # every field, several values each
    assert backend.alive
    with Client(backend.address) as client:
        client.connect_wait(30)
        assert client.run(small_job(), timeout=120).images
