"""Running a trained actor on dataset batches: audio features (cached for frozen encoders) and
deterministic generation under several style conditions.

Dimensions: B clips, C style conditions, T frames (30 fps), V vertices, Da audio feature width.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from facerl.data.dataset import Batch, Clip, VocaDataset, collate, pad_stack
from facerl.errors import FacerlError
from facerl.models.actor import Actor
from facerl.models.audio import align_to_frames


def audio_features(actor: Actor, batch: Batch, cache=None) -> torch.Tensor:
    """Aligned audio features (B, T, Da) for a batch; a frozen encoder's per-clip features come from ``cache``."""
    n_frames = batch.vertices.shape[1]
    if cache is None:
        return actor.encode_audio(batch.audio, batch.audio_mask, n_frames)
    enc = actor.audio_encoder  # missing clips are encoded together (Whisper packs them into shared windows)
    feats = cache.get_many(batch.names, [audio[mask] for audio, mask in zip(batch.audio, batch.audio_mask)], enc)
    padded, _ = pad_stack([f.to(batch.audio.device) for f in feats])        # (B, N, Da)
    return align_to_frames(padded, enc.rate_hz, n_frames)


@torch.no_grad()
def predict_styles(actor: Actor, batch: Batch, styles: list[int], cache=None) -> torch.Tensor:
    """Deterministic (mean) generation of every clip under every style: (B, C, T, V*3), padded like the batch.

    ``styles`` are one-hot indices (-1: the style-independent average of all training styles).
    """
    feats = audio_features(actor, batch, cache)                              # (B, T, Da)
    b, c = feats.shape[0], len(styles)
    feats = feats.repeat_interleave(c, 0)                                    # (B*C, T, Da)
    style = torch.tensor(styles, device=feats.device).repeat(b)              # (B*C,)
    motion = actor.generate(feats, style).motion                             # (B*C, T, K)
    template = batch.template.repeat_interleave(c, 0)                        # (B*C, V*3)
    return actor.vertices(motion, template).view(b, c, *motion.shape[1:2], -1)


def predict_dataset(actor: Actor, ds: VocaDataset, styles: list[int], device,
                    chunk: int = 4) -> Iterator[tuple[list[Clip], torch.Tensor]]:
    """(clips, predictions (B, C, T, V*3) on the CPU) for every chunk of a split; NaN or inf output (a
    diverged checkpoint) is an error, never a result."""
    for start in range(0, len(ds), chunk):
        clips = [ds[i] for i in range(start, min(start + chunk, len(ds)))]
        pred = predict_styles(actor, collate(clips).to(device), styles).cpu()             # (B, C, T, V*3)
        if not torch.isfinite(pred).all():
            raise FacerlError(f"the actor produced NaN or inf vertices for {', '.join(c.name for c in clips)} "
                              "(a diverged checkpoint?); results would be meaningless")
        yield clips, pred
