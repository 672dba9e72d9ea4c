"""`facerl test`: predictions for every held-out clip under every training-style condition, saved as
FaceFormer does: ``results/<clip>_condition_<subject>.npy`` (T30, V*3); ``average`` is the
style-independent mode (the mean of all one-hots).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facerl.data.dataset import Clip, DatasetSpec, VocaDataset
from facerl.errors import FacerlError
from facerl.eval.predict import check_finite, dataset_batches, generate_styles
from facerl.models.actor import Actor
from facerl.models.checkpoint import ActorMeta
from facerl.utils.io import check_writable, save_npy

STYLE_MODES = ("all", "average", "both")
DECODE_SEQUENCES = 4  # sequences turned into vertices at once: small enough for the allocator to reuse the buffers
PENDING_SAVES = 36    # arrays waiting for the background writer at most (one batch of 4 clips x 9 styles)


def style_conditions(meta: ActorMeta, mode: str) -> list[tuple[int, str]]:
    """(one-hot index, name) of the conditions to generate: every training style, the average, or both."""
    if mode not in STYLE_MODES:
        raise FacerlError(f"styles must be one of {', '.join(STYLE_MODES)}, got {mode!r}")
    named = list(enumerate(meta.styles)) if mode in ("all", "both") else []
    return named + ([(-1, "average")] if mode in ("average", "both") else [])


@contextlib.contextmanager
def background_saves(pending: int = PENDING_SAVES) -> Iterator[Callable[[Path, np.ndarray], None]]:
    """A ``save(path, array)`` that writes (:func:`save_npy`) on one background thread, so that writing the files
    overlaps generating the next ones; it blocks while ``pending`` arrays wait. Leaving the block waits for every
    write and raises the first error."""
    pool, futures = ThreadPoolExecutor(1, thread_name_prefix="facerl-save"), deque()

    def save(path: Path, array: np.ndarray) -> None:
        futures.append(pool.submit(save_npy, path, array))
        while len(futures) > pending:
            futures.popleft().result()

    try:
        yield save
        while futures:
            futures.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def write_results(actor: Actor, meta: ActorMeta, spec: DatasetSpec, splits: list[str], styles: str,
                  out_dir: Path, device: torch.device, chunk: int = 4, shared: dict | None = None) -> int:
    """Generate and save every (clip, condition) of ``splits``; returns the number of files written.

    ``shared``: audio features by batch, shared by actors with the same frozen encoder (see dataset_batches).
    Files are written in the background while the next batch is generated."""
    conditions = style_conditions(meta, styles)
    check_writable(out_dir)  # before generating, not after
    written = 0
    with background_saves() as save:
        for split in splits:
            ds = VocaDataset(spec, split, with_phones=False)
            if ds[0].template.numel() != meta.n_vertices * 3:
                raise FacerlError(f"{spec.root} has {ds[0].template.numel() // 3} vertices per frame, "
                                  f"the actor predicts {meta.n_vertices}")
            batches = dataset_batches(actor, ds, device, chunk, shared)
            for clips, batch, feats in tqdm(batches, total=-(-len(ds) // chunk), desc=f"test {split}", unit="batch"):
                motion = generate_styles(actor, batch, [i for i, _ in conditions], feats=feats)    # (B, C, T, K)
                for b, clip in enumerate(clips):
                    written += _write_clip(actor, clip, motion[b], batch.template[b], conditions, out_dir, save)
    return written


def _write_clip(actor: Actor, clip: Clip, motion: torch.Tensor, template: torch.Tensor,
                conditions: list[tuple[int, str]], out_dir: Path, save: Callable[[Path, np.ndarray], None]) -> int:
    """Vertices of one clip's motion (C, T, K) under each condition, its real frames only and a few sequences at
    a time, checked and saved; returns the number of files."""
    for stale in out_dir.glob(f"{clip.name}_condition_*.npy"):  # a clip's results are replaced whole
        stale.unlink(missing_ok=True)  # another run may have replaced it first
    for lo in range(0, len(conditions), DECODE_SEQUENCES):
        part = motion[lo:lo + DECODE_SEQUENCES, :len(clip.vertices)]                            # (k, T, K)
        with torch.no_grad():
            vertices = actor.vertices(part, template.expand(len(part), -1)).cpu()              # (k, T, V*3)
        check_finite(vertices, [clip])
        for (_, name), seq in zip(conditions[lo:lo + DECODE_SEQUENCES], vertices):
            save(out_dir / f"{clip.name}_condition_{name}.npy", seq.numpy())
    return len(conditions)
