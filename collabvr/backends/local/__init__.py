"""Local GPU backends: ``diffusers:<checkpoint>`` as the VGM, ``transformers:<checkpoint>`` as the VLM.

Both load their weights once per process (:mod:`.runtime` keeps them, keyed by checkpoint and the
options that change the weights) and serialize calls per device with one lock. The modules are
named after what they wrap, not after the libraries, so they never shadow ``diffusers`` or
``transformers``. See docs/backends.md.
"""
