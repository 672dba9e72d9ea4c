"""ARKit blendshape curves and their two text formats: Live Link Face CSV and facerl JSON.

Dimensions: T frames, K = 52 ARKit shapes (Apple's names and alphabetical order, ``facerl.head.arkit``).

Live Link Face CSV, as Epic's iPhone app records it and Unreal's LiveLinkFaceImporter reads it. Sources
checked (formats only, no code taken):
  * real app recordings in alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder: ``anim/S07-001.csv``,
    ``anim/alex_rom_3.csv``, ``anim/alex_rom_4.csv`` (our header is byte-identical to theirs);
  * Epic's importer ``LiveLinkFaceImporterFactory.cpp`` (UE plugin LiveLinkFaceImporter; the search index
    holds a copy without naming its repository);
  * nmfisher/blender_livelinkface ``bpylivelinkface.py`` (``LIVE_LINK_FACE_HEADER``) and the Maya importer
    aronamao/Maya-Live-Link-CSV-Import ``CSVImport/Source/csvImport.cpp``.
The recordings and the Blender header agree (Unreal checks the first two names, then reads columns by name):
``Timecode,BlendShapeCount,`` + 52 PascalCase shapes in the app's order (note
``JawRight,JawLeft`` and ``MouthRight,MouthLeft``, unlike Unreal's EARFaceBlendShape enum) + 9 head/eye
rotations, no trailing comma, ``\\n`` line ends, BlendShapeCount 61 on every row. Timecode ``HH:MM:SS:FF.mmm``:
Unreal parses ``FF.mmm`` as *fractional frames* (``Atof``) and infers 30 or 60 fps from whether any FF exceeds
30; the recordings agree (the fraction drifts .169 -> .168 -> .167 over rows 1/30 s apart, and .652 cannot be
milliseconds of a 16.7 ms frame). A third-party UE CSV writer (J-Andersen-UvA/LiveLinkFaceCSVWriter) writes
milliseconds instead and the Maya importer assumes 60 fps and drops the fraction: we follow the app and Unreal.
The recordings use a 60 fps timecode with a row every 2nd frame (30 Hz), drop a row now and then, have zero
head rotations and eye rotations in radians, and some weights slightly above 1 (calibrated takes).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerl.errors import FacerlError
from facerl.head.arkit import ARKIT_INDEX, ARKIT_NAMES, N_ARKIT
from facerl.utils.io import existing_file, save_text

# the app's 52 shape columns, in its order (PascalCase of ARKit's names)
LIVELINK_SHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)
LIVELINK_ROTATIONS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
LIVELINK_COLUMNS: tuple[str, ...] = ("Timecode", "BlendShapeCount", *LIVELINK_SHAPES, *LIVELINK_ROTATIONS)
LIVELINK_COUNT = len(LIVELINK_SHAPES) + len(LIVELINK_ROTATIONS)  # 61, the BlendShapeCount column
LIVELINK_FPS = (30, 60)  # the only rates Unreal's importer infers from a timecode
_APP_TO_ARKIT = np.array([ARKIT_INDEX[n[0].lower() + n[1:]] for n in LIVELINK_SHAPES])  # (K,) app col -> ARKit

JSON_FORMAT, JSON_VERSION = "facerl-arkit-curves", 1
DECIMALS = 6  # both text formats: round trips within 1e-6


@dataclass(eq=False)
class ArkitCurves:
    """52 ARKit weights per frame: ``weights`` (T, K) float32 in [0, 1], ARKit order, at ``fps``."""

    weights: np.ndarray
    fps: float
    names: tuple[str, ...] = tuple(ARKIT_NAMES)
    audio: str | None = None  # the audio file these curves were made for (a name, not read)

    def __post_init__(self):
        self.names = tuple(self.names)
        if self.names != tuple(ARKIT_NAMES):
            raise FacerlError("curve names must be the 52 ARKit names in Apple's order (facerl.head.arkit)")
        try:
            self.weights = np.asarray(self.weights, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise FacerlError(f"curve weights are not a numeric (T, {N_ARKIT}) array ({exc})") from None
        if self.weights.ndim != 2 or self.weights.shape[1] != N_ARKIT or len(self.weights) == 0:
            raise FacerlError(f"curve weights must have shape (T>=1, {N_ARKIT}), got {self.weights.shape}")
        if not np.isfinite(self.weights).all():
            t, k = np.argwhere(~np.isfinite(self.weights))[0]
            raise FacerlError(f"curve weights are not finite (frame {t}, {ARKIT_NAMES[k]})")
        bad = (self.weights < 0) | (self.weights > 1)
        if bad.any():
            t, k = np.argwhere(bad)[0]
            raise FacerlError(f"curve weights must lie in [0, 1]: {self.weights[t, k]:.6g} at frame {t}, "
                              f"{ARKIT_NAMES[k]} (use ArkitCurves.clipped for solver output)")
        if isinstance(self.fps, bool) or not isinstance(self.fps, numbers.Real) or not 0 < self.fps < math.inf:
            raise FacerlError(f"curve fps must be a positive number, got {self.fps!r}")
        self.fps = float(self.fps)
        if self.audio is not None:
            if not isinstance(self.audio, str | os.PathLike):
                raise FacerlError(f"curve audio must be a file name or None, got {self.audio!r}")
            self.audio = os.fspath(self.audio)

    @classmethod
    def clipped(cls, weights: np.ndarray, fps: float, audio: str | None = None) -> ArkitCurves:
        """Curves from (T, K) weights clipped to [0, 1] (solver / actor outputs overshoot a little)."""
        return cls(np.clip(np.asarray(weights, dtype=np.float32), 0.0, 1.0), fps, audio=audio)

    @property
    def n_frames(self) -> int:
        return len(self.weights)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def times(self) -> np.ndarray:
        """(T,) float64 seconds of each frame, starting at 0."""
        return np.arange(self.n_frames) / self.fps

    def curve(self, name: str) -> np.ndarray:
        """(T,) weights of one ARKit shape, by its camelCase name."""
        if name not in ARKIT_INDEX:
            raise FacerlError(f"unknown ARKit shape {name!r}")
        return self.weights[:, ARKIT_INDEX[name]]


# ---------------------------------------------------------------------------------------------- timecodes

def _split_timecode(text: str) -> tuple[int, float]:
    """``HH:MM:SS:FF[.fff]`` -> (whole seconds, fractional frames), or ValueError."""
    parts = text.strip().split(":")
    if len(parts) != 4:
        raise ValueError(text)
    h, m, s = (int(p) for p in parts[:3])
    frames = float(parts[3])
    if not (0 <= m < 60 and 0 <= s < 60 and h >= 0 and 0 <= frames < math.inf):
        raise ValueError(text)
    return (h * 60 + m) * 60 + s, frames


def _start_millis(start: int | str, fps: int) -> int:
    """A start timecode (frames at ``fps``, or an ``HH:MM:SS:FF[.fff]`` string) in thousandths of a frame."""
    if isinstance(start, str):
        try:
            seconds, frames = _split_timecode(start)
        except ValueError:
            raise FacerlError(f"start timecode {start!r} is not HH:MM:SS:FF[.fff]") from None
        if frames >= fps:
            raise FacerlError(f"start timecode {start!r} has frame {frames:g}, not below {fps} fps")
        return round((seconds * fps + frames) * 1000)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise FacerlError(f"start timecode must be a frame count >= 0 or 'HH:MM:SS:FF', got {start!r}")
    return start * 1000


def livelink_timecode(frame: int, fps: int, start: int | str = 0) -> str:
    """The app's ``HH:MM:SS:FF.fff`` for ``frame`` frames after ``start`` (FF counted at ``fps``; .fff is
    the sub-frame fraction, kept from a fractional start; hours wrap at 24 like any timecode)."""
    return _format_timecode(_start_millis(start, fps) + 1000 * frame, fps)


def _format_timecode(millis: int, fps: int) -> str:
    """Thousandths of a frame since 00:00:00:00 -> ``HH:MM:SS:FF.fff`` (integer arithmetic: no drift)."""
    frames, sub = divmod(millis, 1000)
    seconds, ff = divmod(frames, fps)
    minutes, ss = divmod(seconds, 60)
    hours, mm = divmod(minutes, 60)
    return f"{hours % 24:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{sub:03d}"


# ---------------------------------------------------------------------------------------------- writers

def write_livelink_csv(curves: ArkitCurves, path: str | os.PathLike, start_timecode: int | str = 0) -> None:
    """Write ``curves`` as a Live Link Face CSV (what the iPhone app records; Unreal's LiveLinkFaceImporter,
    Blender and Maya importers read it). One row per frame with the timecode at ``curves.fps`` — facerl's
    30 fps, not the app's default 60, which Unreal infers from the timecodes (FF stays below 30). A 60 fps
    clip is inferred as 60 only once some FF exceeds 30, i.e. from 32 frames on (as with the app's own).
    Head and eye rotations are 0 (facerl animates the face only). ``start_timecode``: frames or
    ``HH:MM:SS:FF[.fff]``."""
    if curves.fps not in LIVELINK_FPS:
        raise FacerlError(f"Live Link Face CSV needs 30 or 60 fps curves (Unreal infers one of the two from "
                          f"the timecodes), got {curves.fps:g} fps; resample first")
    fps = int(curves.fps)
    start = _start_millis(start_timecode, fps)  # validated before touching the disk
    app = curves.weights[:, _APP_TO_ARKIT].astype(np.float64)  # (T, K) in the app's column order
    tail = f",{0:.{DECIMALS}f}" * len(LIVELINK_ROTATIONS)
    lines = [",".join(LIVELINK_COLUMNS)]
    for t, row in enumerate(app):
        values = ",".join(f"{v:.{DECIMALS}f}" for v in row)
        lines.append(f"{_format_timecode(start + 1000 * t, fps)},{LIVELINK_COUNT},{values}{tail}")
    save_text(path, "\n".join(lines) + "\n")


def write_curves_json(curves: ArkitCurves, path: str | os.PathLike) -> None:
    """Write ``curves`` as facerl JSON: format, version, fps, names (ARKit camelCase), audio, n_frames and
    weights (T rows of K values rounded to 6 decimals, one row per line)."""
    head = {"format": JSON_FORMAT, "version": JSON_VERSION, "fps": curves.fps, "names": list(curves.names),
            "audio": curves.audio, "n_frames": curves.n_frames}
    rows = np.round(curves.weights.astype(np.float64), DECIMALS).tolist()  # (T, K)
    body = ",\n  ".join(json.dumps(r) for r in rows)
    save_text(path, json.dumps(head, indent=1)[:-2] + f',\n "weights": [\n  {body}\n ]\n}}\n')


# ---------------------------------------------------------------------------------------------- readers

def _read_text(path: str | os.PathLike, what: str) -> str:
    path = existing_file(path, what)
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FacerlError(f"cannot read {path} as a {what} file ({exc})") from None


def _fields(line: str) -> list[str]:
    fields = [f.strip() for f in line.split(",")]
    return fields[:-1] if len(fields) > 1 and fields[-1] == "" else fields  # tolerate a trailing comma


def read_livelink_csv(path: str | os.PathLike, timecode_fps: int | None = None) -> ArkitCurves:
    """Curves from a Live Link Face CSV (the app's recordings or ours). Shape columns are matched by name,
    case-insensitively, in any order; rotation and unknown columns are ignored. ``timecode_fps`` is the rate
    FF counts at; by default it is inferred as Unreal does (60 if any FF reaches 30, else 30). The curves' fps
    is the row rate (the app writes a row every 2nd frame of a 60 fps timecode: 30 fps). Rows the app left
    empty (BlendShapeCount 0) and irregular timing are resampled linearly onto a uniform grid. Weights are
    clipped to [0, 1] (calibrated app takes reach slightly above 1)."""
    name = Path(path).name
    lines = [ln for ln in _read_text(path, "Live Link Face CSV").splitlines() if ln.strip()]
    header = _fields(lines[0]) if lines else []
    if len(header) < 3 or [h.lower() for h in header[:2]] != ["timecode", "blendshapecount"]:
        raise FacerlError(f"{name} is not a Live Link Face CSV: the header must start with "
                          f"'Timecode,BlendShapeCount,' (found {','.join(header[:2])!r})")
    column = {}
    for i, h in enumerate(header[2:], start=2):
        if h.lower() in column:
            raise FacerlError(f"{name}: column {h!r} appears twice in the header")
        column[h.lower()] = i
    missing = [n for n in ARKIT_NAMES if n.lower() not in column]
    if missing:
        raise FacerlError(f"{name}: {len(missing)} of the 52 ARKit shape columns are missing "
                          f"(e.g. {', '.join(missing[:4])})")
    cols = [column[n.lower()] for n in ARKIT_NAMES]  # (K,) file column of each ARKit shape

    stamps, values, linenos = [], [], []  # per kept row: (whole s, fractional frames), (K,) weights, line
    for lineno, line in enumerate(lines[1:], start=2):
        fields = _fields(line)
        if len(fields) <= 2 or fields[1] == "0":  # a frame the app failed to record: interpolated below
            continue
        if len(fields) != len(header):
            raise FacerlError(f"{name} line {lineno}: {len(fields)} columns, the header has {len(header)}")
        try:
            stamps.append(_split_timecode(fields[0]))
        except ValueError:
            raise FacerlError(f"{name} line {lineno}: bad timecode {fields[0]!r} (HH:MM:SS:FF.fff)") from None
        try:
            row = [float(fields[c]) for c in cols]
        except ValueError as exc:
            raise FacerlError(f"{name} line {lineno}: not a number ({exc})") from None
        if not all(math.isfinite(v) for v in row):
            raise FacerlError(f"{name} line {lineno}: non-finite weight")
        values.append(row)
        linenos.append(lineno)
    if not values:
        raise FacerlError(f"{name} has a header but no frames")

    frames = np.array([f for _, f in stamps])
    if timecode_fps is None:
        timecode_fps = 60 if frames.max() >= 30 else 30
    if frames.max() >= timecode_fps:
        raise FacerlError(f"{name}: timecode frame {frames.max():g} does not fit {timecode_fps} fps")
    pos = np.array([s for s, _ in stamps], dtype=np.float64) * timecode_fps + frames  # (N,) timecode frames
    day = 24 * 3600 * timecode_fps
    pos[1:] += day * np.cumsum(np.diff(pos) < -day / 2)  # a take running past midnight
    if (np.diff(pos) < 0).any():
        raise FacerlError(f"{name} line {linenos[int(np.argmax(np.diff(pos) < 0)) + 1]}: the timecode goes back")
    step = max(1, round(float(np.median(np.diff(pos))))) if len(pos) > 1 else 1  # timecode frames per row
    slot = np.round((pos - pos[0]) / step).astype(np.int64)  # (N,) row of the uniform grid (jitter dropped)
    keep = np.r_[True, np.diff(slot) > 0]  # two rows on one slot: keep the first
    slot, weights = slot[keep], np.asarray(values, dtype=np.float64)[keep]  # (N,), (N, K)
    if len(slot) != slot[-1] + 1:  # rows the app dropped or left empty
        grid = np.arange(slot[-1] + 1)  # (T,)
        weights = np.stack([np.interp(grid, slot, weights[:, k]) for k in range(N_ARKIT)], axis=1)  # (T, K)
    return ArkitCurves.clipped(weights, timecode_fps / step)


def read_curves_json(path: str | os.PathLike) -> ArkitCurves:
    """Curves from a facerl JSON file (:func:`write_curves_json`); names may come in any order."""
    name = Path(path).name
    try:
        data = json.loads(_read_text(path, "ARKit curves JSON"))
    except json.JSONDecodeError as exc:
        raise FacerlError(f"{name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
        raise FacerlError(f"{name} is not a facerl ARKit curves file (no \"format\": \"{JSON_FORMAT}\")")
    if data.get("version") != JSON_VERSION:
        raise FacerlError(f"{name} has version {data.get('version')!r}; this facerl reads version {JSON_VERSION}")
    for key in ("fps", "names", "n_frames", "weights"):
        if key not in data:
            raise FacerlError(f"{name} lacks the {key!r} field")
    names = data["names"]
    if not isinstance(names, list) or sorted(map(str, names)) != sorted(ARKIT_NAMES):
        raise FacerlError(f"{name}: 'names' must be the 52 ARKit shape names")
    try:
        weights = np.asarray(data["weights"], dtype=np.float64)  # (T, K) in the file's name order
    except (TypeError, ValueError):
        raise FacerlError(f"{name}: 'weights' must be rows of {len(names)} numbers") from None
    if weights.ndim != 2 or weights.shape[1] != len(names):
        raise FacerlError(f"{name}: 'weights' must be rows of {len(names)} numbers, got shape {weights.shape}")
    if data["n_frames"] != len(weights):
        raise FacerlError(f"{name}: n_frames is {data['n_frames']!r} but there are {len(weights)} rows")
    order = [names.index(n) for n in ARKIT_NAMES]
    try:
        return ArkitCurves(weights[:, order], data["fps"], audio=data.get("audio"))
    except FacerlError as exc:
        raise FacerlError(f"{name}: {exc}") from None
