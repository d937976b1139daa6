"""What `Client.poll()` returns: one small dataclass per thing that happened.

Hosts dispatch on the event type from a timer on their UI thread; none of these hold a
socket or a lock, so they can be kept or passed around freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import DreamwireError
from .families import FamilyInfo, GenerationDefaults
from .result import JobResult, Progress

# Connection states, as Client.state and ConnectionChanged.state report them.
CONNECTING = "connecting"
CONNECTED = "connected"
LOST = "lost"
INCOMPATIBLE = "incompatible"
UNAUTHORIZED = "unauthorized"
CLOSED = "closed"


@dataclass
class WorkerStatus:
    """One worker of `welcome.workers`: its name, device, the checkpoints it holds loaded,
    its process id, the job it is running ("" when idle) and the bytes of RAM and VRAM free
    for its next job (None: not known, as VRAM on a CPU worker)."""

    name: str
    device: str = ""
    models: list[str] = field(default_factory=list)
    pid: int = 0
    job: str = ""
    ram_free: int | None = None
    vram_free: int | None = None

    @classmethod
    def from_wire(cls, body: Any) -> WorkerStatus | None:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return None
        text = {k: body.get(k) if isinstance(body.get(k), str) else "" for k in ("device", "job")}
        pid = _count(body.get("pid"))
        return cls(
            body["name"],
            models=_strings(body.get("models")),
            pid=pid or 0,
            ram_free=_count(body.get("ram_free")),
            vram_free=_count(body.get("vram_free")),
            **text,
        )


def _count(value: Any) -> int | None:
    """A whole number of the wire (not a bool, not negative); None otherwise."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok else None


@dataclass
class Welcome:
    """The backend's self-description, sent in answer to hello (and after a reconnect).

    Every key PROTOCOL.md documents has a typed field, read defensively: a value of the wrong
    shape (an older or a hostile backend) becomes the field's empty default, never an
    exception in a host's timer. Keys this client does not know stay in `extra`."""

    protocol: int
    server_version: str
    server_id: str  # changes when the backend process restarts
    device: str = ""
    vram_free: int | None = None  # bytes; None when not known (CPU)
    models: list[Any] = field(default_factory=list)
    vaes: list[Any] = field(default_factory=list)
    loras: list[Any] = field(default_factory=list)
    embeddings: list[Any] = field(default_factory=list)
    controlnets: list[Any] = field(default_factory=list)
    samplers: list[Any] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    # Queue classes the backend knows, best first ("live" only where it has it).
    priorities: list[str] = field(default_factory=list)
    # "Lanczos", "Nearest", then upscaler models; [] from a backend that does not say.
    upscalers: list[str] = field(default_factory=list)
    model_families: dict[str, str] = field(default_factory=dict)  # checkpoint -> family key
    # {LoRA: the family keys it fits} for the LoRAs whose header tells; a LoRA absent here
    # (or any LoRA, from a backend that does not say) is of unknown family: fit for all.
    lora_families: dict[str, list[str]] = field(default_factory=dict)
    default_model: str = ""  # what a job naming no model runs on ("" = none installed)
    # {family: {control type: the file(s) a unit naming no model would use}}
    control_types: dict[str, dict[str, str]] = field(default_factory=dict)
    # {family: {control type: why it cannot be served, naming the file to add}}
    control_missing: dict[str, dict[str, str]] = field(default_factory=dict)
    # {checkpoint: what it lacks to load, naming the file to add} (a Flux transformer file
    # without its T5, CLIP-L, VAE or T5 tokenizer); models absent here are complete.
    model_missing: dict[str, str] = field(default_factory=dict)
    # {checkpoint: how its weights are stored ("GGUF Q4_K", NF4 expanded ...)}, text for the
    # artist; models absent here are stored at full precision (or the backend does not say).
    model_weights: dict[str, str] = field(default_factory=dict)
    # {checkpoint: what it predicts} for models that are not epsilon models ("v_prediction",
    # "v_prediction, zero terminal SNR": NoobAI-XL v-pred), so a host can suggest CFG rescale.
    model_prediction: dict[str, str] = field(default_factory=dict)
    # {checkpoint: the job modes it runs} ("edit" only on edit models: Flux Kontext), from
    # its catalog variant; {} from a backend that does not say.
    model_modes: dict[str, list[str]] = field(default_factory=dict)
    # {family key: what the backend runs with it}: label, sizes, defaults, modes, features.
    families: dict[str, FamilyInfo] = field(default_factory=dict)
    # {PBR map: the Marigold models that make it, the one a job naming none uses first}
    # (shared/materials.py); {} when none is installed or the backend does not say, so a
    # host offers PBR maps only for the maps listed here.
    materials: dict[str, list[str]] = field(default_factory=dict)
    # AnimateDiff motion modules by name (shared/animatediff.py); [] when none is installed
    # or the backend does not say, so a host offers the AnimateDiff mode only with one.
    motion_modules: list[str] = field(default_factory=list)
    # The control-unit preprocessors the backend knows by name (a preprocess job's and a
    # unit's); [] from a backend that does not say, which runs no preprocess job either.
    preprocessors: list[str] = field(default_factory=list)
    # {checkpoint: its own defaults} where they differ from its family's (Flux schnell's
    # 4 steps, Kontext's Distilled CFG 2.5); {} from a backend that does not say.
    model_defaults: dict[str, GenerationDefaults] = field(default_factory=dict)
    # What runs the jobs (PROTOCOL.md, "Workers"): one in-process worker, or Ray actors.
    workers: list[WorkerStatus] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # capability keys this client does not know

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Welcome:
        known = set(cls.__dataclass_fields__) - {"extra"}
        kw = {k: body[k] for k in known if k in body}
        kw.setdefault("protocol", 0)
        kw.setdefault("server_version", "")
        kw.setdefault("server_id", "")
        for name in ("priorities", "upscalers", "motion_modules", "preprocessors"):
            kw[name] = _strings(kw.get(name))
        kw["model_families"] = _string_map(kw.get("model_families"))
        for name in ("model_missing", "model_weights", "model_prediction"):
            kw[name] = _string_map(kw.get(name))
        for name in ("model_modes", "lora_families"):
            value = kw.get(name)
            value = value if isinstance(value, dict) else {}
            kw[name] = {str(k): _strings(v) for k, v in value.items() if isinstance(v, list)}
        maps = kw.get("materials")
        maps = maps if isinstance(maps, dict) else {}
        kw["materials"] = {str(k): _strings(v) for k, v in maps.items() if _strings(v)}
        kw["default_model"] = (
            kw.get("default_model") if isinstance(kw.get("default_model"), str) else ""
        )
        for name in ("control_types", "control_missing"):
            value = kw.get(name)
            value = value if isinstance(value, dict) else {}
            kw[name] = {str(k): _string_map(v) for k, v in value.items() if isinstance(v, dict)}
        raw = kw.get("families")
        infos = {
            str(k): FamilyInfo.from_wire(k, v)
            for k, v in (raw if isinstance(raw, dict) else {}).items()
        }
        kw["families"] = {k: v for k, v in infos.items() if v is not None}
        kw["model_defaults"] = _defaults_map(kw.get("model_defaults"))
        raw = kw.get("workers")
        kw["workers"] = [
            w for w in map(WorkerStatus.from_wire, raw if isinstance(raw, list) else []) if w
        ]
        return cls(**kw, extra={k: v for k, v in body.items() if k not in known})

    def family(self, model: str) -> FamilyInfo | None:
        """What this backend says about `model`'s family (None: it did not say)."""
        return self.families.get(self.model_families.get(model, ""))


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str) and v.strip()]


def _defaults_map(value: Any) -> dict[str, GenerationDefaults]:
    """{checkpoint: defaults}, a damaged entry dropped (its model keeps its family's)."""
    out: dict[str, GenerationDefaults] = {}
    for name, body in (value if isinstance(value, dict) else {}).items():
        if not isinstance(body, dict):
            continue
        try:
            out[str(name)] = GenerationDefaults.from_wire(body)
        except (TypeError, ValueError, AttributeError):
            continue
    return out


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


@dataclass
class Accepted:
    job_id: str
    position: int  # jobs ahead of this one, the running job included
    reattached: bool = False  # True when this answers a fetch after a reconnect


@dataclass
class ProgressEvent:
    progress: Progress

    @property
    def job_id(self) -> str:
        return self.progress.job_id


@dataclass
class ResultEvent:
    result: JobResult

    @property
    def job_id(self) -> str:
        return self.result.job_id


@dataclass
class ErrorEvent:
    error: DreamwireError

    @property
    def job_id(self) -> str:
        return self.error.job_id


@dataclass
class Cancelled:
    job_id: str
    message: str = ""  # why, when the backend cancelled it itself (a superseded live job)


# The events about one job, each with its `job_id`: what a follower of several jobs (the
# fan-out) reads.
JOB_EVENTS = (Accepted, ProgressEvent, ResultEvent, ErrorEvent, Cancelled)
JobEvent = Accepted | ProgressEvent | ResultEvent | ErrorEvent | Cancelled


@dataclass
class ModelsEvent:
    """Answer to Client.list_models(): the same capability lists as in Welcome."""

    capabilities: dict[str, Any]


@dataclass
class ModelsChanged:
    """Pushed by the backend, unasked: its model library changed (a merge or convert wrote
    into a model folder, a file was added or removed). The client's `welcome` already holds
    the new lists when a host sees this."""

    capabilities: dict[str, Any]


@dataclass
class ConnectionChanged:
    state: str  # one of the states above
    detail: str = ""
