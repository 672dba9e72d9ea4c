"""Which fine-tuning recipe works: every recipe from the same supervised actor, against the same frozen reward,
at equal compute (the same optimiser steps; the measured wall time is printed beside), several seeds each.

Usage:
  python benchmarks/rl_methods.py --run /work/pipe/runs/pipeline --voices /work/pipe/data/voices \\
      [--steps 40] [--seeds 0 1 2] [--variants supervised perceptual rl_group ...] [--out runs/rl_methods]
      [paths.root=... data.out=... (any config override, e.g. to point at the corpus the run was trained on)]

Phase 1 trains ``<out>/runs/<variant>_s<seed>/`` for every variant and seed (a finished one is reused;
`facerl train` resumes an interrupted one). Phase 2 scores each run's final actor (``last.pt``: the actor
after exactly the budget, no checkpoint selection, so every recipe gets the same compute and no val-based
choice) and the supervised start in the style-independent
mode on the held-out test speakers and on every out-of-domain voice source in ``--voices`` (`facerl data
voices`), with the judge, and prints mean +- std over seeds of judge sync, closure, LVE, jitter, MTM and
opening r, in domain and averaged over the unseen voices; also the training diagnostics: the variance of
the raw advantage over training (first and last quarter of the steps) and the critic's explained variance.
Everything lands in ``<out>/rl_methods.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from facerl.config import load_config
from facerl.data.dataset import spec_from_config
from facerl.eval.voices import IN_DOMAIN, evaluate_voices, voice_specs
from facerl.rl.train import train_rl
from facerl.utils.checkpoint import load_checkpoint, resolve_device
from facerl.utils.io import save_text

VARIANTS = {
    "supervised": ["trainer.recipe=supervised"],                                        # the control: more sup steps
    "perceptual": ["trainer.recipe=perceptual"],
    "rl_group_seq": ["trainer.baseline=group", "trainer.per_window=false"],            # GRPO, per sequence (old default)
    "rl_group_win": ["trainer.baseline=group", "trainer.per_window=true"],             # per-window group-relative
    "rl_critic_win": ["trainer.baseline=critic", "trainer.per_window=true"],           # V(s) of audio + style
    "rl_seed_critic": ["trainer.baseline=sample_critic", "trainer.per_window=true"],   # the seed's value of the sample
    "rl_kl": ["trainer.baseline=group", "trainer.loss.kl=0.05"],
    "rl_ppo": ["trainer.baseline=group", "trainer.clip=0.2", "trainer.ppo_epochs=2"],
    "rl_antithetic": ["trainer.baseline=group", "trainer.noise=antithetic"],
    "rl_smooth": ["trainer.baseline=group", "trainer.noise=smooth"],
    "rl_perceptual": ["trainer.recipe=rl+perceptual", "trainer.baseline=group"],
}
DEFAULT = ["supervised", "perceptual", "rl_group_seq", "rl_group_win", "rl_critic_win", "rl_seed_critic",
           "rl_perceptual"]
IN_KEYS = (("judge_sync", "judge sync", 1, "{:.3f}"), ("closure_rate", "closure %", 100, "{:.1f}"),
           ("lve", "LVE 1e-5", 1e5, "{:.3f}"), ("jitter", "jitter", 1, "{:.3f}"), ("mtm_ms", "MTM ms", 1, "{:.1f}"),
           ("opening_r", "opening r", 1, "{:.3f}"), ("lipread_acc", "lip-read %", 100, "{:.1f}"))
OUT_KEYS = (("opening_r", "OOD opening r", 1, "{:.3f}"), ("judge_sync", "OOD judge sync", 1, "{:.3f}"),
            ("closure_rate", "OOD closure %", 100, "{:.1f}"), ("lipread_acc", "OOD lip-read %", 100, "{:.1f}"))


def train_variant(name: str, seed: int, args, overrides: list[str]) -> dict:
    run = Path(args.run)
    epochs = max(1, args.steps // args.steps_per_epoch)
    cfg = load_config(["experiment=rl", f"paths.root={args.out}", f"run_name={name}_s{seed}", "stage=rl",
                       f"trainer.seed={seed}", f"trainer.epochs={epochs}", f"trainer.steps_per_epoch={args.steps_per_epoch}",
                       f"trainer.val_clips={args.val_clips}", "trainer.max_minutes=0",
                       f"trainer.actor_checkpoint={run / 'actor' / 'best.pt'}", f"trainer.reward_dir={run / 'reward'}",
                       f"trainer.judge_dir={run / 'judge'}", f"trainer.cache_dir={run / 'feature_cache'}",
                       *overrides, *VARIANTS[name]])
    folder = Path(cfg.paths.run_dir) / "rl"
    last = folder / "last.pt"
    done = last.is_file() and load_checkpoint(last, "facerl-actor").get("epoch") == epochs
    if not done:
        t0 = time.perf_counter()
        train_rl(cfg)
        seconds = time.perf_counter() - t0
        save_text(folder / "wall_s.txt", f"{seconds:.1f}\n")
    ckpt = load_checkpoint(last, "facerl-actor")
    history = ckpt["history"][1:]
    quarter = max(1, len(history) // 4)

    def mean_of(key: str, part: list[dict]) -> float:
        values = [h[key] for h in part if key in h and h[key] is not None and math.isfinite(h[key])]
        return float(np.mean(values)) if values else math.nan

    wall = folder / "wall_s.txt"
    return {"variant": name, "seed": seed, "steps": ckpt["step"], "best_epoch": ckpt["best"]["epoch"],
            "wall_s": float(wall.read_text()) if wall.is_file() else math.nan,
            "adv_var_first": mean_of("train_objective_advantage_var", history[:quarter]),
            "adv_var_last": mean_of("train_objective_advantage_var", history[-quarter:]),
            "explained_variance": mean_of("train_value_explained_variance", history),
            "approx_kl": mean_of("train_policy_approx_kl", history),
            "val_reward": history[-1]["val_reward"] if history else math.nan,
            "final": str(last)}


def fmt(values: list[float], scale: float, pattern: str) -> str:
    v = np.array([x for x in values if x is not None and math.isfinite(x)]) * scale
    if not len(v):
        return "–"
    return pattern.format(v.mean()) + (" ± " + pattern.format(v.std(ddof=1)) if len(v) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", required=True, help="a run folder with actor/, reward/, judge/ (and feature_cache/)")
    ap.add_argument("--voices", help="voice-set root (facerl data voices) for the out-of-domain columns")
    ap.add_argument("--steps", type=int, default=40, help="optimiser steps per run (default 40)")
    ap.add_argument("--steps-per-epoch", type=int, default=10)
    ap.add_argument("--val-clips", type=int, default=20)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=DEFAULT, choices=sorted(VARIANTS))
    ap.add_argument("--out", default="runs/rl_methods", help="where the runs and the table go")
    ap.add_argument("--lipreader", help="a trained lip-reader folder (facerl train experiment=lipreader)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-only", action="store_true", help="phase 1 only")
    args, overrides = ap.parse_known_args()
    if any("=" not in o for o in overrides):
        sys.exit(f"unknown arguments: {' '.join(o for o in overrides if '=' not in o)}")
    args.out = str(Path(args.out).resolve())
    runs = [train_variant(name, seed, args, overrides) for seed in args.seeds for name in args.variants]
    if args.train_only:
        return
    cfg = load_config([f"paths.root={args.out}", *overrides])
    device = resolve_device(args.device)
    sources = {IN_DOMAIN: spec_from_config(cfg.dataset), **(voice_specs(args.voices) if args.voices else {})}
    kwargs = {"lipreader_dir": Path(args.lipreader)} if args.lipreader else {}
    start = {"variant": "start (supervised actor)", "seed": 0, "final": str(Path(args.run) / "actor" / "best.pt")}
    for r in [start, *runs]:
        rows = evaluate_voices({"x": Path(r["final"])}, sources, Path(args.run) / "judge", device, **kwargs)
        r["in"] = next(row for row in rows if row["source"] == IN_DOMAIN)
        r["out"] = [row for row in rows if row["source"] != IN_DOMAIN]
    names = [start["variant"], *args.variants]
    head = ["variant", "steps", "wall s", *(h for _, h, _, _ in IN_KEYS), *(h for _, h, _, _ in OUT_KEYS),
            "adv var first → last", "expl. var"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        group = [start] if name == start["variant"] else [r for r in runs if r["variant"] == name]
        cells = [name, str(group[0].get("steps", 0)), fmt([g.get("wall_s", math.nan) for g in group], 1, "{:.0f}")]
        cells += [fmt([g["in"].get(k, math.nan) for g in group], s, p) for k, _, s, p in IN_KEYS]
        cells += [fmt([np.nanmean([o.get(k, math.nan) for o in g["out"]]) if g["out"] else math.nan for g in group],
                      s, p) for k, _, s, p in OUT_KEYS]
        cells += [(f"{fmt([g.get('adv_var_first', math.nan) for g in group], 1, '{:.3g}')} → "
                  f"{fmt([g.get('adv_var_last', math.nan) for g in group], 1, '{:.3g}')}"),
                  fmt([g.get("explained_variance", math.nan) for g in group], 1, "{:.2f}")]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    seeds = ", ".join(map(str, args.seeds))
    save_text(Path(args.out) / "rl_methods.md", f"{args.steps} steps per run, seeds {seeds}; mean ± std over seeds\n\n"
              f"{table}\n")
    save_text(Path(args.out) / "rl_methods.json", json.dumps({"args": vars(args), "start": start, "runs": runs},
                                                             indent=1, default=str))
    print(table)


if __name__ == "__main__":
    main()
