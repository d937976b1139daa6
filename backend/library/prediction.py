"""What an SDXL checkpoint predicts, where its weights cannot tell: epsilon, or v with or
without zero terminal SNR (NoobAI-XL v-pred and the like).

Single files carry it as marker keys, empty tensors named ``v_pred`` and ``ztsnr``, as
ComfyUI (supported_models.SDXL.model_type: ``v_pred`` -> V_PREDICTION, and with it
``ztsnr`` -> zsnr sampling) and Forge/reForge read them; ``ztsnr`` without ``v_pred`` means
nothing there, nor here. A diffusers folder says it in its scheduler config
(``prediction_type``, ``rescale_betas_zero_snr``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

V_PRED_KEY = "v_pred"
ZTSNR_KEY = "ztsnr"


@dataclass(frozen=True)
class Prediction:
    v: bool = False
    ztsnr: bool = False  # zero terminal SNR rescaled betas (only with v)

    @property
    def label(self) -> str:
        """As the welcome lists it: "" for epsilon."""
        if not self.v:
            return ""
        return "v_prediction, zero terminal SNR" if self.ztsnr else "v_prediction"

    def scheduler_overrides(self) -> dict[str, Any]:
        """The scheduler config keys that make diffusers sample this model."""
        if not self.v:
            return {}
        return {"prediction_type": "v_prediction", "rescale_betas_zero_snr": self.ztsnr}

    def to_detail(self) -> dict[str, bool]:
        return {"v_pred": True, "ztsnr": self.ztsnr} if self.v else {}

    @classmethod
    def from_detail(cls, detail: dict) -> Prediction:
        return cls(bool(detail.get("v_pred")), bool(detail.get("ztsnr")))


def from_keys(keys) -> Prediction:
    """From a single file's tensor names."""
    v = V_PRED_KEY in keys
    return Prediction(v, v and ZTSNR_KEY in keys)


def from_scheduler_config(config: dict[str, Any]) -> Prediction:
    v = config.get("prediction_type") == "v_prediction"
    return Prediction(v, v and bool(config.get("rescale_betas_zero_snr")))


def of_folder(folder) -> Prediction:
    """From a diffusers folder's scheduler/scheduler_config.json (epsilon when unreadable)."""
    import json
    from pathlib import Path

    try:
        text = (Path(folder) / "scheduler" / "scheduler_config.json").read_text()
        return from_scheduler_config(json.loads(text))
    except (OSError, ValueError):
        return Prediction()


def applies_to(arch: str | None) -> bool:
    """The marker keys are SDXL's (ComfyUI reads them for SDXL checkpoints only)."""
    return bool(arch) and ("sdxl" in arch) and "refiner" not in arch
