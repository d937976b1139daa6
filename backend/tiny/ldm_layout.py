"""Moved to dreamwire.backend.library.ldm_layout (the library uses it too); kept importable."""

from dreamwire.backend.library.ldm_layout import *  # noqa: F403
from dreamwire.backend.library.ldm_layout import (  # noqa: F401
    UNET_PREFIX,
    VAE_PREFIX,
    clip_to_ldm,
    open_clip_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)
