"""The NumPy generation loop (facerl.models.fast_decode) computes the same rollouts as the torch paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import facerl.models.actor as actor_module
from facerl.models.fast_decode import StreamDecoder, can_fast_generate, fast_generate
from tests.models.test_actor import tiny_actor


def _feats(actor, batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    audio = torch.randn(batch, 16000 * 3)
    return actor.encode_audio(audio, torch.ones_like(audio, dtype=torch.bool), frames)


@pytest.mark.parametrize("layers", [1, 2])
def test_fast_loop_equals_the_cached_and_full_prefix_torch_loops(layers, monkeypatch):
    actor = tiny_actor(layers=layers)
    calls = []
    monkeypatch.setattr(actor_module, "fast_generate", lambda *a, **k: calls.append(1) or fast_generate(*a, **k))
    with torch.no_grad():
        feats = _feats(actor, 3, 75)                              # 2.5 periods of the positional encoding
        style = torch.tensor([1, -1, 0])
        fast = actor.generate(feats, style)
        cached = actor.generate(feats, style, fast=False)
        full = actor.generate(feats, style, cache=False)
    assert calls == [1]                                           # the default call took the NumPy loop, once
    assert fast.motion.abs().max() > 1e-2                         # outputs really move
    for ref in (cached, full):
        assert (fast.motion - ref.motion).abs().max() <= 1e-5
        assert (fast.mean - ref.mean).abs().max() <= 1e-5
    assert fast.motion.data_ptr() != fast.mean.data_ptr()         # two tensors, not one buffer twice


def test_fast_loop_with_given_noise_a_window_and_frames_past_the_audio():
    actor = tiny_actor(layers=1)
    with torch.no_grad():
        feats = _feats(actor, 2, 50)
        noise = torch.randn(2, 64, actor.motion.dim, generator=torch.Generator().manual_seed(1))
        style = torch.tensor([2, 0])
        for window in (None, 7):
            fast = actor.generate(feats, style, n_frames=64, noise=noise, window=window)
            ref = actor.generate(feats, style, n_frames=64, noise=noise, window=window, fast=False)
            assert fast.motion.shape == (2, 64, actor.motion.dim)
            assert (fast.motion - fast.mean).abs().max() > 0.05   # the noise was fed back
            assert (fast.motion - ref.motion).abs().max() <= 1e-5
            assert (fast.mean - ref.mean).abs().max() <= 1e-5
        windowed = fast.mean                                      # the last loop's (window 7)
        whole = actor.generate(feats, style, n_frames=64, noise=noise).mean
        assert (windowed - whole).abs().max() > 1e-4              # the window really limits attention


def test_torch_path_is_kept_for_gradients_training_and_fresh_draws():
    actor = tiny_actor(layers=1)
    feats = _feats(actor, 1, 20).detach()
    with torch.no_grad():
        assert can_fast_generate(actor, feats, cache=True, stochastic=False, noise=None)
        assert not can_fast_generate(actor, feats, cache=False, stochastic=False, noise=None)
        assert not can_fast_generate(actor, feats, cache=True, stochastic=True, noise=None)
        assert can_fast_generate(actor, feats, cache=True, stochastic=True, noise=torch.zeros(1, 20, actor.motion.dim))
        actor.train()
        assert not can_fast_generate(actor, feats, cache=True, stochastic=False, noise=None)
        actor.eval()
    assert not can_fast_generate(actor, feats, cache=True, stochastic=False, noise=None)   # grad enabled
    out = actor.generate(feats, torch.tensor([0]))
    assert out.motion.requires_grad                                 # autoregressive training still backprops


def test_weights_changed_in_place_are_used_by_the_next_generation():
    """Nothing is cached across calls: an edit the autograd version counters cannot see (``p.data = ...``) shows."""
    actor = tiny_actor(layers=1)
    with torch.no_grad():
        feats = _feats(actor, 1, 30)
        before = actor.generate(feats, torch.tensor([0]))
        actor.head.weight.data = actor.head.weight.data * 2.0
        after = actor.generate(feats, torch.tensor([0]))
        ref = actor.generate(feats, torch.tensor([0]), fast=False)
    assert (after.motion - before.motion).abs().max() > 1e-2
    assert (after.motion - ref.motion).abs().max() <= 1e-5


def test_stream_decoder_with_a_one_frame_window_and_under_inference_mode():
    with torch.inference_mode():
        actor = tiny_actor(layers=1)                                 # inference tensors: no version counters
        feats = _feats(actor, 1, 12)
        ref = actor.generate(feats, torch.tensor([1]), window=1, fast=False).mean[0]
        dec = StreamDecoder(actor, torch.tensor([1]), window=1)
        got = torch.from_numpy(np.stack([dec.step(f.numpy()) for f in feats[0]]))
        fast = actor.generate(feats, torch.tensor([1]), window=1).mean[0]
    assert (got - ref).abs().max() <= 1e-5 and (fast - ref).abs().max() <= 1e-5


def test_subclasses_hooks_and_train_mode_submodules_stay_on_the_torch_path():
    actor = tiny_actor(layers=1)
    feats = _feats(actor, 1, 10).detach()
    with torch.no_grad():
        assert can_fast_generate(actor, feats, True, False, None)
        actor.layers[0].train()
        assert not can_fast_generate(actor, feats, True, False, None)
        actor.eval()
        handle = actor.head.register_forward_hook(lambda *a: None)
        assert not can_fast_generate(actor, feats, True, False, None)
        handle.remove()
        actor.__class__ = type("Tweaked", (type(actor),), {})
        assert not can_fast_generate(actor, feats, True, False, None)
