"""Over the wire: bad conditioning input gets a clear error code and the server keeps serving."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from cn_helpers import BASE, noise_image

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dreamwire.shared.client import Client  # noqa: E402
from dreamwire.shared.errors import DreamwireError, ErrorCode  # noqa: E402
from dreamwire.shared.job import ControlUnit, Job  # noqa: E402
from tests.support.backend import BackendProcess  # noqa: E402


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/dreamwire-conditioning-payload-ran",))


@pytest.fixture(scope="module")
def extra_root(tmp_path_factory) -> Path:
    """A second models root holding broken files, as artists' folders sometimes do."""
    root = tmp_path_factory.mktemp("broken-models")
    lora = root / "models" / "Lora"
    lora.mkdir(parents=True)
    (lora / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    torch.save({"lora_unet_x.lora_down.weight": _Payload()}, lora / "evil.pt")
    emb = root / "models" / "embeddings"
    emb.mkdir(parents=True)
    torch.save({"string_to_param": {"*": _Payload()}}, emb / "evilneg.pt")
    return root


def test_bad_conditioning_jobs_fail_clearly_and_the_server_goes_on(
    tiny_models, extra_root, tmp_path
):
    marker = Path("/tmp/dreamwire-conditioning-payload-ran")
    marker.unlink(missing_ok=True)
    with BackendProcess([tiny_models, extra_root], tmp_path / "out") as backend:
        client = Client(backend.address)
        try:
            bad = [
                (ErrorCode.LORA_NOT_FOUND, Job(**{**BASE, "prompt": "x <lora:nowhere:1>"})),
                (ErrorCode.MODEL_CORRUPT, Job(**{**BASE, "prompt": "x <lora:broken:1>"})),
                (ErrorCode.MODEL_UNSAFE, Job(**{**BASE, "prompt": "x <lora:evil:1>"})),
                (ErrorCode.MODEL_UNSAFE, Job(**{**BASE, "negative": "blurry, evilneg"})),
                (
                    ErrorCode.MODEL_MISMATCH,
                    Job(
                        **BASE,
                        controls=[
                            ControlUnit(
                                type="depth", image=noise_image(1), model="diffusers_xl_depth_full"
                            )
                        ],
                    ),
                ),
            ]
            for code, job in bad:
                with pytest.raises(DreamwireError) as err:
                    client.run(job, timeout=300)
                assert err.value.code == code, err.value.message
            assert not marker.exists()
            good = Job(
                **{**BASE, "prompt": "moss <lora:tiny_style:0.5>"},
                controls=[ControlUnit(type="canny", image=noise_image(2))],
            )
            result = client.run(good, timeout=300)
            assert result.images[0].image.shape == (64, 64, 3)
        finally:
            client.close()
