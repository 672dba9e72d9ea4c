"""wav2vec2 / HuBERT encoders and the feature cache, on tiny random checkpoints saved to disk (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

from facerl.errors import FacerlError
from facerl.models.audio import AudioEncoderConfig, build_audio_encoder
from facerl.models.feature_cache import FeatureCache, encoder_fingerprint
from facerl.models.pretrained import PretrainedSpeechEncoder

WIDTH = 32
# Three convs with total stride 5 * 8 * 8 = 320 give the 50 Hz of the released checkpoints.
CONV = {"conv_dim": (16, 16, 16), "conv_kernel": (10, 8, 8), "conv_stride": (5, 8, 8)}
MODELS = {"wav2vec2": (Wav2Vec2Config, Wav2Vec2Model), "hubert": (HubertConfig, HubertModel)}


def tiny_checkpoint(directory: Path, kind: str, norm: str) -> str:
    config_cls, model_cls = MODELS[kind]
    config = config_cls(hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=8,
                        feat_extract_norm=norm, do_stable_layer_norm=norm == "layer",
                        layerdrop=0.0, **CONV)   # LayerDrop would make the gradient test random
    torch.manual_seed(0)
    model_cls(config).save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[tuple[str, str], str]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {(kind, norm): tiny_checkpoint(root / f"{kind}-{norm}", kind, norm)
            for kind in MODELS for norm in ("group", "layer")}


def load(checkpoints, kind="wav2vec2", norm="group", freeze=True) -> PretrainedSpeechEncoder:
    return build_audio_encoder(AudioEncoderConfig(kind=kind, pretrained=checkpoints[kind, norm], freeze=freeze))


def speech(n_samples: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(n_samples, generator=g)


@pytest.mark.parametrize("kind", list(MODELS))
def test_forward_shape_and_rate(checkpoints, kind):
    enc = load(checkpoints, kind)
    assert isinstance(enc, PretrainedSpeechEncoder)
    assert enc.feature_dim == WIDTH and enc.rate_hz == 16000 / 320 == 50.0
    audio = torch.stack([speech(16000, 0), speech(16000, 1)])          # (B, S) one second each
    mask = torch.ones_like(audio, dtype=torch.bool)
    assert enc.features(audio, mask).shape == (2, enc.output_length(16000), WIDTH)
    assert enc.output_length(16000) == 49                              # ~50 Hz
    assert enc(audio, mask, n_frames=30).shape == (2, 30, WIDTH)
    # Shorter than the CNN's receptive field still yields one frame.
    assert enc.features(audio[:, :100], mask[:, :100]).shape == (2, 1, WIDTH)


def test_normalisation_makes_features_gain_invariant(checkpoints):
    enc = load(checkpoints)
    audio = speech(8000)[None]
    mask = torch.ones_like(audio, dtype=torch.bool)
    torch.testing.assert_close(enc.features(audio, mask), enc.features(5.0 * audio + 0.3, mask),
                               atol=1e-4, rtol=1e-4)


def test_frozen_encoder_stays_in_eval_and_has_no_trainable_parameters(checkpoints):
    enc = load(checkpoints, freeze=True)
    parent = nn.ModuleDict({"audio": enc, "head": nn.Linear(WIDTH, 2)})
    parent.train()
    assert enc.frozen and not enc.training and not enc.model.training
    assert parent["head"].training
    assert not any(p.requires_grad for p in enc.parameters())
    audio = speech(16000)[None]
    mask = torch.ones_like(audio, dtype=torch.bool)
    out = enc(audio, mask, n_frames=30)
    assert not out.requires_grad
    torch.testing.assert_close(out, enc(audio, mask, n_frames=30), rtol=0, atol=0)


@pytest.mark.parametrize("kind", list(MODELS))
def test_unfrozen_encoder_trains_transformer_but_not_cnn(checkpoints, kind):
    enc = load(checkpoints, kind, freeze=False)
    enc.train()
    assert not enc.frozen and enc.model.training
    audio = speech(16000)[None]
    enc(audio, torch.ones_like(audio, dtype=torch.bool), n_frames=30).pow(2).sum().backward()
    cnn = list(enc.model.feature_extractor.parameters())
    assert cnn and all(not p.requires_grad and p.grad is None for p in cnn)
    layers = list(enc.model.encoder.layers.parameters())
    assert all(p.requires_grad for p in layers)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layers)


@pytest.mark.parametrize("norm", ["layer", "group"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_padded_clip_gets_the_features_it_gets_alone(checkpoints, kind, norm):
    enc = load(checkpoints, kind, norm)
    # layer-norm CNNs take an attention mask; group-norm ones are run clip by clip on a padded batch.
    assert enc.uses_attention_mask == (norm == "layer")
    short, long = speech(8000, 0), speech(16000, 1)
    audio = torch.stack([torch.cat([short, speech(8000, 2)]), long])    # (2, S) padding holds noise
    mask = torch.ones_like(audio, dtype=torch.bool)
    mask[0, 8000:] = False
    batch = enc.features(audio, mask)                                  # (2, N, D)
    alone = enc.features(short[None], torch.ones(1, 8000, dtype=torch.bool))[0]
    n = enc.output_length(8000)
    assert alone.shape[0] == n
    torch.testing.assert_close(batch[0, :n], alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batch[1], enc.features(long[None], mask[1:])[0], atol=1e-4, rtol=1e-4)


def test_missing_or_wrong_checkpoint_is_a_user_error(tmp_path, checkpoints):
    with pytest.raises(FacerlError, match="needs `pretrained`"):
        build_audio_encoder(AudioEncoderConfig(kind="wav2vec2", pretrained=""))
    with pytest.raises(FacerlError, match="save_pretrained"):
        build_audio_encoder(AudioEncoderConfig(kind="hubert", pretrained=str(tmp_path / "missing")))
    with pytest.raises(FacerlError, match="cannot load wav2vec2"):
        build_audio_encoder(AudioEncoderConfig(kind="wav2vec2", pretrained=str(tmp_path)))   # empty directory
    with pytest.raises(FacerlError, match="holds a 'hubert' model"):
        build_audio_encoder(AudioEncoderConfig(kind="wav2vec2", pretrained=checkpoints["hubert", "group"]))


class CountingEncoder:
    """Wraps ``enc.features`` to count how often the encoder really runs."""

    def __init__(self, enc: PretrainedSpeechEncoder) -> None:
        self.calls, self._features = 0, enc.features
        enc.features = self

    def __call__(self, audio, audio_mask):
        self.calls += 1
        return self._features(audio, audio_mask)


def test_feature_cache_computes_once_and_reloads_from_disk(tmp_path, checkpoints):
    enc = load(checkpoints)
    fingerprint = encoder_fingerprint(enc)
    counter = CountingEncoder(enc)
    cache = FeatureCache(tmp_path, fingerprint)
    audio = speech(16000)
    first = cache.get("spk1/clip0", audio, enc)
    second = cache.get("spk1/clip0", audio, enc)
    assert counter.calls == 1 and second is first
    assert first.shape == (enc.output_length(16000), WIDTH) and not first.requires_grad
    torch.testing.assert_close(first, enc.features(audio[None], torch.ones(1, 16000, dtype=torch.bool))[0])

    path = tmp_path / fingerprint / "spk1" / "clip0.npy"
    assert path.is_file() and not list(path.parent.glob(".*partial*"))
    counter.calls = 0
    reloaded = FeatureCache(tmp_path, fingerprint).get("spk1/clip0", audio, enc)
    assert counter.calls == 0
    torch.testing.assert_close(reloaded, first, rtol=0, atol=0)

    path.write_bytes(b"not an npy file")
    recomputed = FeatureCache(tmp_path, fingerprint).get("spk1/clip0", audio, enc)
    assert counter.calls == 1
    torch.testing.assert_close(recomputed, first, rtol=0, atol=0)
    np.testing.assert_array_equal(np.load(path), first.numpy())        # rewritten whole


def test_feature_cache_in_memory_only_and_refuses_trainable_encoders(tmp_path, checkpoints):
    enc = load(checkpoints)
    cache = FeatureCache(None, encoder_fingerprint(enc))
    assert cache.get("clip", speech(4000), enc).shape == (enc.output_length(4000), WIDTH)
    assert not any(tmp_path.iterdir())
    trainable = load(checkpoints, freeze=False)
    with pytest.raises(ValueError, match="frozen"):
        FeatureCache(tmp_path, "x").get("clip", speech(4000), trainable)


def test_fingerprint_is_stable_and_tracks_weights(checkpoints):
    a, b = load(checkpoints), load(checkpoints)
    assert encoder_fingerprint(a) == encoder_fingerprint(b)
    assert encoder_fingerprint(a) != encoder_fingerprint(load(checkpoints, "hubert"))
    with torch.no_grad():
        b.model.encoder.layers[0].feed_forward.output_dense.bias[0] += 1e-3
    assert encoder_fingerprint(a) != encoder_fingerprint(b)
