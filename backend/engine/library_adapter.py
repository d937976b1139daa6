"""The engine's only view of the model library: find entries, load them, name them.

Kept in one place so that the library's API can move without touching the runner.
"""

from __future__ import annotations

from dreamwire import catalog
from dreamwire.backend.library import Kind, ModelEntry


def family(arch: str | None) -> str:
    return catalog.family_of(arch)


def variant(arch: str | None) -> str:
    """The catalog's variant of the architecture ("" = a plain one): the memory plan counts
    a variant with its own figures (SD3.5 Medium) by them."""
    return catalog.variant_of(arch)


def checkpoint(library, name: str) -> ModelEntry:
    return library.find(Kind.CHECKPOINT, name)


def vae(library, name: str) -> ModelEntry:
    return library.find(Kind.VAE, name)


def names(library, kind: str) -> list[str]:
    return library.names(kind)


def families(library) -> dict[str, str]:
    """{checkpoint name: "sd1" | "sd2" | "sdxl"}, from the architectures the scan read from
    each file's header, so hosts can size jobs for the model's native resolution."""
    out: dict[str, str] = {}
    for entry in library.entries("checkpoint"):
        out.setdefault(entry.name, family(entry.arch))
    return out


def predictions(library) -> dict[str, str]:
    """{checkpoint: what it predicts} for those that are not epsilon models: an SD2 768-v
    "v_prediction", an SDXL v-pred file or folder "v_prediction" or "v_prediction, zero
    terminal SNR" (library/prediction.py)."""
    from dreamwire.backend.library.prediction import Prediction

    out: dict[str, str] = {}
    for entry in library.entries("checkpoint"):
        if entry.name in out:
            continue
        label = Prediction.from_detail(entry.detail).label
        if not label and (entry.arch or "").startswith("sd2-v"):
            label = "v_prediction"
        if label:
            out[entry.name] = label
    return out


def checkpoint_archs(library) -> dict[str, tuple[str, str]]:
    """{checkpoint name: (family, arch)}, the first entry of a name as `families` takes it."""
    out: dict[str, tuple[str, str]] = {}
    for entry in library.entries("checkpoint"):
        out.setdefault(entry.name, (family(entry.arch), entry.arch or ""))
    return out


def missing_parts(library) -> dict[str, str]:
    """{checkpoint: what it lacks, naming the file to add} (Flux files without a T5 ...)."""
    return library.missing_parts()


def stored_formats(library) -> dict[str, str]:
    """{checkpoint: how its weights are stored ("GGUF Q4_K" ...)} for those not stored at
    full precision, from the headers."""
    from dreamwire.backend.library.sizes import stored_label

    out: dict[str, str] = {}
    for entry in library.entries("checkpoint"):
        label = stored_label(entry)
        if label and entry.name not in out:
            out[entry.name] = label
    return out


def unsupported(library) -> set[str]:
    """The checkpoints identified but not run (Flux.2 Klein single files, Klein 9B ...)."""
    from dreamwire.backend.library.loading import unsupported as why

    return {e.name for e in library.entries("checkpoint") if why(e)}


def params(entry: ModelEntry) -> int | None:
    """Parameters loading `entry` puts in memory, from its headers (None: unknown)."""
    from dreamwire.backend.library.sizes import checkpoint_params

    return checkpoint_params(entry)


def weights(entry: ModelEntry):
    """The format its denoiser is stored in (GGUF Q4_0, fp8 ...), from its header."""
    from dreamwire.backend.library.sizes import checkpoint_weights

    return checkpoint_weights(entry)


def short_hash(library, entry: ModelEntry) -> str:
    return library.short_hash(entry)


def default_checkpoint(library) -> str:
    return library.default_checkpoint().name


def load_pipeline(library, entry: ModelEntry, dtype):
    return library.load_pipeline(entry, torch_dtype=dtype)


def load_vae(library, entry: ModelEntry, for_arch: str | None, dtype):
    return library.load_vae(entry, for_arch=for_arch, torch_dtype=dtype)


def denoiser_config(entry: ModelEntry, component: str) -> dict | None:
    """The checkpoint's UNet or transformer config, read from files without loading."""
    from dreamwire.backend.library.denoiser_config import denoiser_config as read

    return read(entry, component)


def require_arch(entry: ModelEntry) -> str:
    """Its architecture, or loading's refusal (unknown, unreadable)."""
    from dreamwire.backend.library.loading import require_arch as check

    return check(entry)
