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
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}</s>\n{% endfor %}{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def tokenizer(vocab_size: int = 400, *, image_token: bool = False):
    """A byte-level BPE trained in-process, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"] + (["<image>"] if image_token else [])
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer)
    extra = {"extra_special_tokens": {"image_token": "<image>"}} if image_token else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=4096, **extra)


def _t5(d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    tok = tokenizer(300)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return tok, T5EncoderModel(config).eval()


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
    tok, text_encoder = _t5()
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
    tok, text_encoder = _t5()
    pipe = WanImageToVideoPipeline(
        transformer=_wan_transformer(36, 16), transformer_2=_wan_transformer(36, 16), vae=vae,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
        text_encoder=text_encoder, tokenizer=tok, image_encoder=None, image_processor=None, boundary_ratio=0.875,
    )
    pipe.save_pretrained(out)
    return out


def wan22_ti2v(out: Path) -> Path:
    """Wan 2.2 TI2V-5B's form: ``expand_timesteps``, a 16x VAE, no image encoder."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
        latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True],
    )
    tok, text_encoder = _t5()
    pipe = WanImageToVideoPipeline(
        transformer=_wan_transformer(48, 48), transformer_2=None, vae=vae,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
        text_encoder=text_encoder, tokenizer=tok, image_encoder=None, image_processor=None, boundary_ratio=None,
        expand_timesteps=True,
    )
    pipe.save_pretrained(out)
    return out


def _ltx_parts():
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
        cross_attention_dim=32, num_layers=1, caption_channels=32,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1), timestep_conditioning=False,
        patch_size=1, patch_size_t=1, encoder_causal=True, decoder_causal=False,
    )
    tok, text_encoder = _t5()
    return {"transformer": transformer, "vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(),
            "text_encoder": text_encoder, "tokenizer": tok}


def ltx_condition(out: Path) -> Path:
    from diffusers import LTXConditionPipeline

    LTXConditionPipeline(**_ltx_parts()).save_pretrained(out)
    return out


def ltx_i2v(out: Path) -> Path:
    from diffusers import LTXImageToVideoPipeline

    LTXImageToVideoPipeline(**_ltx_parts()).save_pretrained(out)
    return out


def cogvideox_i2v(out: Path) -> Path:
    """CogVideoX 1.0 I2V's form: learned positional embeddings, so one size and one frame count."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
        DDIMScheduler,
    )

    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=16, use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
    )
    tok, text_encoder = _t5()
    CogVideoXImageToVideoPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler(), text_encoder=text_encoder,
                                  tokenizer=tok).save_pretrained(out)
    return out


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
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    # Random weights have no opinion; this one, saved with the checkpoint, makes the model say "false"
    # where a boolean may go (not done, reject), so a constrained episode walks plan -> generate ->
    # verify -> repair. Unconstrained, it just adds "false" to the noise.
    words = {i: tok.convert_tokens_to_string([t]).strip() for t, i in tok.get_vocab().items()}
    falsy = [i for i, w in words.items() if w and ("false".startswith(w) or w.startswith("false"))]
    model.generation_config.sequence_bias = [[[i], 20.0] for i in falsy]  # the list form survives JSON
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


BUILDERS = {
    "wan21": wan21_i2v, "wan22_a14b": wan22_a14b, "wan22_ti2v": wan22_ti2v, "ltx_condition": ltx_condition,
    "ltx_i2v": ltx_i2v, "cogvideox": cogvideox_i2v, "llava": llava_vlm,
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
