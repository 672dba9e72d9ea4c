"""Reward-model training (`facerl train experiment=reward`): the sync backbone and the score head, jointly.

Reads top to bottom: config -> seed/device -> data (preloaded clips) -> backbone + head -> optimiser
(+ resume) -> one explicit loop -> validation on the held-out val speakers -> checkpoints
``<run>/reward/{backbone,head,last}.pt``.

Per batch of clips, :func:`facerl.reward.data.sample_windows` gives N windows with their aligned audio,
K shifted-audio hard negatives and a degraded copy. Losses (named weights in ``trainer.loss``):
* ``contrastive``: InfoNCE between mesh and audio features (batch audio + hard negatives);
* ``lip``: BCE of the lip score: aligned = 1; audio shifted >= 2 frames, or from another clip = 0;
* ``real``: BCE of the realism score: ground-truth motion = 1, degraded motion = 0 (with aligned audio).
The value output is left to RL.

Dimensions: N windows, K hard negatives, L window frames (5), P = V*3, E embedding size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from facerl.config import to_dataclass
from facerl.data.dataset import VocaDataset, collate, spec_from_config
from facerl.errors import FacerlError
from facerl.reward.data import WindowBatch, sample_windows
from facerl.reward.model import BackboneConfig, ScoreHead, SpeechMeshTransformer, sync_contrastive_loss
from facerl.train.common import (
    load_checkpoint,
    resolve_device,
    restore_rng,
    rng_state,
    save_checkpoint,
    seed_everything,
)
from facerl.train.supervised import preload

REWARD_KIND = "facerl-reward"


@dataclass
class RewardLossWeights:
    contrastive: float = 1.0   # InfoNCE sync loss of the backbone
    lip: float = 1.0           # BCE of the lip (sync) score
    real: float = 1.0          # BCE of the realism score


@dataclass
class RewardTrainConfig:
    """Hyper-parameters of reward-model training (conf/trainer/reward.yaml documents each)."""

    epochs: int = 20
    max_minutes: float = 5.0
    batch_clips: int = 16
    per_clip: int = 8
    n_hard: int = 4
    min_shift: int = 2
    max_shift: int = 15
    lr: float = 1e-3
    temperature: float = 0.1
    loss: RewardLossWeights = field(default_factory=RewardLossWeights)
    device: str = "auto"
    seed: int = 0
    resume: bool = True

    def validate(self) -> None:
        if min(self.epochs, self.batch_clips, self.per_clip, self.n_hard) < 1:
            raise FacerlError("trainer.epochs, batch_clips, per_clip and n_hard must be >= 1")
        if not 1 <= self.min_shift <= self.max_shift:
            raise FacerlError("trainer.min_shift must be >= 1 and <= trainer.max_shift")
        if not (self.lr > 0 and self.temperature > 0 and self.max_minutes >= 0):
            raise FacerlError("trainer.lr and trainer.temperature must be > 0, trainer.max_minutes >= 0")


def reward_losses(backbone: SpeechMeshTransformer, head: ScoreHead, wb: WindowBatch,
                  temperature: float) -> dict[str, torch.Tensor]:
    """All reward-model losses and accuracies for one window batch (tensors on the model's device)."""
    n, k = wb.hard_mel.shape[:2]
    v, a = backbone(wb.mesh, wb.mel)                                               # (N, E) each
    _, hard_a = backbone(wb.mesh.repeat_interleave(k, 0), wb.hard_mel.flatten(0, 1))  # (N*K, E)
    bad_v, _ = backbone(wb.degraded, wb.mel)                                       # (N, E)
    hard_a = hard_a.view(n, k, -1)
    contrastive = sync_contrastive_loss(v, a, hard_a, temperature)
    other = torch.roll(torch.arange(n, device=v.device), shifts=max(1, n // 2))    # another window's audio
    pos = head(v, a)
    neg_shift = head(v, hard_a[:, 0])
    neg_other = head(v, a[other])
    bad = head(bad_v, a)
    ones, zeros = torch.ones(n, device=v.device), torch.zeros(n, device=v.device)
    lip = (F.binary_cross_entropy_with_logits(pos.lip_logit, ones)
           + 0.5 * F.binary_cross_entropy_with_logits(neg_shift.lip_logit, zeros)
           + 0.5 * F.binary_cross_entropy_with_logits(neg_other.lip_logit, zeros))
    real = (F.binary_cross_entropy_with_logits(pos.real_logit, ones)
            + F.binary_cross_entropy_with_logits(bad.real_logit, zeros))
    return {"contrastive": contrastive, "lip": lip, "real": real,
            "lip_acc": ((pos.lip > 0.5).float().mean() + (neg_shift.lip < 0.5).float().mean()) / 2,
            "real_acc": ((pos.real > 0.5).float().mean() + (bad.real < 0.5).float().mean()) / 2}


def _to(wb: WindowBatch, device) -> WindowBatch:
    return WindowBatch(wb.mesh.to(device), wb.mel.to(device), wb.hard_mel.to(device), wb.shifts,
                       wb.degraded.to(device), wb.degradation, wb.clip)


@torch.no_grad()
def validate_reward(backbone, head, clips, rc: RewardTrainConfig, device, seed: int = 1234) -> dict[str, float]:
    """Held-out speakers: mean losses and accuracies over fixed windows (same windows every epoch)."""
    backbone.eval()
    head.eval()
    rng = np.random.default_rng(seed)
    sums: dict[str, float] = {}
    batches = 0
    for start in range(0, len(clips), rc.batch_clips):
        wb = sample_windows(collate(clips[start: start + rc.batch_clips]), rng, rc.per_clip, rc.n_hard,
                            rc.min_shift, rc.max_shift)
        out = reward_losses(backbone, head, _to(wb, device), rc.temperature)
        for key, value in out.items():
            sums[key] = sums.get(key, 0.0) + value.item()
        batches += 1
    backbone.train()
    head.train()
    return {key: value / max(batches, 1) for key, value in sums.items()}


def train_reward(cfg: DictConfig) -> Path:
    """Train backbone + head; returns the reward folder (backbone.pt, head.pt, last.pt)."""
    rc = to_dataclass(RewardTrainConfig, cfg.trainer, "trainer.")
    bc = to_dataclass(BackboneConfig, cfg.reward, "reward.")
    rc.validate()
    device = resolve_device(rc.device)
    data_gen = seed_everything(rc.seed)
    rng = np.random.default_rng(rc.seed)
    out_dir = Path(cfg.paths.run_dir) / "reward"

    spec = spec_from_config(cfg.dataset)
    train_clips = preload(VocaDataset(spec, "train", with_phones=False), "loading train clips", True)
    val_clips = preload(VocaDataset(spec, "val", with_phones=False), "loading val clips", True)
    n_coords = train_clips[0].vertices.shape[1]

    backbone = SpeechMeshTransformer(n_coords, bc).to(device)
    head = ScoreHead(bc.embed).to(device)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=rc.lr)
    last_path = out_dir / "last.pt"
    step, first_epoch, history, best = 0, 1, [], {"score": -math.inf, "epoch": 0}
    if rc.resume and last_path.exists():
        ckpt = load_checkpoint(last_path, REWARD_KIND)
        if ckpt["config"]["reward"] != OmegaConf.to_container(cfg.reward, resolve=True):
            raise FacerlError(f"{last_path} was trained with another reward config; "
                              "use another run_name or trainer.resume=false")
        backbone.load_state_dict(ckpt["backbone"])
        head.load_state_dict(ckpt["head"])
        opt.load_state_dict(ckpt["optimizer"])
        step, first_epoch, history, best = ckpt["step"], ckpt["epoch"] + 1, ckpt["history"], ckpt["best"]
        restore_rng(ckpt["rng"])
        data_gen.set_state(ckpt["rng"]["data"])
        rng = np.random.default_rng([rc.seed, first_epoch])
        print(f"resuming {last_path} at epoch {first_epoch}")
    loader = DataLoader(train_clips, batch_size=rc.batch_clips, sampler=RandomSampler(train_clips, generator=data_gen),
                        collate_fn=collate)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / "tensorboard"))
    print(f"reward model: {sum(p.numel() for p in params) / 1e6:.2f} M parameters, {len(train_clips)} train / "
          f"{len(val_clips)} val clips, device {device}")
    t_start = time.perf_counter()
    for epoch in range(first_epoch, rc.epochs + 1):
        t_epoch = time.perf_counter()
        bar = tqdm(loader, desc=f"reward epoch {epoch}/{rc.epochs}", unit="batch", leave=False)
        for batch in bar:
            wb = _to(sample_windows(batch, rng, rc.per_clip, rc.n_hard, rc.min_shift, rc.max_shift), device)
            out = reward_losses(backbone, head, wb, rc.temperature)
            loss = rc.loss.contrastive * out["contrastive"] + rc.loss.lip * out["lip"] + rc.loss.real * out["real"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{loss.item():.3f}", lip_acc=f"{out['lip_acc'].item():.2f}")
            for key, value in out.items():
                writer.add_scalar(f"train/{key}", value.item(), step)
        val = validate_reward(backbone, head, val_clips, rc, device)
        for key, value in val.items():
            writer.add_scalar(f"val/{key}", value, step)
        score = val["lip_acc"] + val["real_acc"]
        elapsed = time.perf_counter() - t_start
        out_of_time = rc.max_minutes > 0 and elapsed + (time.perf_counter() - t_epoch) > rc.max_minutes * 60
        record = {"epoch": epoch, "step": step, "time_s": round(elapsed, 1), **{f"val_{k}": v for k, v in val.items()}}
        history.append(record)
        meta = {"n_coords": n_coords, "backbone_config": OmegaConf.to_container(cfg.reward, resolve=True)}
        common = {"kind": REWARD_KIND, "meta": meta, "config": OmegaConf.to_container(cfg, resolve=True),
                  "metrics": record, "step": step, "epoch": epoch}
        if score > best["score"]:
            best = {"score": score, "epoch": epoch}
            save_checkpoint(out_dir / "backbone.pt", {**common, "backbone": backbone.state_dict()})
            save_checkpoint(out_dir / "head.pt", {**common, "head": head.state_dict()})
        save_checkpoint(last_path, {**common, "backbone": backbone.state_dict(), "head": head.state_dict(),
                                    "optimizer": opt.state_dict(), "history": history, "best": best,
                                    "rng": {**rng_state(), "data": data_gen.get_state()}})
        print(f"reward epoch {epoch:3d}/{rc.epochs}: val sync acc {val['lip_acc']:.3f}, "
              f"real acc {val['real_acc']:.3f}, contrastive {val['contrastive']:.3f} "
              f"({elapsed / 60:.1f} min elapsed)", flush=True)
        if out_of_time:
            print(f"stopping after epoch {epoch}: trainer.max_minutes={rc.max_minutes} reached")
            break
    writer.close()
    print(f"best val (sync acc + real acc) {best['score']:.3f} at epoch {best['epoch']}: {out_dir}")
    return out_dir
