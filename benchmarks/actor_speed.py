"""Offline actor inference speed: real-time factor on 10 s and 60 s of speech, the NumPy decode loop
(facerl.models.fast_decode, the default) next to the torch KV-cached loop and the full-prefix loop, in the same
run, with the largest difference between their outputs.

Usage: python benchmarks/actor_speed.py [--checkpoint runs/pipeline/actor/best.pt] [--repeats 5] [--seconds 10 60]
Without a checkpoint, a default-size actor (conf/model/faceformer.yaml, K=64 motion basis, 4,784
vertices) with random weights is timed: speed does not depend on the weights. Audio features are
included, rendering is not. Audio is speech-like noise (speed does not depend on content either).
Each time is the median of ``--repeats`` runs (min-max in brackets); the paths are interleaved, so machine
load hits them alike.
"""

import argparse
import time

import numpy as np
import torch

from facerl.animate import long_audio_features
from facerl.config import load_config, to_dataclass
from facerl.models.actor import Actor, ActorConfig, MotionSpace
from facerl.models.audio import frames_for_samples
from facerl.models.checkpoint import load_actor


def default_actor() -> Actor:
    cfg = to_dataclass(ActorConfig, load_config([]).model)
    torch.manual_seed(0)
    n_vertices = 4784
    motion = MotionSpace.fit(torch.randn(512, cfg.basis_dim) @ torch.randn(cfg.basis_dim, n_vertices * 3) * 1e-3,
                             cfg.basis_dim)
    actor = Actor(cfg, n_vertices, 8, motion)
    torch.nn.init.normal_(actor.head.weight, std=0.05)
    return actor.eval()


def speech_like(seconds: float) -> torch.Tensor:
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(0)
    return torch.from_numpy((0.1 * rng.standard_normal(len(t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)))
                            .astype(np.float32))


def stage_times(actor: Actor, audio: torch.Tensor, template: torch.Tensor, fast: bool) -> tuple[dict, torch.Tensor]:
    """One offline animation, timed by stage: audio features, generation, vertices (s) -> (times, motion)."""
    n = frames_for_samples(len(audio))
    with torch.inference_mode():
        t0 = time.perf_counter()
        feats = long_audio_features(actor, audio, n)
        t1 = time.perf_counter()
        motion = actor.generate(feats, torch.tensor([-1]), fast=fast).motion
        t2 = time.perf_counter()
        actor.vertices(motion, template[None])
        t3 = time.perf_counter()
    return {"features": t1 - t0, "generate": t2 - t1, "vertices": t3 - t2, "total": t3 - t0}, motion


def spread(values: list[float]) -> str:
    return f"{1e3 * float(np.median(values)):.1f} ms [{1e3 * min(values):.1f}-{1e3 * max(values):.1f}]"


def offline_table(actor: Actor, template: torch.Tensor, seconds: list[float], repeats: int,
                  full_prefix: bool = True) -> None:
    """Print the offline comparison (see the module docstring) for each length in ``seconds``."""
    stage_times(actor, speech_like(2.0), template, True)   # warm-up (loads the encoder's weights)
    stage_times(actor, speech_like(2.0), template, False)
    print("| speech | path | features | generate | vertices | total | real time |")
    print("|---|---|---|---|---|---|---|")
    for sec in seconds:
        audio = speech_like(sec)
        runs: dict[bool, list[dict]] = {True: [], False: []}
        motion = {}
        for _ in range(repeats):
            for fast in (True, False):
                times, motion[fast] = stage_times(actor, audio, template, fast)
                runs[fast].append(times)
        for fast, name in ((True, "NumPy loop (default)"), (False, "torch KV cache (before)")):
            col = {k: [r[k] for r in runs[fast]] for k in runs[fast][0]}
            print(f"| {sec:g} s | {name} | {spread(col['features'])} | {spread(col['generate'])} | "
                  f"{spread(col['vertices'])} | {spread(col['total'])} | {sec / np.median(col['total']):.0f}x |")
        diffs = f"NumPy vs torch cache {(motion[True] - motion[False]).abs().max():.1e}"
        if full_prefix:
            with torch.inference_mode():
                feats = long_audio_features(actor, audio, frames_for_samples(len(audio)))
                t0 = time.perf_counter()
                ref = actor.generate(feats, torch.tensor([-1]), cache=False).motion
                t_full = time.perf_counter() - t0
            print(f"| {sec:g} s | full prefix (reference) | | {1e3 * t_full:.0f} ms (1 run) | | | |")
            diffs += f", vs full prefix {(motion[True] - ref).abs().max():.1e}"
        print(f"|  | max abs difference of the motion | {diffs} | | | | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="actor checkpoint (default: random default-size actor)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per path (median, min-max reported)")
    ap.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0], help="speech lengths")
    ap.add_argument("--no-full-prefix", action="store_true", help="skip the slow full-prefix reference")
    args = ap.parse_args()
    if args.checkpoint:
        actor, meta, _ = load_actor(args.checkpoint)
        template = meta.template
    else:
        actor = default_actor()
        template = torch.zeros(actor.n_vertices * 3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, audio {actor.cfg.audio.kind}, "
          f"K={actor.motion.dim}, {sum(p.numel() for p in actor.parameters()) / 1e6:.2f} M parameters")
    offline_table(actor, template, args.seconds, args.repeats, not args.no_full_prefix)


if __name__ == "__main__":
    main()
