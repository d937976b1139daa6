"""Qwen2.5-VL's processor for the Qwen-Image-Edit pipelines (the picture into the text
encoder), built offline from a folder's files.

transformers 5 builds `Qwen2VLProcessor` with a video processor, which needs torchvision;
without it the constructor fails (`VIDEO_PROCESSOR_MAPPING` is a placeholder), though the
Edit pipelines never pass a video. `ImageOnlyQwenProcessor` is the same processor without
its video half (its `__call__` checks for the attribute), so the Edit models load on a
backend without torchvision too.

Where the files come from: a diffusers Edit folder's `processor/` (preprocessor_config.json
plus the tokenizer files); for a single-file model the image processor's settings are
transformers' `Qwen2VLImageProcessor` defaults, which are Qwen2.5-VL's own
preprocessor_config.json values (14 px patches, 2x2 merge, CLIP mean/std), and the
tokenizer the one the text encoder uses (qwen_tokenizer.py).
"""

from __future__ import annotations

from pathlib import Path

from transformers import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin


class ImageOnlyQwenProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without a video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", "<|image_pad|>")
        self.video_token = getattr(tokenizer, "video_token", "<|video_pad|>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def image_processor(folder: Path | None = None):
    from transformers import Qwen2VLImageProcessor

    if folder is not None and (folder / "preprocessor_config.json").is_file():
        return Qwen2VLImageProcessor.from_pretrained(str(folder), local_files_only=True)
    return Qwen2VLImageProcessor()


def load_processor(folder: Path, tokenizer=None) -> ImageOnlyQwenProcessor:
    """The processor of an Edit folder's `processor/` (its own tokenizer files unless
    `tokenizer` is given)."""
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return ImageOnlyQwenProcessor(image_processor(folder), tokenizer)
