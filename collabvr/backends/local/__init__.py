"""Local GPU backends: ``diffusers:<checkpoint>`` as the VGM, ``transformers:<checkpoint>`` as the VLM.

Both load their weights once per process (:mod:`.runtime` keeps them, keyed by checkpoint and the
options that change the weights, and remembers a build that failed) and serialize calls per device
with one lock. Each family is fed as its model card says: :mod:`.families` holds the video
families' native timing and shape rules, :mod:`.diffusers_options` the VGM's options,
:mod:`.continuation` the clips LTXCondition continues from, :mod:`.preflight` the checks both run
before any call. The modules are named after what they wrap, not after the libraries, so they never
shadow ``diffusers`` or ``transformers``. See docs/backends.md.
"""
