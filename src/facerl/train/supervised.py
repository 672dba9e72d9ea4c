"""Supervised training of the FaceFormer actor (`facerl train experiment=supervised`).

Reads top to bottom: config -> seed/device/torchrun -> data (preloaded, 30 fps) -> motion space ->
actor -> optimiser (+ resume) -> one explicit loop -> validation (LVE under every training style)
-> checkpoints ``<run>/actor/{last,best}.pt``. Under torchrun every rank trains on its shard
(DistributedDataParallel; gloo on CPU, nccl on CUDA); rank 0 validates, logs and writes.

Dimensions: B batch, T frames (30 fps), V vertices, K motion-space size, C training styles.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from facerl.config import to_dataclass
from facerl.data.augment import AugmentConfig, AugmentedClips
from facerl.data.dataset import Clip, VocaDataset, collate, spec_from_config
from facerl.errors import FacerlError
from facerl.eval.metrics import lip_vertex_error_per_frame
from facerl.eval.predict import audio_features, predict_styles
from facerl.models.actor import Actor, ActorConfig, MotionSpace
from facerl.models.checkpoint import ACTOR_KIND, ActorMeta, build_actor
from facerl.train.common import (
    apply_optimizer_settings,
    check_resume,
    close_distributed,
    init_distributed,
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
from facerl.utils.io import check_writable

MM2 = 1e6  # m² -> mm²
RESUME_KEYS = ("model", "optimizer", "meta", "config", "rng", "step", "epoch", "history", "best")


@dataclass
class LossWeights:
    mse: float = 1.0        # vertex MSE (FaceFormer's loss)
    velocity: float = 1.0   # MSE of frame-to-frame velocities


@dataclass
class SupervisedConfig:
    """Hyper-parameters of supervised actor training (conf/trainer/supervised.yaml documents each)."""

    epochs: int = 30
    max_minutes: float = 30.0
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    mode: str = "scheduled"
    input_noise: float = 0.0
    passes: int = 2
    sampling_prob: float = 1.0
    loss: LossWeights = field(default_factory=LossWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    device: str = "auto"
    seed: int = 0
    val_every: int = 1
    val_styles: str = "all"
    resume: bool = True
    accept_changes: bool = False
    cache_dir: str = ""

    def validate(self) -> None:
        if self.mode not in ("teacher", "scheduled", "autoregressive"):
            raise FacerlError(f"trainer.mode must be teacher, scheduled or autoregressive, got {self.mode!r}")
        if self.passes < 1 or not 0 <= self.sampling_prob <= 1:
            raise FacerlError("trainer.passes must be >= 1 and trainer.sampling_prob in [0, 1]")
        if self.val_styles not in ("all", "average"):
            raise FacerlError(f"trainer.val_styles must be all or average, got {self.val_styles!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.val_every < 1:
            raise FacerlError("trainer.epochs, trainer.batch_size and trainer.val_every must be >= 1")
        if not (self.lr > 0 and self.max_minutes >= 0 and self.input_noise >= 0 and self.grad_clip >= 0):
            raise FacerlError("trainer.lr must be > 0; max_minutes, input_noise and grad_clip >= 0")
        self.augment.validate()


class TrainStep(nn.Module):
    """What DDP wraps: audio features -> the actor's per-frame means in the configured training mode."""

    def __init__(self, actor: Actor, mode: str, input_noise: float = 0.0, passes: int = 2,
                 sampling_prob: float = 1.0) -> None:
        super().__init__()
        self.actor, self.mode, self.input_noise = actor, mode, input_noise
        self.passes, self.sampling_prob = passes, sampling_prob

    def forward(self, audio, audio_mask, feats, style, target_motion):
        if feats is None:
            feats = self.actor.encode_audio(audio, audio_mask, target_motion.shape[1])   # (B, T, Da)
        if self.mode == "autoregressive":  # FaceFormer: the model consumes its own previous outputs
            return self.actor.generate(feats, style, target_motion.shape[1]).mean
        inputs = noisy = target_motion + self.input_noise * torch.randn_like(target_motion)
        if self.mode == "scheduled":
            # Parallel scheduled sampling (Duckworth et al. 2019): teacher-forced passes without gradient
            # replace the ground-truth inputs of a random share of frames by the model's own predictions,
            # so training sees inputs like those of autoregressive inference at teacher-forcing cost.
            with torch.no_grad():
                for _ in range(self.passes - 1):
                    own = self.actor(feats, style, inputs)
                    pick = torch.rand(own.shape[:2], device=own.device)[..., None] < self.sampling_prob
                    inputs = torch.where(pick, own, noisy)
        return self.actor(feats, style, inputs)                                         # (B, T, K)


def motion_losses(step, actor: Actor, batch, feats: torch.Tensor | None,
                  weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The supervised losses of one batch: ``step`` (a TrainStep, maybe DDP-wrapped) gives the actor's means
    for the batch's true motion; -> (vertex MSE, velocity MSE), both in mm², computed exactly in motion space
    (up to the target's out-of-span constant) with ``weights`` = ``actor.motion.mse_weights()``.

    Millimetres, not metres: losses ~1e-6 m² make gradients comparable to Adam's eps and stall it."""
    target = actor.motion.encode(batch.vertices - batch.template[:, None])          # (B, T, K)
    means = step(batch.audio, batch.audio_mask, feats, batch.style, target)          # (B, T, K)
    return (masked_mse(means, target, batch.frame_mask, weights) * MM2,
            velocity_mse(means, target, batch.frame_mask, weights) * MM2)


def preload(ds: VocaDataset, desc: str, show: bool) -> list[Clip]:
    """Read every clip of a split once (30 fps float32; the default corpus's train split is ~1.6 GB)."""
    return [ds[i] for i in tqdm(range(len(ds)), desc=desc, unit="clip", disable=not show, leave=False)]


def fit_motion_space(clips: list[Clip], cfg: ActorConfig, seed: int) -> MotionSpace | None:
    """PCA basis of the training motion (every 3rd frame of every clip), or None for motion_space=vertices."""
    if cfg.motion_space == "vertices":  # (ActorConfig.validate has checked the name)
        return None
    offsets = torch.cat([c.vertices[::3] - c.template for c in clips])   # (N, V*3)
    return MotionSpace.fit(offsets, cfg.basis_dim, seed=seed)


@torch.no_grad()
def validate(actor: Actor, clips: list[Clip], lips: np.ndarray, styles: list[int], device, cache,
             chunk: int = 8) -> dict[str, float]:
    """Autoregressive generation of every val clip under every style: pooled LVE (m^2) and vertex MSE."""
    was_training = actor.training
    actor.eval()
    lve_frames, sq_sum, n_frames = [], 0.0, 0
    for start in range(0, len(clips), chunk):
        batch = collate(clips[start:start + chunk]).to(device)
        pred = predict_styles(actor, batch, styles, cache)               # (B, C, T, V*3)
        for b, clip in enumerate(clips[start:start + chunk]):
            t = len(clip.vertices)
            gt = clip.vertices.numpy().reshape(t, -1, 3)                 # (T, V, 3)
            for c in range(len(styles)):
                p = pred[b, c, :t].cpu().numpy().reshape(t, -1, 3)
                lve_frames.append(lip_vertex_error_per_frame(p, gt, lips))
                sq_sum += float(((p - gt) ** 2).sum(-1).mean(-1).sum())
                n_frames += t
    actor.train(was_training)
    return {"lve": float(np.concatenate(lve_frames).mean()), "mse_mm2": MM2 * sq_sum / max(n_frames, 1) / 3}


def train_supervised(cfg: DictConfig) -> Path:
    """Train the actor; returns the path of ``best.pt``."""
    tc = to_dataclass(SupervisedConfig, cfg.trainer, "trainer.")
    mc = to_dataclass(ActorConfig, cfg.model, "model.")
    tc.validate()
    mc.validate()
    ctx, device = init_distributed(resolve_device(tc.device))
    data_gen = seed_everything(tc.seed)
    out_dir = Path(cfg.paths.run_dir) / "actor"
    show = ctx.is_main
    if ctx.is_main:
        check_writable(out_dir)  # now, not after minutes of loading

    # ---- data ----
    spec = spec_from_config(cfg.dataset)
    train_ds, val_ds = VocaDataset(spec, "train", with_phones=False), VocaDataset(spec, "val", with_phones=False)
    regions = train_ds.layout.regions()
    if "lips" not in regions:
        raise FacerlError(f"{train_ds.layout.regions_path} has no 'lips' region (needed for LVE)")
    lips = regions["lips"]
    train_clips, val_clips = preload(train_ds, "loading train clips", show), preload(val_ds, "loading val clips", show)

    # ---- model, optimiser, resume ----
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    resume = (load_checkpoint(last_path, ACTOR_KIND, keys=RESUME_KEYS) if tc.resume and last_path.exists()
              else None)
    changes: dict = {}
    if resume is not None:
        with reading_checkpoint(last_path):
            meta = ActorMeta(**resume["meta"])
            if meta.styles != spec.train_subjects:
                raise FacerlError(f"{last_path} was trained on other speakers; "
                                  "use another run_name or trainer.resume=false")
            changes = check_resume(last_path, resume["config"], OmegaConf.to_container(cfg, resolve=True),
                                   tc.accept_changes, fixed=("model",), ignore=("reward",))
            actor = build_actor(mc, meta)
            actor.load_state_dict(resume["model"])
    else:
        motion = fit_motion_space(train_clips, mc, tc.seed)
        n_vertices = train_clips[0].template.numel() // 3
        template = torch.stack([torch.from_numpy(train_ds.templates[s].reshape(-1)) for s in spec.train_subjects])
        faces = train_ds.layout.faces()
        meta = ActorMeta(n_vertices, list(spec.train_subjects), motion.dim if motion else n_vertices * 3,
                         template.mean(0), None if faces is None else torch.from_numpy(faces.astype(np.int64)))
        actor = build_actor(mc, meta, motion)
        hf_model = getattr(actor.audio_encoder, "model", None)
        if hf_model is not None:  # the checkpoint then rebuilds the encoder without its pretrained folder
            meta.audio_hf_config = json.loads(hf_model.config.to_json_string())
    actor.to(device)
    actor.log_std.requires_grad_(False)  # the policy std is RL's business; supervision only fits the means
    params = [p for p in actor.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    step, first_epoch, history, changes_log = 0, 1, [], []
    best = {"lve": math.inf, "epoch": 0}
    if resume is not None:
        with reading_checkpoint(last_path):
            opt.load_state_dict(resume["optimizer"])
            apply_optimizer_settings(opt, lr=tc.lr, weight_decay=tc.weight_decay)
            step, first_epoch, history, best = resume["step"], resume["epoch"] + 1, resume["history"], resume["best"]
            changes_log = record_changes(resume.get("config_changes"), first_epoch, changes)
            restore_rng(resume["rng"])
            data_gen.set_state(resume["rng"]["data"])
        if show:
            print(f"resuming {last_path} at epoch {first_epoch} (step {step}, best val LVE {best['lve']:.3e})")
    model = TrainStep(actor, tc.mode, tc.input_noise, tc.passes, tc.sampling_prob)
    # A fine-tuned Hugging Face encoder skips layers at random (LayerDrop): DDP must expect unused parameters.
    fine_tuned_hf = mc.audio.kind not in ("mel", "stream") and not actor.audio_encoder.frozen
    ddp = DistributedDataParallel(model, find_unused_parameters=fine_tuned_hf) if ctx.enabled else model
    cache = None
    if actor.audio_encoder.frozen:
        from facerl.models.feature_cache import FeatureCache, encoder_fingerprint

        cache = FeatureCache(Path(tc.cache_dir) if tc.cache_dir else None, encoder_fingerprint(actor.audio_encoder))

    train_set = AugmentedClips(train_clips, tc.augment, tc.seed)  # clean clips when trainer.augment.variants=0
    sampler = (DistributedSampler(train_set, ctx.world, ctx.rank, shuffle=True, seed=tc.seed) if ctx.enabled
               else RandomSampler(train_set, generator=data_gen))
    loader = DataLoader(train_set, batch_size=tc.batch_size, sampler=sampler, collate_fn=collate)
    weights = actor.motion.mse_weights()                                                  # (K,)
    val_styles = list(range(len(meta.styles))) if tc.val_styles == "all" else [-1]
    writer = None
    if ctx.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tensorboard"))
        n_params = sum(p.numel() for p in params)
        print(f"actor: {n_params / 1e6:.2f} M trainable parameters, motion space K={meta.motion_dim}, "
              f"{len(train_clips)} train / {len(val_clips)} val clips, device {device}, world {ctx.world}")

    # ---- loop ----
    t_start = time.perf_counter()
    epoch = first_epoch - 1
    for epoch in range(first_epoch, tc.epochs + 1):
        if ctx.enabled:
            sampler.set_epoch(epoch)
        train_set.epoch = epoch
        actor.train()
        t_epoch, sums, n_batches = time.perf_counter(), {"loss": 0.0, "mse": 0.0, "velocity": 0.0}, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{tc.epochs}", unit="batch", disable=not show, leave=False)
        for batch in bar:
            batch = batch.to(device)
            feats = audio_features(actor, batch, cache) if cache is not None else None
            mse, vel = motion_losses(ddp, actor, batch, feats, weights)
            loss = tc.loss.mse * mse + tc.loss.velocity * vel
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            opt.step()
            step += 1
            for k, v in (("loss", loss), ("mse", mse), ("velocity", vel)):
                sums[k] += v.item()
            n_batches += 1
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if writer is not None:
                for k, v in (("loss", loss), ("mse", mse), ("velocity", vel)):
                    writer.add_scalar(f"train/{k}", v.item(), step)
        train_metrics = {k: v / max(n_batches, 1) for k, v in sums.items()}
        elapsed = time.perf_counter() - t_start
        epoch_s = time.perf_counter() - t_epoch
        out_of_time = tc.max_minutes > 0 and epoch < tc.epochs and elapsed + epoch_s > tc.max_minutes * 60
        out_of_time = _agree(out_of_time, ctx, device)
        is_last = epoch == tc.epochs or out_of_time
        if ctx.is_main:
            record = {"epoch": epoch, "step": step, "time_s": round(elapsed, 1), "stopped_by_time_cap": out_of_time,
                      **{f"train_{k}": v for k, v in train_metrics.items()}}
            if epoch % tc.val_every == 0 or is_last:
                val = validate(actor, val_clips, lips, val_styles, device, cache)
                record.update({"val_lve": val["lve"], "val_mse_mm2": val["mse_mm2"]})
                writer.add_scalar("val/lve", val["lve"], step)
                writer.add_scalar("val/mse_mm2", val["mse_mm2"], step)
                if val["lve"] < best["lve"]:
                    best = {"lve": val["lve"], "epoch": epoch}
            history.append(record)
            payload = {"kind": ACTOR_KIND, "model": actor.state_dict(), "optimizer": opt.state_dict(),
                       "step": step, "epoch": epoch, "meta": meta.as_dict(), "metrics": record, "best": best,
                       "history": history, "config": OmegaConf.to_container(cfg, resolve=True), "finished": is_last,
                       "rng": {**rng_state(), "data": data_gen.get_state()}, "config_changes": changes_log}
            if best["epoch"] == epoch:  # best first: a crash in between never leaves last.pt ahead of best.pt
                save_checkpoint(best_path, payload)
            save_checkpoint(last_path, payload)
            remaining = (tc.epochs - epoch) * elapsed / max(epoch - first_epoch + 1, 1)
            if tc.max_minutes > 0:
                remaining = min(remaining, max(tc.max_minutes * 60 - elapsed, 0))
            val_text = f", val LVE {record['val_lve']:.3e}" if "val_lve" in record else ""
            print(f"epoch {epoch:3d}/{tc.epochs}: train loss {train_metrics['loss']:.4f} mm²{val_text} "
                  f"({epoch_s:.0f} s/epoch, {elapsed / 60:.1f} min elapsed, ~{remaining / 60:.1f} min left)",
                  flush=True)
        ctx.barrier()
        if out_of_time:
            if show:
                print(f"WARNING: stopped by the safety cap trainer.max_minutes={tc.max_minutes} after epoch {epoch} "
                      f"of {tc.epochs} ({step} steps): this run is NOT the configured budget")
            break
    if writer is not None:
        writer.close()
        print(f"best val LVE {best['lve']:.3e} at epoch {best['epoch']}: {best_path}")
    close_distributed(ctx)
    return best_path


def _agree(flag: bool, ctx, device) -> bool:
    """All ranks stop together: rank 0's decision wins."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())

