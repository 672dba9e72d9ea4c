"""Distil a frozen offline audio encoder (Whisper) into a streaming student (``python -m facerl.train.distil``).

Whisper reads 30 s windows and cannot stream; a streaming encoder trained from scratch on eSpeak does not
generalise to unseen voices. Here the student, a :class:`~facerl.models.streaming.StreamingMelEncoder` as wide
as the teacher's features, learns to reproduce the teacher actor's aligned audio features on the training
corpus (feature distillation, as DistilHuBERT, Chang et al. 2022, does for HuBERT), and the teacher's decoder,
head and motion space are reused unchanged on top of it. The result is an ordinary actor checkpoint with
``model.audio.kind=stream``: :func:`facerl.models.checkpoint.load_actor` and :class:`facerl.stream.Animator`
read it like any other.

``--motion W`` adds a motion term (the frozen teacher decoder's vertex error on the student's features, see
:class:`MotionTerm`). ``--whisper-window-ms W`` makes no student at all: the teacher's own Whisper encoder runs
on windows of the last W ms of audio (:class:`facerl.models.whisper.WhisperWindowEncoder`, which streams) and
its decoder is fine-tuned on those features for ``--finetune-steps``. On the voice benchmark this beats every
student on voices it never heard (README, "Stream from a microphone").

Reads top to bottom: config -> seed -> teacher actor -> corpus (train, val) -> teacher features per clip
(in memory) -> student -> one explicit loop (normalised MSE + cosine on real frames) -> student actor
checkpoint (atomic).

Dimensions: B batch, S audio samples (16 kHz), T motion frames (30 fps), N encoder states (50 Hz), D feature width.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from facerl.data.augment import AugmentConfig, augment_clip
from facerl.data.dataset import Clip, VocaDataset, pad_stack, spec_from_corpus
from facerl.errors import FacerlError
from facerl.models.actor import Actor, ActorConfig
from facerl.models.audio import AudioEncoder, AudioEncoderConfig
from facerl.models.checkpoint import ACTOR_KIND, ActorMeta, build_actor, load_actor
from facerl.models.streaming import StreamingMelEncoder
from facerl.train.common import (
    resolve_device,
    rng_state,
    save_checkpoint,
    seed_everything,
)


@dataclass
class DistilConfig:
    """Hyper-parameters of feature distillation (each a `--flag` of ``python -m facerl.train.distil``)."""

    steps: int = 300             # optimiser steps (the budget; a step is one batch of clips)
    batch_size: int = 8          # clips per step
    lr: float = 1e-3             # Adam learning rate (cosine decay to lr / 10 after a 5 % warm-up)
    grad_clip: float = 1.0       # gradient-norm clip (0: off)
    cosine: float = 0.5          # weight of the (1 - cosine similarity) term beside the normalised MSE
    motion: float = 0.0          # weight of a motion term: the teacher's frozen decoder, teacher-forced on the
    #                              clip's true motion, reads the student's features; its vertex MSE + velocity
    #                              (mm²) against that motion. 0: features only
    augment: float = 0.5         # share of training clips given a random voice/channel (formant, noise, reverb,
    #                              telephone, gain; speed fixed at 1 so timing holds) against the clean clip's target
    layers: int = 2              # student transformer layers (the stream defaults)
    heads: int = 4               # student attention heads
    n_mels: int = 80             # student mel bins
    dropout: float = 0.1         # student dropout
    lookahead_ms: float = 60.0   # student chunk = its look-ahead
    context_ms: float = 1000.0   # past each chunk attends to, per layer
    finetune_steps: int = 0      # then supervised steps of the decoder on the (fixed) student features; 0: the
    #                              teacher's decoder as it is
    finetune_lr: float = 1e-4    # Adam learning rate of those steps (small: the decoder only adapts)
    whisper_window_ms: float = 0.0   # > 0: no student; the teacher's own Whisper run on windows of this length
    #                              (model.audio.extra.stream_window_ms) streams, and the decoder is fine-tuned on
    #                              those features (finetune_steps); 0: distil into a StreamingMelEncoder
    val_every: int = 50          # steps between held-out (val speakers) losses; 0: only at the end
    seed: int = 0
    device: str = "cpu"

TIMING_PRESERVING = AugmentConfig(variants=1, speed=(1.0, 1.0))


@dataclass
class FeatureSet:
    """Clips with their teacher features: ``audio[i]`` (S_i,), ``target[i]`` (T_i, D) aligned to motion frames."""

    names: list[str]
    audio: list[torch.Tensor]
    target: list[torch.Tensor]

    def batch(self, idx: list[int], device, audio: list[torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> audio (B, S_max), audio_mask (B, S_max), target (B, T_max, D), frame_mask (B, T_max); ``audio``:
        the clips' audio when it is not the stored one (an augmented version of the same length)."""
        audio, audio_mask = pad_stack(audio if audio is not None else [self.audio[i] for i in idx])
        target, frame_mask = pad_stack([self.target[i] for i in idx])
        return audio.to(device), audio_mask.to(device), target.to(device), frame_mask.to(device)


# ---- pure helpers ---------------------------------------------------------------------------------------
def distil_loss(pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor, scale: float,
                cosine_weight: float) -> dict[str, torch.Tensor]:
    """(B, T, D), (B, T, D), (B, T) bool -> {loss, nmse, cos}.

    ``nmse``: squared error per real frame over ``scale`` (the teacher's mean squared distance from its mean
    feature), so 1.0 is "predicts the mean", 0 is exact. ``cos``: mean cosine similarity on real frames.
    """
    n = frame_mask.sum().clamp(min=1)
    sq = ((pred - target) ** 2).sum(-1)                                         # (B, T)
    nmse = (sq * frame_mask).sum() / n / scale
    cos = (F.cosine_similarity(pred, target, dim=-1, eps=1e-6) * frame_mask).sum() / n
    return {"loss": nmse + cosine_weight * (1 - cos), "nmse": nmse, "cos": cos}


def feature_scale(targets: list[torch.Tensor]) -> float:
    """Mean squared distance of the teacher's features from their mean, over all frames: the nmse unit."""
    allf = torch.cat(targets)                                                   # (sum T_i, D)
    return float(((allf - allf.mean(0)) ** 2).sum(-1).mean().clamp(min=1e-12))


def augmented_audio(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """(S,) -> (S,): the same words, in time, from another voice and channel (facerl.data.augment without the
    speed change), so the clean clip's teacher features stay its target: the student learns to ignore what
    Whisper ignores."""
    out, _, _ = augment_clip(audio.numpy(), np.zeros((1, 1), np.float32), TIMING_PRESERVING, rng)
    out = np.pad(out[: len(audio)], (0, max(0, len(audio) - len(out))))     # the STFT warp may round the length
    return torch.from_numpy(out)


def lr_at(step: int, steps: int, lr: float) -> float:
    """Linear warm-up over 5 % of the steps, then cosine decay to lr / 10."""
    warm = max(1, steps // 20)
    if step < warm:
        return lr * (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def student_model_config(teacher: ActorConfig, feature_dim: int, dc: DistilConfig) -> ActorConfig:
    """The teacher's actor config with a streaming audio encoder as wide as the teacher's features."""
    audio = AudioEncoderConfig(kind="stream", width=feature_dim, layers=dc.layers, heads=dc.heads,
                               n_mels=dc.n_mels, dropout=dc.dropout,
                               extra={"lookahead_ms": dc.lookahead_ms, "context_ms": dc.context_ms})
    cfg = copy.deepcopy(teacher)
    cfg.audio = audio
    return cfg


@torch.no_grad()
def teacher_features(actor: Actor, clips: list[Clip], cache_dir: str | None, desc: str,
                     chunk: int = 16) -> FeatureSet:
    """Each clip's teacher features aligned to its motion frames (T_i, D), computed once and kept in memory.

    A frozen teacher (Whisper) goes through the feature cache, so clips are packed as in its training and the
    files its training wrote are reused; a trainable one (the mel encoder of the tiny test) encodes each clip."""
    enc: AudioEncoder = actor.audio_encoder
    cache = None
    if enc.frozen:
        from facerl.models.feature_cache import FeatureCache

        cache = FeatureCache.for_encoder(cache_dir or None, enc)
    targets = []
    for start in tqdm(range(0, len(clips), chunk), desc=desc, unit="chunk", leave=False):
        part = clips[start:start + chunk]
        if cache is not None:
            states = cache.get_many([c.name for c in part], [c.audio for c in part], enc)   # [(N_i, D)]
            targets += [enc.align(s[None], len(c.vertices))[0] for s, c in zip(states, part)]
        else:
            for c in part:
                mask = torch.ones(1, len(c.audio), dtype=torch.bool)
                targets.append(actor.encode_audio(c.audio[None], mask, len(c.vertices))[0])   # (T_i, D)
    return FeatureSet([c.name for c in clips], [c.audio for c in clips], [t.float().cpu() for t in targets])


@torch.no_grad()
def held_out_loss(student: StreamingMelEncoder, data: FeatureSet, scale: float, dc: DistilConfig,
                  device) -> dict[str, float]:
    """Mean distillation losses over a FeatureSet, in batches, in eval mode."""
    was = student.training
    student.eval()
    sums, n = {"loss": 0.0, "nmse": 0.0, "cos": 0.0}, 0
    for start in range(0, len(data.names), dc.batch_size):
        idx = list(range(start, min(start + dc.batch_size, len(data.names))))
        audio, audio_mask, target, frame_mask = data.batch(idx, device)
        out = distil_loss(student(audio, audio_mask, target.shape[1]), target, frame_mask, scale, dc.cosine)
        for k in sums:
            sums[k] += out[k].item() * len(idx)
        n += len(idx)
    student.train(was)
    return {k: v / max(n, 1) for k, v in sums.items()}


class MotionTerm:
    """The motion part of the loss: the teacher's decoder (frozen, eval mode) reads the student's features,
    teacher-forced on each clip's true motion, and its means are scored against that motion (vertex MSE +
    velocity, mm², in the motion space's metric). Gradients reach only the student's features, so the student
    learns the feature directions the decoder actually uses, not all of Whisper's."""

    def __init__(self, teacher: Actor, clips: list[Clip], device) -> None:
        from facerl.train.supervised import TrainStep

        self.teacher, self.clips, self.device = teacher.eval(), clips, device
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.step = TrainStep(teacher, "teacher")
        self.weights = teacher.motion.mse_weights()

    def __call__(self, feats: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """(B, T, D) student features of clips ``idx`` -> scalar loss (mm²)."""
        from facerl.data.dataset import collate
        from facerl.train.supervised import motion_losses

        batch = collate([self.clips[i] for i in idx]).to(self.device)
        mse, vel = motion_losses(self.step, self.teacher, batch, feats, self.weights)
        return mse + vel


def student_actor(teacher: Actor, meta: ActorMeta, cfg: ActorConfig, student: StreamingMelEncoder) -> Actor:
    """A new actor: the teacher's decoder, head, motion space and std, with ``student`` as its audio encoder."""
    actor = build_actor(cfg, meta)
    rest = {k: v for k, v in teacher.state_dict().items() if not k.startswith("audio_encoder.")}
    missing, unexpected = actor.load_state_dict(rest, strict=False)
    if unexpected or any(not k.startswith("audio_encoder.") for k in missing):
        raise FacerlError(f"the teacher's decoder does not fit the student actor: missing {missing}, "
                          f"unexpected {unexpected}")
    actor.audio_encoder.load_state_dict(student.state_dict())
    return actor.eval()


def finetune_decoder(actor: Actor, clips: list[Clip], dc: DistilConfig, gen: torch.Generator,
                     device, show: bool) -> list[dict]:
    """Supervised steps (vertex MSE + velocity, scheduled sampling, as ``facerl train``) of everything but the
    audio encoder, on the student's features of the training clips (computed once: the student stays fixed)."""
    from facerl.data.dataset import collate
    from facerl.train.supervised import TrainStep, motion_losses

    actor.to(device).eval()
    with torch.no_grad():
        feats = []
        for c in tqdm(clips, desc="features for the decoder", unit="clip", disable=not show, leave=False):
            mask = torch.ones(1, len(c.audio), dtype=torch.bool, device=device)
            feats.append(actor.encode_audio(c.audio[None].to(device), mask, len(c.vertices))[0].cpu())  # (T_i, D)
    actor.train()
    actor.audio_encoder.eval()
    params = [p for n, p in actor.named_parameters() if not n.startswith("audio_encoder.") and n != "log_std"]
    opt = torch.optim.Adam(params, lr=dc.finetune_lr)
    step_fn, weights, history = TrainStep(actor, "scheduled"), actor.motion.mse_weights(), []
    for step in tqdm(range(dc.finetune_steps), desc="decoder", unit="step", disable=not show):
        idx = torch.randint(len(clips), (dc.batch_size,), generator=gen).tolist()
        batch = collate([clips[i] for i in idx]).to(device)
        audio_feats, _ = pad_stack([feats[i] for i in idx])                            # (B, T, D)
        mse, vel = motion_losses(step_fn, actor, batch, audio_feats.to(device), weights)
        opt.zero_grad(set_to_none=True)
        (mse + vel).backward()
        if dc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, dc.grad_clip)
        opt.step()
        history.append({"step": step + 1, "mse_mm2": mse.item(), "velocity_mm2": vel.item()})
    if show and history:
        print(f"decoder fine-tune: {dc.finetune_steps} steps, vertex MSE {history[0]['mse_mm2']:.4f} -> "
              f"{history[-1]['mse_mm2']:.4f} mm² (train batches)", flush=True)
    return history


# ---- the stage ------------------------------------------------------------------------------------------
def distil(teacher_path: str | Path, out_path: str | Path, dc: DistilConfig | None = None,
           corpus: str | Path | None = None, cache_dir: str | None = None, show: bool = True,
           init: str | Path | None = None) -> dict:
    """Train a streaming student of ``teacher_path``'s audio encoder; write the student actor to ``out_path``.

    ``corpus``: the training corpus (default: the teacher's ``dataset.root``); ``cache_dir``: the teacher's
    feature cache (default: its ``trainer.cache_dir``); ``init``: a student actor checkpoint whose
    encoder to start from (then ``dc.steps`` may be 0, e.g. to fine-tune only the decoder). Returns the history (train and held-out losses)."""
    dc = dc or DistilConfig()
    if dc.whisper_window_ms < 0:
        raise FacerlError(f"--whisper-window-ms must be > 0 (or 0: distil a student), got {dc.whisper_window_ms:g}")
    if dc.whisper_window_ms > 0:
        unused = [flag for flag, given in (("--init", init is not None), ("--cache-dir", cache_dir is not None),
                                           ("--motion", dc.motion > 0)) if given]
        if unused:
            raise FacerlError(f"--whisper-window-ms makes no student, so {', '.join(unused)} would be ignored; "
                              "leave them out")
        return whisper_window_actor(teacher_path, out_path, dc, corpus, show)
    device = resolve_device(dc.device)
    data_gen = seed_everything(dc.seed)
    aug_rng = np.random.default_rng(dc.seed)
    t0 = time.perf_counter()

    # ---- teacher and corpus ----
    teacher, meta, ckpt = load_actor(teacher_path, device)
    config = ckpt["config"]
    root = str(corpus or config["dataset"]["root"])
    if cache_dir is None:
        cache_dir = config.get("trainer", {}).get("cache_dir") or None
    spec = spec_from_corpus(root)
    train_clips = [c for c in VocaDataset(spec, "train", with_phones=False)]
    val_clips = [c for c in VocaDataset(spec, "val", with_phones=False)]
    train = teacher_features(teacher, train_clips, cache_dir, "teacher features (train)")
    val = teacher_features(teacher, val_clips, cache_dir, "teacher features (val)")
    scale = feature_scale(train.target)
    feature_dim = teacher.audio_encoder.feature_dim
    if show:
        print(f"teacher {teacher_path}: {teacher.cfg.audio.kind} features D={feature_dim}; "
              f"{len(train.names)} train / {len(val.names)} val clips ({time.perf_counter() - t0:.0f} s)", flush=True)

    # ---- student ----
    model_cfg = student_model_config(teacher.cfg, feature_dim, dc)
    student = StreamingMelEncoder(model_cfg.audio).to(device).train()
    if init is not None:
        previous, _, _ = load_actor(init, device)
        student.load_state_dict(previous.audio_encoder.state_dict())
    opt = torch.optim.Adam(student.parameters(), lr=dc.lr)
    history: list[dict] = []
    motion_term = MotionTerm(teacher, train_clips, device) if dc.motion > 0 else None

    # ---- loop ----
    t_loop = time.perf_counter()
    bar = tqdm(range(dc.steps), desc="distil", unit="step", disable=not show)
    for step in bar:
        idx = torch.randint(len(train.names), (dc.batch_size,), generator=data_gen).tolist()
        clips = [augmented_audio(train.audio[i], aug_rng) if aug_rng.random() < dc.augment else train.audio[i]
                 for i in idx]
        audio, audio_mask, target, frame_mask = train.batch(idx, device, clips)  # (B, S), (B, S), (B, T, D), (B, T)
        pred = student(audio, audio_mask, target.shape[1])                  # (B, T, D)
        out = distil_loss(pred, target, frame_mask, scale, dc.cosine)
        if motion_term is not None:
            out["motion_mm2"] = motion_term(pred, idx)
            out["loss"] = out["loss"] + dc.motion * out["motion_mm2"]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, dc.steps, dc.lr)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        if dc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(student.parameters(), dc.grad_clip)
        opt.step()
        record = {"step": step + 1, **{f"train_{k}": v.item() for k, v in out.items()}}
        last = step + 1 == dc.steps
        if last or (dc.val_every and (step + 1) % dc.val_every == 0):
            record.update({f"val_{k}": v for k, v in held_out_loss(student, val, scale, dc, device).items()})
            if show:
                rate = (step + 1) / (time.perf_counter() - t_loop)
                print(f"step {step + 1}/{dc.steps}: train nmse {record['train_nmse']:.3f} cos "
                      f"{record['train_cos']:.3f} | val nmse {record['val_nmse']:.3f} cos {record['val_cos']:.3f} "
                      f"({rate:.2f} step/s, ~{(dc.steps - step - 1) / rate / 60:.1f} min left)", flush=True)
        history.append(record)
        bar.set_postfix(nmse=f"{record['train_nmse']:.3f}",
                        **({"motion": f"{record['train_motion_mm2']:.4f}"} if motion_term is not None else {}))

    # ---- checkpoint: the teacher's decoder over the student ----
    actor = student_actor(teacher, meta, model_cfg, student.eval())
    finetune = finetune_decoder(actor, train_clips, dc, data_gen, device, show) if dc.finetune_steps else []
    if not history:  # no distillation steps: record where the student stands
        history.append({"step": 0, **{f"val_{k}": v for k, v in held_out_loss(student, val, scale, dc, device).items()}})
    return save_student(actor, meta, config, model_cfg, dc, history, finetune, opt, data_gen, out_path,
                        teacher_path, root, init, t0, show)


def save_student(actor: Actor, meta: ActorMeta, config: dict, model_cfg: ActorConfig, dc: DistilConfig,
                 history: list[dict], finetune: list[dict], opt, data_gen: torch.Generator, out_path,
                 teacher_path, root: str, init, t0: float, show: bool) -> dict:
    """Write the streaming actor as an ordinary actor checkpoint (atomic) -> {history, metrics}."""
    actor.eval()
    saved_config = copy.deepcopy(config)
    saved_config["model"] = asdict(model_cfg)
    saved_config["stage"] = "distil"
    saved_config["distil"] = {**asdict(dc), "teacher": str(teacher_path), "corpus": root,
                              "init": None if init is None else str(init)}
    metrics = {**(history[-1] if history else {}), "time_s": round(time.perf_counter() - t0, 1)}
    if finetune:
        metrics["finetune_mse_mm2"] = finetune[-1]["mse_mm2"]
    payload = {"kind": ACTOR_KIND, "model": actor.state_dict(), "optimizer": opt.state_dict() if opt else {},
               "step": dc.steps, "epoch": 0, "meta": meta.as_dict(), "metrics": metrics, "best": metrics,
               "history": history, "finetune_history": finetune, "config": saved_config, "finished": True,
               "rng": {**rng_state(), "data": data_gen.get_state()}}
    save_checkpoint(Path(out_path), payload)
    if show:
        print(f"wrote {out_path} ({metrics['time_s'] / 60:.1f} min; {dc.steps} distillation steps, "
              f"{len(finetune)} decoder steps)", flush=True)
    return {"history": history, "metrics": metrics}


def whisper_window_actor(teacher_path: str | Path, out_path: str | Path, dc: DistilConfig,
                         corpus: str | Path | None = None, show: bool = True) -> dict:
    """The Whisper teacher as a streaming actor: its encoder on windows of ``dc.whisper_window_ms``
    (:class:`facerl.models.whisper.WhisperWindowEncoder`), its decoder fine-tuned on those features for
    ``dc.finetune_steps`` (0: unchanged). Written to ``out_path``."""
    dc = replace(dc, steps=0)                                          # no student: nothing to distil
    device = resolve_device(dc.device)
    data_gen = seed_everything(dc.seed)
    t0 = time.perf_counter()
    teacher, meta, ckpt = load_actor(teacher_path, device)
    if teacher.cfg.audio.kind != "whisper":
        raise FacerlError(f"--whisper-window-ms needs a Whisper teacher; {teacher_path} has a "
                          f"{teacher.cfg.audio.kind} encoder")
    config = ckpt["config"]
    root = str(corpus or config["dataset"]["root"])
    model_cfg = copy.deepcopy(teacher.cfg)
    model_cfg.audio.extra = {**(model_cfg.audio.extra or {}), "stream_window_ms": dc.whisper_window_ms,
                             "lookahead_ms": dc.lookahead_ms}
    actor = build_actor(model_cfg, meta).to(device)
    actor.load_state_dict(teacher.state_dict())
    train_clips = list(VocaDataset(spec_from_corpus(root), "train", with_phones=False))
    if show:
        print(f"teacher {teacher_path}: Whisper on {dc.whisper_window_ms:g} ms windows, look-ahead "
              f"{actor.audio_encoder.lookahead_ms:.0f} ms; {len(train_clips)} train clips", flush=True)
    finetune = finetune_decoder(actor, train_clips, dc, data_gen, device, show) if dc.finetune_steps else []
    return save_student(actor, meta, config, model_cfg, dc, [], finetune, None, data_gen, out_path,
                        teacher_path, root, None, t0, show)


FLAG_HELP = {
    "steps": "distillation steps (the budget; a step is one batch of clips)",
    "batch_size": "clips per step",
    "lr": "student learning rate (warm-up, then cosine decay to lr/10)",
    "cosine": "weight of (1 - cosine similarity) beside the normalised MSE",
    "motion": "weight of the frozen teacher decoder's vertex error (mm²) on the student's features; 0: off",
    "augment": "share of training clips given another voice/channel (timing kept)",
    "lookahead_ms": "streaming chunk = look-ahead (ms)",
    "context_ms": "past each student chunk attends to, per layer (ms)",
    "finetune_steps": "then supervised steps of the decoder on the fixed streaming features",
    "finetune_lr": "learning rate of those steps",
    "whisper_window_ms": "> 0: no student; the teacher's Whisper runs on windows of this length (it streams) and "
                         "its decoder is fine-tuned on them (--finetune-steps), e.g. 1000",
    "val_every": "steps between held-out losses (0: only at the end)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("teacher", help="teacher actor checkpoint (e.g. runs/pipeline/actor/best.pt)")
    parser.add_argument("out", help="student actor checkpoint to write")
    parser.add_argument("--corpus", help="training corpus (default: the teacher's dataset.root)")
    parser.add_argument("--init", help="start from this student actor checkpoint's encoder")
    parser.add_argument("--cache-dir", help="the teacher's feature cache (default: its trainer.cache_dir)")
    for name, value in asdict(DistilConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=FLAG_HELP.get(name))
    args = parser.parse_args(argv)
    dc = DistilConfig(**{k: getattr(args, k) for k in asdict(DistilConfig())})
    try:
        distil(args.teacher, args.out, dc, args.corpus, args.cache_dir, init=args.init)
    except FacerlError as exc:                                     # a user mistake: one line, exit 2
        print(f"facerl distil: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
