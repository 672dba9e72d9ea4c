"""ARKit curves: container checks, Live Link Face CSV and JSON writers/readers on real files."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from facerl.errors import FacerlError
from facerl.export.curves import (
    ArkitCurves,
    livelink_timecode,
    read_curves_json,
    read_livelink_csv,
    write_curves_json,
    write_livelink_csv,
)
from facerl.head.arkit import ARKIT_INDEX, ARKIT_NAMES

# The header of a real Live Link Face recording (e.g. alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder
# anim/S07-001.csv), written out in full so the writer is checked against the app, not against itself.
APP_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)
APP_COLUMNS = APP_HEADER.split(",")


def random_curves(n_frames: int = 45, fps: float = 30, seed: int = 0, audio: str | None = "speech.wav"):
    w = np.random.default_rng(seed).random((n_frames, 52)).astype(np.float32)  # (T, K)
    w[0, :3] = [0.0, 1.0, 0.5]  # the bounds themselves survive
    return ArkitCurves(w, fps, audio=audio)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------- container

def test_container_helpers_and_clipping():
    c = random_curves(60, fps=30)
    assert c.n_frames == 60 and c.duration_s == pytest.approx(2.0) and c.weights.dtype == np.float32
    np.testing.assert_allclose(c.times()[[0, 1, 59]], [0, 1 / 30, 59 / 30])
    np.testing.assert_array_equal(c.curve("jawOpen"), c.weights[:, ARKIT_INDEX["jawOpen"]])
    clipped = ArkitCurves.clipped(np.full((3, 52), 1.2) - np.eye(3, 52) * 1.5, 30)
    assert clipped.weights.min() == 0.0 and clipped.weights.max() == 1.0


@pytest.mark.parametrize("weights, fps, match", [
    (np.zeros((5, 51)), 30, r"shape \(T>=1, 52\)"),
    (np.zeros((0, 52)), 30, "shape"),
    (np.zeros(52), 30, "shape"),
    (np.full((2, 52), np.nan), 30, "not finite .frame 0, browDownLeft"),
    (np.eye(2, 52) * 1.5, 30, r"\[0, 1\]: 1.5 at frame 0, browDownLeft .use ArkitCurves.clipped"),
    (-np.eye(2, 52), 30, r"\[0, 1\]"),
    (np.zeros((2, 52)), 0, "positive number"),
    (np.zeros((2, 52)), float("nan"), "positive number"),
    (np.zeros((2, 52)), "30", "positive number"),
])
def test_container_rejects_bad_curves(weights, fps, match):
    with pytest.raises(FacerlError, match=match) as excinfo:
        ArkitCurves(weights, fps)
    one_line_error(excinfo)


def test_container_rejects_other_names():
    with pytest.raises(FacerlError, match="52 ARKit names in Apple's order"):
        ArkitCurves(np.zeros((2, 52)), 30, names=tuple(reversed(ARKIT_NAMES)))


# ---------------------------------------------------------------------------------------------- timecodes

@pytest.mark.parametrize("fps, frame, expected", [
    (30, 0, "00:00:00:00.000"), (30, 1, "00:00:00:01.000"), (30, 29, "00:00:00:29.000"),
    (30, 30, "00:00:01:00.000"), (30, 1799, "00:00:59:29.000"), (30, 1800, "00:01:00:00.000"),
    (60, 0, "00:00:00:00.000"), (60, 1, "00:00:00:01.000"), (60, 29, "00:00:00:29.000"),
    (60, 30, "00:00:00:30.000"), (60, 1799, "00:00:29:59.000"), (60, 1800, "00:00:30:00.000"),
])
def test_timecodes(fps, frame, expected):
    assert livelink_timecode(frame, fps) == expected


def test_timecodes_from_a_start():
    start = "14:03:52:28.207"  # the sub-frame fraction is kept, FF carries into the seconds
    assert [livelink_timecode(t, 30, start) for t in range(3)] == [
        "14:03:52:28.207", "14:03:52:29.207", "14:03:53:00.207"]
    assert livelink_timecode(0, 30, 30) == "00:00:01:00.000"
    assert livelink_timecode(1, 30, "23:59:59:29") == "00:00:00:00.000"  # a day wraps like any timecode
    for bad in ("14:03:52", "14:61:00:00", "00:00:00:30", -1, 1.5):
        with pytest.raises(FacerlError, match="start timecode"):
            livelink_timecode(0, 30, bad)


# ---------------------------------------------------------------------------------------------- CSV

def test_csv_header_rows_and_timecodes_match_the_app(tmp_path):
    c = random_curves(31, fps=30)
    write_livelink_csv(c, tmp_path / "take.csv")
    text = (tmp_path / "take.csv").read_text()
    lines = text.split("\n")
    assert lines[0] == APP_HEADER and len(APP_COLUMNS) == 2 + 61
    assert text.endswith("\n") and lines[-1] == "" and "\r" not in text
    rows = [ln.split(",") for ln in lines[1:-1]]
    assert len(rows) == 31 and all(len(r) == 63 and r[1] == "61" for r in rows)
    assert [rows[t][0] for t in (0, 1, 29, 30)] == [
        "00:00:00:00.000", "00:00:00:01.000", "00:00:00:29.000", "00:00:01:00.000"]
    # columns by name, in the app's order; rotations are 0
    for name in ("JawLeft", "JawRight", "MouthLeft", "TongueOut", "EyeWideRight"):
        arkit = name[0].lower() + name[1:]
        assert float(rows[5][APP_COLUMNS.index(name)]) == pytest.approx(c.curve(arkit)[5], abs=1e-6)
    assert all(float(v) == 0.0 for v in rows[5][-9:])


def test_csv_round_trip_30_fps(tmp_path):
    c = random_curves(100, fps=30)
    write_livelink_csv(c, tmp_path / "a.csv", start_timecode="14:03:52:28.207")
    back = read_livelink_csv(tmp_path / "a.csv")
    assert back.fps == 30 and back.n_frames == 100 and back.audio is None
    np.testing.assert_allclose(back.weights, c.weights, atol=1e-6, rtol=0)


@pytest.mark.parametrize("n_frames, timecode_fps", [(45, None), (10, 60)])
def test_csv_round_trip_60_fps(tmp_path, n_frames, timecode_fps):
    # a 60 fps file is recognised from its timecodes once FF passes 30; shorter clips need the rate given
    c = random_curves(n_frames, fps=60)
    write_livelink_csv(c, tmp_path / "a.csv")
    back = read_livelink_csv(tmp_path / "a.csv", timecode_fps=timecode_fps)
    assert back.fps == 60 and back.n_frames == n_frames
    np.testing.assert_allclose(back.weights, c.weights, atol=1e-6, rtol=0)


def app_recording(rows: list[tuple[str, str]]) -> str:
    """A recording as the app writes it: (timecode, BlendShapeCount) per row, 10 decimals, head turning."""
    lines = [APP_HEADER]
    for i, (timecode, count) in enumerate(rows):
        if count == "0":  # a frame the app dropped
            lines.append(f"{timecode},0")
            continue
        shapes = [0.01 * i] * 52
        shapes[APP_COLUMNS.index("JawOpen") - 2] = 0.3 + 0.02 * i
        shapes[APP_COLUMNS.index("JawLeft") - 2] = 0.07
        shapes[APP_COLUMNS.index("EyeLookInRight") - 2] = 1.0033375025  # calibrated takes overshoot 1
        rotations = [0.0123 * i, -0.2048996240, 0.0305448882, -0.1475610286, -0.2048996240, 0.0305448882,
                     -0.0850049257, -0.2048947811, 0.0176418666]
        lines.append(f"{timecode},{count}," + ",".join(f"{v:.10f}" for v in shapes + rotations))
    return "\n".join(lines) + "\n"


def test_reads_an_app_recording(tmp_path):
    # 60 fps timecode, a row every 2nd frame (30 Hz), across a second boundary, one dropped row
    stamps = ["14:03:52:54.207", "14:03:52:56.207", "14:03:52:58.206", "14:03:53:00.206", "14:03:53:02.206",
              "14:03:53:04.205"]
    rows = [(s, "0" if i == 3 else "61") for i, s in enumerate(stamps)]
    path = tmp_path / "MySlate_7_iPhone.csv"
    path.write_text(app_recording(rows))
    c = read_livelink_csv(path)
    assert c.fps == 30 and c.n_frames == 6
    np.testing.assert_allclose(c.curve("jawOpen"), 0.3 + 0.02 * np.arange(6), atol=1e-6)  # row 3 interpolated
    np.testing.assert_allclose(c.curve("jawLeft"), 0.07, atol=1e-6)  # matched by name, not by position
    np.testing.assert_allclose(c.curve("jawRight"), 0.01 * np.arange(6), atol=1e-6)
    assert c.curve("eyeLookInRight").max() == 1.0  # clipped


def test_reads_a_30_fps_timecode_and_any_column_case_or_order(tmp_path):
    names = list(ARKIT_NAMES)[::-1] + ["HeadYaw"]  # camelCase, reversed, one rotation
    rows = [f"10:00:00:{f:02d}.000,53," + ",".join(f"{ARKIT_INDEX[n] / 100:.4f}" for n in names[:-1]) + ",12.5"
            for f in (27, 28, 29)] + ["10:00:01:00.000,53," + ",".join(["0.5"] * 52) + ",0"]
    path = tmp_path / "other.csv"
    path.write_text("timecode,blendShapeCount," + ",".join(names) + ",\n" + "\n".join(rows) + "\n")
    c = read_livelink_csv(path)
    assert c.fps == 30 and c.n_frames == 4
    np.testing.assert_allclose(c.weights[0], np.arange(52) / 100, atol=1e-6)
    np.testing.assert_allclose(c.weights[3], 0.5)


@pytest.mark.parametrize("text, match", [
    ("", "file is empty"),
    ("frame,jawOpen\n0,0.1\n", "must start with 'Timecode,BlendShapeCount,'"),
    (APP_HEADER.replace(",TongueOut", "") + "\n", "1 of the 52 ARKit shape columns are missing .e.g. tongueOut"),
    (APP_HEADER + ",JawOpen\n", "'JawOpen' appears twice"),
    (APP_HEADER + "\n", "a header but no frames"),
    (APP_HEADER + "\n00:00:00:00.000,61," + ",".join(["0"] * 60) + "\n", "line 2: 62 columns, the header has 63"),
    (APP_HEADER + "\n00:00:00.000,61," + ",".join(["0"] * 61) + "\n", "line 2: bad timecode '00:00:00.000'"),
    (APP_HEADER + "\n00:00:00:00.000,61,x" + ",0" * 60 + "\n", "line 2: not a number"),
    (APP_HEADER + "\n00:00:00:00.000,61,nan" + ",0" * 60 + "\n", "line 2: non-finite"),
    (APP_HEADER + "\n00:00:00:05.000,61" + ",0" * 61 + "\n00:00:00:01.000,61" + ",0" * 61 + "\n",
     "line 3: the timecode goes back"),
])
def test_csv_reader_rejects_bad_files(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FacerlError, match=match) as excinfo:
        read_livelink_csv(path)
    one_line_error(excinfo)


def test_csv_reader_checks_the_given_timecode_rate(tmp_path):
    write_livelink_csv(random_curves(40, fps=60), tmp_path / "a.csv")
    with pytest.raises(FacerlError, match="frame 39 does not fit 30 fps"):
        read_livelink_csv(tmp_path / "a.csv", timecode_fps=30)
    with pytest.raises(FacerlError, match="file not found"):
        read_livelink_csv(tmp_path / "missing.csv")


def test_csv_writer_rejects_other_rates_before_writing(tmp_path):
    with pytest.raises(FacerlError, match="30 or 60 fps curves .* got 25 fps") as excinfo:
        write_livelink_csv(random_curves(10, fps=25), tmp_path / "a.csv")
    one_line_error(excinfo)
    with pytest.raises(FacerlError, match="start timecode"):
        write_livelink_csv(random_curves(10), tmp_path / "a.csv", start_timecode="1:2")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- JSON

def test_json_round_trip_and_layout(tmp_path):
    c = random_curves(50, fps=30, audio="speech.wav")
    write_curves_json(c, tmp_path / "a.json")
    data = json.loads((tmp_path / "a.json").read_text())
    assert list(data) == ["format", "version", "fps", "names", "audio", "n_frames", "weights"]
    assert (data["format"], data["version"], data["fps"], data["audio"], data["n_frames"]) == (
        "facerl-arkit-curves", 1, 30, "speech.wav", 50)
    assert data["names"] == list(ARKIT_NAMES) and len(data["weights"]) == 50 and len(data["weights"][0]) == 52
    assert all(round(v, 6) == v for row in data["weights"] for v in row)
    back = read_curves_json(tmp_path / "a.json")
    assert back.fps == 30 and back.audio == "speech.wav" and back.names == tuple(ARKIT_NAMES)
    np.testing.assert_allclose(back.weights, c.weights, atol=1e-6, rtol=0)


def test_json_reader_reorders_names(tmp_path):
    c = random_curves(4)
    order = list(range(52))[::-1]
    doc = {"format": "facerl-arkit-curves", "version": 1, "fps": 30, "audio": None, "n_frames": 4,
           "names": [ARKIT_NAMES[k] for k in order], "weights": c.weights[:, order].tolist()}
    (tmp_path / "r.json").write_text(json.dumps(doc))
    np.testing.assert_allclose(read_curves_json(tmp_path / "r.json").weights, c.weights, atol=1e-7)


def _doc(**changes):
    doc = {"format": "facerl-arkit-curves", "version": 1, "fps": 30, "names": list(ARKIT_NAMES),
           "audio": None, "n_frames": 2, "weights": [[0.5] * 52] * 2}
    doc.update(changes)
    return json.dumps(doc).replace('"__nan__"', "NaN")


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    (_doc(format="something"), "not a facerl ARKit curves file"),
    (_doc(version=2), "version 2; this facerl reads version 1"),
    (_doc(names=list(ARKIT_NAMES)[:51]), "52 ARKit shape names"),
    (_doc(n_frames=3), "n_frames is 3 but there are 2 rows"),
    (_doc(weights=[[0.5] * 52, [0.5] * 51]), "rows of 52 numbers"),
    (_doc(weights=[[0.5] * 51] * 2), "rows of 52 numbers"),
    (_doc(weights=[["__nan__"] + [0.5] * 51] * 2), "not finite"),
    (_doc(weights=[[1.5] + [0.5] * 51] * 2), r"\[0, 1\]"),
    (_doc(fps=-30), "positive number"),
])
def test_json_reader_rejects_bad_files(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(FacerlError, match=match) as excinfo:
        read_curves_json(path)
    one_line_error(excinfo)


# ---------------------------------------------------------------------------------------------- atomic writes

@pytest.mark.parametrize("write", [write_livelink_csv, write_curves_json])
def test_failed_write_leaves_no_temp_file_and_keeps_the_old_one(tmp_path, monkeypatch, write):
    target = tmp_path / "out.dat"
    target.write_text("previous")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(FacerlError, match="cannot write .*out.dat .No space left on device") as excinfo:
        write(random_curves(5), target)
    one_line_error(excinfo)
    assert [p.name for p in tmp_path.iterdir()] == ["out.dat"] and target.read_text() == "previous"


@pytest.mark.parametrize("write", [write_livelink_csv, write_curves_json])
def test_bad_output_paths(tmp_path, write):
    with pytest.raises(FacerlError, match="output path is a directory"):
        write(random_curves(5), tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FacerlError, match="cannot write"):
        write(random_curves(5), tmp_path / "file" / "a.out")
