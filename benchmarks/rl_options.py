"""Which RL objective works: the same budget for each option, from the same supervised actor and reward.

Usage: python benchmarks/rl_options.py [--run runs/pipeline] [--minutes 2] [--variants group critic dense sup_only]

Each variant fine-tunes <run>/actor/best.pt against the frozen <run>/reward for --minutes (written to
runs/rl_options_<variant>/rl/), then prints, at the epoch best.pt keeps and at the last epoch: val LVE,
val reward (lip + real, the reward model's own score), and the judge's sync (an independent model that
never steers training). ``sup_only`` keeps the supervised loss alone (actor and critic weights 0): the
control for "is it the RL terms or just more supervised steps?". One seed each: differences smaller
than the epoch-to-epoch wobble are noise.
"""

import argparse
from pathlib import Path

from facerl.config import load_config
from facerl.train.common import load_checkpoint
from facerl.train.rl import train_rl

VARIANTS = {
    "group": [],                                                    # the default: GRPO-style group baseline
    "critic": ["trainer.baseline=critic"],
    "dense": ["trainer.dense=true"],
    "kl": ["trainer.loss.kl=0.05"],
    "none": ["trainer.baseline=none"],
    "sup_only": ["trainer.loss.actor=0", "trainer.loss.critic=0", "trainer.baseline=none"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/pipeline", help="run folder with actor/, reward/ and judge/")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--variants", nargs="+", default=["group", "critic", "sup_only"], choices=sorted(VARIANTS))
    args = ap.parse_args()
    run = Path(args.run)
    rows = []
    for name in args.variants:
        cfg = load_config(["experiment=rl", f"run_name=rl_options_{name}", f"trainer.max_minutes={args.minutes}",
                           "trainer.resume=false", f"trainer.actor_checkpoint={run / 'actor' / 'best.pt'}",
                           f"trainer.reward_dir={run / 'reward'}", f"trainer.judge_dir={run / 'judge'}",
                           *VARIANTS[name]])
        train_rl(cfg)
        last = load_checkpoint(Path(cfg.paths.run_dir) / "rl" / "last.pt", "facerl-actor")
        history, best = last["history"], last["best"]["epoch"]
        start, end = history[0], history[-1]
        kept = next((h for h in history if h["epoch"] == best), start)
        rows.append((name, start, kept, end))
    print(f"\n{'variant':10s} {'':6s} {'LVE 1e-5':>9s} {'reward':>7s} {'judge':>7s}")
    for name, start, kept, end in rows:
        for label, h in (("start", start), (f"kept@{kept['epoch']}", kept), (f"last@{end['epoch']}", end)):
            print(f"{name:10s} {label:8s} {h['val_lve'] * 1e5:9.3f} {h['val_reward']:7.3f} {h['val_judge_sync']:7.3f}")


if __name__ == "__main__":
    main()
