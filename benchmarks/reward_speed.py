"""Reward-model scoring throughput: windows per second at batch sizes 1, 64 and 1024 windows, and the wall
time to score a 4 s clip end to end (log-mel + windows + FrozenReward.score), as `facerl score` and RL rollouts do.

Usage: python benchmarks/reward_speed.py [--reward runs/pipeline/reward] [--device cpu] [--threads 2]
       [--repeats 5]
Without --reward, a default-size model (facerl.reward.model.BackboneConfig(), the mesh of the embedded
MakeHuman head) with random weights is timed: speed does not depend on the weights. Motion and audio are
noise (speed does not depend on content either). CPU runs use --threads torch threads (default 2).
"""

import argparse
import time

import numpy as np
import torch

from facerl.head.rig import load_head
from facerl.reward.frozen import FrozenReward
from facerl.reward.model import BackboneConfig, ScoreHead, SpeechMeshTransformer
from facerl.reward.windows import MEL_PER_FRAME, N_MELS, WINDOW, reward_mel
from facerl.utils.checkpoint import resolve_device

FPS = 30


def default_reward(n_coords: int) -> FrozenReward:
    torch.manual_seed(0)
    backbone = SpeechMeshTransformer(n_coords, BackboneConfig())
    return FrozenReward(backbone, ScoreHead(backbone.cfg.embed))


def speech_like(seconds: float) -> torch.Tensor:
    t = np.arange(int(seconds * 16000)) / 16000
    rng = np.random.default_rng(0)
    return torch.from_numpy((0.1 * rng.standard_normal(len(t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)))
                            .astype(np.float32))


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


@torch.no_grad()
def batch_seconds(model: FrozenReward, n: int, device: torch.device, min_seconds: float = 1.0) -> float:
    """Mean seconds per forward pass of n windows: mesh (n, L, P) + mel (n, 1, F*L, M) on ``device``."""
    mesh = 1e-3 * torch.randn(n, WINDOW, model.backbone.n_coords, device=device)          # (n, L, P)
    mel = torch.randn(n, 1, WINDOW * MEL_PER_FRAME, N_MELS, device=device) - 4.0          # (n, 1, F*L, M)
    def forward() -> None:
        model.head(*model.backbone(mesh, mel))

    forward()                                                                              # warm-up
    times = []
    while sum(times) < min_seconds or len(times) < 3:
        times.append(timed(forward, device))
    return sum(times) / len(times)


def clip_seconds(model: FrozenReward, seconds: float, repeats: int) -> tuple[float, float, int]:
    """Mean wall time of scoring one clip end to end and of its log-mel alone, and its window count."""
    device = next(model.parameters()).device
    audio = speech_like(seconds)                                                           # (S,)
    n_frames = round(seconds * FPS)
    motion = 1e-3 * torch.randn(n_frames, model.backbone.n_coords)                         # (T, P)
    holder = {}

    def mel_only() -> None:
        holder["mel"] = reward_mel(audio[None], n_frames)[0]                              # (F*T, M)

    def end_to_end() -> None:
        holder["scores"] = model.score(motion, reward_mel(audio[None], n_frames)[0])

    end_to_end()                                                                           # warm-up
    total = sum(timed(end_to_end, device) for _ in range(repeats)) / repeats
    mel = sum(timed(mel_only, device) for _ in range(repeats)) / repeats
    return total, mel, holder["scores"].lip.shape[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reward", help="a trained reward folder (default: random default-size model)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024], help="windows per forward pass")
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length for the end-to-end timing")
    ap.add_argument("--repeats", type=int, default=5, help="timed end-to-end repeats, averaged")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    n_vertices = load_head().n_vertices
    model = FrozenReward.load(args.reward, device) if args.reward else default_reward(3 * n_vertices).to(device)
    cfg, n_coords = model.backbone.cfg, model.backbone.n_coords
    source = args.reward or "random weights"
    print(f"reward model ({source}): width {cfg.width}, depth {cfg.depth}, heads {cfg.heads}, embed {cfg.embed}, "
          f"P = {n_coords} ({n_coords // 3} vertices), {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
          f"parameters")
    print(f"torch {torch.__version__}, device {device}"
          + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""))
    print(f"{'batch (windows)':>15}  {'ms / batch':>10}  {'windows / s':>11}")
    for n in args.batches:
        s = batch_seconds(model, n, device)
        print(f"{n:>15}  {1e3 * s:>10.2f}  {n / s:>11.0f}")
    total, mel, windows = clip_seconds(model, args.seconds, args.repeats)
    print(f"{args.seconds:g} s clip end to end ({windows} windows): {1e3 * total:.1f} ms "
          f"(log-mel {1e3 * mel:.1f} ms), mean of {args.repeats} after a warm-up -> "
          f"{args.seconds / total:.0f}x real time")


if __name__ == "__main__":
    main()
