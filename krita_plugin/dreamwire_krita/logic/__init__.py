"""Plain-Python logic of the Krita plugin: no `krita` or Qt imports, tested with the venv."""
