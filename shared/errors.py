"""Stable error codes shared by the backend, the wire and the hosts.

A code never changes meaning once released: hosts match on it to decide what to tell the
artist, so new situations get new codes rather than reusing old ones.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    # Job description problems (caught by Job.validate on both sides of the wire).
    INVALID_JOB = "invalid_job"
    INVALID_SIZE = "invalid_size"
    INVALID_IMAGE = "invalid_image"
    INVALID_MASK = "invalid_mask"
    INVALID_STRENGTH = "invalid_strength"
    UNKNOWN_SAMPLER = "unknown_sampler"
    INVALID_PROMPT = "invalid_prompt"
    INVALID_REGION = "invalid_region"  # a regional prompt (Job.regions)
    # Model library.
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_UNSAFE = "model_unsafe"
    MODEL_UNSUPPORTED = "model_unsupported"
    MODEL_CORRUPT = "model_corrupt"
    MODEL_MISMATCH = "model_mismatch"
    # A model made of several files lacks one (a Flux transformer without a T5, CLIP-L or
    # VAE, or without T5's tokenizer); the message names the file to add and where.
    MODEL_PART_MISSING = "model_part_missing"
    LORA_NOT_FOUND = "lora_not_found"
    CONTROLNET_NOT_FOUND = "controlnet_not_found"
    PREPROCESSOR_UNAVAILABLE = "preprocessor_unavailable"
    DATASET_EMPTY = "dataset_empty"  # a LoRA training folder with no images
    DATASET_UNREADABLE = "dataset_unreadable"  # a training image or caption that won't open
    # Wire and server.
    PROTOCOL_VERSION = "protocol_version"
    MALFORMED_MESSAGE = "malformed_message"
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    MESSAGE_TOO_LARGE = "message_too_large"
    LIMIT_EXCEEDED = "limit_exceeded"
    QUEUE_FULL = "queue_full"
    JOB_NOT_FOUND = "job_not_found"
    NOT_OWNER = "not_owner"  # a cancel for another client's job
    CANCELLED = "cancelled"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    BACKEND_LOST = "backend_lost"
    UNAUTHORIZED = "unauthorized"
    # Anything unexpected inside the engine: the message carries the detail.
    INTERNAL = "internal"
    OUT_OF_MEMORY = "out_of_memory"
    # The backend died twice while running this job; it is stored as failed, never rerun.
    POISON_JOB = "poison_job"


class DreamwireError(Exception):
    """An error with a stable code, safe to show to an artist and to send over the wire."""

    def __init__(self, code: ErrorCode | str, message: str, job_id: str = ""):
        self.code = ErrorCode(code)
        self.message = message
        self.job_id = job_id
        super().__init__(f"[{self.code.value}] {message}")

    def to_dict(self) -> dict:
        return {"code": self.code.value, "message": self.message, "job_id": self.job_id}

    @classmethod
    def from_dict(cls, data: dict) -> DreamwireError:
        try:
            code = ErrorCode(data.get("code", "internal"))
        except ValueError:
            code = ErrorCode.INTERNAL
        return cls(code, str(data.get("message", "")), str(data.get("job_id", "")))
