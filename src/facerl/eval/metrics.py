"""Metrics on predicted vs ground-truth vertex sequences: exact definitions of DESIGN.md section 5.

Dimensions: T frames (30 fps), V vertices, L selected vertices (lip, face or upper-face region),
P warping-path length, N clips, S audio samples (16 kHz). Vertices are in metres. Every pred/gt pair
is truncated to the shorter of the two lengths before comparison, and everything is computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from facerl.animation.ground_truth import CLOSURE_THRESHOLD_M
from facerl.data.measures import BILABIALS
from facerl.head.rig import lip_gap
from facerl.speech.timing import Phone

MTM_SIGMA_FRAMES = 2.0  # Gaussian smoothing of lip curves before alignment, as in Lee et al. 2025's MTM code


ALL = slice(None)  # ``idx`` meaning every vertex: for arrays already cut to a region with :func:`region`


def region(vertices: np.ndarray, idx: Sequence[int] | slice) -> np.ndarray:
    """(T, V, 3) -> (T, L, 3) float64 at vertices ``idx``, selected before the conversion (only L are copied)."""
    vertices = np.asarray(vertices)
    return (vertices if idx is ALL else vertices[:, idx]).astype(np.float64, copy=False)


def _squared_norm(x: np.ndarray) -> np.ndarray:
    """|x|² over the last axis (x, y, z): (..., 3) -> (...). The squares are added left to right, as numpy's
    ``(x**2).sum(axis=-1)`` adds them, without its reduction over a length-3 axis (~6x slower)."""
    return x[..., 0] ** 2 + x[..., 1] ** 2 + x[..., 2] ** 2


def _aligned(pred: np.ndarray, gt: np.ndarray, idx: Sequence[int] | slice = ALL) -> tuple[np.ndarray, np.ndarray]:
    """Both at vertices ``idx`` as float64, truncated along time (axis 0) to the shorter length."""
    n = min(len(pred), len(gt))
    return region(pred[:n], idx), region(gt[:n], idx)


def _squared_errors(pred: np.ndarray, gt: np.ndarray, idx: Sequence[int] | slice) -> np.ndarray:
    """Squared L2 error (T, L) at vertices ``idx`` of (T, V, 3) pred and gt, truncated to the shorter T."""
    p, g = _aligned(pred, gt, idx)
    return _squared_norm(p - g)


def lip_vertex_error_per_frame(pred: np.ndarray, gt: np.ndarray, lip_idx: Sequence[int]) -> np.ndarray:
    """Per-frame lip vertex error (T,) in m²: max over lip vertices of the *squared* L2 error.

    pred, gt: (T, V, 3) metres, truncated to the shorter T; lip_idx: (L,) vertex indices.
    Squared as in CodeTalker's ``cal_metric.py``, the LVE that FaceFormer and CodeTalker tables report.
    """
    return _squared_errors(pred, gt, lip_idx).max(axis=1)


def lip_vertex_error(preds: list[np.ndarray], gts: list[np.ndarray], lip_idx: Sequence[int]) -> float:
    """LVE in m²: per-frame values (see above) pooled over all frames of all sequences, then averaged.

    preds, gts: N sequences of (T_n, V, 3); each pair is truncated to its shorter length. Pooling frames
    rather than averaging per-sequence means follows CodeTalker. torchmetrics agrees: its functional
    ``lip_vertex_error`` scores one sequence, and ``LipVertexError`` truncates each pair in ``update``
    and concatenates frames in ``compute``, which is this pooling.
    """
    per_frame = [lip_vertex_error_per_frame(p, g, lip_idx) for p, g in zip(preds, gts, strict=True)]
    return float(np.concatenate(per_frame).mean())


def max_lip_error_mm(preds: list[np.ndarray], gts: list[np.ndarray], lip_idx: Sequence[int]) -> float:
    """Mean over pooled frames of the max over lip vertices of the (unsquared) L2 error, in millimetres.

    preds, gts: N sequences of (T_n, V, 3) metres, each pair truncated to its shorter length.
    """
    per_frame = [np.sqrt(_squared_errors(p, g, lip_idx).max(axis=1)) for p, g in zip(preds, gts, strict=True)]
    return float(np.concatenate(per_frame).mean()) * 1000.0


def upper_face_motion_std(vertices: np.ndarray, template: np.ndarray, upper_idx: Sequence[int] | slice) -> float:
    """Mean over upper-face vertices of the std over time (ddof=0) of |vertex - template|²: vertices (T, V, 3),
    template (V, 3); one sequence's term of :func:`face_dynamics_deviation`."""
    motion = region(vertices, upper_idx) - np.asarray(template, dtype=np.float64)[upper_idx]  # (T, L, 3)
    return float(np.std(_squared_norm(motion), axis=0).mean())  # (T, L) -> std over T -> mean over L


def face_dynamics_deviation(preds: list[np.ndarray], gts: list[np.ndarray], templates: list[np.ndarray],
                            upper_idx: Sequence[int]) -> float:
    """FDD (m²), CodeTalker's signed definition: mean over sequences of (gt_std - pred_std).

    preds, gts: N sequences of (T_n, V, 3), each pair truncated to its shorter length; templates: N of
    (V, 3). Per sequence, *_std is the mean over upper-face vertices of the std over time of the squared
    motion norm |v - template|². Positive: the prediction moves the upper face less than ground truth.
    """
    diffs = []
    for pred, gt, template in zip(preds, gts, templates, strict=True):
        n = min(len(pred), len(gt))
        diffs.append(upper_face_motion_std(gt[:n], template, upper_idx) - upper_face_motion_std(pred[:n], template,
                                                                                                 upper_idx))
    return float(np.mean(diffs))


def vertex_errors(pred: np.ndarray, gt: np.ndarray, idx: Sequence[int] | slice) -> np.ndarray:
    """L2 distance (T, L) in metres at vertices ``idx`` of (T, V, 3) pred and gt, truncated to the shorter T."""
    return np.sqrt(_squared_errors(pred, gt, idx))


def mean_vertex_error(preds: list[np.ndarray], gts: list[np.ndarray], face_idx: Sequence[int]) -> float:
    """MVE in metres: mean L2 distance over face-region vertices and pooled frames of all sequences.

    preds, gts: N sequences of (T_n, V, 3), each pair truncated to its shorter length.
    """
    errors = [vertex_errors(p, g, face_idx) for p, g in zip(preds, gts, strict=True)]  # N x (T_n, L)
    return float(np.concatenate(errors).mean())


def lip_opening(vertices: np.ndarray, template: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Inner-lip opening (T,) in metres relative to the speaker's template: ~0 closed, > 0 open.

    vertices: (T, V, 3); template: (V, 3); pair: (upper, lower) inner-lip vertex indices.
    """
    at = np.arange(2)  # the pair's vertices are selected first: only they are converted to float64
    vertices = np.asarray(vertices)[..., pair, :].astype(np.float64, copy=False)
    return lip_gap(vertices, at) - lip_gap(np.asarray(template, dtype=np.float64)[pair], at)


def opening_correlation(pred_open: np.ndarray, gt_open: np.ndarray, max_lag: int = 6) -> tuple[float, int]:
    """(r, lag): the highest Pearson correlation of two lip-opening curves (T,) over lags of -max_lag..max_lag
    frames, and that lag (> 0: the prediction comes late). NaN when either curve is constant.

    Correlation rather than error: it asks whether the mouth opens and closes when the ground truth does,
    whatever the amplitude, which is what transfers across voices; the lag says how far off in time it is.
    """
    pred, gt = np.asarray(pred_open, np.float64), np.asarray(gt_open, np.float64)
    n = min(len(pred), len(gt))
    best_r, best_lag = -np.inf, 0
    for lag in range(-max_lag, max_lag + 1):
        p, g = (pred[lag:n], gt[:n - lag]) if lag >= 0 else (pred[:n + lag], gt[-lag:n])
        if len(p) < 3 or p.std() < 1e-12 or g.std() < 1e-12:
            continue
        r = float(np.corrcoef(p, g)[0, 1])
        if r > best_r or (r == best_r and abs(lag) < abs(best_lag)):
            best_r, best_lag = r, lag
    return (best_r, best_lag) if np.isfinite(best_r) else (math.nan, 0)


def _phone_frames(phone: Phone, n_frames: int, fps: float, tolerance_frames: float) -> np.ndarray:
    """Frame indices i with i / fps in [start - tol / fps, end + tol / fps), clipped to [0, n_frames).

    If none, the frame nearest the phone's midpoint when it lies inside the sequence, else no frame.
    """
    frames = np.arange(n_frames)
    lo = round(phone.start_s * fps - tolerance_frames, 6)  # rounding absorbs float noise: 0.1 * 30 = 3.0000000000000004
    hi = round(phone.end_s * fps + tolerance_frames, 6)
    inside = frames[(frames >= lo) & (frames < hi)]
    if len(inside):
        return inside
    nearest = int(np.floor(phone.centre_s * fps + 0.5))
    return np.array([nearest]) if 0 <= nearest < n_frames else inside


def closure_rate(openings: list[np.ndarray], phones: list[list[Phone]], fps: float = 30.0,
                 threshold: float = CLOSURE_THRESHOLD_M, tolerance_frames: float = 0.5) -> tuple[int, int]:
    """(closed, total) over the bilabial phones (P, B, M) of N clips.

    openings: N lip-opening curves (T_n,) in metres (see ``lip_opening``); phones: N phone lists. A phone
    counts as closed when the opening falls below ``threshold`` at some frame i with i / fps in
    [start - tol / fps, end + tol / fps). If no frame falls there, the frame nearest the phone's midpoint
    is used; phones whose midpoint lies outside the clip (e.g. past its end) are skipped.
    The half-frame tolerance exists because 30 fps samples of 60 fps ground truth can miss a closure
    held only at an odd 60 fps frame inside the phone; with it, ground truth closes 100 %.
    """
    closed = total = 0
    for opening, clip_phones in zip(openings, phones, strict=True):
        opening = np.asarray(opening, dtype=np.float64)
        for phone in clip_phones:
            if phone.phone not in BILABIALS:
                continue
            frames = _phone_frames(phone, len(opening), fps, tolerance_frames)
            if len(frames) == 0:
                continue
            total += 1
            closed += int(opening[frames].min() < threshold)
    return closed, total


def _dtw_path(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost warping path (P, 2) of (i, j) pairs through a cost matrix (T1, T2): see :func:`_dtw_paths`."""
    return _dtw_paths(cost[None])[0]


def _dtw_paths(costs: np.ndarray) -> list[np.ndarray]:
    """Minimum-cost warping paths [(P_b, 2)] of (i, j) pairs through B cost matrices (B, T1, T2) at once.

    Steps (1, 0), (0, 1), (1, 1); each path runs from (0, 0) to (T1 - 1, T2 - 1). The accumulated cost
    is filled one anti-diagonal at a time: cells with i + j = s depend only on diagonals s - 1 and s - 2,
    so each diagonal is one vectorised update for all B matrices; the backtrack also steps all B paths
    together. Every cell gets the same float operations as a cell-by-cell loop, so paths match it exactly.
    """
    b, n, m = costs.shape
    acc = np.full((b, n + 1, m + 1), np.inf)  # acc[:, i, j]: best cost of a path ending at cost[:, i - 1, j - 1]
    acc[:, 0, 0] = 0.0
    for s in range(2, n + m + 1):
        i = np.arange(max(1, s - m), min(n, s - 1) + 1)
        j = s - i
        acc[:, i, j] = costs[:, i - 1, j - 1] + np.minimum(np.minimum(acc[:, i - 1, j - 1], acc[:, i - 1, j]),
                                                           acc[:, i, j - 1])
    rows, i, j = np.arange(b), np.full(b, n), np.full(b, m)
    steps, live = [], []                        # per backtrack step: (B, 2) cells and which paths are still running
    while (alive := (i > 0) & (j > 0)).any():
        steps.append(np.stack([i - 1, j - 1], 1))
        live.append(alive)
        diag, up, left = acc[rows, i - 1, j - 1], acc[rows, i - 1, j], acc[rows, i, j - 1]
        go_diag = (diag <= up) & (diag <= left)  # ties prefer the diagonal, then up
        go_up = ~go_diag & (up <= left)
        i = np.where(alive & (go_diag | go_up), i - 1, i)
        j = np.where(alive & ~go_up, j - 1, j)   # diagonal or left
    if not steps:                               # an empty matrix: no cells
        return [np.zeros((0, 2), dtype=np.int64) for _ in range(b)]
    cells, running = np.stack(steps), np.stack(live)  # (S, B, 2), (S, B)
    return [cells[running[:, k], k][::-1] for k in range(b)]


def _extrema(curve: np.ndarray) -> dict[int, str]:
    """Interior local extrema of a curve (T,): frame -> "max" or "min" (scipy ``find_peaks``)."""
    kinds = {int(i): "max" for i in find_peaks(curve)[0]}
    kinds.update({int(i): "min" for i in find_peaks(-curve)[0]})
    return kinds


def _matched_extremum_offsets(gt: np.ndarray, pred: np.ndarray, path: np.ndarray) -> list[int]:
    """|i - j| for warping-path pairs (i in gt, j in pred) that join extrema of the same kind, where j
    also lies between the GT extrema on either side of i (Lee et al. 2025's matching rule)."""
    gt_kinds, pred_kinds = _extrema(gt), _extrema(pred)
    order = sorted(gt_kinds)
    offsets = []
    for i, j in path.tolist():
        if i not in gt_kinds or gt_kinds[i] != pred_kinds.get(j):
            continue
        k = order.index(i)
        left = order[k - 1] if k > 0 else 0
        right = order[k + 1] if k + 1 < len(order) else len(gt) - 1
        if left <= j <= right:
            offsets.append(abs(i - j))
    return offsets


def mean_temporal_misalignment(pred_open: np.ndarray, gt_open: np.ndarray, fps: float = 30.0, *,
                               sigma_frames: float = MTM_SIGMA_FRAMES) -> float:
    """MTM in milliseconds between predicted and ground-truth lip-opening curves (T,) of one clip.

    Follows Lee et al., CVPR 2025 ("Perceptually Accurate 3D Talking Head Generation"), as released in
    kaist-ami/Perceptual-3D-Talking-Head ``evaluation/evaluate_MTM.py``: smooth both curves (Gaussian,
    ``sigma_frames``); align them by derivative DTW (backward differences, first derivative 0, cost
    |a' - b'|); keep the path pairs that join a GT and a predicted local extremum of the same kind
    (opening peak or closing valley) with the predicted one between the GT neighbours; MTM is the mean
    |i - j| over those pairs, times 1000 / fps. Inputs are truncated to the shorter T. Returns nan when
    no extrema match (e.g. a monotone curve). The paper scores one clip at a time and reports the mean
    over clips, skipping clips without matches.
    Our curve is the inner-lip gap relative to the template, where the paper uses the 3D distance
    between two central outer-lip vertices; both trace the same opening and closing events.
    """
    return mean_temporal_misalignments([(pred_open, gt_open)], fps, sigma_frames=sigma_frames)[0]


def mean_temporal_misalignments(pairs: Sequence[tuple[np.ndarray, np.ndarray]], fps: float = 30.0, *,
                                sigma_frames: float = MTM_SIGMA_FRAMES) -> list[float]:
    """:func:`mean_temporal_misalignment` of N (pred_open, gt_open) pairs of curves (T,); the DTWs of pairs of
    one length run as one batch (e.g. every method and style of a clip against its ground truth)."""
    curves = []                                                       # per pair: smoothed (gt, pred) (T,)
    for pred_open, gt_open in pairs:
        pred, gt = _aligned(np.ravel(pred_open), np.ravel(gt_open))
        if sigma_frames > 0:
            pred, gt = gaussian_filter1d(pred, sigma_frames), gaussian_filter1d(gt, sigma_frames)
        curves.append((gt, pred))
    out = [math.nan] * len(curves)
    for n in sorted({len(gt) for gt, _ in curves}):
        batch = [k for k, (gt, _) in enumerate(curves) if len(gt) == n]
        d_gt = np.stack([np.diff(curves[k][0], prepend=curves[k][0][:1]) for k in batch])     # (B, T)
        d_pred = np.stack([np.diff(curves[k][1], prepend=curves[k][1][:1]) for k in batch])   # (B, T)
        paths = _dtw_paths(np.abs(d_gt[:, :, None] - d_pred[:, None, :]))  # cost (B, T, T) -> B paths (P, 2)
        for k, path in zip(batch, paths):
            offsets = _matched_extremum_offsets(*curves[k], path)
            out[k] = float(np.mean(offsets)) * 1000.0 / fps if offsets else math.nan
    return out


def speech_intensity(audio: np.ndarray) -> float:
    """Speech intensity of one clip: RMS of its waveform (S,), as in Lee et al. 2025 (``extract_rms.py``)."""
    audio = np.asarray(audio, dtype=np.float64)
    return float(np.sqrt(np.mean(audio**2)))


def lip_intensity(vertices: np.ndarray, template: np.ndarray | None, lip_idx: Sequence[int]) -> float:
    """Lip-motion intensity of one clip, as in Lee et al. 2025 (``extract_lip_intensity.py``).

    vertices: (T, V, 3) metres. Per frame step, the mean over lip vertices of |v[t+1] - v[t]|
    (metres per frame); the clip's intensity is the root mean square over the T - 1 steps; nan if T < 2.
    template: (V, 3), not needed by this definition (it cancels in frame differences); accepted so a clip
    is passed the same way as to ``lip_opening``.
    """
    lips = region(vertices, lip_idx)  # (T, L, 3)
    if len(lips) < 2:
        return float("nan")
    speed = np.sqrt(_squared_norm(np.diff(lips, axis=0))).mean(axis=1)  # (T - 1,): mean |step| over lip vertices
    return float(np.sqrt(np.mean(speed**2)))


def _z_within(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """z-score (N,) of x within each group (ddof=1, as pandas); nan where a group has no spread."""
    z = np.full(len(x), np.nan)
    for g in np.unique(groups):
        members = groups == g
        sd = x[members].std(ddof=1) if members.sum() > 1 else 0.0
        if sd > 0:
            z[members] = (x[members] - x[members].mean()) / sd
    return z


def speech_lip_correlation(speech_intensity: np.ndarray, lip_intensity: np.ndarray,
                           speakers: Sequence[str] | None = None) -> float:
    """SLCC: Pearson correlation across N clips of per-clip speech and lip intensities (N,).

    With ``speakers`` (N,), both intensities are first z-normalised within each speaker and clips of a
    speaker without spread are dropped, as Lee et al. 2025 do (``evaluate_SLCC.py``) so that loud and
    quiet speakers do not drive the correlation. Returns nan, not an error, for fewer than 2 clips or
    zero variance.
    """
    s, li = np.asarray(speech_intensity, dtype=np.float64), np.asarray(lip_intensity, dtype=np.float64)
    if speakers is not None:
        s, li = _z_within(s, np.asarray(speakers)), _z_within(li, np.asarray(speakers))
        keep = np.isfinite(s) & np.isfinite(li)
        s, li = s[keep], li[keep]
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(li) == 0:
        return float("nan")
    return float(np.corrcoef(s, li)[0, 1])


def mean_acceleration(vertices: np.ndarray, idx: Sequence[int] | slice = ALL) -> float:
    """Mean norm of the second difference v[t+1] - 2 v[t] + v[t-1] over frames and vertices ``idx`` of (T, V, 3)."""
    v = region(vertices, idx)  # (T, L, 3)
    return float(np.sqrt(_squared_norm(v[2:] - 2 * v[1:-1] + v[:-2])).mean())


def jitter(pred: np.ndarray, gt: np.ndarray, idx: Sequence[int]) -> float:
    """Mean vertex acceleration of pred relative to gt at vertices ``idx``; 1.0 = as smooth as ground truth.

    pred, gt: (T, V, 3), truncated to the shorter T; nan if T < 3 or both are free of acceleration,
    inf if only ground truth is.
    """
    n = min(len(pred), len(gt))
    return jitter_ratio(mean_acceleration(pred[:n], idx), mean_acceleration(gt[:n], idx)) if n >= 3 else math.nan


def jitter_ratio(pred_acceleration: float, gt_acceleration: float) -> float:
    """:func:`jitter` from the two sequences' :func:`mean_acceleration`: nan for 0 / 0, inf for x / 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(pred_acceleration) / gt_acceleration)
