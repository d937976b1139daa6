"""The generation engine: diffusers pipelines driven by Dreamwire jobs.

Modules, one job each: device (where and in which dtype), loader (model cache), noise
(seeds and variation), seamless, tiled_vae, masks, outpaint, hires, preview, prompting
(per-step embeddings), passes (one diffusers pass), runner (one job), hooks (extension
points for ControlNet/LoRA), engine (the public object).
"""

from __future__ import annotations

from .engine import Engine
from .hooks import EngineExtension, JobContext, PassPlan

__all__ = ["Engine", "EngineExtension", "JobContext", "PassPlan"]
