"""Reward-model training: the sync backbone and the score head jointly (`facerl train experiment=reward`),
or the judge, an independent backbone for evaluation only (`facerl train experiment=judge`).

Reads top to bottom: config -> seed/device -> data (clips read once, log-mel computed once, optional
actor outputs) -> backbone (+ mel normalisation) + head -> optimiser (+ resume) -> one explicit loop ->
validation on fixed windows of the held-out val speakers -> checkpoints ``<run>/<stage>/{backbone,head,last}.pt``.

The budget is steps (``trainer.epochs`` x ``trainer.steps_per_epoch``), so a model's quality does not depend
on how busy the machine is; ``trainer.max_minutes`` is only a safety cap, and a run it stops says so loudly
and records ``stopped_by_time_cap`` in its metrics (it is then not ``finished``: resuming completes it).

Each step, :func:`facerl.reward.data.sample_windows` draws N windows from random clips with their aligned
audio, K shifted-audio hard negatives and a degraded (or actor-generated) copy (``trainer.negatives``).
A share of those realism negatives is replaced by its adversarial version (``trainer.adversarial``): the
copy within +-eps metres per coordinate that the current model finds most real, found by signed-gradient
steps (PGD, Madry et al. 2018). That is the perceptual loss's and RL's exploit in miniature: without it a
0.1 mm perturbation lifted the supervised actor's realism from 0.05 to 0.65 (ground truth 0.70).
Losses (named weights in ``trainer.loss``):
* ``contrastive``: InfoNCE between mesh and audio features (batch audio + hard negatives);
* ``lip``: BCE of the lip score: aligned = 1; audio shifted >= 2 frames, or from another clip = 0;
* ``real``: BCE of the realism score: ground-truth motion = 1, degraded motion = 0 (with aligned audio).

Dimensions: N windows, K hard negatives, L window frames (5), P = V*3, E embedding size.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from facerl.config import to_dataclass
from facerl.data.dataset import Clip, VocaDataset, collate, spec_from_config
from facerl.errors import FacerlError
from facerl.reward.data import (
    RealismNegatives,
    RewardClip,
    WindowBatch,
    prepare_clip,
    sample_windows,
)
from facerl.reward.degrade import DEGRADATIONS
from facerl.reward.frozen import REWARD_KIND
from facerl.reward.model import (
    BackboneConfig,
    ScoreHead,
    SpeechMeshTransformer,
    sync_contrastive_loss,
)
from facerl.train.common import (
    apply_optimizer_settings,
    check_resume,
    load_checkpoint,
    reading_checkpoint,
    record_changes,
    resolve_device,
    restore_rng,
    rng_state,
    save_checkpoint,
    seed_everything,
)
from facerl.train.supervised import preload
from facerl.utils.io import check_writable


@dataclass
class RewardLossWeights:
    contrastive: float = 1.0   # InfoNCE sync loss of the backbone
    lip: float = 1.0           # BCE of the lip (sync) score
    real: float = 1.0          # BCE of the realism score

    @property
    def head(self) -> bool:
        """Whether the score head is trained at all (the judge trains only the backbone)."""
        return self.lip > 0 or self.real > 0


@dataclass
class AdversarialNegatives:
    share: float = 0.25        # share of the realism negatives replaced by their adversarial version (0: none)
    eps_m: float = 1e-4        # L-inf bound of the perturbation per coordinate, metres (drawn in (0, eps_m] per window)
    steps: int = 1             # signed-gradient steps (1: FGSM)


RESUME_KEYS = ("backbone", "head", "optimizer", "config", "rng", "step", "epoch", "history", "best")


@dataclass
class RewardTrainConfig:
    """Hyper-parameters of reward-model training (conf/trainer/reward.yaml documents each)."""

    epochs: int = 13
    steps_per_epoch: int = 20
    max_minutes: float = 30.0
    batch_windows: int = 256
    n_hard: int = 4
    near_shift: bool = True
    min_shift: int = 2
    max_shift: int = 15
    lr: float = 3e-4
    temperature: float = 0.1
    val_windows: int = 512
    actor_checkpoint: str | None = None
    negatives: RealismNegatives = field(default_factory=RealismNegatives)
    adversarial: AdversarialNegatives = field(default_factory=AdversarialNegatives)
    loss: RewardLossWeights = field(default_factory=RewardLossWeights)
    device: str = "auto"
    seed: int = 0
    resume: bool = True
    accept_changes: bool = False

    def validate(self) -> None:
        if min(self.epochs, self.steps_per_epoch, self.batch_windows, self.n_hard, self.val_windows) < 1:
            raise FacerlError("trainer.epochs, steps_per_epoch, batch_windows, n_hard and val_windows must be >= 1")
        if self.batch_windows < 2:
            raise FacerlError("trainer.batch_windows must be >= 2 (the other windows are the easy negatives)")
        if not 1 <= self.min_shift <= self.max_shift:
            raise FacerlError("trainer.min_shift must be >= 1 and <= trainer.max_shift")
        if not (self.lr > 0 and self.temperature > 0 and self.max_minutes >= 0):
            raise FacerlError("trainer.lr and trainer.temperature must be > 0, trainer.max_minutes >= 0")
        if min(self.loss.contrastive, self.loss.lip, self.loss.real) < 0:
            raise FacerlError("trainer.loss weights must be >= 0")
        neg = self.negatives
        weights = [getattr(neg, k) for k in DEGRADATIONS]
        if min(*weights, neg.actor) < 0 or sum(weights) <= 0 or not 0 <= neg.degrade_actor <= 1:
            raise FacerlError("trainer.negatives weights must be >= 0 with one degradation > 0, "
                              "trainer.negatives.degrade_actor in [0, 1]")
        adv = self.adversarial
        if not (0 <= adv.share <= 1 and adv.eps_m > 0 and adv.steps >= 1):
            raise FacerlError("trainer.adversarial.share must be in [0, 1], eps_m > 0 and steps >= 1")


def adversarial_windows(backbone: SpeechMeshTransformer, head: ScoreHead, fake: torch.Tensor,
                        audio_feat: torch.Tensor, eps: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """PGD on the realism logit: fake windows (n, L, P) moved within +-eps (n,) metres per coordinate towards
    what the model finds most real, given their aligned audio features (n, E). Only the input gets a gradient."""
    eps = eps.view(-1, 1, 1)                                                      # (n, 1, 1)
    step = eps if steps == 1 else 2.5 * eps / steps                               # Madry et al.'s step size
    x = fake.detach()
    for _ in range(steps):
        x.requires_grad_(True)
        logit = head(backbone.encode_mesh(x), audio_feat.detach()).real_logit     # (n,)
        (grad,) = torch.autograd.grad(logit.sum(), x)
        x = torch.minimum(torch.maximum(x.detach() + step * grad.sign(), fake - eps), fake + eps)
    return x.detach()


def reward_losses(backbone: SpeechMeshTransformer, head: ScoreHead, wb: WindowBatch, temperature: float,
                  with_head: bool = True, adversarial: AdversarialNegatives | None = None) -> dict[str, torch.Tensor]:
    """All reward-model losses and accuracies for one window batch (tensors on the model's device).

    Hard negatives shifted by less than 2 frames (the ``near_shift`` one) are contrastive negatives but
    get a lip target of 0.5, not 0: one frame off is half in sync, and the lip score then peaks at 0.
    ``pair_acc``: how often a mesh window is closer (cosine) to its aligned audio than to a shifted copy
    (shifts of 2 frames or more).
    ``lip_acc``: balanced accuracy of the lip score at 0.5, aligned vs shifted by >= min_shift frames.
    ``real_acc``: balanced accuracy of the realism score at 0.5, ground truth vs degraded.
    ``adversarial``: the first ``share`` of the realism negatives become adversarial (``adv_real_acc``: how
    many of them still score below 0.5).
    """
    n, k = wb.hard_mel.shape[:2]
    v, a = backbone(wb.mesh, wb.mel)                                               # (N, E) each
    hard_a = backbone.encode_audio(wb.hard_mel.flatten(0, 1)).view(n, k, -1)       # (N, K, E)
    out = {"contrastive": sync_contrastive_loss(v, a, hard_a, temperature)}
    far = (wb.shifts.abs() >= 2).to(v.device)                                      # (N, K)
    with torch.no_grad():
        aligned = F.cosine_similarity(v, a, dim=-1)[:, None]                       # (N, 1)
        out["pair_acc"] = (aligned > F.cosine_similarity(v[:, None], hard_a, dim=-1))[far].float().mean()
    if not with_head:
        return out
    degraded, n_adv = wb.degraded, 0
    if adversarial is not None and adversarial.share > 0:
        n_adv = max(1, round(adversarial.share * n))
        eps = adversarial.eps_m * (1 - torch.rand(n_adv, device=v.device))               # (n_adv,) in (0, eps_m]
        adv = adversarial_windows(backbone, head, degraded[:n_adv], a[:n_adv], eps, adversarial.steps)
        degraded = torch.cat([adv, degraded[n_adv:]])
    bad_v = backbone.encode_mesh(degraded)                                         # (N, E)
    other = torch.roll(torch.arange(n, device=v.device), shifts=max(1, n // 2))    # another window's audio
    pos = head(v, a)
    neg_shift = head(v.repeat_interleave(k, 0), hard_a.flatten(0, 1))              # (N*K,)
    neg_other = head(v, a[other])
    bad = head(bad_v, a)
    bce = F.binary_cross_entropy_with_logits
    shift_target = torch.where(far, 0.0, 0.5).flatten()                            # (N*K,)
    out["lip"] = (bce(pos.lip_logit, torch.ones_like(pos.lip_logit))
                  + 0.5 * bce(neg_shift.lip_logit, shift_target)
                  + 0.5 * bce(neg_other.lip_logit, torch.zeros_like(neg_other.lip_logit)))
    out["real"] = (bce(pos.real_logit, torch.ones_like(pos.real_logit))
                   + bce(bad.real_logit, torch.zeros_like(bad.real_logit)))
    out["lip_acc"] = ((pos.lip > 0.5).float().mean() + (neg_shift.lip[far.flatten()] < 0.5).float().mean()).detach() / 2
    out["real_acc"] = ((pos.real > 0.5).float().mean() + (bad.real < 0.5).float().mean()).detach() / 2
    if n_adv:
        out["adv_real_acc"] = (bad.real[:n_adv] < 0.5).float().mean().detach()
    return out


def total_loss(out: dict[str, torch.Tensor], weights: RewardLossWeights) -> torch.Tensor:
    loss = weights.contrastive * out["contrastive"]
    if weights.head:
        loss = loss + weights.lip * out["lip"] + weights.real * out["real"]
    return loss


@torch.no_grad()
def validate_reward(backbone, head, windows: WindowBatch, rc: RewardTrainConfig, device,
                    chunk: int = 256) -> dict[str, float]:
    """Held-out speakers: mean losses and accuracies over fixed windows (the same every epoch)."""
    backbone.eval()
    head.eval()
    sums: dict[str, float] = {}
    n = len(windows.mesh)
    for start in range(0, n, chunk):
        part = _slice(windows, start, start + chunk)
        out = reward_losses(backbone, head, part.to(device), rc.temperature, rc.loss.head)
        for key, value in out.items():
            sums[key] = sums.get(key, 0.0) + value.item() * len(part.mesh) / n
    backbone.train()
    head.train()
    return sums


def _slice(wb: WindowBatch, lo: int, hi: int) -> WindowBatch:
    return WindowBatch(wb.mesh[lo:hi], wb.mel[lo:hi], wb.hard_mel[lo:hi], wb.shifts[lo:hi], wb.degraded[lo:hi],
                       wb.degradation[lo:hi], wb.clip[lo:hi], wb.start[lo:hi])


@torch.no_grad()
def generate_motion(checkpoint: str, clips: list[Clip], device, chunk: int = 8) -> list[torch.Tensor]:
    """An actor's deterministic output for every clip under the clip's own style (average style for
    unseen speakers): motion (T, P) in metres from each clip's template, on the CPU."""
    from facerl.eval.predict import audio_features
    from facerl.models.checkpoint import load_actor

    actor, _, _ = load_actor(checkpoint, device)
    out = []
    for start in tqdm(range(0, len(clips), chunk), desc="actor outputs (realism negatives)", unit="batch",
                      leave=False):
        part = clips[start:start + chunk]
        batch = collate(part).to(device)
        style = batch.style.clamp_min(-1)
        motion = actor.generate(audio_features(actor, batch), style).motion                # (B, T, K)
        offsets = actor.motion.decode(motion).cpu()                                        # (B, T, P)
        out += [offsets[i, :len(c.vertices)] for i, c in enumerate(part)]
    return out


def warn_time_cap(stage: str, rc: RewardTrainConfig, step: int) -> None:
    """A run stopped by the safety cap is under-trained, by an amount that depends on the machine's load:
    nobody should miss it (stdout and stderr)."""
    bar = "!" * 100
    text = (f"{bar}\n!!! {stage} training STOPPED BY THE TIME CAP (trainer.max_minutes={rc.max_minutes:g}) after "
            f"{step} of {rc.epochs * rc.steps_per_epoch} steps.\n!!! The model is under-trained; "
            f"stopped_by_time_cap is recorded in its checkpoint metrics and resuming completes the budget.\n"
            f"!!! Raise trainer.max_minutes (a safety cap only) or lower trainer.epochs x trainer.steps_per_epoch."
            f"\n{bar}")
    print(text, flush=True)
    print(text, file=sys.stderr, flush=True)


def prepare(clips: list[Clip], generated: list[torch.Tensor] | None, desc: str) -> list[RewardClip]:
    gen = generated or [None] * len(clips)
    return [prepare_clip(c, g) for c, g in tqdm(list(zip(clips, gen)), desc=desc, unit="clip", leave=False)]


def train_reward(cfg: DictConfig) -> Path:
    """Train backbone + head (``stage=reward``) or a judge backbone (``stage=judge``); returns the folder
    ``<run>/<stage>/`` holding backbone.pt, head.pt and last.pt."""
    rc = to_dataclass(RewardTrainConfig, cfg.trainer, "trainer.")
    bc = to_dataclass(BackboneConfig, cfg.reward, "reward.")
    rc.validate()
    if bc.width % bc.heads:
        raise FacerlError(f"reward.width ({bc.width}) must be divisible by reward.heads ({bc.heads})")
    device = resolve_device(rc.device)
    seed_everything(rc.seed)
    out_dir = Path(cfg.paths.run_dir) / str(cfg.stage)
    last_path = out_dir / "last.pt"
    check_writable(out_dir)  # now, not after minutes of loading
    resuming = rc.resume and last_path.exists()
    ckpt = load_checkpoint(last_path, REWARD_KIND, keys=RESUME_KEYS) if resuming else None
    changes: dict = {}
    if ckpt is not None:
        with reading_checkpoint(last_path):
            changes = check_resume(last_path, ckpt["config"], OmegaConf.to_container(cfg, resolve=True),
                                   rc.accept_changes, fixed=("reward",), ignore=("model",))

    spec = spec_from_config(cfg.dataset)
    train_raw = preload(VocaDataset(spec, "train", with_phones=False), "loading train clips", True)
    val_raw = preload(VocaDataset(spec, "val", with_phones=False), "loading val clips", True)
    generated = generate_motion(rc.actor_checkpoint, train_raw, device) if rc.actor_checkpoint else None
    train_clips = prepare(train_raw, generated, "train log-mel")
    val_clips = prepare(val_raw, None, "val log-mel")
    del train_raw, val_raw
    n_coords = train_clips[0].motion.shape[1]
    val_windows = sample_windows(val_clips, rc.val_windows, np.random.default_rng(1234), rc.n_hard,
                                 rc.min_shift, rc.max_shift, near=rc.near_shift, negatives=rc.negatives)

    backbone = SpeechMeshTransformer(n_coords, bc)
    backbone.set_input_stats(torch.cat([c.motion[::3] for c in train_clips]), torch.cat([c.mel for c in train_clips]))
    backbone.to(device)
    head = ScoreHead(bc.embed).to(device)
    params = list(backbone.parameters()) + (list(head.parameters()) if rc.loss.head else [])
    opt = torch.optim.AdamW(params, lr=rc.lr)
    rng = np.random.default_rng(rc.seed)
    step, first_epoch, history, best = 0, 1, [], {"score": -math.inf, "epoch": 0}
    changes_log: list = []
    if ckpt is not None:
        with reading_checkpoint(last_path):
            backbone.load_state_dict(ckpt["backbone"])
            head.load_state_dict(ckpt["head"])
            opt.load_state_dict(ckpt["optimizer"])
            apply_optimizer_settings(opt, lr=rc.lr)
            step, first_epoch, history, best = ckpt["step"], ckpt["epoch"] + 1, ckpt["history"], ckpt["best"]
            changes_log = record_changes(ckpt.get("config_changes"), first_epoch, changes)
            restore_rng(ckpt["rng"])
        rng = np.random.default_rng([rc.seed, first_epoch])
        print(f"resuming {last_path} at epoch {first_epoch}")

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / "tensorboard"))
    what = "score head + backbone" if rc.loss.head else "backbone only"
    print(f"{cfg.stage} model ({what}): {sum(p.numel() for p in params) / 1e6:.2f} M trained parameters, "
          f"{len(train_clips)} train / {len(val_clips)} val clips"
          f"{', actor outputs as realism negatives' if generated else ''}, device {device}; budget "
          f"{rc.epochs} epochs x {rc.steps_per_epoch} steps = {rc.epochs * rc.steps_per_epoch} steps"
          f"{f' (safety cap {rc.max_minutes:g} min)' if rc.max_minutes > 0 else ''}")
    t_start = time.perf_counter()
    for epoch in range(first_epoch, rc.epochs + 1):
        t_epoch = time.perf_counter()
        bar = tqdm(range(rc.steps_per_epoch), desc=f"{cfg.stage} epoch {epoch}/{rc.epochs}", unit="step",
                   leave=False)
        for _ in bar:
            wb = sample_windows(train_clips, rc.batch_windows, rng, rc.n_hard, rc.min_shift, rc.max_shift,
                                near=rc.near_shift, negatives=rc.negatives)
            out = reward_losses(backbone, head, wb.to(device), rc.temperature, rc.loss.head, rc.adversarial)
            loss = total_loss(out, rc.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{loss.item():.3f}", pair_acc=f"{out['pair_acc'].item():.2f}")
            for key, value in out.items():
                writer.add_scalar(f"train/{key}", value.item(), step)
        val = validate_reward(backbone, head, val_windows, rc, device)
        for key, value in val.items():
            writer.add_scalar(f"val/{key}", value, step)
        score = val["lip_acc"] + val["real_acc"] if rc.loss.head else val["pair_acc"]
        elapsed = time.perf_counter() - t_start
        # The safety cap stops before an epoch that would end past it (this one's duration as the estimate).
        capped = (rc.max_minutes > 0 and epoch < rc.epochs
                  and elapsed + (time.perf_counter() - t_epoch) > rc.max_minutes * 60)
        record = {"epoch": epoch, "step": step, "time_s": round(elapsed, 1), "stopped_by_time_cap": capped,
                  **{f"val_{k}": v for k, v in val.items()}}
        history.append(record)
        meta = {"n_coords": n_coords, "backbone_config": OmegaConf.to_container(cfg.reward, resolve=True),
                "stage": str(cfg.stage), "head_trained": rc.loss.head}
        common = {"kind": REWARD_KIND, "meta": meta, "config": OmegaConf.to_container(cfg, resolve=True),
                  "metrics": record, "step": step, "epoch": epoch}
        if score > best["score"]:
            best = {"score": score, "epoch": epoch}
            save_checkpoint(out_dir / "backbone.pt", {**common, "backbone": backbone.state_dict()})
            save_checkpoint(out_dir / "head.pt", {**common, "head": head.state_dict()})
        finished = epoch == rc.epochs                   # the step budget is done (a capped run resumes)
        save_checkpoint(last_path, {**common, "backbone": backbone.state_dict(), "head": head.state_dict(),
                                    "optimizer": opt.state_dict(), "history": history, "best": best,
                                    "finished": finished, "rng": rng_state(), "config_changes": changes_log})
        heads = f", lip acc {val['lip_acc']:.3f}, real acc {val['real_acc']:.3f}" if rc.loss.head else ""
        print(f"{cfg.stage} epoch {epoch:3d}/{rc.epochs}: val pair acc {val['pair_acc']:.3f}{heads}, "
              f"contrastive {val['contrastive']:.3f} ({elapsed / 60:.1f} min elapsed)", flush=True)
        if capped:
            warn_time_cap(str(cfg.stage), rc, step)
            break
    writer.close()
    print(f"best val score {best['score']:.3f} at epoch {best['epoch']}: {out_dir}")
    return out_dir
