"""Tiny random-weight checkpoints, built from configs and saved with ``save_pretrained``.

As diffusers' and transformers' own tests do, but without the hub: the tokenizers are trained here
with ``tokenizers``, so nothing is downloaded. Each builder writes a checkpoint directory that the
backends load through the same ``from_pretrained`` path users take. Sizes are the smallest the
models accept (32 px, one or two layers); random weights make noise, which is all the tests need.
"""

from __future__ import annotations

from pathlib import Path

import torch

# JSON of every record plus the words of our prompts, so the VLM's BPE has tokens for both
_CORPUS = [
    '{"observation": "a grid", "instruction": "move the red block", "target_state": "block at goal", '
    '"task_complete": false, "steps_left": 0}',
    '{"accept": true, "reason": "ok", "good_fraction": 0.5, "suggestion": "", "remaining": "", '
    '"confidence": 0.9, "action_too_large": false}',
    '{"index": 0, "reason": "best"} {"score": 1.0, "solved": true} {"critique": "x", "revised_prompt": "y"}',
    "You plan verify select judge critique the next action of a video model. Current frame: Clip: Candidate",
    "dance monkey reach the goal slide the block a photo of frames sampled in order",
]


def chat_template(image: str = "<image>", video: str = "") -> str:
    """A chat template in the real ones' shape: roles, text, and each image (video) item as the
    placeholder its processor expands."""
    return (
        "{% for m in messages %}<s>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}{% else %}"
        "{% for c in m['content'] %}{% if c['type'] == 'image' %}" + image + "{% elif c['type'] == 'video' %}" + video
        + "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
    )


CHAT_TEMPLATE = chat_template()


def tokenizer(vocab_size: int = 400, *, image_token: bool = False, extra: dict[str, str] | None = None):
    """A byte-level BPE trained in-process, as a transformers fast tokenizer; ``extra`` names more
    special tokens by role (``{"boi_token": "<start_of_image>"}``), as the real tokenizers do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"] + (["<image>"] if image_token else []) + list((extra or {}).values())
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer)
    named = {**({"image_token": "<image>"} if image_token else {}), **(extra or {})}
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=4096,
                                   **({"extra_special_tokens": named} if named else {}))


def _t5(d_model: int = 32, *, umt5: bool = False):
    """The text encoder: UMT5 for Wan, T5 for LTX and CogVideoX, as the real checkpoints ship them."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    tok = tokenizer(300)
    torch.manual_seed(0)
    config_class, model_class = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    config = config_class(vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                          relative_attention_num_buckets=8, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return tok, model_class(config).eval()


def _wan_transformer(in_channels: int, out_channels: int, **extra):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
        out_channels=out_channels, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, **extra,
    )


def wan21_i2v(out: Path) -> Path:
    """Wan 2.1 I2V: one transformer and a CLIP image encoder."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    tok, text_encoder = _t5(umt5=True)
    torch.manual_seed(0)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        intermediate_size=16, patch_size=1))
    pipe = WanImageToVideoPipeline(
        transformer=_wan_transformer(36, 16, image_dim=4), vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder, tokenizer=tok, image_encoder=image_encoder,
        image_processor=CLIPImageProcessor(crop_size=32, size=32),
    )
    pipe.save_pretrained(out)
    return out


def wan22_a14b(out: Path) -> Path:
    """Wan 2.2 I2V-A14B's form: two transformers split at ``boundary_ratio``, no image encoder."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    tok, text_encoder = _t5(umt5=True)
    torch.manual_seed(1)  # the two experts differ, as the real high- and low-noise ones do
    low_noise = _wan_transformer(36, 16)
    pipe = WanImageToVideoPipeline(
        transformer=_wan_transformer(36, 16), transformer_2=low_noise, vae=vae,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
        text_encoder=text_encoder, tokenizer=tok, image_encoder=None, image_processor=None, boundary_ratio=0.875,
    )
    pipe.save_pretrained(out)
    return out


def wan22_ti2v(out: Path) -> Path:
    """Wan 2.2 TI2V-5B's form: its index names ``WanPipeline`` with ``expand_timesteps``, the
    48-channel VAE of stride 16, one transformer, no image encoder."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
        latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True],
    )
    tok, text_encoder = _t5(umt5=True)
    pipe = WanPipeline(
        transformer=_wan_transformer(48, 48), transformer_2=None, vae=vae,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0),
        text_encoder=text_encoder, tokenizer=tok, boundary_ratio=None, expand_timesteps=True,
    )
    pipe.save_pretrained(out)
    return out


def _ltx_parts(*, timestep_conditioning: bool):
    """LTX-Video's structure: a VAE of spatial stride 32 (patch 4 x three 2x downsamplings) and
    temporal stride 8, so clips are 8k+1 frames on multiples of 32; the 0.9.1+ VAE decodes at a
    timestep (``decode_timestep``)."""
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
        cross_attention_dim=32, num_layers=1, caption_channels=32,
    )
    torch.manual_seed(0)
    scaling = (True, True, True, False)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=scaling,
        decoder_spatio_temporal_scaling=scaling, decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=timestep_conditioning,
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
    )
    tok, text_encoder = _t5()
    return {"transformer": transformer, "vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(),
            "text_encoder": text_encoder, "tokenizer": tok}


def ltx_condition(out: Path) -> Path:
    """LTX-Video 0.9.5+'s form: an ``LTXConditionPipeline`` index, a timestep-conditioned VAE."""
    from diffusers import LTXConditionPipeline

    LTXConditionPipeline(**_ltx_parts(timestep_conditioning=True)).save_pretrained(out)
    return out


def ltx_i2v(out: Path) -> Path:
    """LTX-Video's form: its index names the text-to-video ``LTXPipeline``."""
    from diffusers import LTXPipeline

    LTXPipeline(**_ltx_parts(timestep_conditioning=False)).save_pretrained(out)
    return out


def _cogvideox(out: Path, scheduler, **transformer) -> Path:
    """A CogVideoX I2V pipeline with the tiny VAE (stride 8, 4x in time) and this transformer."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel

    torch.manual_seed(0)
    model = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, text_embed_dim=32, num_layers=1,
        sample_frames=9, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16,
        use_rotary_positional_embeddings=True, **transformer,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
    )
    tok, text_encoder = _t5()
    CogVideoXImageToVideoPipeline(transformer=model, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                                  tokenizer=tok).save_pretrained(out)
    return out


def cogvideox_i2v(out: Path) -> Path:
    """CogVideoX 1.0 I2V's form: learned positional embeddings, so one size and one frame count."""
    from diffusers import DDIMScheduler

    return _cogvideox(out, DDIMScheduler(), time_embed_dim=2, sample_width=2, sample_height=2,
                      use_learned_positional_embeddings=True)


def cogvideox15_i2v(out: Path) -> Path:
    """CogVideoX 1.5 I2V's form: rotary positions only, ``patch_size_t=2`` (the pipeline pads the
    latent frames to a multiple of it), the ``ofs`` embedding, any size on the multiple."""
    from diffusers import CogVideoXDPMScheduler

    return _cogvideox(out, CogVideoXDPMScheduler(), time_embed_dim=4, ofs_embed_dim=4, sample_width=4, sample_height=4,
                      patch_size_t=2, use_learned_positional_embeddings=False)


def llava_vlm(out: Path) -> Path:
    """A LLaVA-style image-text-to-text model: CLIP vision tower, Llama text model, chat template."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = tokenizer(400, image_token=True)
    image_token = tok.convert_tokens_to_ids("<image>")
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}),
        tokenizer=tok, chat_template=CHAT_TEMPLATE, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, image_token="<image>",
    )
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=16, patch_size=8, projection_dim=16)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token,
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    _say_false(model, tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _say_false(model, tok) -> None:
    """Random weights have no opinion; this bias, saved with the checkpoint, makes the model say
    "false" where a boolean may go (not done, reject), so a constrained episode walks plan ->
    generate -> verify -> repair. Unconstrained, it just adds "false" to the noise."""
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    words = {i: tok.convert_tokens_to_string([t]).strip() for t, i in tok.get_vocab().items()}
    falsy = [i for i, w in words.items() if w and ("false".startswith(w) or w.startswith("false"))]
    model.generation_config.sequence_bias = [[[i], 20.0] for i in falsy]  # the list form survives JSON


def gemma3_vlm(out: Path) -> Path:
    """Gemma 3's form: a SigLIP tower pooled to ``mm_tokens_per_image``, the Gemma 3 text model,
    begin/end-of-image tokens; its image processor has a PIL path, so it runs without torchvision."""
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    tok = tokenizer(400, extra={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                "image_token": "<image_soft_token>"})
    ids = {name: tok.convert_tokens_to_ids(getattr(tok, name)) for name in ("boi_token", "eoi_token", "image_token")}
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": 16, "width": 16}), tokenizer=tok,
        chat_template=chat_template("<start_of_image>"), image_seq_length=4,
    )
    text = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=4096,
                            sliding_window=64, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                            pad_token_id=tok.pad_token_id)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                image_size=16, patch_size=4)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          boi_token_index=ids["boi_token"], eoi_token_index=ids["eoi_token"],
                          image_token_index=ids["image_token"])
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(config).eval()
    _say_false(model, tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


_QWEN_TOKENS = {"vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>",
                "image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}


def _qwen_files(out: Path, tok, processor_class: str, *, video_config: dict | None) -> None:
    """The processor files of a Qwen-VL checkpoint, written as the real ones are (the video processor
    cannot be built to save here without torchvision): the tokenizer, ``chat_template.json``,
    ``preprocessor_config.json`` and, for Qwen3-VL, ``video_preprocessor_config.json``."""
    import json

    tok.save_pretrained(out)
    start, end = _QWEN_TOKENS["vision_start_token"], _QWEN_TOKENS["vision_end_token"]
    template = chat_template(f"{start}<|image_pad|>{end}", f"{start}<|video_pad|>{end}")
    (out / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    clip = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
    image = {"image_processor_type": "Qwen2VLImageProcessor", "processor_class": processor_class, "patch_size": 14,
             "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 28 * 28, "max_pixels": 56 * 56, **clip}
    (out / "preprocessor_config.json").write_text(json.dumps(image))
    if video_config is not None:
        (out / "video_preprocessor_config.json").write_text(json.dumps({**video_config, "processor_class": processor_class}))


def qwen25_vl(out: Path) -> Path:
    """Qwen2.5-VL's form: the windowed ViT with 2x2 merging, M-RoPE text model, vision start/end
    and image/video pad tokens, the processor files of the real checkpoint (its processor needs
    torchvision to build)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = tokenizer(400, extra=_QWEN_TOKENS)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in _QWEN_TOKENS.items()}
    config = Qwen2_5_VLConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
                     "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
                     "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}},
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 32,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "fullatt_block_indexes": [0],
                       "window_size": 56},
        image_token_id=ids["image_token"], video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"], vision_end_token_id=ids["vision_end_token"],
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    _say_false(model, tok)
    # the real generation config: with these, any temperature samples only the top token
    model.generation_config.do_sample, model.generation_config.top_k, model.generation_config.top_p = True, 1, 0.001
    model.save_pretrained(out)
    _qwen_files(out, tok, "Qwen2_5_VLProcessor", video_config=None)
    return out


def qwen3_vl(out: Path) -> Path:
    """Qwen3-VL's form: DeepStack vision features, interleaved M-RoPE, a video processor that samples
    2 frames a second and writes each frame's timestamp into the prompt (needs torchvision)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tok = tokenizer(400, extra=_QWEN_TOKENS)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in _QWEN_TOKENS.items()}
    config = Qwen3VLConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 4096,
                     "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
                     "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True,
                                         "rope_theta": 10000.0}},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 32,
                       "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 64,
                       "deepstack_visual_indexes": [0]},
        image_token_id=ids["image_token"], video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"], vision_end_token_id=ids["vision_end_token"],
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config).eval()
    _say_false(model, tok)
    model.save_pretrained(out)
    video = {"video_processor_type": "Qwen3VLVideoProcessor", "patch_size": 16, "temporal_patch_size": 2,
             "merge_size": 2, "fps": 2, "min_frames": 4, "max_frames": 768, "do_sample_frames": True,
             "size": {"shortest_edge": 32 * 32, "longest_edge": 64 * 64}}
    _qwen_files(out, tok, "Qwen3VLProcessor", video_config=video)
    return out


BUILDERS = {
    "wan21": wan21_i2v, "wan22_a14b": wan22_a14b, "wan22_ti2v": wan22_ti2v, "ltx_condition": ltx_condition,
    "ltx_i2v": ltx_i2v, "cogvideox": cogvideox_i2v, "cogvideox15": cogvideox15_i2v, "llava": llava_vlm,
    "gemma3": gemma3_vlm, "qwen25_vl": qwen25_vl, "qwen3_vl": qwen3_vl,
}

_root: Path | None = None
_built: dict[str, Path] = {}


def checkpoint(name: str) -> Path:
    """The directory of tiny checkpoint ``name``, built once per test process (in a temp dir
    removed at exit), so every test module shares the same few."""
    global _root
    if name not in _built:
        if _root is None:
            import atexit
            import shutil
            import tempfile

            _root = Path(tempfile.mkdtemp(prefix="collabvr-tiny-"))
            atexit.register(shutil.rmtree, _root, ignore_errors=True)
        _built[name] = BUILDERS[name](_root / name)
    return _built[name]
