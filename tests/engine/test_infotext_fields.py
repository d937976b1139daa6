"""The A1111 fields of real engine output: which keys appear, when, in A1111's order, and
that parse -> format gives the same text back."""

from __future__ import annotations

import numpy as np
from reference import JOB_BASE

from dreamwire.shared.infotext import format_infotext, parse_infotext
from dreamwire.shared.job import Job


def _info(engine, **kw):
    text = engine.run(Job(**{**JOB_BASE, "sampler": "Euler", **kw})).images[0].infotext
    info = parse_infotext(text)
    assert format_infotext(info) == text  # the round trip is exact
    return text, info


def test_schedule_type_always_written(engine):
    # A1111 1.9+ writes "Schedule type" after the sampler, "Automatic" included.
    text, info = _info(engine)
    assert "Sampler: Euler, Schedule type: Automatic, CFG scale: 6," in text
    assert info.schedule_type == "Automatic"
    text, info = _info(engine, sampler="DPM++ 2M Karras")
    assert "Sampler: DPM++ 2M, Schedule type: Karras," in text
    assert (info.sampler, info.schedule_type) == ("DPM++ 2M", "Karras")


def test_variation_seed_only_when_used(engine):
    text, info = _info(engine, seed=5, subseed=7, subseed_strength=0.3)
    assert info.variation_seed == 7 and info.variation_seed_strength == 0.3
    # A1111's place for them: after Model, before Denoising strength / Clip skip.
    keys = info.order
    assert keys.index("Model") < keys.index("Variation seed")
    assert keys.index("Variation seed") + 1 == keys.index("Variation seed strength")
    _, plain = _info(engine, seed=5)
    assert plain.variation_seed is None and "Variation seed" not in plain.order


def test_inpaint_fields_as_a1111_writes_them(engine, init_image, mask):
    text, info = _info(
        engine,
        init_image=init_image,
        mask=mask,
        mask_blur=3,
        inpaint_full_res=True,
        inpaint_padding=16,
        strength=0.6,
    )
    assert "Denoising strength: 0.6, Mask blur: 3, Inpaint area: Only masked, " in text
    assert text.endswith("Masked area padding: 16")
    assert info.mask_blur == 3 and info.extras["Masked area padding"] == "16"

    # "Whole picture": A1111 writes the mask blur but no area or padding.
    _, whole = _info(engine, init_image=init_image, mask=mask, mask_blur=0, strength=0.6)
    assert whole.mask_blur == 0
    assert "Inpaint area" not in whole.order and "Masked area padding" not in whole.order

    # No mask, no mask fields.
    _, i2i = _info(engine, init_image=init_image, strength=0.6)
    assert i2i.mask_blur is None and i2i.denoising_strength == 0.6
    assert np.isfinite(i2i.cfg_scale)
