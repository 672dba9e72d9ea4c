"""`facerl compare` and `facerl evaluate` before and after the batched evaluation, timed in one run.

Old path: the code of git commit a7d58f6 (the last one before the batched evaluation), exported with
``git archive a7d58f6 src`` into ``<out>/old_src`` and run with ``PYTHONPATH=<out>/old_src/src`` in a subprocess
of the same interpreter (the same venv, so only facerl's own code differs); new path: this checkout's ``src``.
Both run the same commands on the same inputs, interleaved (compare: old, new; evaluate: new, old; the next
repeat the other way round), so that load from other processes hits both alike:

    facerl compare paths.root=<scratch> --no-video --out <scratch>/compare      # generation + scoring
    facerl evaluate paths.root=<scratch> --results NAME=FOLDER ... --out <scratch>/evaluate   # reading + scoring

Nothing is written into the run: ``<out>/{old,new}`` each hold ``runs/<name>/`` with copies of the run's
checkpoints (``*.pt`` of actor, perceptual, rl, reward, judge, lipreader) and ``data``, a symlink to the run's
data folder; compare writes its result folders there, evaluate scores them. Printed: wall and CPU seconds
(user + system of the subprocess) per command and path, the old / new ratios, the largest relative difference
of every metric between the two metrics.json files (``lipread_acc`` is new since a7d58f6), and whether every
result file compare wrote is identical.

Usage: .venv/bin/python benchmarks/eval_speed.py [--run runs/pipeline] [--repeats 1] [--out /tmp/facerl_eval_speed]
       [--device cpu] [--old-commit a7d58f6]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STAGES = ("actor", "perceptual", "rl", "reward", "judge", "lipreader")
METHODS = (("supervised", "results"), ("perceptual", "results_perceptual"), ("RL", "results_rl"))


def export_old(commit: str, dest: Path) -> Path:
    """``src`` of ``commit`` in ``dest`` (git archive: no worktree, the checkout is untouched); returns its src."""
    if not (dest / "src" / "facerl").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def scratch_root(run: Path, dest: Path) -> Path:
    """``dest`` as a paths.root: runs/<name>/<stage>/*.pt copied from the run, data -> the run's data."""
    data = run.parent.parent / "data"
    if not data.is_dir():
        sys.exit(f"{data} not found: --run must be <root>/runs/<name> with the corpus in <root>/data")
    for stage in STAGES:
        for ckpt in sorted((run / stage).glob("*.pt")):
            target = dest / "runs" / run.name / stage / ckpt.name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ckpt, target)
    link = dest / "data"
    if not link.exists():
        link.symlink_to(data.resolve())
    return dest


def timed(cmd: list[str], src: Path, log: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one command run with facerl imported from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    check = subprocess.run([sys.executable, "-c", "import facerl; print(facerl.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not Path(check).resolve().is_relative_to(src.resolve()):
        sys.exit(f"PYTHONPATH={src} still imports facerl from {check}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "facerl.cli", *cmd], env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): facerl {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def metric_diffs(old: Path, new: Path) -> dict[str, float]:
    """Largest relative difference of every metric over the rows of two metrics.json (inf: present in one only)."""
    rows_old = {r["method"]: r for r in json.loads(old.read_text())["rows"]}
    rows_new = {r["method"]: r for r in json.loads(new.read_text())["rows"]}
    if list(rows_old) != list(rows_new):
        sys.exit(f"different rows: {list(rows_old)} vs {list(rows_new)}")
    worst: dict[str, float] = {}
    for method, row in rows_new.items():
        for key, b in row.items():
            if key == "method":
                continue
            a = rows_old[method].get(key, "absent")
            if a == "absent":
                worst[key] = math.nan          # a column a7d58f6 does not have
                continue
            if a is None or b is None:
                diff = 0.0 if a is None and b is None else math.inf
            else:
                diff = 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))
            worst[key] = max(worst.get(key, 0.0), diff)
    return worst


def result_files_equal(old: Path, new: Path) -> tuple[int, int, float]:
    """(files, identical files, max abs difference) of the result folders compare wrote under two roots."""
    n = same = 0
    worst = 0.0
    for _, folder in METHODS:
        for path in sorted((old / folder).glob("*.npy")):
            a, b = np.load(path), np.load(new / folder / path.name)
            n += 1
            same += int(a.shape == b.shape and np.array_equal(a, b))
            if a.shape == b.shape:
                worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()))
    return n, same, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="runs/pipeline", help="a trained run: <root>/runs/<name> (default runs/pipeline)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of (old, new) per command (default 1)")
    ap.add_argument("--out", default="/tmp/facerl_eval_speed", help="scratch folder (default /tmp/facerl_eval_speed)")
    ap.add_argument("--device", default="cpu", help="--device of both commands (default cpu)")
    ap.add_argument("--old-commit", default="a7d58f6", help="the old code (default a7d58f6)")
    args = ap.parse_args()
    run, out = Path(args.run).resolve(), Path(args.out).resolve()
    if not (run / "actor" / "best.pt").is_file():
        sys.exit(f"no trained run at {run} (facerl pipeline, or pass --run)")
    srcs = {"old": export_old(args.old_commit, out / "old_src"), "new": REPO / "src"}
    roots = {side: scratch_root(run, out / side) for side in srcs}
    run_of = {side: roots[side] / "runs" / run.name for side in srcs}

    def command(kind: str, side: str) -> list[str]:
        base = [kind, f"paths.root={roots[side]}", f"run_name={run.name}", "--device", args.device,
                "--out", str(roots[side] / kind)]
        if kind == "compare":
            return base + ["--no-video"]
        return base + [x for label, folder in METHODS for x in ("--results", f"{label}={run_of[side] / folder}")]

    times = {(kind, side): [] for kind in ("compare", "evaluate") for side in srcs}
    for r in range(args.repeats):
        for kind, order in (("compare", ("old", "new")), ("evaluate", ("new", "old"))):
            for side in order if r % 2 == 0 else order[::-1]:
                wall, cpu = timed(command(kind, side), srcs[side], out / f"{kind}_{side}_{r}.log")
                times[kind, side].append((wall, cpu))
                print(f"round {r + 1}: {kind:8s} {side}: {wall:7.1f} s wall, {cpu:7.1f} s CPU", flush=True)

    print(f"\nrun {run}, {args.repeats} round(s), old = {args.old_commit} ({srcs['old']}), new = {srcs['new']}")
    print(f"{'command':9s} {'old wall':>9s} {'new wall':>9s} {'ratio':>6s} {'old CPU':>9s} {'new CPU':>9s} {'ratio':>6s}")
    for kind in ("compare", "evaluate"):
        (ow, oc), (nw, nc) = (np.sum(times[kind, side], axis=0) for side in ("old", "new"))
        print(f"{kind:9s} {ow:8.1f}s {nw:8.1f}s {ow / nw:5.2f}x {oc:8.1f}s {nc:8.1f}s {oc / nc:5.2f}x")
    for kind in ("compare", "evaluate"):
        print(f"\n{kind}: largest relative difference old vs new per metric (nan: not in {args.old_commit})")
        for key, diff in metric_diffs(roots["old"] / kind / "metrics.json", roots["new"] / kind / "metrics.json").items():
            print(f"  {key:18s} {diff:.3g}")
    n, same, worst = result_files_equal(run_of["old"], run_of["new"])
    print(f"\nresult files written by compare: {same} of {n} identical (max abs difference {worst:.3g} m)")


if __name__ == "__main__":
    main()
