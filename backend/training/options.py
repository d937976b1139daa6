"""Training options under kohya_ss's names, with kohya_ss's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from dreamwire.shared.errors import DreamwireError, ErrorCode


@dataclass(frozen=True)
class LoraTrainOptions:
    # kohya_ss GUI defaults: network_dim 8, network_alpha 1, learning_rate 1e-4,
    # max_train_steps 1600, resolution 512,512, train_batch_size 1, AdamW, constant LR,
    # max_grad_norm 1.0 (sd-scripts' and diffusers' scripts' default).
    network_dim: int = 8  # rank
    network_alpha: float = 1.0  # the LoRA delta is scaled by alpha / rank
    learning_rate: float = 1e-4
    max_train_steps: int = 1600
    resolution: int = 512
    seed: int = 0
    max_grad_norm: float = 1.0  # 0 = no clipping, as in sd-scripts

    def __post_init__(self) -> None:
        problems = []
        if self.network_dim < 1:
            problems.append(f"rank must be at least 1 (got {self.network_dim})")
        if self.network_alpha <= 0:
            problems.append(f"alpha must be positive (got {self.network_alpha})")
        if not self.learning_rate > 0:
            problems.append(f"learning rate must be positive (got {self.learning_rate})")
        if self.max_train_steps < 1:
            problems.append(f"steps must be at least 1 (got {self.max_train_steps})")
        # The VAE works on 8-pixel cells.
        if self.resolution < 8 or self.resolution % 8:
            problems.append(f"resolution must be a multiple of 8 (got {self.resolution})")
        if problems:
            raise DreamwireError(ErrorCode.INVALID_JOB, "; ".join(problems))
