"""Temporally consistent animation from true motion, in plain numpy (it runs inside
Blender, the backend's CLI and the bench alike).

`motion` holds one frame's motion, depth and object ids (and Blender's Vector pass
conventions), `warp` moves pictures along it, `occlusion` finds the pixels the motion
cannot carry, `propagate` blends keyframes carried both ways, `sequence` runs a render
mode as a generator of generation requests, and `consistency` scores the result.
"""
