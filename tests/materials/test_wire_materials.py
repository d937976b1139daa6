"""Materials jobs through a real backend process over ZeroMQ: the welcome lists the maps its
Marigold folders make, a job's maps come back named and equal to diffusers' own pipeline
with the same seed, bad jobs get stable codes and the backend keeps serving."""

from __future__ import annotations

import time

import numpy as np
import torch
import zmq
from PIL import Image

from dreamwire.shared import protocol as P
from dreamwire.shared.client import Client
from dreamwire.shared.errors import ErrorCode
from dreamwire.shared.events import ErrorEvent, ResultEvent
from dreamwire.shared.job import Job
from dreamwire.shared.job_mode import JobMode
from dreamwire.shared.materials import Materials
from tests.support.backend import BackendProcess
from tests.support.marigold import APPEARANCE, LIGHTING
from tests.support.wire import collect, ended, submit_frames

IMG = np.random.default_rng(9).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def materials_job(*maps: str, **kw) -> Job:
    return Job(
        mode=JobMode.MATERIALS, init_image=IMG, seed=21, materials=Materials(list(maps)), **kw
    )


def _raw_ends(address: str, sends: list[list[bytes]], ids: set[str]) -> dict[str, P.Message]:
    """What a raw peer (no client-side validation) gets back for each job id."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    ends: dict[str, P.Message] = {}
    try:
        for frames in sends:
            sock.send_multipart(frames)
        deadline = time.monotonic() + 120
        while not ids <= set(ends):
            assert time.monotonic() < deadline, sorted(ids - set(ends))
            if sock.poll(1000):
                msg = P.decode(sock.recv_multipart(), P.Limits())
                if msg.type in (P.ERROR, P.RESULT):
                    ends[msg.job_id] = msg
    finally:
        sock.close(0)
    return ends


def test_maps_over_the_wire_equal_diffusers_and_bad_jobs_get_codes(marigold_root, tmp_path):
    with BackendProcess([marigold_root], tmp_path / "out") as backend:
        client = Client(backend.address)
        try:
            client.connect_wait(60)
            assert client.welcome.materials == {
                "albedo": [APPEARANCE, LIGHTING],
                "roughness": [APPEARANCE],
                "metallic": [APPEARANCE],
            }

            # Bad jobs first, from a raw peer: each gets its code before anything loads.
            unknown_map = materials_job("albedo")
            no_model = materials_job("normal")
            wrong_model = Job(
                mode=JobMode.MATERIALS,
                init_image=IMG,
                materials=Materials(["metallic"], intrinsics_model=LIGHTING),
            )
            sends = [
                submit_frames(unknown_map, {"materials.maps": ["albedo", "height"]}),
                submit_frames(no_model),
                submit_frames(wrong_model),
            ]
            ids = {j.job_id for j in (unknown_map, no_model, wrong_model)}
            ends = _raw_ends(backend.address, sends, ids)
            codes = {k: (m.type, m.body.get("code")) for k, m in ends.items()}
            assert codes == {
                unknown_map.job_id: (P.ERROR, ErrorCode.INVALID_JOB.value),
                no_model.job_id: (P.ERROR, ErrorCode.MODEL_NOT_FOUND.value),
                wrong_model.job_id: (P.ERROR, ErrorCode.MODEL_UNSUPPORTED.value),
            }
            assert "marigold-normals-v1-1" in ends[no_model.job_id].body["message"]

            # The backend still serves: a good job, its maps in the job's order.
            good = materials_job("metallic", "albedo", "roughness")
            client.submit(good)
            events = collect(client, ended(good.job_id), timeout=120)
        finally:
            client.close()
    end = [e for e in events if isinstance(e, ResultEvent | ErrorEvent)][-1]
    assert isinstance(end, ResultEvent), end
    images = end.result.images
    assert [g.map for g in images] == ["metallic", "albedo", "roughness"]
    assert all(g.path.endswith(f"-{g.map}.png") for g in images)

    from diffusers import MarigoldIntrinsicsPipeline

    pipe = MarigoldIntrinsicsPipeline.from_pretrained(
        str(marigold_root / "models" / "Marigold" / APPEARANCE)
    )
    pipe.set_progress_bar_config(disable=True)
    pred = pipe(Image.fromarray(IMG), generator=torch.Generator("cpu").manual_seed(21)).prediction

    def u8(x):
        return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)

    metallic, albedo, roughness = (g.image for g in images)
    np.testing.assert_array_equal(albedo, u8(pred[0]))
    # The material target stacks roughness (R) and metallicity (G), each a grey map here.
    np.testing.assert_array_equal(roughness, np.repeat(u8(pred[1][..., :1]), 3, axis=2))
    np.testing.assert_array_equal(metallic, np.repeat(u8(pred[1][..., 1:2]), 3, axis=2))
