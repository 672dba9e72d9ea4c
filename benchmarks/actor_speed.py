"""Actor inference speed: real-time factor on 10 s and 60 s of speech, and KV-cached vs full-prefix
generation on a 20 s clip (max abs difference of the two outputs, and the speed-up).

Usage: python benchmarks/actor_speed.py [--checkpoint runs/pipeline/actor/best.pt] [--repeats 3]
Without a checkpoint, a default-size actor (conf/model/faceformer.yaml, K=64 motion basis, 4,784
vertices) with random weights is timed: speed does not depend on the weights. Audio features are
included, rendering is not. Audio is speech-like noise (speed does not depend on content either).
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


@torch.inference_mode()
def animate_seconds(actor: Actor, audio: torch.Tensor, template: torch.Tensor) -> float:
    t0 = time.perf_counter()
    n = frames_for_samples(len(audio))
    feats = long_audio_features(actor, audio, n)
    motion = actor.generate(feats, torch.tensor([-1])).motion
    actor.vertices(motion, template[None])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="actor checkpoint (default: random default-size actor)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    args = ap.parse_args()
    if args.checkpoint:
        actor, meta, _ = load_actor(args.checkpoint)
        template = meta.template
    else:
        actor = default_actor()
        template = torch.zeros(actor.n_vertices * 3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K={actor.motion.dim}, "
          f"{sum(p.numel() for p in actor.parameters()) / 1e6:.2f} M parameters")
    animate_seconds(actor, speech_like(2.0), template)  # warm-up
    for seconds in (10.0, 60.0):
        audio = speech_like(seconds)
        best = min(animate_seconds(actor, audio, template) for _ in range(args.repeats))
        print(f"inference {seconds:4.0f} s of speech: {best:.3f} s -> {seconds / best:.0f}x real time "
              f"(audio features + generation + vertices)")

    audio = speech_like(20.0)
    with torch.inference_mode():
        feats = long_audio_features(actor, audio, frames_for_samples(len(audio)))
        style = torch.tensor([-1])
        timings = {}
        outputs = {}
        for cache in (True, False):
            runs = []
            for _ in range(args.repeats if cache else 1):
                t0 = time.perf_counter()
                outputs[cache] = actor.generate(feats, style, cache=cache).motion
                runs.append(time.perf_counter() - t0)
            timings[cache] = min(runs)
    diff = (outputs[True] - outputs[False]).abs().max().item()
    print(f"20 s clip ({feats.shape[1]} frames): KV cache {timings[True]:.3f} s, full prefix {timings[False]:.3f} s "
          f"-> {timings[False] / timings[True]:.1f}x faster; max abs diff {diff:.2e}")


if __name__ == "__main__":
    main()
