"""`facerl test`: predictions for every held-out clip under every training-style condition, saved as
FaceFormer does: ``results/<clip>_condition_<subject>.npy`` (T30, V*3); ``average`` is the
style-independent mode (the mean of all one-hots).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from facerl.data.dataset import DatasetSpec, VocaDataset
from facerl.errors import FacerlError
from facerl.eval.predict import predict_dataset
from facerl.models.actor import Actor
from facerl.models.checkpoint import ActorMeta
from facerl.utils.io import check_writable, save_npy

STYLE_MODES = ("all", "average", "both")


def style_conditions(meta: ActorMeta, mode: str) -> list[tuple[int, str]]:
    """(one-hot index, name) of the conditions to generate: every training style, the average, or both."""
    if mode not in STYLE_MODES:
        raise FacerlError(f"styles must be one of {', '.join(STYLE_MODES)}, got {mode!r}")
    named = list(enumerate(meta.styles)) if mode in ("all", "both") else []
    return named + ([(-1, "average")] if mode in ("average", "both") else [])


def write_results(actor: Actor, meta: ActorMeta, spec: DatasetSpec, splits: list[str], styles: str,
                  out_dir: Path, device: torch.device, chunk: int = 4) -> int:
    """Generate and save every (clip, condition) of ``splits``; returns the number of files written."""
    conditions = style_conditions(meta, styles)
    check_writable(out_dir)  # before generating, not after
    written = 0
    for split in splits:
        ds = VocaDataset(spec, split, with_phones=False)
        if ds[0].template.numel() != meta.n_vertices * 3:
            raise FacerlError(f"{spec.root} has {ds[0].template.numel() // 3} vertices per frame, "
                              f"the actor predicts {meta.n_vertices}")
        batches = predict_dataset(actor, ds, [i for i, _ in conditions], device, chunk)
        for clips, pred in tqdm(batches, total=-(-len(ds) // chunk), desc=f"test {split}", unit="batch"):
            for b, clip in enumerate(clips):
                for stale in out_dir.glob(f"{clip.name}_condition_*.npy"):  # a clip's results are replaced whole
                    stale.unlink(missing_ok=True)  # another run may have replaced it first
                for c, (_, name) in enumerate(conditions):
                    save_npy(out_dir / f"{clip.name}_condition_{name}.npy", pred[b, c, : len(clip.vertices)].numpy())
                    written += 1
    return written
