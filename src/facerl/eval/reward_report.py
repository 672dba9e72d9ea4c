"""Calibration of the reward model (and the judge) on held-out speakers: `facerl evaluate-reward`.

Dimensions: T frames (30 fps), P = V*3, W windows per clip, S audio shifts (-15..15 frames), E embedding.

For every held-out clip the mesh windows are paired with their audio moved by each shift k:
* **sync accuracy**: the lip score at 0.5 on aligned windows (should be 1) and on windows whose audio
  is shifted by 2..15 frames either way (should be 0), balanced between the two; per window, and per
  clip on the clip's mean lip score (what RL sees: the mean over a sequence's windows);
* **pair accuracy**: how often an aligned window scores above the same window with shifted audio;
* **offset accuracy**: per clip, the shift whose mean score is highest should be 0 (SyncNet's offset
  estimate); also the mean |error| in frames. Only windows whose audio stays inside the clip at every
  shift count, so every shift is judged on the same windows;
* **realism AUC** of the real score, ground truth against each degradation of the same clip (window
  level, and clip level on the clip's mean score), and against the supervised actor's output;
* **agreement** between the reward's lip score and the judge's sync (cosine): how often they order an
  aligned and a shifted window the same way, and how often their offset estimates are equal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from tqdm import tqdm

from facerl.data.dataset import DatasetSpec, VocaDataset
from facerl.errors import FacerlError
from facerl.reward.data import prepare_clip
from facerl.reward.degrade import DEGRADATIONS, degrade
from facerl.reward.frozen import (
    MAX_SHIFT,
    MIN_SHIFT,
    SHIFTS,
    FrozenReward,
    offset_estimate,
    valid_mask,
)
from facerl.utils.io import atomic_path, save_text


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted half."""
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@dataclass
class SyncTally:
    """Sync statistics of one scorer, accumulated over clips."""

    aligned: list[np.ndarray] = field(default_factory=list)     # scores of aligned windows
    shifted: list[np.ndarray] = field(default_factory=list)     # scores of windows shifted >= MIN_SHIFT
    wins: list[np.ndarray] = field(default_factory=list)        # aligned > shifted, per (window, shift) pair
    offsets: list[int] = field(default_factory=list)
    curve: list[np.ndarray] = field(default_factory=list)       # (S,) mean score per shift, per clip
    common: list[np.ndarray] = field(default_factory=list)      # (S,) the same on windows valid at every shift

    def add(self, score: torch.Tensor) -> None:
        """score (S, W) of one clip."""
        valid = valid_mask(score.shape[1])
        zero = SHIFTS.index(0)
        far = valid & (torch.tensor(SHIFTS).abs() >= MIN_SHIFT)[:, None]
        self.aligned.append(score[zero].numpy())
        self.shifted.append(score[far].numpy())
        self.wins.append((score[zero][None].expand_as(score)[far] > score[far]).numpy())
        self.curve.append(np.array([float(score[i][valid[i]].mean()) for i in range(len(SHIFTS))]))
        offset = offset_estimate(score)
        if offset is not None:
            self.offsets.append(offset)
            self.common.append(score[:, valid.all(0)].mean(1).numpy())

    def summary(self, threshold: float | None) -> dict[str, float]:
        offsets = np.array(self.offsets)
        out = {"pair_accuracy": float(np.concatenate(self.wins).mean()),
               "offset_accuracy": float((offsets == 0).mean()) if len(offsets) else math.nan,
               "offset_mean_abs_error_frames": float(np.abs(offsets).mean()) if len(offsets) else math.nan,
               "clips_with_offset": len(offsets)}
        if threshold is not None:
            tpr = float((np.concatenate(self.aligned) > threshold).mean())
            tnr = float((np.concatenate(self.shifted) < threshold).mean())
            out.update(sync_accuracy=(tpr + tnr) / 2, aligned_accepted=tpr, shifted_rejected=tnr)
            if self.common:
                curves = np.stack(self.common)                                          # (clips, S)
                far = np.abs(np.array(SHIFTS)) >= MIN_SHIFT
                clip_tpr = float((curves[:, SHIFTS.index(0)] > threshold).mean())
                clip_tnr = float((curves[:, far] < threshold).mean())
                out.update(clip_sync_accuracy=(clip_tpr + clip_tnr) / 2, clip_aligned_accepted=clip_tpr,
                           clip_shifted_rejected=clip_tnr)
        return out


def agreement(reward: torch.Tensor, judge: torch.Tensor) -> np.ndarray:
    """Per (window, shift >= MIN_SHIFT) pair: do both scorers order aligned vs shifted the same way?"""
    far = valid_mask(reward.shape[1]) & (torch.tensor(SHIFTS).abs() >= MIN_SHIFT)[:, None]
    zero = SHIFTS.index(0)
    r = reward[zero][None].expand_as(reward)[far] > reward[far]
    j = judge[zero][None].expand_as(judge)[far] > judge[far]
    return (r == j).numpy()


def calibrate(reward_dir: Path, spec: DatasetSpec, split: str = "test", judge_dir: Path | None = None,
              actor_checkpoint: Path | None = None, device: str | torch.device = "cpu", seed: int = 0) -> dict:
    """Every calibration number of the reward model (and judge, actor when given) on one split."""
    model = FrozenReward.load(reward_dir, device)
    judge = FrozenReward.load(judge_dir, device, judge=True) if judge_dir is not None else None
    ds = VocaDataset(spec, split, with_phones=False)
    if len(ds) == 0:
        raise FacerlError(f"the {split} split of {spec.root} has no clips")
    raw = [ds[i] for i in tqdm(range(len(ds)), desc=f"loading {split} clips", unit="clip", leave=False)]
    generated = None
    if actor_checkpoint is not None:
        from facerl.train.reward import generate_motion

        generated = generate_motion(str(actor_checkpoint), raw, device)
    clips = [prepare_clip(c, None if generated is None else generated[i]) for i, c in enumerate(raw)]
    del raw
    rng = np.random.default_rng(seed)

    reward_sync, judge_sync_tally, actor_judge = SyncTally(), SyncTally(), SyncTally()
    real_gt: list[np.ndarray] = []
    real_bad: dict[str, list[np.ndarray]] = {kind: [] for kind in DEGRADATIONS}
    lip_gt, lip_actor, real_actor, agree_gt, agree_actor, offset_agree = [], [], [], [], [], []
    for c in tqdm(clips, desc="calibrating", unit="clip"):
        lips = model.by_shift(c.motion, c.mel, score="lip")
        reward_sync.add(lips)
        gt_scores = model.score(c.motion, c.mel)
        real_gt.append(gt_scores.real[0].cpu().numpy())
        lip_gt.append(gt_scores.lip[0].cpu().numpy())
        for kind in DEGRADATIONS:
            real_bad[kind].append(model.score(degrade(c.motion, kind, rng), c.mel).real[0].cpu().numpy())
        if judge is not None:
            judged = judge.by_shift(c.motion, c.mel)
            judge_sync_tally.add(judged)
            agree_gt.append(agreement(lips, judged))
            offset_agree.append(offset_estimate(lips) == offset_estimate(judged))
        if c.generated is not None:
            fake = model.score(c.generated, c.mel)
            lip_actor.append(fake.lip[0].cpu().numpy())
            real_actor.append(fake.real[0].cpu().numpy())
            if judge is not None:
                judged_fake = judge.by_shift(c.generated, c.mel)
                actor_judge.add(judged_fake)
                agree_actor.append(agreement(model.by_shift(c.generated, c.mel, score="lip"), judged_fake))

    gt_all = np.concatenate(real_gt)
    gt_clip = np.array([r.mean() for r in real_gt])
    realism = {kind: {"window_auc": auc(gt_all, np.concatenate(bad)),
                      "clip_auc": auc(gt_clip, np.array([b.mean() for b in bad])),
                      "mean_real": float(np.concatenate(bad).mean())}
               for kind, bad in real_bad.items()}
    report = {"split": split, "clips": len(clips), "speakers": sorted({c.subject for c in clips}),
              "shifts": SHIFTS, "min_shift": MIN_SHIFT,
              "reward": {"sync": reward_sync.summary(threshold=0.5),
                         "score_by_shift": np.mean(reward_sync.curve, 0).tolist()},
              "realism": realism,
              "ground_truth": {"lip": float(np.concatenate(lip_gt).mean()), "real": float(gt_all.mean())}}
    if lip_actor:
        actor_all = np.concatenate(real_actor)
        report["actor"] = {"checkpoint": str(actor_checkpoint), "style": "average",
                           "lip": float(np.concatenate(lip_actor).mean()), "real": float(actor_all.mean()),
                           "real_window_auc_vs_ground_truth": auc(gt_all, actor_all),
                           "real_clip_auc_vs_ground_truth": auc(gt_clip, np.array([r.mean() for r in real_actor]))}
    if judge is not None:
        report["judge"] = {"sync": judge_sync_tally.summary(threshold=None),
                           "score_by_shift": np.mean(judge_sync_tally.curve, 0).tolist(),
                           "agreement_with_reward": {
                               "pair_order_ground_truth": float(np.concatenate(agree_gt).mean()),
                               "offset_estimate_ground_truth": float(np.mean(offset_agree))}}
        if agree_actor:
            report["judge"]["agreement_with_reward"]["pair_order_actor"] = float(np.concatenate(agree_actor).mean())
            report["judge"]["actor_sync"] = actor_judge.summary(threshold=None)
    return report


def _fmt(x: float, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.1f} %" if pct else f"{x:.3f}"


def markdown(report: dict) -> str:
    """The report as markdown: sync table, realism table, ground truth vs actor, judge agreement."""
    r = report["reward"]["sync"]
    lines = [(f"# Reward calibration: {report['split']} split ({report['clips']} clips, speakers "
              f"{', '.join(report['speakers'])})"), "",
             "| sync (target) | reward lip score | judge |", "|---|---|---|"]
    j = report.get("judge", {}).get("sync", {})
    lines += [
        (f"| sync accuracy per window: aligned vs shifted >= {report['min_shift']} frames, at 0.5 | "
         f"{_fmt(r['sync_accuracy'])} (aligned {_fmt(r['aligned_accepted'])}, shifted "
         f"{_fmt(r['shifted_rejected'])}) | – |"),
        (f"| sync accuracy per clip (mean lip score of the clip at 0.5) | {_fmt(r.get('clip_sync_accuracy'))} "
         f"(aligned {_fmt(r.get('clip_aligned_accepted'))}, shifted {_fmt(r.get('clip_shifted_rejected'))}) | – |"),
        (f"| pair accuracy: aligned scores above shifted | {_fmt(r['pair_accuracy'])} | "
         f"{_fmt(j.get('pair_accuracy'))} |"),
        (f"| offset accuracy over ±{MAX_SHIFT} frames, per clip (>= 90 %) | {_fmt(r['offset_accuracy'])} | "
         f"{_fmt(j.get('offset_accuracy'))} |"),
        (f"| offset mean abs error (frames) | {_fmt(r['offset_mean_abs_error_frames'], False)} | "
         f"{_fmt(j.get('offset_mean_abs_error_frames'), False)} |"),
        "",
        "| realism: ground truth vs | window AUC | clip AUC (>= 0.9) | mean real |",
        "|---|---|---|---|",
    ]
    for kind, v in report["realism"].items():
        lines.append(f"| {kind} | {_fmt(v['window_auc'], False)} | {_fmt(v['clip_auc'], False)} | "
                     f"{_fmt(v['mean_real'], False)} |")
    gt = report["ground_truth"]
    if "actor" in report:
        a = report["actor"]
        lines.append(f"| supervised actor (average style) | {_fmt(a['real_window_auc_vs_ground_truth'], False)} | "
                     f"{_fmt(a['real_clip_auc_vs_ground_truth'], False)} | {_fmt(a['real'], False)} |")
        lines += ["", "| sequence | mean lip | mean real |", "|---|---|---|",
                  f"| ground truth | {_fmt(gt['lip'], False)} | {_fmt(gt['real'], False)} |",
                  f"| supervised actor | {_fmt(a['lip'], False)} | {_fmt(a['real'], False)} |"]
    else:
        lines += ["", f"ground truth: mean lip {_fmt(gt['lip'], False)}, mean real {_fmt(gt['real'], False)}"]
    if "judge" in report:
        ag = report["judge"]["agreement_with_reward"]
        lines += ["", f"reward–judge agreement: same order of aligned vs shifted on "
                      f"{_fmt(ag['pair_order_ground_truth'])} of ground-truth pairs"
                  + (f", {_fmt(ag['pair_order_actor'])} of actor pairs" if "pair_order_actor" in ag else "")
                  + f"; same offset estimate on {_fmt(ag['offset_estimate_ground_truth'])} of clips."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Score vs audio offset: the reward's mean lip score and the judge's mean cosine sync."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.plot(SHIFTS, report["reward"]["score_by_shift"], "o-", color="tab:blue", label="reward lip score")
    ax.set_xlabel("audio offset (frames at 30 fps; + = audio from later)")
    ax.set_ylabel("mean lip score", color="tab:blue")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_ylim(0, 1)
    if "judge" in report:
        twin = ax.twinx()
        twin.plot(SHIFTS, report["judge"]["score_by_shift"], "s--", color="tab:orange", label="judge cosine")
        twin.set_ylabel("mean judge cosine", color="tab:orange")
    ax.set_title(f"sync score vs audio offset ({report['split']} speakers)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_calibration(report: dict, out: Path) -> str:
    """calibration.json, calibration.md and calibration.png in ``out``; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    save_text(out / "calibration.json", json.dumps(report, indent=2) + "\n")
    save_text(out / "calibration.md", text)
    plot(report, out / "calibration.png")
    return text


VOICE_CALIBRATION_COLUMNS = [  # (key, header, scale, format), as evaluate.COLUMNS
    ("clips", "clips", 1, "{:d}"),
    ("reward_clip_sync", "reward sync per clip", 1, "{:.1%}"),
    ("reward_pair", "reward pair acc", 1, "{:.1%}"),
    ("reward_offset", "reward offset acc", 1, "{:.1%}"),
    ("realism_min_clip_auc", "realism AUC (worst degradation, per clip)", 1, "{:.3f}"),
    ("gt_real", "GT real", 1, "{:.3f}"),
    ("judge_pair", "judge pair acc", 1, "{:.1%}"),
    ("judge_offset", "judge offset acc", 1, "{:.1%}"),
]


def calibrate_voices(reward_dir: Path, sources: dict[str, DatasetSpec], judge_dir: Path | None,
                     device: str | torch.device = "cpu") -> list[dict]:
    """The reward model's (and judge's) calibration on each voice source: do they still hear sync and
    realism on voices they were not trained on? One summary row per source (its 'test' split)."""
    rows = []
    for name, spec in sources.items():
        report = calibrate(reward_dir, spec, "test", judge_dir, None, device)
        sync, judge = report["reward"]["sync"], report.get("judge", {}).get("sync", {})
        rows.append({"source": name, "clips": report["clips"],
                     "reward_clip_sync": sync.get("clip_sync_accuracy", math.nan),
                     "reward_pair": sync["pair_accuracy"], "reward_offset": sync["offset_accuracy"],
                     "realism_min_clip_auc": min(r["clip_auc"] for r in report["realism"].values()),
                     "gt_real": report["ground_truth"]["real"],
                     "judge_pair": judge.get("pair_accuracy", math.nan),
                     "judge_offset": judge.get("offset_accuracy", math.nan)})
    return rows


def write_voice_calibration(rows: list[dict], out: Path) -> str:
    """calibration_voices.{md,json} in ``out``; returns the markdown table."""
    from facerl.eval.evaluate import markdown_table

    table = markdown_table([{"method": r["source"], **r} for r in rows], VOICE_CALIBRATION_COLUMNS)
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    save_text(out / "calibration_voices.json", json.dumps({"rows": clean}, indent=2) + "\n")
    save_text(out / "calibration_voices.md", f"# Reward calibration per voice source\n\n{table}\n")
    return table
