"""The picture a job works on, as pixels: mask operations (blur, A1111's fill, crop and
paste) and the outpaint canvas layout.

Both the engine (which lays the picture out) and the conditioning extensions (which lay
their control images out the same way) use these, so they live below both: neither package
imports the other for them.
"""
