"""Texture projection, in plain numpy: from camera views to a mesh's UV texture.

`rasterize` draws triangles (UV space and camera space share it), `projection` holds the
camera model and bakes one view into texels, `multiview` blends several views and plans
what each later view must inpaint. New texturing steps (filling unseen texels, choosing
cameras, colour matching, PBR maps) are modules beside them.
"""
