"""Running a trained actor on dataset batches: audio features (cached for frozen encoders) and
deterministic generation under several style conditions.

Dimensions: B clips, C style conditions, T frames (30 fps), V vertices, Da audio feature width.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from facerl.data.dataset import Batch, Clip, VocaDataset, collate, pad_stack
from facerl.errors import FacerlError
from facerl.models.actor import Actor


def audio_features(actor: Actor, batch: Batch, cache=None) -> torch.Tensor:
    """Aligned audio features (B, T, Da) for a batch; a frozen encoder's per-clip features come from ``cache``."""
    n_frames = batch.vertices.shape[1]
    if cache is None:
        return actor.encode_audio(batch.audio, batch.audio_mask, n_frames)
    enc = actor.audio_encoder  # missing clips are encoded together (Whisper packs them into shared windows)
    feats = cache.get_many(batch.names, [audio[mask] for audio, mask in zip(batch.audio, batch.audio_mask)], enc)
    padded, _ = pad_stack([f.to(batch.audio.device) for f in feats])        # (B, N, Da)
    return enc.align(padded, n_frames)


@torch.no_grad()
def generate_styles(actor: Actor, batch: Batch, styles: list[int], cache=None,
                    feats: torch.Tensor | None = None) -> torch.Tensor:
    """Deterministic (mean) motion (B, C, T, K) of every clip under every style, padded like the batch.

    ``styles`` are one-hot indices (-1: the style-independent average of all training styles); ``feats``:
    the batch's :func:`audio_features`, when already computed.
    """
    feats = audio_features(actor, batch, cache) if feats is None else feats  # (B, T, Da)
    b, c = feats.shape[0], len(styles)
    feats = feats.repeat_interleave(c, 0)                                    # (B*C, T, Da)
    style = torch.tensor(styles, device=feats.device).repeat(b)              # (B*C,)
    motion = actor.generate(feats, style).motion                             # (B*C, T, K)
    return motion.view(b, c, *motion.shape[1:])


@torch.no_grad()
def predict_styles(actor: Actor, batch: Batch, styles: list[int], cache=None,
                   feats: torch.Tensor | None = None) -> torch.Tensor:
    """Deterministic (mean) generation of every clip under every style: (B, C, T, V*3), padded like the batch
    (see :func:`generate_styles`)."""
    motion = generate_styles(actor, batch, styles, cache, feats)             # (B, C, T, K)
    b, c, t = motion.shape[:3]
    template = batch.template.repeat_interleave(c, 0)                        # (B*C, V*3)
    return actor.vertices(motion.flatten(0, 1), template).view(b, c, t, -1)


def dataset_batches(actor: Actor, ds: VocaDataset, device, chunk: int = 4,
                    shared: dict | None = None) -> Iterator[tuple[list[Clip], Batch, torch.Tensor | None]]:
    """(clips, batch on ``device``, its audio features or None) for every chunk of a split.

    ``shared``: a dict keeping each batch's audio features by its clip names, for several actors with one
    frozen audio encoder: each batch is encoded once, exactly as for one actor (Whisper packs a batch's clips
    into shared windows, so the features of a clip depend on its batch; the feature cache's would not do).
    """
    for start in range(0, len(ds), chunk):
        clips = [ds[i] for i in range(start, min(start + chunk, len(ds)))]
        batch = collate(clips).to(device)
        feats = None
        if shared is not None:
            names = tuple(batch.names)
            if names not in shared:
                with torch.no_grad():
                    shared[names] = audio_features(actor, batch)                        # (B, T, Da)
            feats = shared[names]
        yield clips, batch, feats


def check_finite(vertices: torch.Tensor, clips: list[Clip]) -> None:
    """NaN or inf vertices (..., T, V*3) on the CPU (a diverged checkpoint) are an error, never a result."""
    sequences = vertices.numpy().reshape(-1, vertices.shape[-2] * vertices.shape[-1])     # (N, T*V*3)
    if not all(np.isfinite(seq).all() for seq in sequences):  # numpy, one sequence at a time: ~20x faster
        raise FacerlError(f"the actor produced NaN or inf vertices for {', '.join(c.name for c in clips)} "
                          "(a diverged checkpoint?); results would be meaningless")


def predict_dataset(actor: Actor, ds: VocaDataset, styles: list[int], device, chunk: int = 4,
                    shared: dict | None = None) -> Iterator[tuple[list[Clip], torch.Tensor]]:
    """(clips, predictions (B, C, T, V*3) on the CPU) for every chunk of a split (``shared``: see
    :func:`dataset_batches`); NaN or inf output is an error."""
    for clips, batch, feats in dataset_batches(actor, ds, device, chunk, shared):
        pred = predict_styles(actor, batch, styles, feats=feats).cpu()                     # (B, C, T, V*3)
        check_finite(pred, clips)
        yield clips, pred
