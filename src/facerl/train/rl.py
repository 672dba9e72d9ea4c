"""Fine-tuning the supervised actor against the frozen reward model (`facerl train experiment=rl`), and the
perceptual-loss baseline under the same budget (`facerl train experiment=perceptual`).

Reads top to bottom: config -> the supervised actor (trained) + a frozen copy (reference) -> the frozen
reward model with a trainable value MLP -> data -> one explicit loop -> validation (deterministic LVE,
mean reward, judge sync) -> ``<run>/<stage>/{best,best_head,last}.pt``.

One RL step on a batch of B clips, G samples per clip (the DESIGN's objective, options by name):
* supervised loss on the batch, exactly as supervised training (scheduled sampling, mm²);
* G stochastic rollouts per clip (no gradient) -> sliding 5-frame windows of each sample with their mel
  windows -> frozen backbone + head: lip, real (B*G, W); the value MLP: value (B*G, W);
* reward = (lip + real) * reward_scale, mean over windows (``dense``: per window);
* advantage = reward - baseline; baseline ``critic`` (value), ``group`` (mean reward of the clip's G
  samples, GRPO-style) or ``none``; ``normalize`` scales advantages to unit std per batch;
* log-prob of each sample from one teacher-forced pass along it (with gradient);
  actor_loss = -advantage.detach() * mean log_prob (``dense``: each frame gets the mean advantage of the
  windows that contain it); ``clip`` > 0 with ``ppo_epochs`` > 1 reuses the rollout with PPO clipping;
* critic_loss = (reward - value)^2; kl = KL(policy || frozen reference) along the samples;
* total = sup + actor * actor_loss + critic * critic_loss + kl * kl.

The perceptual objective replaces the RL terms by a differentiable sync loss through the frozen
backbone: 1 - cosine(vertex_feat, audio_feat) of the windows of the actor's (scheduled-sampling) means.

Dimensions: B clips, G samples, T frames (30 fps), K motion-space size, P = V*3, W = T - 4 windows.
"""

from __future__ import annotations

import copy
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
from facerl.data.dataset import Batch, VocaDataset, collate, spec_from_config
from facerl.errors import FacerlError
from facerl.eval.metrics import lip_vertex_error
from facerl.models.actor import Actor
from facerl.models.checkpoint import ACTOR_KIND, load_actor
from facerl.reward.scoring import REWARD_KIND, RewardModel, load_backbone, load_reward
from facerl.reward.windows import mel_windows, mesh_windows, reward_mel, window_mask
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
from facerl.train.losses import masked_mse, velocity_mse
from facerl.train.supervised import MM2, TrainStep, preload
from facerl.utils.io import check_writable

RESUME_KEYS = ("model", "head", "optimizer", "config", "rng", "step", "epoch", "history", "best")

OBJECTIVES = ("rl", "perceptual")
BASELINES = ("critic", "group", "none")


@dataclass
class RLWeights:
    sup: float = 1.0       # supervised loss (vertex + velocity MSE, mm²)
    actor: float = 1.0     # policy-gradient term
    critic: float = 1.0    # value regression
    kl: float = 0.0        # KL(policy || frozen supervised reference) along the samples
    sync: float = 1.0      # perceptual objective: 1 - cosine sync through the frozen backbone


@dataclass
class RLConfig:
    """Hyper-parameters of RL / perceptual fine-tuning (conf/trainer/rl.yaml documents each)."""

    objective: str = "rl"
    actor_checkpoint: str = ""
    reward_dir: str = ""
    judge_dir: str = ""
    epochs: int = 40
    steps_per_epoch: int = 10
    max_minutes: float = 3.0
    batch_size: int = 8
    samples: int = 4
    lr: float = 1e-4
    grad_clip: float = 1.0
    reward_scale: float = 1.0
    baseline: str = "group"
    dense: bool = False
    normalize: bool = True
    clip: float = 0.0
    ppo_epochs: int = 1
    loss: RLWeights = field(default_factory=RLWeights)
    val_clips: int = 40
    max_lve_increase: float = 0.05
    device: str = "auto"
    seed: int = 0
    resume: bool = True
    accept_changes: bool = False

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise FacerlError(f"trainer.objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.baseline not in BASELINES:
            raise FacerlError(f"trainer.baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if min(self.epochs, self.steps_per_epoch, self.batch_size, self.samples, self.ppo_epochs, self.val_clips) < 1:
            raise FacerlError("trainer.epochs, steps_per_epoch, batch_size, samples, ppo_epochs and val_clips "
                              "must be >= 1")
        if self.baseline == "group" and self.samples < 2:
            raise FacerlError("trainer.baseline=group needs trainer.samples >= 2")
        if not (self.lr > 0 and self.max_minutes >= 0 and self.clip >= 0 and self.reward_scale > 0):
            raise FacerlError("trainer.lr and reward_scale must be > 0; max_minutes and clip >= 0")


# ---- windows and scores ------------------------------------------------------------------------------------
def sequence_windows(offsets: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, P) motion, (N, 4T, M) log-mel -> mesh windows (N*W, 5, P) and mel windows (N*W, 1, 20, M)."""
    return mesh_windows(offsets).flatten(0, 1), mel_windows(mel).flatten(0, 1)


def window_scores(reward: RewardModel, offsets: torch.Tensor, mel: torch.Tensor):
    """Frozen lip and real (N, W) without gradient, and the backbone features for the value MLP."""
    n = len(offsets)
    mesh, mel_w = sequence_windows(offsets, mel)
    with torch.no_grad():
        v, a = reward.backbone(mesh, mel_w)
        s = reward.head(v, a)
    return s.lip.view(n, -1), s.real.view(n, -1), torch.cat([v, a], -1).view(n, s.lip.numel() // n, -1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of real entries: (N, L), (N, L) bool -> (N,)."""
    m = mask.to(x.dtype)
    return (x * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def frame_advantage(window_adv: torch.Tensor, length: int = 5) -> torch.Tensor:
    """Dense advantages: each frame gets the mean advantage of the windows (N, W) that contain it -> (N, T)."""
    ones = torch.ones(1, 1, length, device=window_adv.device, dtype=window_adv.dtype)
    total = F.conv1d(F.pad(window_adv[:, None], (length - 1, length - 1)), ones)[:, 0]        # (N, T)
    count = F.conv1d(F.pad(torch.ones_like(window_adv)[:, None], (length - 1, length - 1)), ones)[:, 0]
    return total / count.clamp_min(1.0)


def gaussian_kl(mean: torch.Tensor, log_std: torch.Tensor, ref_mean: torch.Tensor, ref_log_std: torch.Tensor,
                frame_mask: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std) || N(ref_mean, ref_std)) summed over K, mean over real frames."""
    var, ref_var = (2 * log_std).exp(), (2 * ref_log_std).exp()
    kl = (ref_log_std - log_std + (var + (mean - ref_mean) ** 2) / (2 * ref_var) - 0.5).sum(-1)   # (N, T)
    return (kl * frame_mask).sum() / frame_mask.sum().clamp_min(1)


# ---- one step ----------------------------------------------------------------------------------------------
@dataclass
class Rollouts:
    """G samples per clip of a batch, scored once (no gradient); the actor may take several steps on them."""

    sample: torch.Tensor        # (BG, T, K) sampled motion coefficients
    feat: torch.Tensor          # (BG, W, 2E) frozen backbone features of the sample's windows (value input)
    reward_w: torch.Tensor      # (BG, W) (lip + real) * reward_scale
    reward: torch.Tensor        # (BG,) mean over real windows
    frame_adv: torch.Tensor     # (BG, T) or (BG, 1) advantages, fixed for this rollout
    old_logp: torch.Tensor      # (BG, T) log-prob under the policy that sampled
    ref_means: torch.Tensor | None   # (BG, T, K) the frozen reference's means along the sample (KL)
    stats: dict[str, float]


class Objective:
    """The per-batch losses of RL (:meth:`rollouts` then :meth:`loss`) or of the perceptual baseline."""

    def __init__(self, actor: Actor, reference: Actor, reward: RewardModel, rc: RLConfig) -> None:
        self.actor, self.reference, self.reward, self.rc = actor, reference, reward, rc
        self.sup_step = TrainStep(actor, "scheduled")
        self.weights = actor.motion.mse_weights()

    def _inputs(self, batch: Batch):
        t = batch.vertices.shape[1]
        feats = self.actor.encode_audio(batch.audio, batch.audio_mask, t)                    # (B, T, Da)
        target = self.actor.motion.encode(batch.vertices - batch.template[:, None])         # (B, T, K)
        means = self.sup_step(batch.audio, batch.audio_mask, feats, batch.style, target)    # (B, T, K)
        sup = (masked_mse(means, target, batch.frame_mask, self.weights)
               + velocity_mse(means, target, batch.frame_mask, self.weights)) * MM2
        return feats, means, sup

    def _rep(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.rc.samples, 0)

    @torch.no_grad()
    def rollouts(self, batch: Batch) -> Rollouts:
        rc, actor, g = self.rc, self.actor, self.rc.samples
        t = batch.vertices.shape[1]
        feats = self._rep(actor.encode_audio(batch.audio, batch.audio_mask, t))
        style, fmask = self._rep(batch.style), self._rep(batch.frame_mask)
        wmask = self._rep(window_mask(batch.frame_mask))
        sample = actor.generate(feats, style, stochastic=True).motion                      # (BG, T, K)
        mel = self._rep(reward_mel(batch.audio, t))                                         # (BG, 4T, M)
        lip, real, feat = window_scores(self.reward, actor.motion.decode(sample), mel)
        reward_w = (lip + real) * rc.reward_scale                                           # (BG, W)
        reward = masked_mean(reward_w, wmask)                                               # (BG,)
        value_w = self.reward.head.value(feat).squeeze(-1)
        if rc.baseline == "critic":
            adv = reward_w - value_w if rc.dense else reward - masked_mean(value_w, wmask)
        elif rc.baseline == "group":
            group = reward.view(-1, g).mean(1).repeat_interleave(g)                         # (BG,)
            adv = reward_w - group[:, None] if rc.dense else reward - group
        else:
            adv = reward_w if rc.dense else reward
        if rc.normalize:
            adv = adv / (adv[wmask].std() if rc.dense else adv.std()).clamp_min(1e-6)
        frame_adv = frame_advantage(adv * wmask) if rc.dense else adv[:, None]
        old_logp = actor.log_prob(actor(feats, style, sample), sample)                      # (BG, T)
        ref_means = self.reference(feats, style, sample) if rc.loss.kl > 0 else None
        stats = {"reward": reward.mean().item(), "lip": masked_mean(lip, wmask).mean().item(),
                 "real": masked_mean(real, wmask).mean().item(), "reward_std_in_group":
                 reward.view(-1, g).std(1).mean().item() if g > 1 else 0.0,
                 "advantage_std": adv.std().item(),
                 "log_prob": ((old_logp * fmask).sum() / fmask.sum()).item()}
        return Rollouts(sample, feat, reward_w, reward, frame_adv, old_logp, ref_means, stats)

    def loss(self, batch: Batch, ro: Rollouts | None) -> tuple[torch.Tensor, dict[str, float]]:
        """RL: supervised + actor + critic (+ KL) on the rollouts; perceptual: supervised + sync loss."""
        rc, actor = self.rc, self.actor
        feats, means, sup = self._inputs(batch)
        if rc.objective == "perceptual":
            t = batch.vertices.shape[1]
            mesh, mel_w = sequence_windows(actor.motion.decode(means), reward_mel(batch.audio, t))
            v, a = self.reward.backbone(mesh, mel_w)                                         # gradient to the actor
            wmask = window_mask(batch.frame_mask)
            sync = (1 - masked_mean(F.cosine_similarity(v, a, dim=-1).view(wmask.shape), wmask)).mean()
            total = rc.loss.sup * sup + rc.loss.sync * sync
            return total, {"sup": sup.item(), "sync_loss": sync.item(), "total": total.item()}
        fmask, style = self._rep(batch.frame_mask), self._rep(batch.style)
        wmask = self._rep(window_mask(batch.frame_mask))
        means_s = actor(self._rep(feats), style, ro.sample)                                 # (BG, T, K)
        logp = actor.log_prob(means_s, ro.sample)                                           # (BG, T)
        ratio = (logp - ro.old_logp).exp()
        surrogate = ratio * ro.frame_adv
        if rc.clip > 0:                                                                     # PPO
            surrogate = torch.minimum(surrogate, ratio.clamp(1 - rc.clip, 1 + rc.clip) * ro.frame_adv)
        n_frames = fmask.sum().clamp_min(1)
        actor_loss = -(surrogate * fmask).sum() / n_frames
        value_w = self.reward.head.value(ro.feat).squeeze(-1)                               # (BG, W)
        critic = (((ro.reward_w - value_w) ** 2 * wmask).sum() / wmask.sum() if rc.dense
                  else ((ro.reward - masked_mean(value_w, wmask)) ** 2).mean())
        kl = (gaussian_kl(means_s, actor.log_std, ro.ref_means, self.reference.log_std, fmask)
              if ro.ref_means is not None else torch.zeros((), device=sup.device))
        total = rc.loss.sup * sup + rc.loss.actor * actor_loss + rc.loss.critic * critic + rc.loss.kl * kl
        return total, {**ro.stats, "sup": sup.item(), "actor_loss": actor_loss.item(), "critic": critic.item(),
                       "value_error": (ro.reward - masked_mean(value_w, wmask)).abs().mean().item(),
                       "kl": kl.item(), "total": total.item()}


def trainable_actor(actor: Actor) -> Actor:
    """The actor as RL trains it: dropout off (log-probs of the samples must come from the policy that drew
    them), every parameter trainable except the cross-attention queries, which never get a gradient under
    the one-key alignment mask (documented in the actor's tests)."""
    actor.eval().requires_grad_(True)
    for name, p in actor.named_parameters():
        if ".cross_attn.q." in name:
            p.requires_grad_(False)
    return actor


def trainable_parameters(actor: Actor, reward: RewardModel, objective: str) -> list[torch.nn.Parameter]:
    """What the optimiser updates: the actor, plus the value MLP for RL. Backbone, lip and real stay frozen."""
    params = [p for p in actor.parameters() if p.requires_grad]
    if objective == "rl":
        reward.head.value.requires_grad_(True)
        params += list(reward.head.value.parameters())
    return params


# ---- validation ------------------------------------------------------------------------------------------
@torch.no_grad()
def validate_rl(actor: Actor, reward: RewardModel, judge, clips, lips: np.ndarray, device,
                chunk: int = 8) -> dict[str, float]:
    """Deterministic generation of the val clips (average style): LVE, mean reward (lip + real), judge sync."""
    from facerl.eval.reward_report import JudgeScorer

    was = actor.training
    actor.eval()
    preds, gts, rewards, lip_s, real_s, margins = [], [], [], [], [], []
    scorer = JudgeScorer(judge) if judge is not None else None
    for start in range(0, len(clips), chunk):
        batch = collate(clips[start:start + chunk]).to(device)
        t = batch.vertices.shape[1]
        feats = actor.encode_audio(batch.audio, batch.audio_mask, t)
        offsets = actor.motion.decode(actor.generate(feats, torch.full_like(batch.style, -1)).motion)
        mel = reward_mel(batch.audio, t)
        lip, real, _ = window_scores(reward, offsets, mel)
        wmask = window_mask(batch.frame_mask)
        lip_s += masked_mean(lip, wmask).tolist()
        real_s += masked_mean(real, wmask).tolist()
        for b, clip in enumerate(clips[start:start + chunk]):
            n = len(clip.vertices)
            pred = (batch.template[b] + offsets[b, :n]).cpu()
            preds.append(pred.numpy().reshape(n, -1, 3))
            gts.append(clip.vertices.numpy().reshape(n, -1, 3))
            if scorer is not None:
                margins.append(scorer(clip.name, offsets[b, :n].cpu(), mel[b, :4 * n].cpu())[0])
    actor.train(was)
    rewards = [a + b for a, b in zip(lip_s, real_s)]
    return {"lve": lip_vertex_error(preds, gts, lips), "reward": float(np.mean(rewards)),
            "lip": float(np.mean(lip_s)), "real": float(np.mean(real_s)),
            "judge_sync": float(np.mean(margins)) if margins else math.nan}


# ---- training --------------------------------------------------------------------------------------------
def train_rl(cfg: DictConfig) -> Path:
    """Fine-tune the supervised actor (``stage=rl`` or ``stage=perceptual``); returns ``<run>/<stage>/best.pt``."""
    rc = to_dataclass(RLConfig, cfg.trainer, "trainer.")
    rc.validate()
    run_dir = Path(cfg.paths.run_dir)
    out_dir = run_dir / str(cfg.stage)
    actor_path = Path(rc.actor_checkpoint or run_dir / "actor" / "best.pt")
    reward_dir = Path(rc.reward_dir or run_dir / "reward")
    judge_dir = Path(rc.judge_dir or run_dir / "judge")
    device = resolve_device(rc.device)
    data_gen = seed_everything(rc.seed)
    check_writable(out_dir)  # now, not after minutes of loading

    actor, meta, actor_ckpt = load_actor(actor_path, device)
    reference = copy.deepcopy(actor).eval().requires_grad_(False)
    reward = load_reward(reward_dir, device)
    if reward.backbone.n_coords != meta.n_vertices * 3:
        raise FacerlError(f"the reward model in {reward_dir} scores meshes of {reward.backbone.n_coords // 3} "
                          f"vertices, the actor predicts {meta.n_vertices}")
    judge = load_backbone(judge_dir, device) if (judge_dir / "backbone.pt").is_file() else None
    trainable_actor(actor)

    spec = spec_from_config(cfg.dataset)
    if spec.train_subjects != meta.styles:
        raise FacerlError(f"{actor_path} was trained on speakers {meta.styles}, the dataset's training speakers "
                          f"are {spec.train_subjects}")
    train_ds = VocaDataset(spec, "train", with_phones=False)
    train_clips = preload(train_ds, "loading train clips", True)
    val_clips = preload(VocaDataset(spec, "val", with_phones=False), "loading val clips", True)[:rc.val_clips]
    lips = train_ds.layout.regions()["lips"]

    params = trainable_parameters(actor, reward, rc.objective)
    opt = torch.optim.AdamW(params, lr=rc.lr, weight_decay=0.0)
    objective = Objective(actor, reference, reward, rc)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    step, first_epoch, history, changes_log = 0, 1, [], []
    model_cfg = actor_ckpt["config"]["model"]
    run_config = {**OmegaConf.to_container(cfg, resolve=True), "model": model_cfg}  # the actor's own model config
    ckpt = (load_checkpoint(last_path, ACTOR_KIND, keys=RESUME_KEYS) if rc.resume and last_path.exists()
            else None)
    changes = {}
    if ckpt is not None:
        with reading_checkpoint(last_path):
            changes = check_resume(last_path, ckpt["config"], run_config, rc.accept_changes, fixed=("model",),
                                   ignore=("reward",))
    start = validate_rl(actor, reward, judge, val_clips, lips, device)
    best = {"score": -math.inf, "epoch": 0, "lve_limit": start["lve"] * (1 + rc.max_lve_increase)}
    if ckpt is not None:
        with reading_checkpoint(last_path):
            actor.load_state_dict(ckpt["model"])
            reward.head.load_state_dict(ckpt["head"])
            opt.load_state_dict(ckpt["optimizer"])
            apply_optimizer_settings(opt, lr=rc.lr)
            step, first_epoch, history, best = ckpt["step"], ckpt["epoch"] + 1, ckpt["history"], ckpt["best"]
            changes_log = record_changes(ckpt.get("config_changes"), first_epoch, changes)
            restore_rng(ckpt["rng"])
            data_gen.set_state(ckpt["rng"]["data"])
        print(f"resuming {last_path} at epoch {first_epoch}")
    else:
        history.append({"epoch": 0, "step": 0, "time_s": 0.0, **{f"val_{k}": v for k, v in start.items()}})

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / "tensorboard"))
    loader = DataLoader(train_clips, batch_size=rc.batch_size, collate_fn=collate,
                        sampler=RandomSampler(train_clips, replacement=True, num_samples=10**9, generator=data_gen))
    batches = iter(loader)
    print(f"{cfg.stage}: fine-tuning {actor_path} against {reward_dir} ({rc.objective}, "
          f"{'baseline ' + rc.baseline + f', {rc.samples} samples/clip' if rc.objective == 'rl' else 'sync loss'}); "
          f"start: val LVE {start['lve']:.3e}, reward {start['reward']:.3f}, judge sync {start['judge_sync']:.3f}")
    t_start = time.perf_counter()
    for epoch in range(first_epoch, rc.epochs + 1):
        t_epoch = time.perf_counter()
        sums: dict[str, float] = {}
        bar = tqdm(range(rc.steps_per_epoch), desc=f"{cfg.stage} epoch {epoch}/{rc.epochs}", unit="step", leave=False)
        for _ in bar:
            batch = next(batches).to(device)
            rollouts = objective.rollouts(batch) if rc.objective == "rl" else None
            for _ in range(rc.ppo_epochs if rollouts is not None else 1):
                loss, stats = objective.loss(batch, rollouts)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if rc.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, rc.grad_clip)
                opt.step()
            step += 1
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value / rc.steps_per_epoch
                writer.add_scalar(f"train/{key}", value, step)
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items() if k in ("reward", "sup", "sync_loss")})
        val = validate_rl(actor, reward, judge, val_clips, lips, device)
        for key, value in val.items():
            writer.add_scalar(f"val/{key}", value, step)
        elapsed = time.perf_counter() - t_start
        out_of_time = rc.max_minutes > 0 and elapsed + (time.perf_counter() - t_epoch) > rc.max_minutes * 60
        finished = epoch == rc.epochs or out_of_time
        record = {"epoch": epoch, "step": step, "time_s": round(elapsed, 1),
                  **{f"train_{k}": v for k, v in sums.items()}, **{f"val_{k}": v for k, v in val.items()}}
        history.append(record)
        # best: the highest val reward whose LVE stays within max_lve_increase of the supervised start
        if val["lve"] <= best["lve_limit"] and val["reward"] > best["score"]:
            best = {**best, "score": val["reward"], "epoch": epoch}
        common = {"kind": ACTOR_KIND, "meta": meta.as_dict(), "metrics": record, "step": step, "epoch": epoch,
                  "config": run_config, "source_actor": str(actor_path)}
        if best["epoch"] == epoch:
            save_checkpoint(best_path, {**common, "model": actor.state_dict(), "finished": finished})
            save_checkpoint(out_dir / "best_head.pt", {"kind": REWARD_KIND, "meta": {"epoch": epoch},
                                                        "head": reward.head.state_dict()})
        save_checkpoint(last_path, {**common, "model": actor.state_dict(), "head": reward.head.state_dict(),
                                    "optimizer": opt.state_dict(), "history": history, "best": best,
                                    "finished": finished, "rng": {**rng_state(), "data": data_gen.get_state()},
                                    "config_changes": changes_log})
        print(f"{cfg.stage} epoch {epoch:3d}/{rc.epochs}: val LVE {val['lve']:.3e}, reward {val['reward']:.3f} "
              f"(lip {val['lip']:.3f}, real {val['real']:.3f}), judge sync {val['judge_sync']:.3f} "
              f"({elapsed / 60:.1f} min elapsed)", flush=True)
        if out_of_time:
            print(f"stopping after epoch {epoch}: trainer.max_minutes={rc.max_minutes} reached")
            break
    writer.close()
    if not best_path.exists():  # no epoch kept LVE within the limit: the supervised start is the best
        save_checkpoint(best_path, {**common, "model": reference.state_dict(), "finished": True})
        print(f"no epoch kept val LVE within +{100 * rc.max_lve_increase:.0f} %: best.pt is the supervised actor")
    print(f"best: epoch {best['epoch']} (val reward {best['score']:.3f}): {best_path}")
    return best_path
