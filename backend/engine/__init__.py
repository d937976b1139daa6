"""The generation engine: diffusers pipelines driven by Dreamwire jobs.

Modules, one job each, in the order a job meets them:
  engine            the public object: models, device, conditioners, `run`
  planning          the job planned before anything loads (pure): mode, passes, sizes, LoRAs,
                    regions, whether a pass composes its prompt, the control units with their
                    files and windows, the canvas, the infotext fields known before running;
                    every early refusal
  unit_planning     the seam through which the injected conditioning plans control units
                    (UnitPlanner, PlannedUnit, ModelOutline)
  family_support    a job's features checked against its family's Support flags
  admission         admission by memory: a job's peak against what is free; host_memory
                    reads the RAM left to this process
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
  scheduling        the pass's scheduler: an A1111 sampler, or the model's flow-matching one
  pipelines         diffusers pipeline classes per family and mode (from the family spec)
  passes            one denoising pass through a pipeline, with per-step logic
  prompting         prompt embeddings per step (A1111 prompt language, CLIP families);
                    prompting_clip_t5 for a CLIP + T5 family (Flux)
  composition       the engine's own conditioners: regions and AND prompts
  composable        A1111's AND prompts inside classifier-free guidance (the Composer)
  regions           regional prompts (Latent Couple maths: the filters)
  seamless          tileable output (circular padding); seamless_upscale for upscales
  tiled_vae         tiled VAE decode/encode for large images
  vae_fit           the VAE decode tiled to fit the free accelerator memory, per pass
  preview, taesd    step previews: a linear latent map, or TAESD when installed
  progress          per-step reporting and cancellation across passes
  infotext_fields   the A1111 parameters of one image
  hooks             the conditioner interface (Conditioner, JobContext, PassPart, PassCall,
                    PassPlan)
  conditioners      the job's conditioners resolved and attached around the job and each
                    pass; the pass's pipeline class chosen from what they add

Pixel operations shared with the conditioners (masks, the outpaint canvas, the planned
layout) live in backend/canvas. Conditioners are passed in by whoever builds the Engine
(backend/cli/engine_options.py); this package never imports backend.conditioning. The engine
appends its own (composition.builtin(): regions, AND prompts) after them.
"""

from __future__ import annotations

from .engine import Engine
from .hooks import Conditioner, JobContext, PassPart, PassPlan

__all__ = ["Conditioner", "Engine", "JobContext", "PassPart", "PassPlan"]
