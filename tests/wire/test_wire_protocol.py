"""Framing: round trips, and every malformed-message class refused with its stable code."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamwire.shared import protocol as P
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import ControlUnit, Job
from dreamwire.shared.result import GeneratedImage, JobResult, Progress

LIMITS = P.Limits(max_message_bytes=8 * 2**20, max_pixels=1024 * 1024, max_images=8)


def _job() -> Job:
    rng = np.random.default_rng(0)
    return Job(
        prompt="a (red:1.2) fox",
        width=64,
        height=64,
        init_image=rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
        controls=[ControlUnit("depth", rng.random((64, 64), dtype=np.float32), weight=0.5)],
    )


@pytest.mark.parametrize("fmt", ["raw", "png", "zlib"])
def test_submit_round_trip_keeps_arrays_and_fields(fmt):
    job = _job()
    frames = P.encode(P.submit_message(job), fmt)
    assert frames[0] == b"dreamwire/1"
    header = json.loads(frames[1])
    assert [b["dtype"] for b in header["buffers"]] == ["uint8", "float32"]
    assert header["buffers"][0]["shape"] == [64, 64, 3]
    back = P.parse_submit(P.decode(frames, LIMITS))
    assert back.prompt == job.prompt and back.controls[0].weight == 0.5
    np.testing.assert_array_equal(back.init_image, job.init_image)
    np.testing.assert_array_equal(back.controls[0].image, job.controls[0].image)
    assert back.controls[0].image.dtype == np.float32


def test_raw_frames_are_the_arrays_themselves():
    job = _job()
    frames = P.encode(P.submit_message(job))
    assert np.shares_memory(frames[3], job.init_image)


def test_result_and_progress_round_trip():
    img = np.full((16, 24, 3), 7, np.uint8)
    res = JobResult(
        "j1", [GeneratedImage(img, 42, "fox\nSteps: 2", "/out/a.png")], {"total": 1.5}, "tiny-sd1"
    )
    back = P.parse_result(P.decode(P.encode(P.result_message(res)), LIMITS))
    assert back.images[0].seed == 42 and back.images[0].path == "/out/a.png"
    np.testing.assert_array_equal(back.images[0].image, img)
    prog = Progress("j1", "generating", 3, 20, np.zeros((8, 8, 3), np.uint8), "x")
    pb = P.parse_progress(P.decode(P.encode(P.progress_message(prog)), LIMITS))
    assert (pb.step, pb.total, pb.state, pb.preview.shape) == (3, 20, "generating", (8, 8, 3))


def _frames(header_patch=None, body=b"{}", buffers=(), drop=None):
    msg = P.Message(P.SUBMIT, {}, list(buffers), job_id="j")
    frames = [bytes(memoryview(f)) if not isinstance(f, bytes) else f for f in P.encode(msg)]
    if header_patch is not None:
        h = json.loads(frames[1])
        header_patch(h)
        frames[1] = json.dumps(h).encode()
    frames[2] = body
    if drop is not None:
        frames = frames[:drop]
    return frames


def _code(frames) -> ErrorCode:
    with pytest.raises(P.ProtocolError) as info:
        P.decode(frames, LIMITS)
    return info.value.code


def test_bad_messages_get_their_codes():
    img = np.zeros((8, 8, 3), np.uint8)
    assert _code([b"dreamwire/2", b"{}", b"{}"]) == ErrorCode.PROTOCOL_VERSION
    assert _code([b"hello", b"{}", b"{}"]) == ErrorCode.MALFORMED_MESSAGE
    assert _code([P.TAG]) == ErrorCode.MALFORMED_MESSAGE
    assert _code(_frames(buffers=[img], drop=3)) == ErrorCode.MALFORMED_MESSAGE  # truncated
    assert _code(_frames(body=b"{not json")) == ErrorCode.MALFORMED_MESSAGE
    assert _code(_frames(body=b"[1, 2]")) == ErrorCode.MALFORMED_MESSAGE
    assert _code(_frames(body=b'{"x": NaN}')) == ErrorCode.MALFORMED_MESSAGE
    assert (
        _code(_frames(lambda h: h.update(type="launch_missiles"))) == ErrorCode.UNKNOWN_MESSAGE_TYPE
    )
    # Frame length disagrees with dtype/shape.
    assert (
        _code(_frames(lambda h: h["buffers"][0].update(shape=[8, 9, 3]), buffers=[img]))
        == ErrorCode.MALFORMED_MESSAGE
    )
    assert (
        _code(_frames(lambda h: h["buffers"][0].update(dtype="float32"), buffers=[img]))
        == ErrorCode.MALFORMED_MESSAGE
    )
    assert (
        _code(_frames(lambda h: h["buffers"][0].update(dtype="object"), buffers=[img]))
        == ErrorCode.MALFORMED_MESSAGE
    )


def test_huge_image_header_is_refused_without_allocating():
    def huge(h):
        h["buffers"][0].update(shape=[100_000, 100_000, 4], nbytes=40_000_000_000)

    frames = _frames(huge, buffers=[np.zeros((8, 8, 3), np.uint8)])
    # Frame is 192 bytes, header claims 40 GB: refused on the header's numbers alone.
    assert _code(frames) == ErrorCode.MALFORMED_MESSAGE
    frames = _frames(
        lambda h: h["buffers"][0].update(shape=[100_000, 100_000, 4], format="png"),
        buffers=[np.zeros((8, 8, 3), np.uint8)],
    )
    assert _code(frames) == ErrorCode.LIMIT_EXCEEDED


def test_size_limits_before_decoding():
    big = np.zeros((1500, 1500), np.uint8)  # 2.25 MP > 1 MP limit, 2.25 MB < 8 MB
    assert _code(P.encode(P.Message(P.SUBMIT, {}, [big]))) == ErrorCode.LIMIT_EXCEEDED
    many = [np.zeros((8, 8), np.uint8)] * 9
    assert _code(P.encode(P.Message(P.SUBMIT, {}, many))) == ErrorCode.LIMIT_EXCEEDED
    assert _code([P.TAG, b"{}", b" " * (9 * 2**20)]) == ErrorCode.MESSAGE_TOO_LARGE


def test_parse_submit_turns_wrong_json_types_into_invalid_job():
    job = _job()
    msg = P.decode(P.encode(P.submit_message(job)), LIMITS)
    msg.body["cfg"] = "seven"
    with pytest.raises(DreamwireError) as info:
        P.parse_submit(msg)
    assert info.value.code == ErrorCode.INVALID_JOB and info.value.job_id == job.job_id


# -- property-based fuzzing ----------------------------------------------------------------

_valid = P.encode(P.submit_message(_job()), "png")
_valid = [bytes(memoryview(f)) if not isinstance(f, bytes) else f for f in _valid]


def _check_decoder(frames):
    try:
        msg = P.decode(frames, LIMITS)
    except P.ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
        return
    # Whatever decodes must honour the limits it was given.
    for arr in msg.buffers:
        assert arr.shape[0] * (arr.shape[1] if arr.ndim > 1 else 1) <= LIMITS.max_pixels
    with contextlib.suppress(DreamwireError):
        P.parse_submit(msg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_fuzz_random_frames_never_crash_the_decoder(frames):
    _check_decoder(frames)
    _check_decoder([P.TAG, *frames])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(_valid) - 1),
    pos=st.integers(0, 10_000),
    byte=st.integers(0, 255),
    cut=st.integers(0, 10_000),
)
def test_fuzz_mutated_valid_message(index, pos, byte, cut):
    frames = list(_valid)
    f = bytearray(frames[index])
    if f:
        f[pos % len(f)] = byte
    frames[index] = bytes(f[: max(1, len(f) - cut % 4)] if cut % 3 == 0 else f)
    _check_decoder(frames)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["type", "msg_id", "job_id", "reply_to", "sent", "buffers"]),
    value=json_values,
)
def test_fuzz_header_fields(field, value):
    header = json.loads(_valid[1])
    header[field] = value
    _check_decoder([_valid[0], json.dumps(header).encode(), *_valid[2:]])


@settings(max_examples=200, deadline=None)
@given(spec=st.dictionaries(st.sampled_from(["dtype", "shape", "nbytes", "format"]), json_values))
def test_fuzz_buffer_descriptions(spec):
    header = json.loads(_valid[1])
    header["buffers"][0] = {**header["buffers"][0], **spec}
    _check_decoder([_valid[0], json.dumps(header).encode(), *_valid[2:]])


@settings(max_examples=200, deadline=None)
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "prompt",
                "width",
                "cfg",
                "controls",
                "init_image",
                "hires",
                "outpaint",
                "loras",
                "job_id",
                "x",
            ]
        ),
        json_values,
    )
)
def test_fuzz_submit_bodies(body):
    _check_decoder([_valid[0], _valid[1], json.dumps(body).encode(), *_valid[3:]])


# -- descriptor rules and numbers: the shapes that once stopped a backend ------------------


def _raw_header(text: str) -> list[bytes]:
    """A submit whose header is `text` verbatim (numbers json.dumps cannot write)."""
    return [P.TAG, text.encode(), b"{}"]


@pytest.mark.parametrize(
    "shape,nbytes,code",
    [
        ([0, 10**12], 0, ErrorCode.MALFORMED_MESSAGE),  # numpy: "dimension too large"
        ([10**30, 0, 3], 0, ErrorCode.MALFORMED_MESSAGE),
        ([2**62, 0], 0, ErrorCode.MALFORMED_MESSAGE),
        ([0], 0, ErrorCode.MALFORMED_MESSAGE),
        ([-3, -5], 0, ErrorCode.MALFORMED_MESSAGE),
        ([4, 4.0], 16, ErrorCode.MALFORMED_MESSAGE),
        ([10**400, 1], 16, ErrorCode.MALFORMED_MESSAGE),  # refused by the JSON parser
        ([1, 1, 1, 1], 1, ErrorCode.MALFORMED_MESSAGE),
        ([2**40, 2**40], 16, ErrorCode.LIMIT_EXCEEDED),
        ([1, 2**40], 16, ErrorCode.LIMIT_EXCEEDED),
        ([4, 4, 5], 80, ErrorCode.LIMIT_EXCEEDED),
    ],
)
def test_buffer_descriptors_are_checked_before_any_arithmetic(shape, nbytes, code):
    spec = {"dtype": "uint8", "shape": shape, "nbytes": nbytes, "format": "raw"}
    header = json.dumps({"msg_id": "m", "type": "submit", "job_id": "j", "buffers": [spec]})
    with pytest.raises(P.ProtocolError) as info:
        P.decode([*_raw_header(header), b"\0" * nbytes], LIMITS)
    assert info.value.code == code, info.value


@pytest.mark.parametrize(
    "header",
    [
        '{"msg_id": "m", "type": "hello", "sent": 1' + "0" * 400 + "}",
        '{"msg_id": "m", "type": "hello", "sent": 1e999}',
        '{"msg_id": "m", "type": "hello", "sent": -1e999}',
        '{"msg_id": "m", "type": "hello", "sent": NaN}',
        '{"msg_id": "m", "type": "hello", "sent": 123456789012345678901}',
        '{"msg_id": "m", "type": "hello", "buffers": [], "x": 1' + "0" * 5000 + "}",
    ],
)
def test_header_numbers_out_of_range_are_malformed(header):
    with pytest.raises(P.ProtocolError) as info:
        P.decode(_raw_header(header), LIMITS)
    assert info.value.code == ErrorCode.MALFORMED_MESSAGE


@pytest.mark.parametrize(
    "body",
    [b'{"protocol": 1e999}', b'{"x": [1, -1e400]}', b'{"seed": 1' + b"0" * 400 + b"}", b"[NaN]"],
)
def test_body_numbers_out_of_range_are_malformed_in_any_field(body):
    frames = [P.TAG, b'{"msg_id": "m", "type": "hello"}', body]
    with pytest.raises(P.ProtocolError) as info:
        P.decode(frames, LIMITS)
    assert info.value.code == ErrorCode.MALFORMED_MESSAGE


def test_largest_seeds_and_numbers_still_decode():
    body = b'{"seed": 18446744073709551615, "neg": -9223372036854775808, "f": 1.5e308}'
    msg = P.decode([P.TAG, b'{"msg_id": "m", "type": "hello", "sent": 1e9}', body], LIMITS)
    assert msg.body["seed"] == 2**64 - 1 and msg.body["neg"] == -(2**63)
    assert msg.body["f"] == 1.5e308 and msg.sent == 1e9


def test_compressed_frames_may_not_decode_past_the_message_limit():
    # Five 1 MP x 2 zlib frames of zeros: tiny on the wire, 10 MiB decoded > LIMITS' 8 MiB.
    arrs = [np.zeros((1024, 1024, 2), np.uint8)] * 5
    frames = P.encode(P.Message(P.SUBMIT, {}, arrs, job_id="j"), "zlib")
    assert sum(P.frame_len(f) for f in frames) < 100_000
    assert _code(frames) == ErrorCode.LIMIT_EXCEEDED
    four = P.encode(P.Message(P.SUBMIT, {}, arrs[:4], job_id="j"), "zlib")
    assert len(P.decode(four, LIMITS).buffers) == 4


def test_open_content_stops_at_its_deadline_with_limit_exceeded():
    rows = np.zeros((256, 257), np.uint8)
    rows[:, 0] = 4
    frames = P.encode(P.Message(P.SUBMIT, {}, [rows[:, 1:].copy()], job_id="j"), "png")
    env = P.open_envelope(frames, LIMITS)
    assert env.type == P.SUBMIT and env.job_id == "j" and env.decoded_bytes == 256 * 256
    with pytest.raises(P.ProtocolError) as info:
        P.open_content(env, deadline=0.0)
    assert info.value.code == ErrorCode.LIMIT_EXCEEDED
    np.testing.assert_array_equal(P.open_content(env).buffers[0], rows[:, 1:])


def test_empty_arrays_are_not_sent():
    with pytest.raises(ValueError, match="non-empty"):
        P.encode(P.Message(P.SUBMIT, {}, [np.zeros((0, 4), np.uint8)]))


@pytest.mark.parametrize("length", [1, 65, 256])
def test_an_error_reply_names_the_whole_msg_id(length):
    """Found by the fuzzer against a real backend: error replies named only the first 64
    characters of a msg id a header may carry (up to 256), so the client never matched them."""
    msg_id = "m" * length
    header = json.dumps({"msg_id": msg_id, "type": "hello", "job_id": "j", "sent": "late"})
    assert P.reply_address([P.TAG, header.encode(), b"{}"], P.Limits()) == ("j", msg_id)


def test_an_over_long_msg_id_is_not_named_at_all():
    header = json.dumps({"msg_id": "m" * 257, "type": "hello"})
    assert P.reply_address([P.TAG, header.encode(), b"{}"], P.Limits()) == ("", "")
