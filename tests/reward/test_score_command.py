"""`facerl score` end to end: a tiny reward model trained through the real CLI scores real corpus clips
(ground truth written as a results folder, and single vertex / wav pairs); user mistakes are one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from facerl.audio import write_wav
from facerl.cli import main
from facerl.data.dataset import VocaDataset, spec_from_corpus
from facerl.data.layout import Layout
from facerl.reward.score_command import resample_frames

CLIP = "SynthTalk_11_m6_TA_sentence21"   # a test-split clip of the tiny corpus


@pytest.fixture(scope="module")
def scoring(tiny_corpus, tmp_path_factory) -> dict:
    """A tiny reward model (runs/tiny/reward under ``root``) and a results folder holding every val and test
    clip's ground truth and a static face (the template repeated) as two conditions."""
    root = tmp_path_factory.mktemp("score")
    assert main(["train", "experiment=reward_tiny", f"data.out={tiny_corpus}", f"paths.root={root}",
                 "trainer.device=cpu"]) == 0
    results, frames = root / "results", {}
    results.mkdir()
    spec = spec_from_corpus(str(tiny_corpus))
    for split in ("val", "test"):
        ds = VocaDataset(spec, split, with_phones=False)
        for i in range(len(ds)):
            clip = ds[i]
            vertices = clip.vertices.numpy()                                      # (T, V*3) 30 fps
            np.save(results / f"{clip.name}_condition_gt.npy", vertices)
            np.save(results / f"{clip.name}_condition_static.npy", np.repeat(clip.template.numpy()[None],
                                                                              len(vertices), 0))
            frames[clip.name] = (split, len(vertices))
            if clip.name == CLIP:
                np.save(root / "template.npy", clip.template.numpy().reshape(-1, 3))
    return {"overrides": [f"data.out={tiny_corpus}", f"paths.root={root}", "run_name=tiny"],
            "root": root, "results": results, "frames": frames, "wav": str(Layout(tiny_corpus).wav(CLIP))}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_results_folder_gets_one_row_per_window_and_a_summary(scoring, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["score", "--results", str(scoring["results"]), "--split", "all", "--out", str(out),
                 "--device", "cpu", *scoring["overrides"]]) == 0
    rows, summary = read_csv(out), read_csv(tmp_path / "scores_summary.csv")
    frames = scoring["frames"]
    assert list(rows[0]) == ["sequence", "condition", "window", "start_s", "lip", "real", "sync"]
    assert len(rows) == 2 * sum(t - 4 for _, t in frames.values())
    assert len(summary) == 2 * len(frames) and {s["condition"] for s in summary} == {"gt", "static"}
    for s in summary:
        assert int(s["windows"]) == frames[s["sequence"]][1] - 4
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("lip", "real"))
    first = [r for r in rows if r["sequence"] == CLIP and r["condition"] == "gt"]
    assert [int(r["window"]) for r in first] == list(range(frames[CLIP][1] - 4))
    assert float(first[3]["start_s"]) == pytest.approx(3 / 30, abs=1e-4)
    mean_lip = np.mean([float(r["lip"]) for r in first])
    assert float(next(s for s in summary if s["sequence"] == CLIP and s["condition"] == "gt")["lip"]) == \
        pytest.approx(mean_lip, abs=1e-5)
    printed = capsys.readouterr().out
    assert f"all {2 * len(frames)} sequences" in printed and "all with static" in printed

    # the default split (test) skips the val clips; the default --reward is runs/<run_name>/reward
    assert main(["score", "--results", str(scoring["results"]), "--out", str(out), *scoring["overrides"]]) == 0
    n_test = sum(1 for split, _ in frames.values() if split == "test")
    assert len(read_csv(tmp_path / "scores_summary.csv")) == 2 * n_test
    assert f"skipping {2 * (len(frames) - n_test)} sequences" in capsys.readouterr().out


def test_single_pair_matches_its_folder_score_and_resamples_60_fps(scoring, tmp_path):
    gt = np.load(scoring["results"] / f"{CLIP}_condition_gt.npy")                 # (T, V*3)
    t = len(gt)
    np.save(tmp_path / "seq.npy", gt.reshape(t, -1, 3))                           # (T, V, 3) accepted too
    midpoints = (gt[:-1] + gt[1:]) / 2
    at_60 = np.empty((2 * t - 1, gt.shape[1]), np.float32)                          # (2T-1, V*3)
    at_60[0::2], at_60[1::2] = gt, midpoints
    np.save(tmp_path / "seq60.npy", at_60)
    np.save(tmp_path / "seq60b.npy", np.repeat(gt, 2, axis=0))                     # (2T, V*3)
    runs = {"subject": ["--vertices", str(tmp_path / "seq.npy"), "--template", "SynthTalk_11_m6_TA"],
            "npy": ["--vertices", str(tmp_path / "seq.npy"), "--template", str(scoring["root"] / "template.npy")],
            "60": ["--vertices", str(tmp_path / "seq60.npy"), "--fps", "60", "--template", "SynthTalk_11_m6_TA"],
            "60b": ["--vertices", str(tmp_path / "seq60b.npy"), "--fps", "60", "--template", "SynthTalk_11_m6_TA"]}
    scores = {}
    for name, args in runs.items():
        out = tmp_path / f"{name}.csv"
        assert main(["score", *args, "--wav", scoring["wav"], "--out", str(out), "--device", "cpu",
                     *scoring["overrides"]]) == 0
        rows = read_csv(out)
        assert len(rows) == t - 4 and all(r["condition"] == "" for r in rows)
        scores[name] = np.array([[float(r[k]) for k in ("lip", "real", "sync")] for r in rows])
    assert read_csv(tmp_path / "subject.csv")[0]["sequence"] == "seq"
    np.testing.assert_allclose(scores["npy"], scores["subject"], atol=1e-6)
    np.testing.assert_allclose(scores["60"], scores["subject"], atol=1e-5)    # even 60 fps frames are the 30 fps ones
    folder = tmp_path / "folder.csv"
    assert main(["score", "--results", str(scoring["results"]), "--out", str(folder), *scoring["overrides"]]) == 0
    in_folder = [r for r in read_csv(folder) if r["sequence"] == CLIP and r["condition"] == "gt"]
    np.testing.assert_allclose([float(r["lip"]) for r in in_folder], scores["subject"][:, 0], atol=1e-5)


def test_resample_frames_interpolates_linearly_in_time():
    x = np.arange(7, dtype=np.float32)[:, None]                      # (T=7, P=1) at 60 fps: frame i at i/60 s
    np.testing.assert_allclose(resample_frames(x, 60.0)[:, 0], [0, 2, 4, 6])
    np.testing.assert_allclose(resample_frames(x[:4], 20.0)[:, 0], [0, 2 / 3, 4 / 3, 2, 8 / 3], atol=1e-6)
    assert resample_frames(x, 30.0) is x


def error_cases(s: dict, tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, a fragment of the one-line message)."""
    gt = np.load(s["results"] / f"{CLIP}_condition_gt.npy")
    np.save(tmp / "few.npy", gt[:3])
    np.save(tmp / "small_mesh.npy", np.zeros((40, 30), np.float32))
    np.save(tmp / "seq.npy", gt)
    write_wav(tmp / "short.wav", np.zeros(8000, np.float32))                     # 0.5 s for a 2.7 s sequence
    (tmp / "seq.txt").write_text("not vertices")
    (tmp / "empty").mkdir()
    (tmp / "unknown").mkdir()
    np.save(tmp / "unknown" / "Nobody_01_sentence01_condition_x.npy", gt)
    (tmp / "short_result").mkdir()
    np.save(tmp / "short_result" / f"{CLIP}_condition_x.npy", gt[:3])
    pair = ["--wav", s["wav"], "--template", "SynthTalk_11_m6_TA"]
    return {
        "both": (["--vertices", str(tmp / "seq.npy"), "--results", str(s["results"]), *pair], "not both"),
        "neither": ([], "got neither"),
        "missing vertices": (["--vertices", str(tmp / "nope.npy"), *pair], "vertex file not found"),
        "wrong suffix": (["--vertices", str(tmp / "seq.txt"), *pair], "expected a .npy"),
        "mesh mismatch": (["--vertices", str(tmp / "small_mesh.npy"), *pair], "trained on meshes of 4784"),
        "short audio": (["--vertices", str(tmp / "seq.npy"), "--wav", str(tmp / "short.wav"),
                         "--template", "SynthTalk_11_m6_TA"], "audio is shorter than the motion"),
        "few frames": (["--vertices", str(tmp / "few.npy"), *pair], "at least 5 frames"),
        "no template": (["--vertices", str(tmp / "seq.npy"), "--wav", s["wav"]], "needs --template"),
        "unknown subject": (["--vertices", str(tmp / "seq.npy"), "--wav", s["wav"], "--template", "Bob"],
                            "neither a .npy file nor a subject"),
        "empty folder": (["--results", str(tmp / "empty")], "holds no <clip>_condition_<style>.npy"),
        "unknown clip": (["--results", str(tmp / "unknown")], "Nobody_01_sentence01 is not in the dataset"),
        "short result": (["--results", str(tmp / "short_result")], "at least 5 frames"),
        "no reward": (["--results", str(s["results"]), "--reward", str(tmp / "none")], "reward model folder not found"),
    }


def test_user_mistakes_are_one_line_errors_without_output(scoring, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, (args, message) in error_cases(scoring, inputs).items():
        out = tmp_path / name.replace(" ", "_") / "scores.csv"
        assert main(["score", *args, "--out", str(out), *scoring["overrides"]]) == 2, name
        err = capsys.readouterr().err
        assert err.count("facerl: error:") == 1 and "Traceback" not in err, name
        assert err.strip().splitlines()[-1].startswith("facerl: error:") and message in err, (name, err)
        assert not out.parent.exists() or not any(out.parent.iterdir()), name
    assert main(["score", "--results", str(scoring["results"]), "--out", str(tmp_path / "s.txt"),
                 *scoring["overrides"]]) == 2
    assert "use a .csv file name" in capsys.readouterr().err
