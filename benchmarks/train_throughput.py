"""Supervised training throughput: seconds of audio trained per second of wall time, batch 1 vs batched.

Usage: python benchmarks/train_throughput.py [--root data/synthetic] [--batches 1 16] [--steps 12]
       [--mode scheduled]
Times optimiser steps of the default actor (conf/model/faceformer.yaml) on real clips of the corpus,
preloaded in memory (as `facerl train` does); the first 2 steps of each setting are warm-up.
FaceFormer trains with batch 1 and a frame-by-frame autoregressive loop (--mode autoregressive).
"""

import argparse
import time

import torch

from facerl.config import load_config, to_dataclass
from facerl.data.dataset import VocaDataset, collate, spec_from_corpus
from facerl.models.actor import ActorConfig
from facerl.models.checkpoint import ActorMeta, build_actor
from facerl.train.losses import masked_mse
from facerl.train.supervised import MM2, TrainStep, fit_motion_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data/synthetic")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--mode", default="scheduled", choices=["teacher", "scheduled", "autoregressive"])
    args = ap.parse_args()
    torch.manual_seed(0)
    ds = VocaDataset(spec_from_corpus(args.root), "train", with_phones=False)
    n_clips = max(args.batches) * (args.steps + 2)
    clips = [ds[i % len(ds)] for i in range(min(n_clips, len(ds)))]
    cfg = to_dataclass(ActorConfig, load_config([]).model)
    motion = fit_motion_space(clips, cfg, 0)
    meta = ActorMeta(clips[0].template.numel() // 3, ds.spec.train_subjects, motion.dim, clips[0].template)
    print(f"{len(clips)} clips, mode {args.mode}, {torch.get_num_threads()} threads")
    for bs in args.batches:
        actor = build_actor(cfg, meta, motion).train()
        step = TrainStep(actor, args.mode)
        opt = torch.optim.AdamW([p for p in actor.parameters() if p.requires_grad], lr=1e-3)
        w = actor.motion.mse_weights()
        audio_s, t_total = 0.0, 0.0
        for i in range(args.steps + 2):
            batch = collate([clips[(i * bs + j) % len(clips)] for j in range(bs)])
            t0 = time.perf_counter()
            target = actor.motion.encode(batch.vertices - batch.template[:, None])
            means = step(batch.audio, batch.audio_mask, None, batch.style, target)
            loss = masked_mse(means, target, batch.frame_mask, w) * MM2
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 2:
                t_total += time.perf_counter() - t0
                audio_s += batch.audio_mask.sum().item() / 16000
        print(f"batch {bs:3d}: {audio_s / t_total:7.1f} s of audio per second "
              f"({t_total / args.steps:.3f} s/step)")


if __name__ == "__main__":
    main()
