"""Round trip of a 2048x2048 RGBA image + a 2048x2048 float32 depth map, on loopback:
the dreamwire wire (ZeroMQ, raw frames) against base64 in JSON over HTTP, the way the A1111
API moves images, in one run. Both servers decode the payload to numpy arrays and send it
back; the client decodes the answer to arrays too and checks it is identical.

    .venv/bin/python bench/bench_wire.py [--repeats 10]

Prints median seconds per round trip and the ratio (HTTP+base64 / dreamwire).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import zmq

from dreamwire.shared import protocol as P

SIDE = 2048
LIMITS = P.Limits(max_message_bytes=2**31 - 1)


def payload() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    rgba = np.empty((SIDE, SIDE, 4), np.uint8)
    rgba[..., 0] = (x * 255 // SIDE).astype(np.uint8)
    rgba[..., 1] = (y * 255 // SIDE).astype(np.uint8)
    rgba[..., 2] = rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)  # texture-like noise
    rgba[..., 3] = 255
    depth = (np.hypot(x - SIDE / 2, y - SIDE / 2) / SIDE).astype(np.float32)
    return rgba, depth


# -- dreamwire ------------------------------------------------------------------------------


def zmq_echo(ctx: zmq.Context, ready: list, fmt: str, stop: threading.Event) -> None:
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    ready.append(port)
    while not stop.is_set():
        if not sock.poll(100):
            continue
        identity, *frames = sock.recv_multipart(copy=False)
        msg = P.decode(frames, LIMITS)
        out = P.Message(P.RESULT, {}, msg.buffers, reply_to=msg.msg_id)
        sock.send_multipart([identity, *P.encode(out, fmt)], copy=False)
    sock.close(0)


def bench_zmq(rgba, depth, repeats: int, fmt: str) -> float:
    ctx = zmq.Context()
    ready: list = []
    stop = threading.Event()
    t = threading.Thread(target=zmq_echo, args=(ctx, ready, fmt, stop), daemon=True)
    t.start()
    while not ready:
        time.sleep(0.01)
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://127.0.0.1:{ready[0]}")
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        sock.send_multipart(P.encode(P.Message(P.SUBMIT, {}, [rgba, depth]), fmt), copy=False)
        back = P.decode(sock.recv_multipart(copy=False), LIMITS)
        times.append(time.perf_counter() - t0)
        assert np.array_equal(back.buffers[0], rgba) and np.array_equal(back.buffers[1], depth)
    stop.set()
    t.join()
    sock.close(0)
    ctx.term()
    return statistics.median(times[1:])  # the first one pays for the connection


# -- HTTP + base64 JSON (A1111 API style) --------------------------------------------------


def b64_array(arr: np.ndarray) -> dict:
    return {
        "data": base64.b64encode(arr.tobytes()).decode("ascii"),
        "shape": arr.shape,
        "dtype": str(arr.dtype),
    }


def array_b64(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["data"]), d["dtype"]).reshape(d["shape"])


def b64_png(arr: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def png_b64(s: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(s))))


class Echo(BaseHTTPRequestHandler):
    png = False

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.png:  # A1111 sends images as base64 PNG
            image, depth = png_b64(body["image"]), array_b64(body["depth"])
            out = {"image": b64_png(image), "depth": b64_array(depth)}
        else:
            image, depth = array_b64(body["image"]), array_b64(body["depth"])
            out = {"image": b64_array(image), "depth": b64_array(depth)}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def bench_http(rgba, depth, repeats: int, png: bool) -> float:
    handler = type("H", (Echo,), {"png": png})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/sdapi/v1/echo"
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        image = b64_png(rgba) if png else b64_array(rgba)
        req = urllib.request.Request(
            url,
            json.dumps({"image": image, "depth": b64_array(depth)}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            out = json.loads(resp.read())
        img = png_b64(out["image"]) if png else array_b64(out["image"])
        dep = array_b64(out["depth"])
        times.append(time.perf_counter() - t0)
        assert np.array_equal(img, rgba) and np.array_equal(dep, depth)
    server.shutdown()
    server.server_close()
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--with-png", action="store_true", help="also time the PNG variants (slow)")
    args = ap.parse_args()
    rgba, depth = payload()
    mb = (rgba.nbytes + depth.nbytes) / 2**20
    print(
        f"payload: {SIDE}x{SIDE} RGBA uint8 + {SIDE}x{SIDE} float32 depth = {mb:.0f} MiB each way"
    )
    z = bench_zmq(rgba, depth, args.repeats, "raw")
    h = bench_http(rgba, depth, args.repeats, png=False)
    print(
        f"dreamwire ZeroMQ raw frames : {z * 1000:8.1f} ms per round trip (median of {args.repeats})"
    )
    print(f"HTTP + base64 JSON          : {h * 1000:8.1f} ms per round trip")
    print(f"ratio (HTTP+base64 / dreamwire): {h / z:.1f}x")
    if args.with_png:
        r = max(2, args.repeats // 3)
        zp = bench_zmq(rgba, depth, r, "png")
        hp = bench_http(rgba, depth, r, png=True)
        print(f"dreamwire PNG/zlib frames (remote mode): {zp * 1000:8.1f} ms")
        print(f"HTTP + base64 PNG image (A1111 style)  : {hp * 1000:8.1f} ms")
        print(f"ratio (A1111-style / dreamwire remote mode): {hp / zp:.1f}x")


if __name__ == "__main__":
    main()
