"""Control images on the job's canvas: units that take the picture itself, and unit images
kept pixel-aligned with the picture when outpainting grows the canvas.

A ControlNet unit describes the artist's picture, so it must share the picture's
coordinates, as Krita AI Diffusion's control layers always do and as A1111's ControlNet
with inpaint_only / "Resize and Fill" outpainting arranges. The runner publishes how it laid
the picture out (backend/canvas/outpaint.Canvas: resized to the job size, then the border
added); this module lays control images out the same way:

  * a unit with no image uses the picture: the grown, filled canvas (preprocessors run on
    it, as A1111 runs them on the img2img input), and for the inpaint ControlNet the job's
    mask with the grown border marked to repaint;
  * a unit image of the init image's size, when the canvas grew, is resized like the
    picture and padded with the same border. What goes in the border depends on what the
    ControlNet reads (PAD_VALUES): an empty area of the map, so the model is told nothing
    there and the prompt fills it freely:
      - depth, canny, mlsd, softedge, scribble, lineart, lineart_anime, openpose, seg: 0.
        Black is "nothing" in each of these conventions: far/background depth (near is
        bright), no edge or line (the models read white lines on black), no skeleton, and
        ADE20K's unlabelled colour (shared/imaging/ade20k.colorize's background). It is also
        what an unpainted area of a Krita control layer sends (flattened over black);
      - normalbae: (127, 127, 255), a flat surface facing the camera: the background the
        Blender capture draws (shared/imaging/normals.FACING) and the one ControlNet 1.0's
        normal annotator (normal_midas) gives areas without geometry; black would be the
        invalid normal (-1, -1, -1);
      - inpaint: the border is masked (-1 after to_tensor), as A1111's inpaint preprocessors
        mark the area to outpaint; its colour is never read;
      - tile, ip2p, shuffle and the T2I colour adapter read the picture itself (colour: a
        coarse grid of its colours) rather than a map of it, so their image
        gets the picture's own border (A1111's fill, outpaint.grow): given the init image
        they see exactly the grown canvas the sampler starts from. A preprocessor (e.g.
        tile_resample, shuffle) then runs on the grown image, as for a unit with no image.
    Other map types run their preprocessor before padding, so edges are never detected
    along the seam between the picture and its border.

The result is canvas-sized; the pass then resizes it to its generation size with
just_resize, as the picture itself is resized, whatever the unit's resize mode (a resize
mode that crops or letterboxes would shift it off the picture).

A unit image the size of the grown canvas (what the Krita plugin sends: its control layers
are read over the whole region the job covers, border included) is already laid out with
the picture. When outpainting it too goes to the generation size with just_resize, the
picture's own operation: the grown canvas is rounded up to a multiple of 8, which the
picture takes by stretching, while the default crop_and_resize would scale both sides by
the larger factor and crop the excess off the other, shifting the map a pixel or two off
the picture. For the inpaint ControlNet its
mask is the sampler's: the job's mask grown with the border (canvas.mask), so the border is
repainted; the job's own mask (init-image pixels) stretched over the canvas would leave
the border unmarked. An image that matches both sizes (the init image shrunk to the job
size, then grown back to its own size) is taken as init-image-sized, as before.

Unit images of any other size, and all unit images of jobs that do not outpaint, keep
their own resize mode: A1111's ControlNet extension resizes a unit's own image with the
unit's resize mode even in img2img (only a unit without an image takes the img2img resize
mode, with the init image: here just_resize, the picture's).
"""

from __future__ import annotations

import numpy as np

from dreamwire.backend.canvas.outpaint import Canvas, pad
from dreamwire.shared.errors import DreamwireError, ErrorCode
from dreamwire.shared.imaging.normals import FACING

from . import control_image

PICTURE_TYPES = ("tile", "ip2p", "shuffle", "color")
PAD_VALUES: dict[str, tuple[int, int, int]] = {
    "normalbae": FACING,
}
BLACK = (0, 0, 0)
MASKED = 255


def pad_value(kind: str) -> tuple[int, int, int]:
    return PAD_VALUES.get(kind, BLACK)


def picture(canvas: Canvas | None, kind: str, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB, inpaint mask or None) for a unit with no image of its own."""
    if canvas is None:
        raise DreamwireError(
            ErrorCode.INVALID_IMAGE, f"{where}: no image, and the job has no picture to use"
        )
    mask = None
    if kind == "inpaint":
        mask = (
            canvas.mask if canvas.mask is not None else np.zeros(canvas.image.shape[:2], np.uint8)
        )
    return canvas.image, mask


def aligned(canvas: Canvas | None, image: np.ndarray) -> bool:
    """Whether a unit image is laid out on the grown canvas rather than resized to it."""
    return canvas is not None and canvas.grown and canvas.matches_original(image)


def canvas_sized(canvas: Canvas | None, image: np.ndarray) -> bool:
    """Whether a unit image already covers the grown canvas (and is not init-image-sized):
    it is resized to the generation size exactly as the picture is."""
    return (
        canvas is not None
        and canvas.grown
        and canvas.matches_canvas(image)
        and not canvas.matches_original(image)
    )


def canvas_mask(canvas: Canvas, job_mask: bool, alpha: np.ndarray | None) -> np.ndarray:
    """The inpaint ControlNet's mask for a canvas-sized image: the mask the sampler uses
    (the job's mask resized like the picture, border marked). Without a job mask the image's
    alpha marks the inside too, as pad_map grows an init-image-sized alpha with the border."""
    mask = canvas.mask
    if mask is None:  # not reached: a grown canvas belongs to an inpaint job
        mask = pad(np.zeros(canvas.picture[::-1], np.uint8), canvas.border, MASKED)
    if not job_mask and alpha is not None:
        mask = np.maximum(mask, alpha)
    return mask


def pad_map(
    canvas: Canvas, kind: str, rgb: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A control map (and inpaint mask) of the init image's size, resized like the picture
    (the control-image interpolation: nearest for poses and segmentation, crisp edges) and
    padded with the border: the type's empty value, and "repaint" in the mask."""
    w, h = canvas.picture
    rgb = pad(control_image.resize(rgb, w, h, "just_resize"), canvas.border, pad_value(kind))
    if kind == "inpaint":
        if mask is None:
            mask = np.zeros(canvas.original[::-1], np.uint8)
        mask = control_image.resize(mask, w, h, "just_resize", nearest=True)
    if mask is not None:
        mask = pad(mask, canvas.border, MASKED)
    return rgb, mask
