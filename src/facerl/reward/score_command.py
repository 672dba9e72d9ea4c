"""`facerl score`: score any method's output with a trained reward model, window by window.

Dimensions: T frames (30 fps), V vertices, P = V*3 coordinates, W = T - L + 1 windows (L = 5, stride 1),
S audio samples (16 kHz), F*T mel frames (F = 4 per video frame), M mel bins (128).

A sequence is absolute vertex positions (T, P) plus its speech; the reward model sees the motion as
offsets from the speaker's template, exactly as in training (:func:`facerl.reward.data.prepare_clip`).
Two inputs: one ``--vertices`` / ``--wav`` pair with a ``--template``, or a ``--results`` folder of
``<clip>_condition_<style>.npy`` files (as `facerl test` writes them) whose audio and templates come
from the configured dataset. Outputs: one CSV row per window and a ``<stem>_summary.csv`` of means.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from facerl.cli import EPILOG, _cfg, _run_dir_file, positive_float
from facerl.errors import FacerlError

FPS = 30.0
SCORE_NAMES = ("lip", "real", "sync")
WINDOW_HEADER = ("sequence", "condition", "window", "start_s", *SCORE_NAMES)
SUMMARY_HEADER = ("sequence", "condition", "windows", *SCORE_NAMES)
MAX_TABLE_ROWS = 20   # longer tables on stdout are cut; the summary CSV holds every sequence

DESCRIPTION = """\
Scores vertex sequences with a trained reward model (`facerl train experiment=reward`). Every 5-frame
window (1/6 s at 30 fps; windows at stride 1, so a sequence of T frames has T-4 windows, window w
covering frames w..w+4) gets three scores (the same scorer RL, evaluate and the calibration use):

  lip    probability that the mouth motion is in sync with the audio (trained: aligned audio vs
         the same clip's audio shifted by >= 2 frames, or audio from another clip)
  real   probability that the motion looks like real captured motion (trained: ground truth vs
         over-smoothed, damped, jittered, frozen, time-warped and actor-generated motion)
  sync   cosine similarity (-1..1) of the sync backbone's mesh and audio features, the quantity
         the backbone was trained to rank (and the perceptual loss maximises)

Inputs: one sequence, `facerl score --vertices seq.npy --wav speech.wav --template T.npy --out s.csv`
(--template is a .npy (V, 3) neutral face or a subject of the configured corpus), or a results folder,
`facerl score --results runs/pipeline/results --split test --out s.csv`, whose clips take their audio
and templates from the configured dataset (data.out=... / dataset=vocaset as in `facerl evaluate`).
Writes <out> (sequence,condition,window,start_s,lip,real,sync) and <out stem>_summary.csv (means per
sequence) and prints the means."""


@dataclass
class Scored:
    """The window scores (W,) of one sequence."""

    sequence: str
    condition: str
    lip: list[float]
    real: list[float]
    sync: list[float]

    @property
    def windows(self) -> int:
        return len(self.lip)

    def mean(self, name: str) -> float:
        values = getattr(self, name)
        return sum(values) / len(values)


def add_score_parser(sub, fmt) -> argparse.ArgumentParser:
    """Register `facerl score` on the CLI's subparsers."""
    sc = sub.add_parser("score", formatter_class=fmt, epilog=EPILOG, description=DESCRIPTION,
                        help="score vertex sequences with the reward model: lip sync, realism, backbone sync per window")
    sc.add_argument("--vertices", help="one sequence: .npy (T, V*3) or (T, V, 3) absolute vertex positions")
    sc.add_argument("--wav", help="its speech (.wav, any rate; stereo is downmixed); only with --vertices")
    sc.add_argument("--template", help="its neutral face: a .npy (V, 3) or a subject of the configured corpus; "
                                       "only with --vertices")
    sc.add_argument("--fps", type=positive_float, default=FPS,
                    help="frame rate of the vertex files (default 30); others are resampled to 30 fps linearly")
    sc.add_argument("--results", metavar="DIR", help="a folder of <clip>_condition_<style>.npy (from `facerl test`)")
    sc.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                    help="with --results: the dataset split whose clips are scored (default test); "
                         "clips of other splits are skipped")
    sc.add_argument("--reward", metavar="DIR", help="reward model folder (default runs/<run_name>/reward)")
    sc.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    sc.add_argument("--out", required=True, help="per-window scores .csv; means go to <stem>_summary.csv beside it")
    sc.set_defaults(func=cmd_score)
    return sc


def cmd_score(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.reward.frozen import FrozenReward
    from facerl.utils.checkpoint import resolve_device

    _check_inputs(args)
    out, summary = _output_paths(args.out)
    cfg = _cfg(extra)
    reward_dir = Path(args.reward or _run_dir_file(cfg, "reward"))
    if not reward_dir.is_dir():
        raise FacerlError(f"reward model folder not found: {reward_dir} (train one with "
                          "`facerl train experiment=reward`, or pass --reward DIR)")
    model = FrozenReward.load(reward_dir, resolve_device(args.device))
    if args.vertices:
        scored = [score_pair(model, Path(args.vertices), Path(args.wav), args.template, args.fps,
                             str(cfg.dataset.root))]
    else:
        from facerl.data.dataset import spec_from_config

        scored = score_folder(model, Path(args.results), spec_from_config(cfg.dataset), args.split, args.fps)
    write_scores(scored, out, summary)
    print(summary_table(scored))
    print(f"wrote {out} ({sum(s.windows for s in scored)} windows) and {summary} ({len(scored)} sequences)")


def _check_inputs(args: argparse.Namespace) -> None:
    """One-line errors for a wrong combination of options, before anything is loaded."""
    if bool(args.vertices) == bool(args.results):
        raise FacerlError("pass either --vertices FILE --wav FILE --template T (one sequence) or --results DIR "
                          f"(a `facerl test` folder), {'not both' if args.vertices else 'got neither'}")
    if args.results and (args.wav or args.template):
        raise FacerlError("--wav and --template go with --vertices; a results folder takes its audio and "
                          "templates from the configured dataset")
    if args.vertices:
        if Path(args.vertices).suffix.lower() != ".npy":
            raise FacerlError(f"--vertices {args.vertices}: expected a .npy of (T, V*3) or (T, V, 3) vertices")
        if not args.wav:
            raise FacerlError("--vertices needs its speech: --wav FILE.wav")
        if Path(args.wav).suffix.lower() != ".wav":
            raise FacerlError(f"--wav {args.wav}: expected a .wav file")
        if not args.template:
            raise FacerlError("a single sequence needs --template (a .npy (V, 3) of the neutral face, or a subject "
                              "of the configured corpus): the model scores motion as offsets from the template")


def _output_paths(out: str) -> tuple[Path, Path]:
    path = Path(out)
    if path.suffix.lower() != ".csv":
        raise FacerlError(f"--out {out}: use a .csv file name")
    if path.is_dir():
        raise FacerlError(f"--out {out} is a directory; give a .csv file name")
    return path, path.with_name(f"{path.stem}_summary.csv")


def resample_frames(vertices, fps_in: float, fps_out: float = FPS):
    """(T_in, P) at ``fps_in`` -> (T_out, P) at ``fps_out`` by linear interpolation in time.

    Output frame j sits at j / fps_out seconds; only times inside the input are kept (no extrapolation),
    so T_out = floor((T_in - 1) * fps_out / fps_in) + 1 (a 60 fps sequence of 2T or 2T-1 frames -> T)."""
    import numpy as np

    if fps_in == fps_out:
        return vertices
    t_out = int(np.floor((len(vertices) - 1) * fps_out / fps_in + 1e-6)) + 1
    pos = np.minimum(np.arange(t_out) * (fps_in / fps_out), len(vertices) - 1)
    lo = np.floor(pos + 1e-9).astype(np.int64)
    hi = np.minimum(lo + 1, len(vertices) - 1)
    w = (pos - lo).astype(vertices.dtype)[:, None]                        # (T_out, 1)
    return vertices[lo] * (1 - w) + vertices[hi] * w                       # (T_out, P)


def load_vertices(path: Path, fps: float):
    """A .npy of (T, V*3) or (T, V, 3) absolute positions -> (T30, P) float32 at 30 fps."""
    import numpy as np

    from facerl.utils.io import load_npy

    seq = load_npy(path, "vertex")
    if seq.ndim == 3 and seq.shape[2] == 3:
        seq = seq.reshape(len(seq), -1)
    if seq.ndim != 2 or seq.shape[1] % 3 or not len(seq) or not seq.shape[1] or seq.dtype.kind not in "fiu":
        raise FacerlError(f"{path}: expected (T, V*3) or (T, V, 3) vertices with T > 0, got shape {seq.shape}")
    if not np.isfinite(seq).all():
        raise FacerlError(f"{path}: vertices contain NaN or inf")
    return resample_frames(seq.astype(np.float32), fps)


def score_motion(model, path: Path, vertices, template, mel):
    """Scores of one sequence: vertices (T, P) and template (P,) as tensors, mel (F*T_audio, M) of its speech.

    ``mel`` may be longer than the motion (it is cut); shorter is the one-line error of check_sequence."""
    motion = vertices - template                                            # (T, P) metres from the template
    try:
        scores = model.score(motion, mel)
    except FacerlError as exc:
        raise FacerlError(f"{path}: {exc}") from None
    return {name: getattr(scores, name)[0].cpu() for name in SCORE_NAMES}


def speech_mel(audio, n_frames: int):
    """(S,) 16 kHz -> (F*n_frames, M) log-mel. Mel frame i sits at i / 120 s whatever n_frames is, so the
    first F*T rows equal what training computes for a T-frame clip (:func:`facerl.reward.data.prepare_clip`)."""
    from facerl.reward.frozen import FrozenReward

    return FrozenReward.mel(audio[None], n_frames)[0]


def score_pair(model, vertices_path: Path, wav: Path, template_spec: str, fps: float, corpus_root: str) -> Scored:
    """One --vertices / --wav pair; the template is a .npy or a subject of the corpus at ``corpus_root``."""
    import torch

    from facerl.animate import resolve_template
    from facerl.audio import read_wav
    from facerl.models.audio import frames_for_samples
    from facerl.models.checkpoint import ActorMeta

    vertices = torch.from_numpy(load_vertices(vertices_path, fps))          # (T, P)
    n_vertices = model.backbone.n_coords // 3
    if vertices.shape[1] != model.backbone.n_coords:
        raise FacerlError(f"{vertices_path}: {vertices.shape[1] // 3} vertices per frame, but the reward model "
                          f"was trained on meshes of {n_vertices}")
    # resolve_template reads a subject from ckpt["config"]["dataset"]["root"]: here, the configured corpus
    meta = ActorMeta(n_vertices, [], n_vertices * 3, torch.zeros(n_vertices * 3))
    template = resolve_template(template_spec, meta, {"config": {"dataset": {"root": corpus_root}}})
    if template.numel() != vertices.shape[1]:
        raise FacerlError(f"--template {template_spec}: {template.numel() // 3} vertices, "
                          f"the sequence has {vertices.shape[1] // 3}")
    audio = torch.from_numpy(read_wav(wav))
    scores = score_motion(model, vertices_path, vertices, template, speech_mel(audio, frames_for_samples(len(audio))))
    return _scored(vertices_path.stem, "", scores)


def _scored(sequence: str, condition: str, scores) -> Scored:
    return Scored(sequence, condition, *(scores[name].tolist() for name in SCORE_NAMES))


def find_results(folder: Path, spec, split: str) -> tuple[list[tuple[Path, str, str]], dict]:
    """(file, clip, condition) of every result of ``split``'s clips in ``folder``, and {clip: (dataset, index)}.

    A clip the dataset does not hold is an error (wrong dataset selected); clips of other splits are skipped."""
    from facerl.data.dataset import VocaDataset
    from facerl.data.layout import Layout
    from facerl.eval.evaluate import RESULT_RE

    if not folder.is_dir():
        raise FacerlError(f"results folder not found: {folder}")
    found = [(path, m["clip"], m["style"]) for path in sorted(folder.glob("*.npy"))
             if (m := RESULT_RE.match(path.stem))]
    if not found:
        raise FacerlError(f"{folder} holds no <clip>_condition_<style>.npy files (write them with `facerl test`)")
    splits = ("train", "val", "test") if split == "all" else (split,)
    where = {}
    for name in splits:
        if spec.subjects(name):
            ds = VocaDataset(spec, name, with_phones=False)
            where.update({clip: (ds, i) for i, clip in enumerate(ds.names)})
    in_dataset = set(Layout(Path(spec.root)).clips())
    unknown = [(path, clip) for path, clip, _ in found if clip not in in_dataset]
    if unknown:
        path, clip = unknown[0]
        raise FacerlError(f"{path}: clip {clip} is not in the dataset at {spec.root} ({len(unknown)} such files); "
                          "select the dataset the results were made from (data.out=... or dataset=vocaset)")
    chosen = [item for item in found if item[1] in where]
    if not chosen:
        raise FacerlError(f"{folder} holds no results for clips of the {split} split "
                          f"({len(found)} files of other splits; choose one with --split)")
    if len(chosen) < len(found):
        print(f"skipping {len(found) - len(chosen)} sequences of clips outside the {split} split")
    return chosen, where


def score_folder(model, folder: Path, spec, split: str, fps: float) -> list[Scored]:
    """Every result of ``split``'s clips in ``folder``, with the clip's audio and its subject's template."""
    import torch
    from tqdm import tqdm

    from facerl.models.audio import frames_for_samples

    items, where = find_results(folder, spec, split)
    scored, cached = [], (None, None, None)                    # (clip name, template (P,), mel (F*T, M))
    for path, clip_name, condition in tqdm(items, desc="scoring", unit="seq"):
        if cached[0] != clip_name:                             # files are sorted: a clip's conditions are adjacent
            ds, i = where[clip_name]
            clip = ds[i]
            # the dataset pairs this audio with len(clip.vertices) frames, so that many are covered by it
            n_frames = max(frames_for_samples(len(clip.audio)), len(clip.vertices))
            cached = (clip_name, clip.template, speech_mel(clip.audio, n_frames))
        _, template, mel = cached
        vertices = torch.from_numpy(load_vertices(path, fps))                 # (T, P)
        if vertices.shape[1] != template.numel():
            raise FacerlError(f"{path}: {vertices.shape[1] // 3} vertices per frame, but the template of "
                              f"{clip_name}'s subject has {template.numel() // 3}")
        scored.append(_scored(clip_name, condition, score_motion(model, path, vertices, template, mel)))
    return scored


def _csv_text(header: tuple[str, ...], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_scores(scored: list[Scored], out: Path, summary: Path) -> None:
    """The per-window CSV and the per-sequence summary CSV, each atomically (both or neither on error)."""
    from facerl.utils.io import atomic_path

    windows = [[s.sequence, s.condition, w, f"{w / FPS:.4f}", f"{s.lip[w]:.6f}", f"{s.real[w]:.6f}",
                f"{s.sync[w]:.6f}"] for s in scored for w in range(s.windows)]
    means = [[s.sequence, s.condition, s.windows, f"{s.mean('lip'):.6f}", f"{s.mean('real'):.6f}",
              f"{s.mean('sync'):.6f}"] for s in scored]
    with atomic_path(out) as tmp_out, atomic_path(summary) as tmp_summary:
        tmp_out.write_text(_csv_text(WINDOW_HEADER, windows))
        tmp_summary.write_text(_csv_text(SUMMARY_HEADER, means))


def summary_table(scored: list[Scored]) -> str:
    """Means per sequence (the first MAX_TABLE_ROWS), per condition when there are several, and over all windows."""
    def mean_over(group: list[Scored], name: str) -> float:
        return sum(sum(getattr(s, name)) for s in group) / sum(s.windows for s in group)

    def row(label: str, condition: str, group: list[Scored]) -> str:
        n = sum(s.windows for s in group)
        return f"{label:<{width}}  {condition:<{cwidth}}  {n:>7}  " + "  ".join(
            f"{mean_over(group, name):>6.3f}" for name in SCORE_NAMES)

    shown = scored[:MAX_TABLE_ROWS]
    conditions = sorted({s.condition for s in scored})
    total = f"all {len(scored)} sequences"
    labels = [s.sequence for s in shown] + [f"all with {c}" for c in conditions] + [total, "sequence"]
    width = max(len(label) for label in labels)
    cwidth = max(len("condition"), *(len(c) for c in conditions))
    lines = [f"{'sequence':<{width}}  {'condition':<{cwidth}}  {'windows':>7}  "
             + "  ".join(f"{name:>6}" for name in SCORE_NAMES)]
    lines += [row(s.sequence, s.condition, [s]) for s in shown]
    if len(scored) > len(shown):
        lines.append(f"... {len(scored) - len(shown)} more sequences in the summary CSV")
    if len(conditions) > 1:
        lines += [row(f"all with {c}", c, [s for s in scored if s.condition == c]) for c in conditions]
    lines.append(row(total, "", scored))
    return "\n".join(lines)
