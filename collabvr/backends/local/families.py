"""Each video family's native timing and shape rules, as its model card prescribes them.

Two sources, in this order:

- **the checkpoint**, where it says so: the frame rule (the VAE's temporal stride), the spatial
  multiple (VAE stride x patch size), CogVideoX's fixed frame counts and, for CogVideoX 1.0, whose
  positional embeddings are learned, its one size. These are read off the loaded pipeline's own
  configs (:func:`geometry`), so a fine-tune with another VAE gets its own rules;
- **a small family table** (:data:`NATIVE`) for what no diffusers config records: the frame rate
  the family was trained at and the render area its card recommends. :func:`native` picks the row
  from the checkpoint's structure (``expand_timesteps`` with the 48-channel VAE is TI2V-5B, two
  experts with ``boundary_ratio`` is A14B, ``patch_size_t`` is CogVideoX 1.5...), before any weight
  is loaded, so the preflight and the bill know it too.

A clip is generated at the family's fps (``seconds x fps`` frames, rounded to the rule) and saved at
that fps, so its duration is frames / fps. The ``fps`` option overrides the table (LTX takes the
frame rate as an input; for the others set it only for a fine-tune trained at another rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Native:
    """What a family's model card prescribes (docs/backends.md has the same table)."""

    name: str
    fps: float  # the frame rate it was trained at: clips are generated and saved at it
    area: int  # default render area in pixels (``max_area``), at the frame's aspect ratio
    frames: int  # the card's clip length, for reference and the benchmark
    size: tuple[int, int] | None = None  # (width, height) when the family renders at one size


# one row per family; the keys are what :func:`native` detects from the checkpoint
NATIVE: dict[str, Native] = {
    "wan2.1-i2v-480p": Native("Wan 2.1 I2V 480P", 16, 480 * 832, 81),
    "wan2.1-i2v-720p": Native("Wan 2.1 I2V 720P", 16, 720 * 1280, 81),
    "wan2.2-i2v-a14b": Native("Wan 2.2 I2V-A14B", 16, 480 * 832, 81),  # the paper's 480p (the card: 480p or 720p)
    "wan2.2-ti2v-5b": Native("Wan 2.2 TI2V-5B", 24, 704 * 1280, 121),
    "ltx-video": Native("LTX-Video", 24, 512 * 768, 161),
    "cogvideox-1.0-i2v": Native("CogVideoX 1.0 I2V", 8, 480 * 720, 49, size=(720, 480)),
    "cogvideox-1.5-i2v": Native("CogVideoX 1.5 I2V", 16, 768 * 1360, 81),
}


def native(family: str, index: dict[str, Any], transformer: dict[str, Any], source: str) -> tuple[str, Native]:
    """(row key, row) of the family table for a checkpoint: its ``model_index.json``, its
    transformer's ``config.json`` and its name (Wan 2.1's 480P and 720P checkpoints differ only there)."""
    if family == "wan":
        if index.get("expand_timesteps"):
            key = "wan2.2-ti2v-5b"
        elif index.get("boundary_ratio") is not None or _present(index.get("transformer_2")):
            key = "wan2.2-i2v-a14b"
        else:
            key = "wan2.1-i2v-720p" if "720p" in source.lower() else "wan2.1-i2v-480p"
    elif family == "ltx":
        key = "ltx-video"
    else:
        key = "cogvideox-1.0-i2v" if transformer.get("use_learned_positional_embeddings") else "cogvideox-1.5-i2v"
    return key, NATIVE[key]


def _present(entry: Any) -> bool:
    """Whether a ``model_index.json`` component entry names a component (``[null, null]`` does not)."""
    return isinstance(entry, list) and len(entry) == 2 and entry[0] is not None


@dataclass(frozen=True)
class Geometry:
    """A loaded pipeline's shape rules."""

    temporal: int  # frames per latent frame: counts are temporal * k + 1
    spatial: int  # height and width are multiples of this (VAE stride x patch size)
    fixed_frames: tuple[int, ...] = ()  # CogVideoX: the counts its version makes
    fixed_size: tuple[int, int] | None = None  # (width, height) when positional embeddings are learned

    def frames_for(self, requested: float) -> int:
        """The allowed frame count nearest to ``requested`` (at least one latent step)."""
        if self.fixed_frames:
            return min(self.fixed_frames, key=lambda n: (abs(n - requested), n))
        steps = max(1, round((max(1.0, requested) - 1) / self.temporal))
        return steps * self.temporal + 1

    def size_for(self, width: int, height: int, max_area: int) -> tuple[int, int]:
        """(width, height) at ``max_area`` pixels with the frame's aspect ratio, on the multiple."""
        if self.fixed_size:
            return self.fixed_size
        aspect = height / width
        m = self.spatial
        h = max(m, round(math.sqrt(max_area * aspect)) // m * m)
        w = max(m, round(math.sqrt(max_area / aspect)) // m * m)
        return w, h


def geometry(family: str, pipe: Any) -> Geometry:
    """Read the family's rules off the pipeline's own configs."""
    if family == "wan":
        transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        patch = transformer.config.patch_size
        return Geometry(pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial * int(patch[1]))
    if family == "ltx":
        # the LTX pipelines check for multiples of 32 whatever the VAE (the released VAEs stride 32)
        return Geometry(pipe.vae_temporal_compression_ratio,
                        math.lcm(32, pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size))
    config = pipe.transformer.config  # cogvideox
    spatial = pipe.vae_scale_factor_spatial
    count = int(config.sample_frames)
    if config.use_learned_positional_embeddings:  # 1.0: one size, one count (49)
        return Geometry(pipe.vae_scale_factor_temporal, spatial * int(config.patch_size), fixed_frames=(count,),
                        fixed_size=(config.sample_width * spatial, config.sample_height * spatial))
    # 1.5: the card's 5 s or 10 s at 16 fps (81 or 161 frames); the pipeline pads the latent frames
    # to a multiple of patch_size_t and drops the padding after decoding
    return Geometry(pipe.vae_scale_factor_temporal, spatial * int(config.patch_size), fixed_frames=(count, 2 * count - 1))


__all__ = ["NATIVE", "Geometry", "Native", "geometry", "native"]
