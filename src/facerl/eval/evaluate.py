"""`facerl evaluate`: score result folders against held-out ground truth, one row per method.

Rows always include the static template (every frame = the speaker's template) and the ground
truth scored against itself (0 errors, 100 % closures, 1.0 jitter: the ceiling). A result folder holds
``<clip>_condition_<style>.npy`` (T30, V*3) files as written by `facerl test`; every style condition
present is pooled (``average`` — the style-independent mode — is reported as its own row).

Dimensions: T frames (30 fps), V vertices, S audio samples.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facerl.audio import read_wav
from facerl.data.dataset import DatasetSpec, VocaDataset
from facerl.errors import FacerlError
from facerl.eval import metrics as M
from facerl.speech.timing import Phone
from facerl.utils.io import load_npy, save_text

RESULT_RE = re.compile(r"^(?P<clip>.+_sentence\d+)_condition_(?P<style>.+)$")
FPS = 30.0
# column key, header, scale for display, format
COLUMNS = [
    ("lve", "LVE (1e-5 m²)", 1e5, "{:.3f}"),
    ("max_lip_mm", "max lip err (mm)", 1.0, "{:.2f}"),
    ("fdd", "FDD (1e-7 m²)", 1e7, "{:+.3f}"),
    ("mve_mm", "MVE (mm)", 1.0, "{:.3f}"),
    ("closure_rate", "closure (%)", 100.0, "{:.1f}"),
    ("opening_r", "opening r", 1.0, "{:.3f}"),
    ("opening_lag", "abs lag (frames)", 1.0, "{:.2f}"),
    ("mtm_ms", "MTM (ms)", 1.0, "{:.1f}"),
    ("slcc", "SLCC", 1.0, "{:.3f}"),
    ("jitter", "jitter (x GT)", 1.0, "{:.3f}"),
    ("judge_sync", "sync (judge)", 1.0, "{:.3f}"),
    ("judge_offset_acc", "offset acc (judge, %)", 100.0, "{:.1f}"),
    ("lipread_acc", "lip-read acc (%)", 100.0, "{:.1f}"),
    ("reward", "reward (lip+real)", 1.0, "{:.3f}"),
]


@dataclass
class Reference:
    """One held-out clip's ground truth."""

    name: str
    subject: str
    vertices: np.ndarray        # (T, V, 3) 30 fps
    template: np.ndarray        # (V, 3)
    phones: list[Phone] | None
    speech_rms: float
    audio: np.ndarray           # (S,) 16 kHz


@dataclass
class Regions:
    lips: np.ndarray
    face: np.ndarray
    upper_face: np.ndarray
    inner_lip_pair: np.ndarray | None   # synthetic head only; without it closure rate and MTM are skipped

    @classmethod
    def from_dict(cls, regions: dict[str, np.ndarray], where: str) -> Regions:
        if "lips" not in regions:
            raise FacerlError(f"{where} has no 'lips' region")
        upper = regions.get("upper_face")
        if upper is None and {"forehead", "eye_region"} <= set(regions):
            upper = np.union1d(regions["forehead"], regions["eye_region"])  # FLAME masks (VOCASET)
        n = max(int(v.max()) for v in regions.values() if v.size) + 1
        return cls(regions["lips"], regions.get("face", np.arange(n)),
                   upper if upper is not None else np.arange(n), regions.get("inner_lip_pair"))


def load_references(spec: DatasetSpec, split: str) -> tuple[list[Reference], Regions]:
    ds = VocaDataset(spec, split, with_phones=True)
    regions = Regions.from_dict(ds.layout.regions(), str(ds.layout.regions_path))
    refs = []
    for i in tqdm(range(len(ds)), desc=f"reading {split} clips", unit="clip", leave=False):
        clip = ds[i]
        t = len(clip.vertices)
        refs.append(Reference(clip.name, clip.subject, clip.vertices.numpy().reshape(t, -1, 3),
                              clip.template.numpy().reshape(-1, 3), clip.phones,
                              M.speech_intensity(read_wav(ds.layout.wav(clip.name))), clip.audio.numpy()))
    return refs, regions


def score(pairs: list[tuple[Reference, np.ndarray]], regions: Regions,
          conditions: list[str] | None = None, judge: Judge | None = None,
          reward: RewardScore | None = None, lipreader=None) -> dict[str, float]:
    """All metrics for (reference, prediction (T, V, 3)) pairs pooled over clips and style conditions.

    ``conditions`` (one per pair) keeps SLCC within a style: intensities are z-scored per
    (speaker, condition), so style-to-style gain differences do not count as lip variance.
    ``judge`` adds the judge's sync margin (mean over sequences) and offset accuracy (per sequence);
    ``reward`` the reward model's mean lip + real (what RL maximises); ``lipreader`` (a
    :class:`facerl.eval.lipreader.LipReader`, trained on ground truth only) its class-balanced viseme accuracy
    against the true phones (clips with phones only).
    """
    preds, gts = [p for _, p in pairs], [r.vertices for r, _ in pairs]
    groups = [f"{r.subject}|{c}" for (r, _), c in zip(pairs, conditions or [""] * len(pairs))]
    out = {
        "lve": M.lip_vertex_error(preds, gts, regions.lips),
        "max_lip_mm": M.max_lip_error_mm(preds, gts, regions.lips),
        "fdd": M.face_dynamics_deviation(preds, gts, [r.template for r, _ in pairs], regions.upper_face),
        "mve_mm": 1000.0 * M.mean_vertex_error(preds, gts, regions.face),
        "closure_rate": math.nan, "opening_r": math.nan, "opening_lag": math.nan, "mtm_ms": math.nan,
        "slcc": M.speech_lip_correlation(np.array([r.speech_rms for r, _ in pairs]),
                                         np.array([M.lip_intensity(p, r.template, regions.lips) for r, p in pairs]),
                                         speakers=groups),
        "jitter": float(np.nanmean([M.jitter(p, r.vertices, regions.face) for r, p in pairs])),
        "judge_sync": math.nan, "judge_offset_acc": math.nan, "reward": math.nan, "lipread_acc": math.nan,
        "sequences": len(pairs),
    }
    if lipreader is not None and any(r.phones for r, _ in pairs):
        out["lipread_acc"] = lipreader.score([(p, r.template, r.phones) for r, p in pairs if r.phones]).balanced_accuracy
    if reward is not None:
        out["reward"] = float(np.mean([reward(r, p) for r, p in pairs]))
    if judge is not None:
        judged = [judge(r, p) for r, p in pairs]
        out["judge_sync"] = float(np.mean([m for m, _ in judged]))
        offsets = [o for _, o in judged if o is not None]
        out["judge_offset_acc"] = float(np.mean([o == 0 for o in offsets])) if offsets else math.nan
    pair = regions.inner_lip_pair
    if pair is not None:
        openings = [M.lip_opening(p, r.template, pair) for r, p in pairs]
        gt_open = [M.lip_opening(r.vertices, r.template, pair) for r, _ in pairs]
        with_phones = [(o, r.phones) for o, (r, _) in zip(openings, pairs) if r.phones]
        if with_phones:
            closed, total = M.closure_rate([o for o, _ in with_phones], [ph for _, ph in with_phones], FPS)
            out["closure_rate"] = closed / total if total else math.nan
        fits = [M.opening_correlation(o, g) for o, g in zip(openings, gt_open)]
        rs = np.array([r for r, _ in fits])
        if np.isfinite(rs).any():  # per clip at its best lag (within +-6 frames), then the mean over clips
            out["opening_r"] = float(np.nanmean(rs))
            out["opening_lag"] = float(np.mean([abs(lag) for r, lag in fits if np.isfinite(r)]))
        mtm = [M.mean_temporal_misalignment(o, g, FPS) for o, g in zip(openings, gt_open)]
        out["mtm_ms"] = float(np.nanmean(mtm)) if np.isfinite(mtm).any() else math.nan
    return out


def read_results(folder: Path, refs: list[Reference]) -> dict[str, list[tuple[Reference, np.ndarray, str]]]:
    """{"all": (ref, pred, style) over training-style conditions, "average": the style-independent mode}.

    Every clip must have the same conditions: an interrupted or mixed-up folder is an error, not a
    silently smaller sample.
    """
    if not folder.is_dir():
        raise FacerlError(f"results folder not found: {folder}")
    by_name = {r.name: r for r in refs}
    groups: dict[str, list[tuple[Reference, np.ndarray, str]]] = {"all": [], "average": []}
    seen: dict[str, set[str]] = {r.name: set() for r in refs}
    for path in sorted(folder.glob("*.npy")):
        m = RESULT_RE.match(path.stem)
        if not m or m["clip"] not in by_name:
            continue
        ref = by_name[m["clip"]]
        pred = load_npy(path, "result")
        if pred.ndim < 2 or pred.size != len(pred) * ref.template.size or pred.dtype.kind not in "fiu":
            raise FacerlError(f"{path}: shape {pred.shape} is not (T, {ref.template.size}) for {ref.subject}")
        if not np.isfinite(pred).all():
            raise FacerlError(f"{path}: the prediction contains NaN or inf (a diverged model?); "
                              "metrics of such results would be meaningless")
        seen[ref.name].add(m["style"])
        groups["average" if m["style"] == "average" else "all"].append(
            (ref, pred.reshape(len(pred), -1, 3), m["style"]))
    conditions = set().union(*seen.values())
    if not conditions:
        raise FacerlError(f"{folder} holds no <clip>_condition_<style>.npy files for these clips "
                          "(write them with `facerl test`)")
    incomplete = sorted(name for name, styles in seen.items() if styles != conditions)
    if incomplete:
        raise FacerlError(f"{folder}: {len(incomplete)} of {len(refs)} clips lack some of the conditions "
                          f"{', '.join(sorted(conditions))} (e.g. {incomplete[0]}); rerun `facerl test` "
                          "into an empty folder")
    return groups


class _SequenceScorer:
    """Base of the model columns: a frozen reward model or judge (facerl.reward.frozen, the one scoring path)
    and a prediction (T, V, 3) of a reference clip -> motion (T, P) and log-mel (4T, M) tensors, the clip's
    log-mel computed once."""

    def __init__(self, folder: Path, device: str, judge: bool) -> None:
        from facerl.reward.frozen import FrozenReward

        self.model = FrozenReward.load(folder, device, judge=judge)
        self.mels: dict = {}

    def inputs(self, ref: Reference, pred: np.ndarray):
        import torch

        t = len(pred)
        if ref.name not in self.mels:
            self.mels[ref.name] = self.model.mel(torch.from_numpy(ref.audio)[None], len(ref.vertices))[0]
        motion = torch.from_numpy((pred - ref.template[None]).reshape(t, -1).astype(np.float32))
        return motion, self.mels[ref.name][:4 * t]


class Judge(_SequenceScorer):
    """The judge's (sync margin, offset estimate) of a prediction."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        from facerl.reward.frozen import SyncJudge

        super().__init__(folder, device, judge=True)
        self.scorer = SyncJudge(self.model)

    def __call__(self, ref: Reference, pred: np.ndarray) -> tuple[float, int | None]:
        return self.scorer(ref.name, *self.inputs(ref, pred))


class RewardScore(_SequenceScorer):
    """The reward model's mean (lip + real) over a prediction's windows."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        super().__init__(folder, device, judge=False)

    def __call__(self, ref: Reference, pred: np.ndarray) -> float:
        scores = self.model.score(*self.inputs(ref, pred))
        return float(scores.mean(scores.reward)[0])


def evaluate(spec: DatasetSpec, split: str, methods: dict[str, Path], judge_dir: Path | None = None,
             device: str = "cpu", reward_dir: Path | None = None, lipreader_dir: Path | None = None) -> list[dict]:
    """Rows (dicts) for the static template, the ground truth and each named results folder; with a judge
    (``<run>/judge``), the `sync (judge)` columns, with a reward model (``<run>/reward``) its mean score, with
    a lip-reader (``<run>/lipreader``) its accuracy."""
    refs, regions = load_references(spec, split)
    judge = Judge(judge_dir, device) if judge_dir is not None else None
    reward = RewardScore(reward_dir, device) if reward_dir is not None else None
    reader = load_lipreader(lipreader_dir, device)
    rows = [{"method": "static template", **score([(r, np.repeat(r.template[None], len(r.vertices), 0))
                                                   for r in refs], regions, judge=judge, reward=reward,
                                                  lipreader=reader)},
            {"method": "ground truth", **score([(r, r.vertices) for r in refs], regions, judge=judge, reward=reward,
                                               lipreader=reader)}]
    for name, folder in methods.items():
        groups = read_results(Path(folder), refs)
        for key, label in (("all", name), ("average", f"{name} (average style)")):
            if groups[key]:
                pairs = [(r, p) for r, p, _ in groups[key]]
                rows.append({"method": label, **score(pairs, regions, [c for _, _, c in groups[key]], judge, reward,
                                                      reader)})
    return rows


def load_lipreader(folder: Path | None, device: str = "cpu"):
    """The lip-reader of a ``<run>/lipreader`` folder, or None without one."""
    if folder is None:
        return None
    from facerl.eval.lipreader import LipReader

    return LipReader.load(folder, device)


def markdown_table(rows: list[dict], columns: list[tuple] = COLUMNS) -> str:
    head = "| method | " + " | ".join(h for _, h, _, _ in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for row in rows:
        cells = ["–" if not math.isfinite(row[k]) else fmt.format(row[k] * s) for k, _, s, fmt in columns]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(rows: list[dict], out_dir: Path, split: str, columns: list[tuple] = COLUMNS) -> str:
    """metrics.json, metrics.csv and metrics.md in ``out_dir`` (atomically); returns the markdown table."""
    table = markdown_table(rows, columns)
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
    save_text(out_dir / "metrics.json", json.dumps({"split": split, "rows": clean}, indent=2))
    buf = io.StringIO()
    keys = ["method", "sequences"] + [k for k, *_ in COLUMNS]
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(clean)
    save_text(out_dir / "metrics.csv", buf.getvalue())
    save_text(out_dir / "metrics.md", f"Split: {split}\n\n{table}\n")
    return table
