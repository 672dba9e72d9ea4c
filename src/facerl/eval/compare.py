"""`facerl compare`: the side-by-side comparison of a run's actors on the held-out test speakers.

Rows: static template, ground truth, supervised (``<run>/actor``), perceptual-loss baseline
(``<run>/perceptual``) and RL (``<run>/rl``) — each under every training style and under the average
style. Columns: every `facerl evaluate` metric plus the judge's sync and offset accuracy, the lip-reader's
accuracy and the reward model's mean score (what RL maximised). Also the validation curves of the fine-tuning runs
and a video of one unseen test clip: ground truth | supervised | RL (| perceptual), with sound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facerl.data.dataset import DatasetSpec
from facerl.errors import FacerlError
from facerl.utils.io import atomic_path

STAGES = (("supervised", "actor"), ("perceptual", "perceptual"), ("RL", "rl"))


def result_folders(run_dir: Path, spec: DatasetSpec, device: torch.device) -> dict[str, Path]:
    """Test-split results of every trained actor of the run (written fresh from each best.pt).

    Fine-tuned actors keep the supervised actor's frozen audio encoder (same fingerprint), so its features
    are computed once and shared, batch by batch as each actor alone would compute them: the same results."""
    from facerl.eval.results import write_results
    from facerl.models.checkpoint import load_actor
    from facerl.models.feature_cache import encoder_fingerprint

    folders, features = {}, {}   # encoder fingerprint -> {batch clip names: audio features}
    for label, stage in STAGES:
        checkpoint = run_dir / stage / "best.pt"
        if not checkpoint.is_file():
            print(f"no {checkpoint}: the {label} row is left out")
            continue
        actor, meta, _ = load_actor(checkpoint, device)
        shared = features.setdefault(encoder_fingerprint(actor.audio_encoder), {}) if actor.audio_encoder.frozen else None
        folder = run_dir / ("results" if stage == "actor" else f"results_{stage}")
        n = write_results(actor, meta, spec, ["test"], "both", folder, device, shared=shared)
        print(f"{label}: wrote {n} test sequences to {folder}")
        folders[label] = folder
    if "supervised" not in folders:
        raise FacerlError(f"no supervised actor in {run_dir / 'actor'} (facerl train experiment=supervised)")
    return folders


def plot_curves(run_dir: Path, path: Path) -> bool:
    """Validation reward, LVE and judge sync per epoch of the fine-tuning runs; False if there are none."""
    from facerl.models.checkpoint import ACTOR_KIND
    from facerl.utils.checkpoint import load_checkpoint

    histories = {}
    for label, stage in STAGES[1:]:
        last = run_dir / stage / "last.pt"
        if last.is_file():
            histories[label] = load_checkpoint(last, ACTOR_KIND)["history"]
    if not histories:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("val_reward", "val reward (lip + real)"), ("val_lve", "val LVE (m²)"),
            ("val_judge_sync", "val judge sync"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), dpi=110)
    for ax, (key, title) in zip(axes, keys):
        for label, history in histories.items():
            ax.plot([h["epoch"] for h in history], [h.get(key, np.nan) for h in history], "o-", label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch (0 = supervised start)")
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def compare(run_dir: Path, spec: DatasetSpec, device: torch.device, out_dir: Path) -> tuple[str, dict[str, Path]]:
    """Write ``out_dir``/metrics.{md,json,csv} and training_curves.png; returns the table and result folders."""
    from facerl.eval.evaluate import evaluate, run_scorers, write_report

    folders = result_folders(run_dir, spec, device)
    scorers = run_scorers(run_dir)
    rows = evaluate(spec, "test", folders, scorers["judge"], str(device), scorers["reward"], scorers["lipreader"])
    table = write_report(rows, out_dir, "test")
    if plot_curves(run_dir, out_dir / "training_curves.png"):
        print(f"training curves: {out_dir / 'training_curves.png'}")
    return table, folders
