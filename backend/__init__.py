"""Dreamwire backend: the GPU process (engine, model library, server)."""
