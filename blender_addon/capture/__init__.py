"""Scene capture: the thin bpy side. It reads scene data, renders, and hands numpy arrays
to the plain-Python conventions in ..core and dreamwire.shared.imaging.

API (all images H x W x 3 uint8 RGB, top row first, ready for a ControlUnit):

    camera_model(scene, camera=None, width=None, height=None) -> core.camera.CameraModel
    render_passes(scene, camera=None, width=None, height=None, *, color=False,
                  samples=1, kinds=None) -> RenderPasses  # one Cycles render: the data
                  # passes the kinds ("depth", "normals", "segmentation") need; None: all
    capture_depth(scene, camera=None, width=None, height=None, *, mode="linear",
                  gamma=1.0, passes=None) -> np.ndarray        # near bright, bg black
    capture_motion(scene, camera=None, width=None, height=None, *,
                   passes=None) -> FrameMotion  # vectors, depth, ids (shared.animation)
    capture_normals(scene, camera=None, width=None, height=None, *,
                    background=(127, 127, 255), passes=None) -> np.ndarray  # normalbae
    capture_segmentation(scene, camera=None, width=None, height=None, *, default=None,
                         guess_names=True, passes=None) -> (np.ndarray, labels int32)
    capture_color(scene, camera=None, width=None, height=None, *,
                  samples=None) -> np.ndarray    # the scene's own look (view transform)
    capture_pose(scene, camera=None, width=None, height=None, *, armatures=None,
                 overrides=None, skeleton=None) -> (PoseFrame, np.ndarray)
    capture_face(scene, camera=None, width=None, height=None, *,
                 objects=None) -> np.ndarray  # MediaPipe face (face_* vertex groups)
    capture_all(scene, camera=None, width=None, height=None, *, kinds=(...)) -> dict
    store_image(name, array, *, non_color=True) -> bpy.types.Image  # show it in Blender

`camera` defaults to scene.camera; width/height default to the scene's render size
(resolution x percentage). Pass one RenderPasses to several captures to render once;
capture_all renders only the passes its kinds need.
Failures the artist can fix (no camera, unknown bone names, ...) raise CaptureError with
a plain message. The ADE20K class of an object or material is its custom property
core.segmentation.CLASS_PROPERTY ("dreamwire_seg_class"), a class name or id.
Per-bone pose overrides: {"left_wrist": "hand_ctrl.L", "nose": ("head", "tail"), ...}.
"""

from .api import (
    CaptureError,
    RenderPasses,
    camera_model,
    capture_all,
    capture_color,
    capture_depth,
    capture_face,
    capture_motion,
    capture_normals,
    capture_pose,
    capture_segmentation,
    render_passes,
    store_image,
)

__all__ = [
    "CaptureError",
    "RenderPasses",
    "camera_model",
    "capture_all",
    "capture_color",
    "capture_depth",
    "capture_face",
    "capture_motion",
    "capture_normals",
    "capture_pose",
    "capture_segmentation",
    "render_passes",
    "store_image",
]
