"""`facerl evaluate`: score result folders against held-out ground truth, one row per method.

Rows always include the static template (every frame = the speaker's template) and the ground
truth scored against itself (0 errors, 100 % closures, 1.0 jitter: the ceiling). A result folder holds
``<clip>_condition_<style>.npy`` (T30, V*3) files as written by `facerl test`; every style condition
present is pooled (``average`` — the style-independent mode — is reported as its own row).

Scoring runs clip by clip: every method and style of one clip is read and scored together, so the clip's
ground-truth side of each metric, its audio features and one batched DTW, judge and reward pass serve them
all, and memory holds one clip's predictions per worker (:func:`clip_workers`: clips in parallel, torch
single-threaded in each). Each prediction leaves a :class:`PairScores`; the rows pool those exactly as the
metric definitions in :mod:`facerl.eval.metrics` pool sequences, in the order the folders list their files.

Dimensions: N sequences, T frames (30 fps), V vertices, P = V*3 coordinates, S audio samples.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facerl.audio import read_wav
from facerl.data.dataset import DatasetSpec, VocaDataset
from facerl.errors import FacerlError
from facerl.eval import metrics as M
from facerl.speech.timing import Phone
from facerl.utils.io import load_npy, save_text

# Motion (bytes) per judge / reward batch: several sequences per operation, yet small enough that the allocator
# reuses the batch's buffers (fresh memory for every batch would cost a page fault per 4 KB).
MODEL_BATCH_BYTES = 16 << 20
MAX_CLIP_WORKERS = 4  # clips scored at once by `evaluate` (each holds its predictions of every method)
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


@dataclass
class PairScores:
    """One (reference, prediction) pair's share of every pooled metric (see :func:`pool`)."""

    lve: np.ndarray                 # (T,) per-frame lip vertex error (m²); its square root is the max lip error
    face_error_sum: float           # sum over (T, face vertices) of the L2 error (m), for MVE
    face_error_count: int
    fdd: float                      # gt - pred upper-face motion std (m²)
    lip_intensity: float
    jitter: float
    closed: int = 0                 # of ``bilabials`` phones, those where the lips closed
    bilabials: int = 0
    opening_r: float = math.nan
    opening_lag: int = 0
    mtm_ms: float = math.nan
    judge_sync: float = math.nan
    judge_offset: int | None = None
    reward: float = math.nan
    lipread_confusion: np.ndarray | None = None   # (C, C) viseme frame counts (clips with phones, with a lip-reader)


class _Truth:
    """A reference's ground-truth side of the metrics, computed once for every prediction scored against it."""

    def __init__(self, ref: Reference, regions: Regions) -> None:
        v, pair = ref.vertices, regions.inner_lip_pair
        self.ref, self.regions = ref, regions
        self.lips, self.face = M.region(v, regions.lips), M.region(v, regions.face)    # (T, L, 3) float64
        self.opening = M.lip_opening(v, ref.template, pair) if pair is not None else None
        self._per_length: dict[int, tuple[float, float]] = {}

    def at(self, n: int) -> tuple[float, float]:
        """(upper-face motion std, face mean acceleration) of the first n frames."""
        if n not in self._per_length:
            self._per_length[n] = (M.upper_face_motion_std(self.ref.vertices[:n], self.ref.template,
                                                           self.regions.upper_face),
                                   M.mean_acceleration(self.face[:n]) if n >= 3 else math.nan)
        return self._per_length[n]


def _pair_scores(truth: _Truth, pred: np.ndarray) -> PairScores:
    """The vertex metrics of one prediction (T, V, 3) against its ground truth (each region cut out once)."""
    ref, regions = truth.ref, truth.regions
    n = min(len(pred), len(ref.vertices))
    gt_std, gt_acceleration = truth.at(n)
    lips = M.region(pred, regions.lips)                  # every frame: lip intensity does not truncate
    face = M.region(pred[:n], regions.face)
    errors = M.vertex_errors(face, truth.face, M.ALL)    # (n, face vertices)
    return PairScores(
        lve=M.lip_vertex_error_per_frame(lips, truth.lips, M.ALL),
        face_error_sum=float(errors.sum()), face_error_count=errors.size,
        fdd=gt_std - M.upper_face_motion_std(pred[:n], ref.template, regions.upper_face),
        lip_intensity=M.lip_intensity(lips, ref.template, M.ALL),
        jitter=M.jitter_ratio(M.mean_acceleration(face), gt_acceleration) if n >= 3 else math.nan)


def score_clip(ref: Reference, preds: list[np.ndarray], regions: Regions, judge: Judge | None = None,
               reward: RewardScore | None = None, lipreader=None) -> list[PairScores]:
    """Every metric of N predictions (T, V, 3) of one clip: its ground-truth side, audio features and DTW
    batch are shared by all of them."""
    truth = _Truth(ref, regions)
    out = [_pair_scores(truth, p) for p in preds]
    if lipreader is not None and ref.phones:
        for s, pred in zip(out, preds):
            s.lipread_confusion = lipreader.score([(pred, ref.template, ref.phones)]).confusion
    if truth.opening is not None:
        openings = [M.lip_opening(p, ref.template, regions.inner_lip_pair) for p in preds]
        mtm = M.mean_temporal_misalignments([(o, truth.opening) for o in openings], FPS)
        for s, opening, mtm_ms in zip(out, openings, mtm):
            s.opening_r, s.opening_lag = M.opening_correlation(opening, truth.opening)
            s.mtm_ms = mtm_ms
            if ref.phones:
                s.closed, s.bilabials = M.closure_rate([opening], [ref.phones], FPS)
    if judge is None and reward is None:
        return out
    for t in sorted({len(p) for p in preds}):   # the models score same-length sequences in batches
        same = [k for k, p in enumerate(preds) if len(p) == t]
        size = max(1, MODEL_BATCH_BYTES // (4 * t * ref.template.size))
        for batch in (same[lo:lo + size] for lo in range(0, len(same), size)):
            motion = _motion(ref, [preds[k] for k in batch])                      # (N, T, P)
            if judge is not None:
                for k, (sync, offset) in zip(batch, judge.batch(ref, motion)):
                    out[k].judge_sync, out[k].judge_offset = sync, offset
            if reward is not None:
                for k, value in zip(batch, reward.batch(ref, motion)):
                    out[k].reward = value
    return out


def pool(refs: list[Reference], scores: list[PairScores], conditions: list[str] | None = None) -> dict[str, float]:
    """The metrics of N scored pairs pooled over clips and style conditions (one row of the table).

    ``conditions`` (one per pair) keeps SLCC within a style: intensities are z-scored per
    (speaker, condition), so style-to-style gain differences do not count as lip variance. The judge's
    sync margin is the mean over sequences, its offset accuracy the share of sequences whose best shift is 0;
    the lip-reader's class-balanced viseme accuracy pools the frames of every sequence with phones.
    """
    lve = np.concatenate([s.lve for s in scores])
    groups = [f"{r.subject}|{c}" for r, c in zip(refs, conditions or [""] * len(refs), strict=True)]
    out = {
        "lve": float(lve.mean()),
        "max_lip_mm": float(np.sqrt(lve).mean()) * 1000.0,
        "fdd": float(np.mean([s.fdd for s in scores])),
        "mve_mm": 1000.0 * sum(s.face_error_sum for s in scores) / sum(s.face_error_count for s in scores),
        "closure_rate": math.nan, "opening_r": math.nan, "opening_lag": math.nan, "mtm_ms": math.nan,
        "slcc": M.speech_lip_correlation(np.array([r.speech_rms for r in refs]),
                                         np.array([s.lip_intensity for s in scores]), speakers=groups),
        "jitter": float(np.nanmean([s.jitter for s in scores])),
        "judge_sync": float(np.mean([s.judge_sync for s in scores])),
        "judge_offset_acc": math.nan,
        "lipread_acc": math.nan,
        "reward": float(np.mean([s.reward for s in scores])),
        "sequences": len(scores),
    }
    offsets = [s.judge_offset for s in scores if s.judge_offset is not None]
    if offsets:
        out["judge_offset_acc"] = float(np.mean([o == 0 for o in offsets]))
    confusions = [s.lipread_confusion for s in scores if s.lipread_confusion is not None]
    if confusions:
        from facerl.eval.lipreader import reading_scores

        out["lipread_acc"] = reading_scores(sum(confusions)).balanced_accuracy
    total = sum(s.bilabials for s in scores)
    out["closure_rate"] = sum(s.closed for s in scores) / total if total else math.nan
    rs = np.array([s.opening_r for s in scores])
    if np.isfinite(rs).any():  # per clip at its best lag (within +-6 frames), then the mean over clips
        out["opening_r"] = float(np.nanmean(rs))
        out["opening_lag"] = float(np.mean([abs(s.opening_lag) for s in scores if np.isfinite(s.opening_r)]))
    mtm = [s.mtm_ms for s in scores]
    out["mtm_ms"] = float(np.nanmean(mtm)) if np.isfinite(mtm).any() else math.nan
    return out


def score(pairs: list[tuple[Reference, np.ndarray]], regions: Regions,
          conditions: list[str] | None = None, judge: Judge | None = None,
          reward: RewardScore | None = None, lipreader=None) -> dict[str, float]:
    """All metrics for (reference, prediction (T, V, 3)) pairs pooled over clips and style conditions
    (:func:`pool`); the pairs of each clip are scored together (:func:`score_clip`).

    ``judge`` adds the judge's sync margin and offset accuracy; ``reward`` the reward model's mean
    lip + real (what RL maximises); ``lipreader`` (a :class:`facerl.eval.lipreader.LipReader`, trained on
    ground truth only) its class-balanced viseme accuracy against the true phones (clips with phones only).
    """
    by_clip: dict[int, list[int]] = {}
    for k, (ref, _) in enumerate(pairs):
        by_clip.setdefault(id(ref), []).append(k)
    scores: dict[int, PairScores] = {}
    for members in by_clip.values():
        ref = pairs[members[0]][0]
        scores.update(zip(members, score_clip(ref, [pairs[k][1] for k in members], regions, judge, reward,
                                              lipreader)))
    return pool([r for r, _ in pairs], [scores[k] for k in range(len(pairs))], conditions)


def result_files(folder: Path, refs: list[Reference]) -> dict[str, dict[str, Path]]:
    """{clip: {style: file}} of a results folder, checked before anything is scored.

    Every clip must have the same conditions: an interrupted or mixed-up folder is an error, not a
    silently smaller sample.
    """
    if not folder.is_dir():
        raise FacerlError(f"results folder not found: {folder}")
    files: dict[str, dict[str, Path]] = {r.name: {} for r in refs}
    for path in sorted(folder.glob("*.npy")):
        m = RESULT_RE.match(path.stem)
        if m and m["clip"] in files:
            files[m["clip"]][m["style"]] = path
    conditions = set().union(*files.values())
    if not conditions:
        raise FacerlError(f"{folder} holds no <clip>_condition_<style>.npy files for these clips "
                          "(write them with `facerl test`)")
    incomplete = sorted(name for name, styles in files.items() if set(styles) != conditions)
    if incomplete:
        raise FacerlError(f"{folder}: {len(incomplete)} of {len(refs)} clips lack some of the conditions "
                          f"{', '.join(sorted(conditions))} (e.g. {incomplete[0]}); rerun `facerl test` "
                          "into an empty folder")
    return files


def load_result(path: Path, ref: Reference) -> np.ndarray:
    """One result file as (T, V, 3), checked against the clip's template."""
    pred = load_npy(path, "result")
    if pred.ndim < 2 or pred.size != len(pred) * ref.template.size or pred.dtype.kind not in "fiu":
        raise FacerlError(f"{path}: shape {pred.shape} is not (T, {ref.template.size}) for {ref.subject}")
    if not np.isfinite(pred).all():
        raise FacerlError(f"{path}: the prediction contains NaN or inf (a diverged model?); "
                          "metrics of such results would be meaningless")
    return pred.reshape(len(pred), -1, 3)


def _motion(ref: Reference, preds: list[np.ndarray]) -> torch.Tensor:
    """(N, T, P) float32 offsets from the template of N predictions (T, V, 3) of one length."""
    t = len(preds[0])
    motion = np.empty((len(preds), t, ref.template.size), dtype=np.float32)
    for k, pred in enumerate(preds):
        motion[k] = (pred - ref.template[None]).reshape(t, -1)
    return torch.from_numpy(motion)


class _SequenceScorer:
    """Base of the model columns: a frozen reward model or judge (facerl.reward.frozen, the one scoring path)
    and the inputs of the clip being scored: its log-mel (4T, M) and the model's features of its audio."""

    def __init__(self, folder: Path, device: str, judge: bool) -> None:
        from facerl.reward.frozen import FrozenReward

        self.model = FrozenReward.load(folder, device, judge=judge)
        self._local = threading.local()  # the clip being scored, per thread (evaluate scores clips in parallel)

    def clip_audio(self, ref: Reference, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-mel (4T, M), audio features) of the clip's first T = n_frames frames, computed once while the
        clip is scored."""
        clip = getattr(self._local, "clip", None)
        if clip is None or clip[0] is not ref or clip[1] != n_frames:
            mel = self.model.mel(torch.from_numpy(ref.audio)[None], len(ref.vertices))[0][:4 * n_frames]
            clip = self._local.clip = ref, n_frames, mel, self.audio_features(mel, n_frames)
        return clip[2], clip[3]

    def audio_features(self, mel: torch.Tensor, n_frames: int) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, ref: Reference, pred: np.ndarray):
        """The score of one prediction (T, V, 3)."""
        return self.batch(ref, _motion(ref, [pred]))[0]


class Judge(_SequenceScorer):
    """The judge's (sync margin, offset estimate) of predictions."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        super().__init__(folder, device, judge=True)

    def audio_features(self, mel: torch.Tensor, n_frames: int) -> torch.Tensor:
        return self.model.audio_by_shift(mel, n_frames)                              # (S, W, E)

    def batch(self, ref: Reference, motion: torch.Tensor) -> list[tuple[float, int | None]]:
        """(sync margin, offset estimate) of N motions (N, T, P) of clip ``ref``."""
        from facerl.reward.frozen import offset_estimate, sync_margin

        mel, audio = self.clip_audio(ref, motion.shape[1])
        scores = self.model.by_shift(motion, mel, audio)                             # (N, S, W)
        return [(sync_margin(s), offset_estimate(s)) for s in scores]


class RewardScore(_SequenceScorer):
    """The reward model's mean (lip + real) over a prediction's windows."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        super().__init__(folder, device, judge=False)

    def audio_features(self, mel: torch.Tensor, n_frames: int) -> torch.Tensor:
        return self.model.audio_features(mel, n_frames)                              # (W, E)

    def batch(self, ref: Reference, motion: torch.Tensor) -> list[float]:
        """Mean (lip + real) of N motions (N, T, P) of clip ``ref``."""
        mel, audio = self.clip_audio(ref, motion.shape[1])
        scores = self.model.score(motion, mel[None].expand(len(motion), -1, -1), audio=audio)
        return scores.mean(scores.reward).tolist()


@contextlib.contextmanager
def clip_workers(max_workers: int = MAX_CLIP_WORKERS) -> Iterator[ThreadPoolExecutor]:
    """Threads that score one clip each, with torch single-threaded inside them (restored afterwards).

    A clip's operations are small (a few MB), so splitting each over intra-op threads gains little, and on
    a busy CPU every split waits for its slowest thread: there, scoring ran ~3x slower with 2 intra-op threads
    than with 1. A thread per clip keeps the cores busy without those waits; the numbers are the same.
    """
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(max(1, min(threads, max_workers)), thread_name_prefix="facerl-score")
    torch.set_num_threads(1)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)


def evaluate(spec: DatasetSpec, split: str, methods: dict[str, Path], judge_dir: Path | None = None,
             device: str = "cpu", reward_dir: Path | None = None, lipreader_dir: Path | None = None) -> list[dict]:
    """Rows (dicts) for the static template, the ground truth and each named results folder; with a judge
    (``<run>/judge``), the `sync (judge)` columns, with a reward model (``<run>/reward``) its mean score, with
    a lip-reader (``<run>/lipreader``) its accuracy."""
    refs, regions = load_references(spec, split)
    files = {name: result_files(Path(folder), refs) for name, folder in methods.items()}  # all checked first
    judge = Judge(judge_dir, device) if judge_dir is not None else None
    reward = RewardScore(reward_dir, device) if reward_dir is not None else None
    reader = load_lipreader(lipreader_dir, device)

    def score_methods(ref: Reference) -> list[tuple[str, str, str, PairScores]]:
        """(row, file name, style, scores) of every method and style of one clip, scored together."""
        rows = [("static template", "", "", np.repeat(ref.template[None], len(ref.vertices), 0)),
                ("ground truth", "", "", ref.vertices)]
        for name, clip_files in files.items():
            rows += [(f"{name} (average style)" if style == "average" else name, path.name, style,
                      load_result(path, ref)) for style, path in clip_files[ref.name].items()]
        scores = score_clip(ref, [p for *_, p in rows], regions, judge, reward, reader)
        return [(label, file, style, s) for (label, file, style, _), s in zip(rows, scores)]

    labels = ["static template", "ground truth"] + [f"{name}{suffix}" for name in methods
                                                     for suffix in ("", " (average style)")]
    scored: dict[str, list[tuple[str, Reference, PairScores, str]]] = {label: [] for label in labels}
    with clip_workers() as workers:
        for ref, clip_rows in zip(refs, tqdm(workers.map(score_methods, refs), total=len(refs),
                                             desc=f"scoring {split} clips", unit="clip")):
            for label, file, style, s in clip_rows:
                scored[label].append((file, ref, s, style))
    table = []
    for label in labels:
        entries = sorted(scored[label], key=lambda e: e[0])  # file-name order, as the folder lists them
        if entries:
            conditions = None if label in ("static template", "ground truth") else [e[3] for e in entries]
            table.append({"method": label, **pool([e[1] for e in entries], [e[2] for e in entries], conditions)})
    return table


def run_scorers(run_dir: Path) -> dict[str, Path | None]:
    """The run's trained scoring models that exist: ``judge``, ``reward`` and ``lipreader`` folders (or None)."""
    marks = {"judge": "backbone.pt", "reward": "head.pt", "lipreader": "lipreader.pt"}
    return {name: run_dir / name if (run_dir / name / mark).is_file() else None for name, mark in marks.items()}


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
