"""Fuzzing the job fields added for regions, upscale, Hires.fix resize/upscaler models, the
newer control types and the "live" priority: whatever a peer puts there, `Job.from_wire` +
`Job.validate` (and the client-side `Job.validate` on a hand-built Job) answer with a
DreamwireError carrying a stable code, never another exception.
"""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, HiresFix, Job, Region, Upscale

LIMITS = P.Limits(max_message_bytes=8 * 2**20, max_pixels=1024 * 1024, max_images=64)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_rng = np.random.default_rng(0)
_IMG = _rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
_MASK = np.zeros((64, 64), np.uint8)
_MASK[:, :32] = 255


def _base(kind: str) -> Job:
    """A valid job of each shape the new fields live in."""
    if kind == "regions":
        return Job(prompt="a field", width=64, height=64, regions=[Region("a red barn", _MASK)])
    if kind == "upscale":
        return Job(prompt="x", width=64, height=64, init_image=_IMG, upscale=Upscale())
    if kind == "hires":
        return Job(prompt="x", width=64, height=64, hires=HiresFix(width=128, height=96))
    return Job(
        prompt="x",
        width=64,
        height=64,
        init_image=_IMG,
        priority="live",
        controls=[ControlUnit("ip-adapter", _IMG), ControlUnit("color", None)],
    )


for _kind in ("regions", "upscale", "hires", "controls"):
    _base(_kind).validate()  # the bases themselves are fine

# Numbers a sloppy or hostile peer sends: non-finite, negative, huge, the wrong type.
numbers = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, 1, 7, 9, 64, 10**6, 10**30, 2**64]),
    st.sampled_from([-(10**400), 10**400, 1e308, -0.0, 0.5, 8.0, 8.01, True, False]),
    st.integers(-(2**70), 2**70),
    st.floats(),
)
json_junk = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
texts = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "AND",
            "a AND b",
            "x AND",
            "<lora:x:1>",
            "Latent",
            "Latent (bicubic)",
            "Lanczos",
            "Nearest",
            "4x-NoSuchModel",
            "../../etc/passwd",
            "x" * 300,
            "ip-adapter",
            "ip-adapter-style",
            "ip-adapter-composition",
            "color",
            "live",
            "LIVE",
            "\x00",
        ]
    ),
    st.text(max_size=20),
)
values = st.one_of(numbers, texts, json_junk)

# Arrays for mask / image slots: wrong shape, wrong dtype, empty, odd aspect.
_DT = st.sampled_from([np.uint8, np.uint16, np.int32, np.float16, np.float32])
_SHAPES = st.one_of(
    st.tuples(st.integers(0, 80), st.integers(0, 80)),
    st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 5)),
    st.tuples(st.integers(1, 300)),
    st.just((1, 1, 1, 1)),
)
arrays = st.builds(lambda dt, shape: np.zeros(shape, dt), _DT, _SHAPES)

FIELDS = {
    "regions": {
        "": ["regions"],
        "region": ["prompt", "mask", "weight", "extra"],
    },
    "upscale": {"upscale": ["scale", "upscaler", "refine", "tile", "overlap", "tile_control"]},
    "hires": {"hires": ["width", "height", "upscaler", "scale", "prompt", "negative"]},
    "controls": {
        "control": ["type", "image", "weight", "start", "end", "model"],
        "": ["priority", "prompt", "controls"],
    },
}


def _check(body: dict, arrs: list[np.ndarray]) -> None:
    """from_wire + validate only ever raise DreamwireError with a known code; so does the
    whole decode-and-parse path a backend runs on arrival."""
    try:
        json.dumps(body, allow_nan=True)
    except (TypeError, ValueError):
        return  # not something a peer can send
    try:
        Job.from_wire(body, arrs).validate()
    except DreamwireError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.message
    # Through real frames too. Our encoder refuses NaN/inf, a foreign peer may send JSON's
    # NaN/Infinity tokens: put the body frame in by hand.
    try:
        frames = P.encode(P.Message(P.SUBMIT, {}, arrs, job_id=str(body.get("job_id", ""))))
    except ValueError:
        return  # an array our encoder refuses to send (4-D): the decoder never sees it
    frames = [frames[0], frames[1], json.dumps(body).encode(), *frames[3:]]
    try:
        P.parse_submit(P.decode(frames, LIMITS))
    except (DreamwireError, P.ProtocolError) as exc:
        assert isinstance(exc.code, ErrorCode)


@FUZZ
@given(
    kind=st.sampled_from(sorted(FIELDS)),
    data=st.data(),
    value=values,
    array=arrays,
    use_array=st.booleans(),
)
def test_fuzz_new_job_fields_from_the_wire(kind, data, value, array, use_array):
    body, arrs = _base(kind).to_wire()
    arrs = list(arrs)
    where = data.draw(st.sampled_from(sorted(FIELDS[kind])))
    name = data.draw(st.sampled_from(FIELDS[kind][where]))
    if use_array and name in ("mask", "image", "regions", "controls"):
        arrs.append(array)
        value = {"$array": len(arrs) - 1}
    if where == "":
        body[name] = value
    elif where == "region":
        body["regions"][0][name] = value
    elif where == "control":
        body["controls"][data.draw(st.sampled_from([0, 1]))][name] = value
    else:
        body[where][name] = value
    _check(body, arrs)


@FUZZ
@given(
    count=st.sampled_from([0, 1, 11, 12, 50, 200]),
    prompt=texts,
    weight=numbers,
    mask=arrays,
)
def test_fuzz_region_lists(count, prompt, weight, mask):
    """Absurd region counts, each with a random prompt, weight and mask."""
    regions = [Region(prompt, mask if i % 2 else _MASK, weight) for i in range(count)]
    job = Job(prompt="a field", width=64, height=64, regions=regions)
    try:
        job.validate()
    except DreamwireError as exc:
        assert isinstance(exc.code, ErrorCode)
    body, arrs = job.to_wire()
    _check(body, list(arrs))


@FUZZ
@given(
    field=st.sampled_from(
        [
            "upscale.scale",
            "upscale.tile",
            "upscale.overlap",
            "upscale.upscaler",
            "hires.width",
            "hires.height",
            "hires.upscaler",
            "hires.scale",
            "region.weight",
            "region.prompt",
            "region.mask",
            "control.type",
            "control.weight",
            "priority",
            "prompt",
        ]
    ),
    value=st.one_of(values, arrays),
)
def test_fuzz_hand_built_jobs_validate_with_codes(field, value):
    """The client validates before sending: a Job built in Python with anything in a new
    field is refused with a code, not a TypeError/OverflowError from deep inside."""
    kind = {"upscale": "upscale", "hires": "hires", "region": "regions"}.get(
        field.split(".")[0], "controls"
    )
    job = _base(kind)
    head, _, tail = field.partition(".")
    if not tail:
        setattr(job, head, value)
    elif head == "region":
        setattr(job.regions[0], tail, value)
    elif head == "control":
        setattr(job.controls[0], tail, value)
    else:
        setattr(getattr(job, head), tail, value)
    try:
        job.validate()
    except DreamwireError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.message


def test_specific_new_field_errors_have_their_codes():
    """Examples a host could plausibly send, each with the code it should get."""

    def code(job: Job) -> ErrorCode:
        try:
            job.validate()
        except DreamwireError as exc:
            return exc.code
        raise AssertionError(f"accepted: {job!r}")

    regions = _base("regions")
    regions.prompt = "a field AND a sky"
    assert code(regions) == ErrorCode.INVALID_REGION
    for r in (
        Region("a AND b", _MASK),
        Region("", _MASK),
        Region("barn", _MASK, math.nan),
        Region("barn", _MASK, 10**400),
        Region("barn", _MASK.astype(np.float32)),
        Region("barn", np.zeros((64, 64, 3), np.uint8)),
        Region("barn", np.zeros((64, 200), np.uint8)),
    ):
        assert code(Job(prompt="a field", width=64, height=64, regions=[r])) == (
            ErrorCode.INVALID_REGION
        ), r
    many = [Region("barn", _MASK)] * 12
    assert code(Job(prompt="f", width=64, height=64, regions=many)) == ErrorCode.INVALID_REGION

    for kw, want in (
        ({"scale": math.nan}, ErrorCode.INVALID_JOB),
        ({"scale": math.inf}, ErrorCode.INVALID_JOB),
        ({"scale": 10**400}, ErrorCode.INVALID_JOB),
        ({"tile": -8}, ErrorCode.INVALID_SIZE),
        ({"tile": 12}, ErrorCode.INVALID_SIZE),
        ({"tile": 10**9}, ErrorCode.INVALID_SIZE),
        ({"overlap": math.nan}, ErrorCode.INVALID_JOB),
        ({"upscaler": ""}, ErrorCode.INVALID_JOB),
        ({"refine": "yes"}, ErrorCode.INVALID_JOB),
    ):
        job = _base("upscale")
        job.upscale = Upscale(**kw)
        assert code(job) == want, kw

    for kw, want in (
        ({"width": -8}, ErrorCode.INVALID_SIZE),
        ({"width": 10**6}, ErrorCode.INVALID_SIZE),
        ({"height": 7}, ErrorCode.INVALID_SIZE),
        ({"scale": math.nan}, ErrorCode.INVALID_JOB),
        ({"scale": 10**400}, ErrorCode.INVALID_JOB),
        ({"upscaler": "Latent (bicubic)"}, ErrorCode.INVALID_JOB),
        ({"upscaler": ""}, ErrorCode.INVALID_JOB),
    ):
        job = _base("hires")
        job.hires = HiresFix(**kw)
        assert code(job) == want, kw

    job = _base("controls")
    job.init_image = None
    assert code(job) == ErrorCode.INVALID_IMAGE  # a unit without an image needs an init image
    job = _base("controls")
    job.priority = "LIVE"
    assert code(job) == ErrorCode.INVALID_JOB
