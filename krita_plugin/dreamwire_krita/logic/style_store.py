"""The artist's styles as JSON files in a folder of Krita's resource folder, beside the
shipped ones: load (a broken file is reported and skipped), save, delete."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .styles import SHIPPED, Style, StyleError, from_json

SUBFOLDER = ("dreamwire", "styles")  # under Krita's resource folder


def styles_folder(resource_dir: str | Path) -> Path:
    return Path(resource_dir).joinpath(*SUBFOLDER)


@dataclass
class Loaded:
    styles: list[Style] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per file skipped


class StyleStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.paths: dict[str, Path] = {}  # the artist's styles by name, as last loaded

    def load(self) -> Loaded:
        """The shipped styles (a file with the same name replaces one in its place), then
        the artist's, by name. A file that cannot be read is named in `problems`."""
        out = Loaded()
        own: dict[str, Style] = {}
        self.paths = {}
        files = sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []
        for path in files:
            try:
                style = from_json(path.read_text(encoding="utf-8"), path.name)
            except (OSError, UnicodeDecodeError) as exc:
                out.problems.append(f"{path.name}: could not be read ({exc})")
                continue
            except StyleError as exc:
                out.problems.append(str(exc))
                continue
            if style.name in own:
                out.problems.append(
                    f"{path.name}: a style named {style.name!r} is in "
                    f"{self.paths[style.name].name} already; this one is skipped"
                )
                continue
            own[style.name] = style
            self.paths[style.name] = path
        for shipped in SHIPPED:
            out.styles.append(own.pop(shipped.name, shipped))
        out.styles += sorted(own.values(), key=lambda s: s.name.casefold())
        return out

    def save(self, style: Style) -> Path:
        """Write `style` (over the artist's style of the same name, if any); StyleError
        saying where it could not be written."""
        path = self.paths.get(style.name) or self._new_path(style.name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(replace(style, builtin=False).to_json(), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise StyleError(f"Could not save the style in {self.folder}: {exc}") from None
        self.paths[style.name] = path
        return path

    def delete(self, name: str) -> None:
        path = self.paths.get(name)
        if path is None:
            raise StyleError(f"{name!r} is a shipped style: it cannot be deleted")
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StyleError(f"Could not delete {path}: {exc}") from None
        del self.paths[name]

    def _new_path(self, name: str) -> Path:
        stem = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "style"
        taken = {p.name for p in self.paths.values()}
        path, n = self.folder / f"{stem}.json", 1
        while path.name in taken or path.exists():
            n += 1
            path = self.folder / f"{stem}-{n}.json"
        return path
