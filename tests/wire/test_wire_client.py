"""Client behaviour against peers that are not a well-behaved backend (no backend process)."""

from __future__ import annotations

import json
import time

import pytest
import zmq

from dreamwire.shared import events as ev
from dreamwire.shared import protocol as P
from dreamwire.shared.client import Client
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.job import Job


@pytest.fixture
def router():
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    sock.close(0)


def test_poll_never_blocks_and_silence_means_lost(router):
    _, address = router
    c = Client(address, heartbeat_interval=0.1, heartbeat_timeout=0.5)
    try:
        assert c.poll() == [] and c.state == ev.CONNECTING
        events = []
        while not events:
            events = c.wait(2.0)
        assert isinstance(events[0], ev.ConnectionChanged) and events[0].state == ev.LOST
        assert "no answer" in events[0].detail
        # Further silence does not repeat the report.
        assert not [e for e in c.wait(1.2) if isinstance(e, ev.ConnectionChanged)]
    finally:
        c.close()


def test_newer_backend_is_refused_with_a_clear_error(router):
    sock, address = router
    c = Client(address)
    try:
        identity, *frames = sock.recv_multipart()
        hello = P.decode(frames, P.Limits())
        assert hello.type == P.HELLO and hello.body["protocol"] == P.PROTOCOL_VERSION
        head = {
            "msg_id": "x",
            "type": "welcome",
            "job_id": "",
            "reply_to": hello.msg_id,
            "buffers": [],
        }
        sock.send_multipart(
            [identity, b"dreamwire/2", json.dumps(head).encode(), b'{"protocol": 2}']
        )
        with pytest.raises(DreamwireError) as info:
            c.connect_wait(10)
        assert info.value.code == ErrorCode.PROTOCOL_VERSION
        assert "dreamwire/2" in info.value.message and "dreamwire/1" in info.value.message
        assert c.state == ev.INCOMPATIBLE
    finally:
        c.close()


def test_invalid_job_is_refused_before_sending(router):
    sock, address = router
    c = Client(address)
    try:
        sock.recv_multipart()  # hello
        with pytest.raises(DreamwireError) as info:
            c.submit(Job(width=65))
        assert info.value.code == ErrorCode.INVALID_SIZE
        assert not sock.poll(200)
    finally:
        c.close()


def test_a_host_that_stopped_polling_is_not_told_the_backend_is_lost(router):
    sock, address = router
    c = Client(address, heartbeat_interval=0.1, heartbeat_timeout=0.5)
    try:
        identity, *frames = sock.recv_multipart()
        hello = P.decode(frames, P.Limits())
        welcome = P.Message(
            P.WELCOME, {"protocol": P.PROTOCOL_VERSION, "server_id": "s1"}, reply_to=hello.msg_id
        )
        sock.send_multipart([identity, *P.encode(welcome)])
        c.connect_wait(5)
        time.sleep(1.0)  # the host is busy for twice the timeout, nobody polls
        assert not [e for e in c.poll() if isinstance(e, ev.ConnectionChanged)]
        # It pinged on waking; answering keeps it connected.
        while sock.poll(500):
            identity, *frames = sock.recv_multipart()
            msg = P.decode(frames, P.Limits())
            if msg.type == P.HEARTBEAT:
                sock.send_multipart(
                    [identity, *P.encode(P.Message(P.HEARTBEAT, {"server_id": "s1"}))]
                )
                break
        else:
            raise AssertionError("no heartbeat after the host woke")
        assert not [e for e in c.wait(0.3) if isinstance(e, ev.ConnectionChanged)]
        assert c.state == ev.CONNECTED
    finally:
        c.close()


def test_keys_as_text_or_files_and_bad_keys_say_so(tmp_path):
    from dreamwire.backend.server.auth import write_key_pair
    from dreamwire.shared.client import read_key

    pub, sec = write_key_pair(tmp_path, "alice")
    text = read_key(pub)
    assert len(text) == 40 and read_key(text.decode()) == text
    assert zmq.curve_public(read_key(sec, secret=True)) == text
    with pytest.raises(DreamwireError) as info:
        read_key(pub, secret=True)
    assert info.value.code == ErrorCode.UNAUTHORIZED
    with pytest.raises(DreamwireError) as info:
        read_key("not a key")
    assert "Z85" in info.value.message
    with pytest.raises(DreamwireError):
        write_key_pair(tmp_path, "alice")  # never overwrites a key
