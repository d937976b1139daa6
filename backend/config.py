"""Backend settings from a TOML file, merged with the command line.

The file is $DREAMWIRE_CONFIG, else ~/.config/dreamwire/config.toml (honouring
$XDG_CONFIG_HOME). A missing file is not an error: the command line may say everything.

    model_roots = ["~/stable-diffusion-webui", "~/ComfyUI/models"]
    output_dir = "~/Pictures/dreamwire"
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dreamwire.shared.errors import DreamwireError, ErrorCode

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass
class Config:
    model_roots: list[Path] = field(default_factory=list)
    output_dir: Path | None = None
    source: Path | None = None  # the file it came from, if any


def config_path() -> Path:
    if env := os.environ.get("DREAMWIRE_CONFIG"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "dreamwire" / "config.toml"


def load_config(path: Path | str | None = None) -> Config:
    path = Path(path).expanduser() if path is not None else config_path()
    if not path.is_file():
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DreamwireError(
            ErrorCode.INVALID_JOB, f"config file {path} is not valid TOML: {exc}"
        ) from exc
    roots = data.get("model_roots", [])
    if isinstance(roots, str):
        roots = [roots]
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise DreamwireError(ErrorCode.INVALID_JOB, f"{path}: model_roots must be a list of paths")
    out = data.get("output_dir")
    if out is not None and not isinstance(out, str):
        raise DreamwireError(ErrorCode.INVALID_JOB, f"{path}: output_dir must be a path")
    # Relative paths in the file are relative to the file, not to wherever the command runs.
    return Config(
        model_roots=[_resolve(r, path.parent) for r in roots],
        output_dir=_resolve(out, path.parent) if out else None,
        source=path,
    )


def _resolve(text: str, base: Path) -> Path:
    p = Path(os.path.expandvars(text)).expanduser()
    return p if p.is_absolute() else base / p


def model_roots(
    cli_roots: list[Path | str] | None = None, config: Config | None = None
) -> list[Path]:
    """Command-line roots first (they win name clashes), then the config's, without repeats."""
    config = config if config is not None else load_config()
    merged: list[Path] = []
    for root in [*(Path(r).expanduser() for r in cli_roots or []), *config.model_roots]:
        if root not in merged:
            merged.append(root)
    return merged


def output_dir(cli_out: Path | str | None = None, config: Config | None = None) -> Path:
    if cli_out is not None:
        return Path(cli_out).expanduser()
    config = config if config is not None else load_config()
    return config.output_dir or Path.cwd() / "out"
