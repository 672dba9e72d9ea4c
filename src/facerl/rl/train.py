"""Fine-tuning the supervised actor against the frozen reward: `facerl train experiment=rl` (also
``experiment=perceptual`` and ``experiment=supervised_continued``, the baselines at the same steps).

Reads top to bottom: config -> the supervised actor (trained) + a frozen copy (reference, only with a KL
term) -> the frozen reward (facerl.reward.frozen) -> the RL run's own critic -> data -> :meth:`Update.step`
(the whole update, one screen) -> validation -> ``<run>/<stage>/{best,last}.pt`` (+ ``best_head.pt``, the
seed-formulation critic, with ``baseline=sample_critic``).

Recipes (``trainer.recipe``), every one with the supervised loss (scheduled sampling, mm²) on its batch:
* ``supervised``: nothing else (the supervised actor trained on for the same steps: the control);
* ``perceptual``: + a differentiable sync loss through the frozen backbone, 1 - cosine(vertex, audio)
  of the windows of the actor's means (Lee et al. CVPR 2025);
* ``rl``: + the policy gradient on G samples per clip, the critic's value loss, optionally a KL to the
  reference; ``ppo_epochs`` > 1 with ``clip`` reuses a rollout (PPO);
* ``rl+perceptual``: both.

Budgets are steps: ``epochs`` x ``steps_per_epoch`` optimiser updates (a PPO update of k epochs counts
once). ``max_minutes`` is only a safety cap; when it stops a run, the summary and the checkpoint say so.

Dimensions: B clips, G samples, N = B*G, T frames (30 fps), K motion coefficients, W = T - 4 windows.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from facerl.config import to_dataclass
from facerl.data.dataset import Batch, VocaDataset, collate, spec_from_config
from facerl.errors import FacerlError
from facerl.eval.metrics import lip_vertex_error
from facerl.eval.predict import audio_features
from facerl.models.actor import Actor
from facerl.models.checkpoint import ACTOR_KIND, load_actor
from facerl.reward.frozen import REWARD_KIND, FrozenReward, SyncJudge
from facerl.rl import losses as L
from facerl.rl import noise as noises
from facerl.rl.advantages import BASELINES
from facerl.rl.critic import SampleCritic, StateCritic
from facerl.rl.rollout import Rollouts, collect, repeat
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

RESUME_KEYS = ("model", "critic", "optimizer", "config", "rng", "step", "epoch", "history", "best")
RECIPES = ("supervised", "perceptual", "rl", "rl+perceptual")


@dataclass
class RLWeights:
    sup: float = 1.0       # supervised loss (vertex + velocity MSE, mm²)
    actor: float = 1.0     # policy-gradient term
    critic: float = 1.0    # value regression (the critic only)
    kl: float = 0.0        # KL(policy || frozen supervised reference) along the samples
    sync: float = 1.0      # perceptual recipes: 1 - cosine sync through the frozen backbone


@dataclass
class RLConfig:
    """Hyper-parameters of fine-tuning (conf/trainer/rl.yaml documents each)."""

    recipe: str = "rl"
    actor_checkpoint: str = ""
    reward_dir: str = ""
    judge_dir: str = ""
    epochs: int = 12
    steps_per_epoch: int = 10
    max_minutes: float = 30.0
    batch_size: int = 8
    samples: int = 4
    lr: float = 1e-4
    grad_clip: float = 1.0
    reward_scale: float = 1.0
    baseline: str = "group"
    per_window: bool = True
    normalize: bool = True
    noise: str = "white"
    noise_frames: float = 3.0
    clip: float = 0.0
    ppo_epochs: int = 1
    loss: RLWeights = field(default_factory=RLWeights)
    val_clips: int = 40
    max_lve_increase: float = 0.05
    device: str = "auto"
    seed: int = 0
    resume: bool = True
    accept_changes: bool = False
    cache_dir: str = ""

    @property
    def samples_motion(self) -> bool:
        return self.recipe in ("rl", "rl+perceptual")

    def validate(self) -> None:
        if self.recipe not in RECIPES:
            raise FacerlError(f"trainer.recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.baseline not in BASELINES:
            raise FacerlError(f"trainer.baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.noise not in noises.NOISES:
            raise FacerlError(f"trainer.noise must be one of {', '.join(noises.NOISES)}, got {self.noise!r}")
        if min(self.epochs, self.steps_per_epoch, self.batch_size, self.samples, self.ppo_epochs, self.val_clips) < 1:
            raise FacerlError("trainer.epochs, steps_per_epoch, batch_size, samples, ppo_epochs and val_clips "
                              "must be >= 1")
        if self.baseline == "group" and self.samples < 2:
            raise FacerlError("trainer.baseline=group needs trainer.samples >= 2")
        if self.noise == "antithetic" and self.samples % 2:
            raise FacerlError("trainer.noise=antithetic needs an even trainer.samples")
        if not (self.lr > 0 and self.max_minutes >= 0 and self.clip >= 0 and self.reward_scale > 0
                and self.noise_frames > 0):
            raise FacerlError("trainer.lr, reward_scale and noise_frames must be > 0; max_minutes and clip >= 0")


def trainable_actor(actor: Actor, sampling: bool = True) -> Actor:
    """The actor as fine-tuning trains it: dropout off (log-probs of the samples must come from the policy
    that drew them), every parameter trainable except the cross-attention queries, which never get a
    gradient under the one-key alignment mask (documented in the actor's tests), and the policy's log-std
    in recipes that draw no samples (nothing there depends on it)."""
    actor.eval().requires_grad_(True)
    for name, p in actor.named_parameters():
        if ".cross_attn.q." in name:
            p.requires_grad_(False)
    actor.log_std.requires_grad_(sampling)
    return actor


def make_critic(rc: RLConfig, actor: Actor, reward: FrozenReward, n_styles: int) -> torch.nn.Module | None:
    """The RL run's critic for the configured baseline (None when the baseline needs none)."""
    if not rc.samples_motion or rc.baseline in ("group", "none"):
        return None
    if rc.baseline == "sample_critic":
        return SampleCritic(reward.backbone.cfg.embed)
    return StateCritic(actor.audio_encoder.feature_dim, n_styles)


def trainable_parameters(actor: Actor, critic: torch.nn.Module | None) -> list[torch.nn.Parameter]:
    """What the optimiser updates: the actor and the RL run's critic. The frozen reward has none."""
    return [p for p in actor.parameters() if p.requires_grad] + ([] if critic is None else list(critic.parameters()))


class Update:
    """One optimiser update of the configured recipe on a batch: :meth:`step`."""

    def __init__(self, actor: Actor, reward: FrozenReward, critic, reference: Actor | None, rc: RLConfig,
                 opt: torch.optim.Optimizer, params: list, cache) -> None:
        self.actor, self.reward, self.critic, self.reference, self.rc = actor, reward, critic, reference, rc
        self.opt, self.params, self.cache = opt, params, cache
        self.sup_step = TrainStep(actor, "scheduled")
        self.weights = actor.motion.mse_weights()

    def step(self, batch: Batch) -> dict[str, float]:
        rc, actor, reward = self.rc, self.actor, self.reward
        t = batch.vertices.shape[1]
        with torch.set_grad_enabled(not actor.audio_encoder.frozen):  # a trainable encoder learns too
            feats = audio_features(actor, batch, self.cache)                               # (B, T, Da)
        mel = reward.mel(batch.audio, t)                                                     # (B, F*T, M)
        target = actor.motion.encode(batch.vertices - batch.template[:, None])              # (B, T, K)
        ro = (collect(actor, reward, batch, feats.detach(), mel, samples=rc.samples, baseline=rc.baseline,
                      per_window=rc.per_window, normalize=rc.normalize, noise=rc.noise,
                      noise_frames=rc.noise_frames, reward_scale=rc.reward_scale, critic=self.critic,
                      reference=self.reference) if rc.samples_motion else None)
        for epoch in range(rc.ppo_epochs if ro is not None else 1):
            if epoch > 0 and feats.requires_grad:  # the first backward freed the encoder's graph
                feats = audio_features(actor, batch, self.cache)
            means = self.sup_step(batch.audio, batch.audio_mask, feats, batch.style, target)   # (B, T, K)
            sup = (masked_mse(means, target, batch.frame_mask, self.weights)
                   + velocity_mse(means, target, batch.frame_mask, self.weights)) * MM2
            total, stats = rc.loss.sup * sup, {"objective/sup": sup.item()}
            if rc.recipe in ("perceptual", "rl+perceptual"):
                scores = reward.score(actor.motion.decode(means), mel, batch.frame_mask, grad=True)
                sync = 1 - scores.mean(scores.sync).mean()                                 # gradient to the actor
                total = total + rc.loss.sync * sync
                stats["objective/sync_loss"] = sync.item()
            if ro is not None:
                policy, policy_stats = self.policy_terms(feats, batch, ro)
                total = total + policy
                stats.update(policy_stats)
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            if rc.grad_clip > 0:
                stats["policy/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, rc.grad_clip))
            self.opt.step()
        return {**(ro.stats if ro is not None else {}), **stats, "objective/total": total.item()}

    def policy_terms(self, feats: torch.Tensor, batch: Batch, ro: Rollouts) -> tuple[torch.Tensor, dict]:
        """Policy gradient + value loss (+ KL) on the rollouts, with CleanRL's diagnostics."""
        rc, actor, g = self.rc, self.actor, self.rc.samples
        feats_r, style_r = repeat(feats, g), repeat(batch.style, g)
        means = actor(feats_r, style_r, ro.sample)                                          # (N, T, K)
        logp = noises.log_prob(means, ro.sample, actor.log_std, rc.noise, rc.noise_frames)  # (N, T)
        pg, stats = L.policy_loss(logp, ro.old_logp, ro.frame_adv, ro.frame_mask, rc.clip)
        total = rc.loss.actor * pg
        stats = {f"policy/{k}": v for k, v in stats.items()}
        stats.update({"policy/loss": pg.item(), "policy/entropy": L.gaussian_entropy(actor.log_std).item(),
                      "policy/log_std": actor.log_std.mean().item()})
        if self.critic is not None:
            value = (self.critic(feats_r, style_r) if isinstance(self.critic, StateCritic)
                     else self.critic(ro.features))                                         # (N, W)
            vloss = L.value_loss(value, ro.reward_w, ro.window_mask)
            total = total + rc.loss.critic * vloss
            stats.update({"value/loss": vloss.item(), "value/mean": value[ro.window_mask].mean().item(),
                          "value/explained_variance": L.explained_variance(value, ro.reward_w, ro.window_mask)})
        if self.reference is not None:
            kl = L.gaussian_kl(means, actor.log_std, ro.ref_means, self.reference.log_std, ro.frame_mask)
            total = total + rc.loss.kl * kl
            stats["objective/kl_reference"] = kl.item()
        return total, stats


# ---- validation ------------------------------------------------------------------------------------------
@torch.no_grad()
def validate(actor: Actor, reward: FrozenReward, judge: SyncJudge | None, clips, lips: np.ndarray, device,
             cache=None, chunk: int = 8) -> dict[str, float]:
    """Deterministic generation of the val clips (average style): LVE, mean reward (lip + real), judge sync."""
    preds, gts, lip_s, real_s, margins = [], [], [], [], []
    for start in range(0, len(clips), chunk):
        batch = collate(clips[start:start + chunk]).to(device)
        t = batch.vertices.shape[1]
        feats = audio_features(actor, batch, cache)
        offsets = actor.motion.decode(actor.generate(feats, torch.full_like(batch.style, -1)).motion)
        mel = reward.mel(batch.audio, t)
        scores = reward.score(offsets, mel, batch.frame_mask)
        lip_s += scores.mean(scores.lip).tolist()
        real_s += scores.mean(scores.real).tolist()
        for b, clip in enumerate(clips[start:start + chunk]):
            n = len(clip.vertices)
            preds.append((batch.template[b] + offsets[b, :n]).cpu().numpy().reshape(n, -1, 3))
            gts.append(clip.vertices.numpy().reshape(n, -1, 3))
            if judge is not None:
                margins.append(judge(clip.name, offsets[b, :n].cpu(), mel[b, :4 * n].cpu())[0])
    return {"lve": lip_vertex_error(preds, gts, lips), "reward": float(np.mean(lip_s) + np.mean(real_s)),
            "lip": float(np.mean(lip_s)), "real": float(np.mean(real_s)),
            "judge_sync": float(np.mean(margins)) if margins else math.nan}


def load_critic_state(critic, ckpt: dict, path: Path) -> None:
    if critic is not None:
        with reading_checkpoint(path):
            critic.load_state_dict(ckpt["critic"])


# ---- training --------------------------------------------------------------------------------------------
def train_rl(cfg: DictConfig) -> Path:
    """Fine-tune the supervised actor (``cfg.stage`` names the folder); returns ``<run>/<stage>/best.pt``."""
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
    reference = copy.deepcopy(actor).eval().requires_grad_(False) if rc.loss.kl > 0 and rc.samples_motion else None
    start_state = copy.deepcopy(actor.state_dict())
    reward = FrozenReward.load(reward_dir, device)
    if reward.backbone.n_coords != meta.n_vertices * 3:
        raise FacerlError(f"the reward model in {reward_dir} scores meshes of {reward.backbone.n_coords // 3} "
                          f"vertices, the actor predicts {meta.n_vertices}")
    judge = (SyncJudge(FrozenReward.load(judge_dir, device, judge=True))
             if (judge_dir / "backbone.pt").is_file() else None)
    trainable_actor(actor, rc.samples_motion)
    critic = make_critic(rc, actor, reward, len(meta.styles))
    if critic is not None:
        critic.to(device)

    spec = spec_from_config(cfg.dataset)
    if spec.train_subjects != meta.styles:
        raise FacerlError(f"{actor_path} was trained on speakers {meta.styles}, the dataset's training speakers "
                          f"are {spec.train_subjects}")
    train_ds = VocaDataset(spec, "train", with_phones=False)
    train_clips = preload(train_ds, "loading train clips", True)
    val_clips = preload(VocaDataset(spec, "val", with_phones=False), "loading val clips", True)[:rc.val_clips]
    lips = train_ds.layout.regions()["lips"]
    cache = None
    if actor.audio_encoder.frozen:  # the encoder's features once per clip (Whisper would dominate every step)
        from facerl.models.feature_cache import FeatureCache

        cache = FeatureCache.for_encoder(rc.cache_dir or None, actor.audio_encoder)

    params = trainable_parameters(actor, critic)
    opt = torch.optim.AdamW(params, lr=rc.lr, weight_decay=0.0)
    update = Update(actor, reward, critic, reference, rc, opt, params, cache)
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
    start = validate(actor, reward, judge, val_clips, lips, device, cache)
    best = {"score": -math.inf, "epoch": 0, "lve_limit": start["lve"] * (1 + rc.max_lve_increase)}
    stopped_by_cap = False
    if ckpt is not None:
        with reading_checkpoint(last_path):
            actor.load_state_dict(ckpt["model"])
            load_critic_state(critic, ckpt, last_path)
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
    what = (f"baseline {rc.baseline}, {'per window' if rc.per_window else 'per sequence'}, {rc.samples} "
            f"{rc.noise} samples/clip" if rc.samples_motion else "no sampling")
    print(f"{cfg.stage}: fine-tuning {actor_path} against {reward_dir} (recipe {rc.recipe}, {what}; "
          f"{rc.epochs} x {rc.steps_per_epoch} steps); start: val LVE {start['lve']:.3e}, reward "
          f"{start['reward']:.3f}, judge sync {start['judge_sync']:.3f}")
    common = {"kind": ACTOR_KIND, "meta": meta.as_dict(), "config": run_config, "source_actor": str(actor_path)}
    t_start = time.perf_counter()
    for epoch in range(first_epoch, rc.epochs + 1):
        t_epoch = time.perf_counter()
        sums: dict[str, float] = {}
        bar = tqdm(range(rc.steps_per_epoch), desc=f"{cfg.stage} epoch {epoch}/{rc.epochs}", unit="step", leave=False)
        for _ in bar:
            stats = update.step(next(batches).to(device))
            step += 1
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value / rc.steps_per_epoch
                writer.add_scalar(key, value, step)
            bar.set_postfix({k.split("/")[1]: f"{v:.3f}" for k, v in stats.items()
                             if k in ("objective/reward", "objective/sup", "objective/sync_loss")})
        val = validate(actor, reward, judge, val_clips, lips, device, cache)
        for key, value in val.items():
            writer.add_scalar(f"val/{key}", value, step)
        elapsed = time.perf_counter() - t_start
        stopped_by_cap = (rc.max_minutes > 0 and epoch < rc.epochs
                          and elapsed + (time.perf_counter() - t_epoch) > rc.max_minutes * 60)
        finished = epoch == rc.epochs or stopped_by_cap
        record = {"epoch": epoch, "step": step, "time_s": round(elapsed, 1), "stopped_by_time_cap": stopped_by_cap,
                  **{f"train_{k.replace('/', '_')}": v for k, v in sums.items()},
                  **{f"val_{k}": v for k, v in val.items()}}
        history.append(record)
        # best: the highest val reward whose LVE stays within max_lve_increase of the supervised start
        if val["lve"] <= best["lve_limit"] and val["reward"] > best["score"]:
            best = {**best, "score": val["reward"], "epoch": epoch}
        common.update(metrics=record, step=step, epoch=epoch)
        if best["epoch"] == epoch:
            save_checkpoint(best_path, {**common, "model": actor.state_dict(), "finished": finished})
            if isinstance(critic, SampleCritic):  # the seed's formulation kept its value beside the reward head
                save_checkpoint(out_dir / "best_head.pt", {"kind": REWARD_KIND, "meta": {"epoch": epoch},
                                                            "head": critic.state_dict()})
        save_checkpoint(last_path, {**common, "model": actor.state_dict(), "optimizer": opt.state_dict(),
                                    "critic": None if critic is None else critic.state_dict(),
                                    "history": history, "best": best, "finished": finished,
                                    "rng": {**rng_state(), "data": data_gen.get_state()},
                                    "config_changes": changes_log})
        print(f"{cfg.stage} epoch {epoch:3d}/{rc.epochs}: val LVE {val['lve']:.3e}, reward {val['reward']:.3f} "
              f"(lip {val['lip']:.3f}, real {val['real']:.3f}), judge sync {val['judge_sync']:.3f} "
              f"({elapsed / 60:.1f} min elapsed)", flush=True)
        if stopped_by_cap:
            print(f"WARNING: {cfg.stage} stopped by the safety cap trainer.max_minutes={rc.max_minutes} after "
                  f"epoch {epoch} of {rc.epochs} ({step} steps): this run is NOT the configured budget")
            break
    writer.close()
    if not best_path.exists():  # no epoch kept LVE within the limit: the supervised start is the best
        save_checkpoint(best_path, {**common, "model": start_state, "finished": True})
        print(f"no epoch kept val LVE within +{100 * rc.max_lve_increase:.0f} %: best.pt is the supervised actor")
    print(f"best: epoch {best['epoch']} (val reward {best['score']:.3f}): {best_path}")
    return best_path
