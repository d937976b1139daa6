"""Pure-numpy image conventions shared by the hosts and the backend.

OpenPose COCO-18 drawing and JSON, the ADE20K palette, ControlNet depth and normalbae
colour conventions, mask feathering and tile grids. No cv2, PIL or torch: this package
ships inside Blender and Krita.
"""
