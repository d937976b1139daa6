"""Plain-Python logic of the Blender add-on: no `bpy` here, so it is tested as ordinary
Python (tests/blender/test_core_*.py). The bpy adapters beside this package only read and
write Blender data and call into it."""
