"""The generation engine: diffusers pipelines driven by Dreamwire jobs.

Modules, one job each, in the order a job meets them:
  engine            the public object: models, device, conditioners, `run`
  library_adapter   the model library as the engine uses it (find, load, name, family)
  loader            loaded models and their LRU cache
  device            where and in which dtype; the low-VRAM decision
  memory_plan       how a pass fits the free memory (pure: family, size, free bytes)
  lowvram           model CPU offload (CUDA), sliced attention (MPS)
  fastpath          the speed policy only: channels_last, fused QKV, SDPA order, compile
  runner            one job: modes, seeds, passes, Hires.fix, results
  sd_upscale        upscale jobs (A1111 Extras and the SD upscale script)
  hires             Hires.fix sizes and the upscale between passes
  masked_content    A1111's inpaint "Masked content" modes
  noise             seeds, variation seeds, initial noise (A1111 conventions)
  pipelines         diffusers pipeline classes per family and mode
  passes            one denoising pass through a pipeline, with per-step logic
  prompting         prompt embeddings per step (A1111 prompt language)
  composable        A1111's AND prompts inside classifier-free guidance
  regions           regional prompts (Latent Couple maths)
  seamless          tileable output (circular padding); seamless_upscale for upscales
  tiled_vae         tiled VAE decode/encode for large images
  vae_fit           the VAE decode tiled to fit the free accelerator memory, per pass
  preview, taesd    step previews: a linear latent map, or TAESD when installed
  progress          per-step reporting and cancellation across passes
  infotext_fields   the A1111 parameters of one image
  hooks             the conditioner interface (Conditioner, JobContext, PassPart, PassPlan)
  conditioners      the job's conditioners resolved and attached around the job and each
                    pass; the pass's pipeline class chosen from what they add

Pixel operations shared with the conditioners (masks, the outpaint canvas) live in
backend/canvas. Conditioners are passed in by whoever builds the Engine
(backend/cli/engine_options.py); this package never imports backend.conditioning.
"""

from __future__ import annotations

from .engine import Engine
from .hooks import Conditioner, JobContext, PassPart, PassPlan

__all__ = ["Conditioner", "Engine", "JobContext", "PassPart", "PassPlan"]
