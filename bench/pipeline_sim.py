"""A transformer family's whole pipeline on fake tensors: the real architectures (built on
the meta device from the catalog config a bench/sim_families.py entry names), the
transformer stored in one of the artists' formats (bench/weight_sim.py), run stage by stage
as each offload mode runs them. bench/bench_lowvram.py (Flux.1) and
bench/bench_family_memory.py (the issue 13 families) measure with it.

Offload modes: "none" holds every model's weights for the whole job; "model" (diffusers'
enable_model_cpu_offload) holds the running model's only, in the pipeline's order
text encoders -> transformer -> VAE; "sequential" (enable_sequential_cpu_offload) holds no
weights, and each module's own parameters are copied in while it runs, as accelerate's
hooks do.

Like bench_lowvram.Sim for SD, a PipelineSim keeps its own fake mode and enters it only
while it builds and while a stage runs, so one sim serves any number of stages (and tests)
in turn, and nothing is left to close.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import torch
from fake_gpu import LiveBytes, Stage, fake_mode, on_fake_cuda, one_blend_row
from sim_families import SimFamily
from weight_sim import BF16, store

MODES = ("none", "model", "sequential")


def _config(arch: str, component: str) -> dict:
    from dreamwire import catalog

    return json.loads((catalog.config_dir(arch) / component / "config.json").read_text())


def meta_component(arch: str, component: str) -> torch.nn.Module:
    """One component of the catalog's `arch`, of the class its model_index.json names,
    built on the meta device in bf16."""
    from dreamwire import catalog

    index = json.loads((catalog.config_dir(arch) / "model_index.json").read_text())
    library, name = index[component]
    cfg = _config(arch, component)
    with torch.device("meta"):
        if library == "diffusers":
            import diffusers

            model = getattr(diffusers, name).from_config(cfg)
        else:
            import transformers

            cls = getattr(transformers, name)
            model = cls(cls.config_class.from_dict(cfg))
    return model.to(BF16).eval()


@contextlib.contextmanager
def _one_module_at_a_time(model: torch.nn.Module, live: LiveBytes):
    """Sequential CPU offload: each module's own weights count only while it runs (as
    accelerate's hooks move them in and out)."""

    def fetch(module, _args):
        live.hold(*module.parameters(recurse=False), *module.buffers(recurse=False))

    def release(module, _args, _out):
        live.drop(module)

    handles = []
    for m in model.modules():
        if next(m.parameters(recurse=False), None) is not None:
            handles += [m.register_forward_pre_hook(fetch), m.register_forward_hook(release)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class PipelineSim:
    """`family`'s pipeline with its transformer stored in `weights` (weight_formats keys:
    "fp16" for 16-bit, "fp8", GGUF type names, "nf4"), as fake modules built once."""

    def __init__(self, family: SimFamily, weights: str = "fp16"):
        self.family = family
        self.weights = weights
        # Built on meta outside the fake mode: fake parameters cannot be converted in place.
        texts = [meta_component(family.arch, t.component) for t in family.texts]
        transformer = store(meta_component(family.arch, "transformer"), weights)
        vae = meta_component(family.arch, "vae")
        self._fake = fake_mode()
        with self._fake:
            self.texts = [on_fake_cuda(m) for m in texts]
            self.transformer = on_fake_cuda(transformer)
            self.vae = on_fake_cuda(vae)

    @property
    def models(self) -> list[torch.nn.Module]:
        return [*self.texts, self.transformer, self.vae]

    def _run(self, name: str, model, mode: str, work) -> Stage:
        resident = {"none": self.models, "model": [model], "sequential": []}[mode]
        live = LiveBytes()
        seq = (
            _one_module_at_a_time(model, live) if mode == "sequential" else contextlib.nullcontext()
        )
        with self._fake, live, torch.no_grad(), seq:
            weights = live.hold(*resident)
            out = work()
            del out
        return Stage(name, weights, live.peak)

    def text_stage(self, i: int, mode: str) -> Stage:
        part, enc = self.family.texts[i], self.texts[i]

        def work():
            ids = torch.zeros(1, part.tokens, dtype=torch.long)
            kwargs = {"output_hidden_states": True} if part.hidden_states else {}
            if part.attention_mask:
                kwargs["attention_mask"] = torch.ones(1, part.tokens, dtype=torch.long)
            return enc(ids, **kwargs)

        return self._run(part.label, enc, mode, work)

    def transformer_stage(self, side: int, mode: str, batch: int = 1, cfg: bool = True) -> Stage:
        """One transformer call at `side` px; with `cfg`, on the doubled batch where the
        family's pipeline batches classifier-free guidance."""
        n = batch * (2 if cfg and self.family.cfg_batch else 1)
        label = f"transformer {side}x{side} {self.weights}"
        return self._run(
            label,
            self.transformer,
            mode,
            lambda: self.family.call(self.transformer, side // 8, n),
        )

    def decode_stage(self, side: int, mode: str, tile_px: int | None = None) -> Stage:
        from dreamwire.backend.engine.tiled_vae import tiled

        label = f"VAE decode {side}x{side}" + (f" tiles {tile_px}" if tile_px else "")
        with contextlib.ExitStack() as stack:
            if tile_px is not None:
                stack.enter_context(tiled(self.vae, True, tile_px))
                stack.enter_context(one_blend_row(self.vae))
            return self._run(label, self.vae, mode, lambda: self.family.decode(self.vae, side // 8))

    def stages(self, side: int, mode: str, tile_px: int | None = None) -> list[Stage]:
        return [
            *(self.text_stage(i, mode) for i in range(len(self.texts))),
            self.transformer_stage(side, mode),
            self.decode_stage(side, mode, tile_px),
        ]


# -- the real architecture's sizes (what MemoryFigures holds) ---------------------------------


@dataclass
class Figures:
    """Millions of parameters (buffers included: SD3's position table is one) of the
    meta-built architecture, and the shares the memory plan uses."""

    transformer_m: float
    text_m: dict[str, float]  # per text encoder, by label
    vae_m: float
    cast_share: float  # of the transformer's weights, stored in fp8 by layerwise casting
    largest_layer_m: float  # the transformer's largest linear layer
    largest_module_m: float  # any module's own weights, across the pipeline

    @property
    def text_total_m(self) -> float:
        return sum(self.text_m.values())


def _count(model: torch.nn.Module) -> int:
    # By storage, once: tied weights (T5's and Qwen3's embeddings) count one time.
    seen = {id(t): t.numel() for t in (*model.parameters(), *model.buffers())}
    return sum(seen.values())


def figures(family: SimFamily) -> Figures:
    texts = {t.label: meta_component(family.arch, t.component) for t in family.texts}
    transformer = meta_component(family.arch, "transformer")
    vae = meta_component(family.arch, "vae")
    total = _count(transformer)
    largest_layer = max(
        m.weight.numel() for m in transformer.modules() if isinstance(m, torch.nn.Linear)
    )
    largest_module = max(
        sum(t.numel() for t in (*m.parameters(recurse=False), *m.buffers(recurse=False)))
        for model in (*texts.values(), transformer, vae)
        for m in model.modules()
    )
    fp8 = store(transformer, "fp8")  # the same modules, cast where diffusers casts
    cast = sum(p.numel() for p in fp8.parameters() if p.dtype == torch.float8_e4m3fn)
    return Figures(
        transformer_m=total / 1e6,
        text_m={k: _count(m) / 1e6 for k, m in texts.items()},
        vae_m=_count(vae) / 1e6,
        cast_share=cast / total,
        largest_layer_m=largest_layer / 1e6,
        largest_module_m=largest_module / 1e6,
    )
