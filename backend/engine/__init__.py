"""The generation engine: diffusers pipelines driven by Dreamwire jobs.

Modules, one job each: device (where and in which dtype, low-VRAM decision), lowvram
(sliced attention, CPU offload), loader (model cache), library_adapter (the model library
as the engine uses it), noise (seeds and variation), seamless, tiled_vae, masks, outpaint,
hires, preview, prompting (per-step embeddings), progress (events, cancel), passes (one
diffusers pass), runner (one job), infotext_fields (A1111 parameters of an image), hooks
(extension points for ControlNet/LoRA/embeddings), engine (the public object).
"""

from __future__ import annotations

from .engine import Engine
from .hooks import EngineExtension, JobContext, PassPlan

__all__ = ["Engine", "EngineExtension", "JobContext", "PassPlan"]
