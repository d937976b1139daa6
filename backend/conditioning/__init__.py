"""Conditioning: what changes how a job runs beyond prompt and sampler.

One conditioner per kind, each implementing the engine's `Conditioner` protocol
(backend/engine/hooks.py: resolve, attach around the job and around each pass, a step hook
by name):

  embedding_conditioner     textual-inversion embeddings (embeddings.py)
  lora_conditioner          LoRA and LyCORIS weights, patched for the job and restored
                            exactly (lora.py; Flux's key names: lora_flux_keys.py)
  controlnet_conditioner    ControlNet 1.0/1.1, diffusers and Union/ProMax units: a stack
                            per pass as the pipeline's `controlnet` component (controlnet.py,
                            union.py, controlnet_files.py)
  t2i_conditioner           T2I-Adapter units: a UNet hook per pass (adapter_stack.py,
                            t2i_adapter.py)
  ip_adapter_conditioner    IP-Adapter units, plain, plus, Style/Composition: loaded into the
                            UNet for the job (ip_adapter.py, ip_adapter_files.py,
                            ip_adapter_blocks.py)
  redux_conditioner         Flux Redux: a Flux model's reference units as SigLIP image tokens
                            after T5's prompt tokens (redux_files.py, redux_window.py)
  flux_control_conditioner  BFL's Flux Control LoRAs for canny/depth units on Flux: the
                            transformer made the Control model for the job
                            (flux_control_files.py, flux_control_patch.py)

The unit kinds share the resolution of a job's control units to files at plan time
(unit_resolution.py, which the ControlNet conditioner offers the engine as its UnitPlanner;
the file's info class, unit_file.py, says which kind runs it), the
control images (units.py, control_image.py, on_canvas.py, preprocess.py), the start/end
window clock (window.py), the loaded-model cache of ControlNets and T2I-Adapters
(net_cache.py), the infotext entries (unit_infotext.py), and the original (LDM) UNet module
names that several file layouts use (ldm_names.py). capabilities.py says which
control types the backend can serve, observer.py lets a builder watch the stacks.

`engine_extensions()` is what the CLI and the server hand the Engine
(backend/cli/engine_options.py `build_engine`); the engine never imports this package.
Regions and AND prompts are conditioners too, but the engine's own
(backend/engine/composition.py): their maths is part of the guidance step and needs no file.
What differs per model family (pipeline classes, LoRA lineage, IP-Adapter block numbering,
the text width an add-on file's shapes show) comes from the family's spec
(backend/families); the one table still keyed by family name is capabilities.py's example
file names for the welcome's "control_missing" hints.
"""

from __future__ import annotations


def engine_extensions(observer=None) -> list:
    """The conditioners an Engine runs with, in the order the engine resolves and attaches
    them; `observer` (observer.StackObserver) is told what the unit kinds attach and run."""
    from .controlnet_conditioner import ControlNetConditioner
    from .embedding_conditioner import EmbeddingConditioner
    from .flux_control_conditioner import FluxControlConditioner
    from .ip_adapter_conditioner import IPAdapterConditioner
    from .lora_conditioner import LoraConditioner
    from .net_cache import NetCache
    from .redux_conditioner import ReduxConditioner
    from .t2i_conditioner import T2IAdapterConditioner

    nets = NetCache(2)  # ControlNets and T2I-Adapters together, as one cache
    return [
        EmbeddingConditioner(),
        # Unit kinds in the order a pass attaches them (the IP-Adapter loads into the UNet
        # before the T2I-Adapter hooks it); units resolve in the job's order whatever this is.
        IPAdapterConditioner(observer=observer),
        ReduxConditioner(observer=observer),  # Flux's reference units (the family spec's)
        T2IAdapterConditioner(nets, observer),
        ControlNetConditioner(nets, observer),
        # Before LoRA: a style LoRA then patches the Control model, as ComfyUI chains them.
        FluxControlConditioner(observer),
        # Last: its "Lora hashes" follow the units' "ControlNet N" in the infotext, as A1111
        # writes them.
        LoraConditioner(),
    ]
