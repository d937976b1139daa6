"""ModelLibrary: every model under the configured roots, by kind and A1111 name."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from dreamwire.backend.library import hashing
from dreamwire.backend.library.entries import Format, Kind, ModelEntry
from dreamwire.backend.library.scan import KIND_FOLDERS, SUFFIXES, scan_root, strip_suffix
from dreamwire.shared.errors import DreamwireError, ErrorCode

DEFAULT_CHECKPOINT = "tiny-sd1"

_NOT_FOUND = {
    Kind.LORA: ErrorCode.LORA_NOT_FOUND,
    Kind.CONTROLNET: ErrorCode.CONTROLNET_NOT_FOUND,
}
# A1111 titles look like "sd15/model.safetensors [0123456789]".
_TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]\s*$")


def parse_kind(kind: Kind | str) -> Kind:
    if isinstance(kind, Kind):
        return kind
    text = str(kind).strip().lower()
    aliases = {k.value: k for k in Kind}
    aliases |= {k.value + "s": k for k in Kind}
    for k, names in KIND_FOLDERS.items():
        for name in names:
            # A folder name two kinds share (ComfyUI's `diffusers`) stays the first's.
            aliases.setdefault(name.lower(), k)
    aliases |= {"model": Kind.CHECKPOINT, "models": Kind.CHECKPOINT, "upscale": Kind.UPSCALER}
    try:
        return aliases[text]
    except KeyError:
        raise DreamwireError(
            ErrorCode.INVALID_JOB,
            f"unknown model kind {kind!r}; known: {', '.join(k.value for k in Kind)}",
        ) from None


def check_name(name: str) -> str:
    """A model name is a relative path inside a kind folder; anything that could reach
    outside it (absolute paths, `..`, drive letters, NUL) is refused outright."""
    if not isinstance(name, str) or not name.strip():
        raise DreamwireError(ErrorCode.MODEL_NOT_FOUND, "empty model name")
    text = name.strip().replace("\\", "/")
    parts = PurePosixPath(text).parts
    if (
        "\x00" in text
        or text.startswith("/")
        or re.match(r"^[A-Za-z]:", text)
        or any(part == ".." for part in parts)
    ):
        raise DreamwireError(
            ErrorCode.MODEL_NOT_FOUND,
            f"model name {name!r} is refused: names are paths inside the model folders "
            "and may not be absolute or contain '..'",
        )
    return "/".join(p for p in parts if p != ".")


class ModelLibrary:
    def __init__(self, roots: Iterable[Path | str] = ()):
        self.roots = [Path(r).expanduser() for r in roots]
        self.refresh()

    def refresh(self) -> None:
        entries: list[ModelEntry] = []
        for root in self.roots:
            entries += scan_root(root)
        self._entries = entries

    # ---- listing
    def entries(self, kind: Kind | str | None = None) -> list[ModelEntry]:
        if kind is None:
            return list(self._entries)
        kind = parse_kind(kind)
        return [e for e in self._entries if e.kind == kind]

    def names(self, kind: Kind | str) -> list[str]:
        seen: list[str] = []
        for entry in self.entries(kind):
            if entry.name not in seen:
                seen.append(entry.name)
        return seen

    def summary(self) -> dict[str, list[str]]:
        """Names per kind, for a capability report."""
        return {kind.value: self.names(kind) for kind in Kind}

    def default_checkpoint(self) -> ModelEntry:
        names = self.names(Kind.CHECKPOINT)
        if DEFAULT_CHECKPOINT in names:
            return self.find(Kind.CHECKPOINT, DEFAULT_CHECKPOINT)
        # A Flux Control model (flux1-canny-dev sorts before flux1-dev) runs only through a
        # control unit: never the model a job naming none runs on, while another is there.
        alone = [e.name for e in self.entries(Kind.CHECKPOINT) if not e.control_model]
        if alone:
            return self.find(Kind.CHECKPOINT, alone[0])
        if not names:
            raise DreamwireError(
                ErrorCode.MODEL_NOT_FOUND,
                "no checkpoints found under "
                + (", ".join(str(r) for r in self.roots) or "any model root")
                + " (build the tiny test models with `dreamwire models tiny DIR`)",
            )
        return self.find(Kind.CHECKPOINT, names[0])

    # ---- lookup
    def find(self, kind: Kind | str, name: str) -> ModelEntry:
        """The entry for an A1111-style name, with or without extension or a " [hash]" suffix."""
        kind = parse_kind(kind)
        wanted = check_name(_TITLE_HASH.sub("", name))
        candidates = self.entries(kind)
        stem = strip_suffix(wanted, kind)
        for test in (
            lambda e: e.path.name == PurePosixPath(wanted).name and _rel(e) == wanted,
            lambda e: e.name == wanted,
            lambda e: e.name == stem,
            lambda e: e.name.lower() == stem.lower(),
            # A bare filename finds a model in a subfolder, as A1111 does.
            lambda e: "/" not in stem and e.name.rsplit("/", 1)[-1] == stem,
        ):
            matches = [e for e in candidates if test(e)]
            if matches:
                return _prefer_safe(matches)
        raise DreamwireError(
            _NOT_FOUND.get(kind, ErrorCode.MODEL_NOT_FOUND), self._missing(kind, name)
        )

    def find_by_hash(self, kind: Kind | str, short: str) -> ModelEntry | None:
        """The entry whose A1111 short hash (or full sha256 prefix) matches, hashing lazily."""
        short = short.strip().lower()
        for entry in self.entries(kind):
            if entry.format != Format.DIFFUSERS and self.sha256(entry).startswith(short):
                return entry
        return None

    def _missing(self, kind: Kind, name: str) -> str:
        names = self.names(kind)
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
        where = ", ".join(str(r) for r in self.roots) or "no model roots configured"
        text = f"no {kind.value} named {name!r} in {where}"
        if close:
            return f"{text}; did you mean: {', '.join(close)}?"
        if names:
            more = f" (and {len(names) - 10} more)" if len(names) > 10 else ""
            return f"{text}; available: {', '.join(names[:10])}{more}"
        folders = "/".join(KIND_FOLDERS[kind])
        return f"{text}; no {kind.value} files found (looked in {folders} folders)"

    # ---- hashes
    def sha256(self, entry: ModelEntry) -> str:
        if entry.format == Format.DIFFUSERS:
            return hashing.folder_sha256(entry.path)
        return hashing.sha256(entry.path)

    def short_hash(self, entry: ModelEntry) -> str:
        """A1111's "Model hash" (first 10 hex digits of the sha256)."""
        return self.sha256(entry)[:10]

    def missing_parts(self) -> dict[str, str]:
        """{checkpoint name: why it cannot load, naming the file to add} for the models
        made of several files that lack one (Flux, SD3, Z-Image transformer files); read from
        headers and folders only, so a welcome can say it without loading anything."""
        from dreamwire.backend.library.loading import unsupported

        missing: dict[str, str] = {}
        for entry in self.entries(Kind.CHECKPOINT):
            if entry.name in missing:
                continue
            if why := unsupported(entry):
                missing[entry.name] = why
                continue
            try:
                self._sources(entry)
            except DreamwireError as exc:
                missing[entry.name] = exc.message
        return missing

    def _sources(self, entry: ModelEntry) -> dict:
        """The other files a transformer-only checkpoint (Flux, SD3, Z-Image, Qwen-Image) loads
        with, as load_pipeline's keyword; empty for a checkpoint that holds all it needs."""
        from dreamwire.backend.library import (
            flux2_parts,
            flux_parts,
            qwen_parts,
            sd3_parts,
            zimage_parts,
        )
        from dreamwire.backend.library.qwen_identify import is_qwen_file

        if flux_parts.is_flux_file(entry):
            return {"flux": flux_parts.gather(entry, self._entries, self.roots)}
        if sd3_parts.is_sd3_file(entry):
            return {"sd3": sd3_parts.gather(entry, self._entries, self.roots)}
        if zimage_parts.is_zimage_file(entry):
            return {"zimage": zimage_parts.gather(entry, self._entries, self.roots)}
        if is_qwen_file(entry):
            return {"qwen": qwen_parts.gather(entry, self._entries, self.roots)}
        if flux2_parts.is_flux2_file(entry):
            return {"flux2": flux2_parts.gather(entry, self._entries, self.roots)}
        return {}

    # ---- loading
    def load_pipeline(self, entry: ModelEntry | str, torch_dtype=None):
        from dreamwire.backend.library.loading import load_pipeline, unsupported

        if isinstance(entry, str):
            entry = self.find(Kind.CHECKPOINT, entry)
        if why := unsupported(entry):  # before its parts are looked for (Klein 9B's files)
            raise DreamwireError(ErrorCode.MODEL_UNSUPPORTED, why)
        # A transformer file takes its text encoders and VAE from the other folders.
        return load_pipeline(entry, torch_dtype=torch_dtype, **self._sources(entry))

    def load_vae(self, entry: ModelEntry | str, for_arch: str | None = None, torch_dtype=None):
        from dreamwire.backend.library.loading import load_vae

        if isinstance(entry, str):
            entry = self.find(Kind.VAE, entry)
        return load_vae(entry, for_arch=for_arch, torch_dtype=torch_dtype)


def _rel(entry: ModelEntry) -> str:
    if entry.root is None:
        return entry.path.name
    return entry.path.relative_to(entry.root).as_posix()


def _prefer_safe(matches: list[ModelEntry]) -> ModelEntry:
    """Same name in several formats: prefer safetensors, then diffusers, GGUF, pickles."""
    order = {Format.SAFETENSORS: 0, Format.DIFFUSERS: 1, Format.GGUF: 2, Format.PICKLE: 3}
    return sorted(matches, key=lambda e: order[e.format])[0]


__all__ = ["ModelLibrary", "parse_kind", "check_name", "SUFFIXES"]
