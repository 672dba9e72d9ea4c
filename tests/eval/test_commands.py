"""`facerl test`, `facerl evaluate`, `facerl animate` on a tiny trained actor (real corpus, real files, real video)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facerl.animate import long_audio_features
from facerl.audio import write_wav
from facerl.cli import main
from facerl.data.layout import Layout
from facerl.models.actor import Actor, ActorConfig
from facerl.models.audio import AudioEncoderConfig
from tests.conftest import tiny_train_overrides


def cfg_args(corpus: Path, run: Path) -> list[str]:
    return tiny_train_overrides(corpus, run.parent.parent)


def test_test_writes_every_clip_under_every_condition(tiny_corpus, tiny_actor_run, tmp_path):
    out = tmp_path / "results"
    assert main(["test", *cfg_args(tiny_corpus, tiny_actor_run), "--styles", "both", "--out", str(out)]) == 0
    files = sorted(p.name for p in out.glob("*.npy"))
    # val + test: 3 clips each, under 2 training styles + the average
    assert len(files) == 6 * 3
    assert "SynthTalk_11_m6_TA_sentence21_condition_SynthTalk_01_m1_TA.npy" in files
    assert "SynthTalk_11_m6_TA_sentence21_condition_average.npy" in files
    gt = np.load(Layout(tiny_corpus).vertices("SynthTalk_11_m6_TA_sentence21"))[::2]
    pred = np.load(out / "SynthTalk_11_m6_TA_sentence21_condition_average.npy")
    assert pred.shape == gt.shape and pred.dtype == np.float32


def test_evaluate_reports_baselines_and_methods(tiny_corpus, tiny_actor_run, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["test", *cfg_args(tiny_corpus, tiny_actor_run), "--styles", "both", "--out", str(results)]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", *cfg_args(tiny_corpus, tiny_actor_run), "--results", f"tiny={results}",
                 "--out", str(out)]) == 0
    rows = {r["method"]: r for r in json.loads((out / "metrics.json").read_text())["rows"]}
    assert set(rows) == {"static template", "ground truth", "tiny", "tiny (average style)"}
    gt, tmpl = rows["ground truth"], rows["static template"]
    assert gt["lve"] == 0 and gt["mve_mm"] == 0 and gt["fdd"] == 0 and gt["closure_rate"] == 1.0
    assert gt["mtm_ms"] == 0 and gt["jitter"] == pytest.approx(1.0)
    assert tmpl["lve"] > 0 and tmpl["fdd"] > 0 and tmpl["jitter"] == 0   # a static face: no upper-face motion
    assert rows["tiny"]["sequences"] == 3 * 2 and rows["tiny (average style)"]["sequences"] == 3
    assert (out / "metrics.csv").read_text().startswith("method,sequences,lve")
    assert "| static template |" in capsys.readouterr().out


def test_evaluate_rejects_a_folder_without_results(tiny_corpus, tiny_actor_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", *cfg_args(tiny_corpus, tiny_actor_run), "--results", f"x={tmp_path / 'empty'}"]) == 2
    assert "no <clip>_condition_<style>.npy" in capsys.readouterr().err
    assert main(["evaluate", *cfg_args(tiny_corpus, tiny_actor_run), "--results", "no-equals-sign"]) == 2


def test_animate_writes_npy_video_and_obj_sequence(tiny_corpus, tiny_actor_run, tmp_path):
    wav = Layout(tiny_corpus).wav("SynthTalk_11_m6_TA_sentence21")
    ckpt = tiny_actor_run / "actor" / "best.pt"
    outs = [tmp_path / "a.npy", tmp_path / "a.mp4", tmp_path / "objs"]
    args = ["animate", str(wav), "--checkpoint", str(ckpt), "--style", "SynthTalk_02_f1_TA", "render.size=64"]
    assert main(args + [x for o in outs for x in ("--out", str(o))]) == 0
    verts = np.load(outs[0])
    n_frames = round(len(np.load(Layout(tiny_corpus).vertices("SynthTalk_11_m6_TA_sentence21"))) / 2)
    assert abs(len(verts) - n_frames) <= 1 and verts.shape[1] % 3 == 0
    assert outs[1].stat().st_size > 1000
    objs = sorted(outs[2].glob("*.obj"))
    assert len(objs) == len(verts)
    first = objs[0].read_text().splitlines()
    assert sum(line.startswith("v ") for line in first) == verts.shape[1] // 3
    assert any(line.startswith("f ") for line in first)


def test_animate_sixty_seconds_of_speech(tiny_corpus, tiny_actor_run, tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(60 * 16000) / 16000
    audio = (0.1 * rng.standard_normal(len(t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    wav = tmp_path / "minute.wav"
    write_wav(wav, audio)
    out = tmp_path / "minute.npy"
    assert main(["animate", str(wav), "--checkpoint", str(tiny_actor_run / "actor" / "best.pt"),
                 "--out", str(out)]) == 0
    verts = np.load(out)
    assert len(verts) == 1800 and np.isfinite(verts).all()


@pytest.mark.parametrize("case", ["style", "suffix", "checkpoint", "short", "corrupt"])
def test_animate_bad_input_is_one_line_error(case, tiny_corpus, tiny_actor_run, tmp_path, capsys):
    wav = str(Layout(tiny_corpus).wav("SynthTalk_11_m6_TA_sentence21"))
    ckpt, style, out = str(tiny_actor_run / "actor" / "best.pt"), "average", str(tmp_path / "x.npy")
    if case == "style":
        style = "Nobody"
    elif case == "suffix":
        out = str(tmp_path / "x.gif")
    elif case == "checkpoint":
        ckpt = str(tmp_path / "missing.pt")
    elif case == "short":
        wav = str(tmp_path / "short.wav")
        write_wav(wav, np.zeros(400, np.float32))
    else:
        wav = str(tmp_path / "corrupt.wav")
        Path(wav).write_bytes(b"RIFF0000WAVEjunk")
    assert main(["animate", wav, "--checkpoint", ckpt, "--style", style, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facerl: error:") and err.count("\n") == 1
    assert not Path(out).exists()


def test_windowed_audio_encoding_matches_one_pass():
    """Long speech is encoded in windows with context; with a local (conv-only) encoder that is exact."""
    torch.manual_seed(0)
    actor = Actor(ActorConfig(width=32, audio=AudioEncoderConfig(width=16, layers=0, n_mels=40)), 10, 2).eval()
    audio = torch.randn(16000 * 5)
    with torch.no_grad():
        whole = actor.encode_audio(audio[None], torch.ones(1, len(audio), dtype=torch.bool), 150)
        windowed = long_audio_features(actor, audio, 150, window_s=1.0, context_s=0.5)
    assert windowed.shape == whole.shape
    assert (windowed - whole).abs().max() < 1e-4


def test_evaluate_refuses_an_incomplete_results_folder(tiny_corpus, tiny_actor_run, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["test", *cfg_args(tiny_corpus, tiny_actor_run), "--splits", "test", "--out", str(results)]) == 0
    next(results.glob("*.npy")).unlink()  # as if `facerl test` had been interrupted
    assert main(["evaluate", *cfg_args(tiny_corpus, tiny_actor_run), "--results", f"x={results}"]) == 2
    assert "lack some of the conditions" in capsys.readouterr().err
    # a rerun with other styles replaces each clip's files whole: no stale conditions survive
    assert main(["test", *cfg_args(tiny_corpus, tiny_actor_run), "--splits", "test", "--styles", "average",
                 "--out", str(results)]) == 0
    assert {p.stem.split("_condition_")[1] for p in results.glob("*.npy")} == {"average"}


def test_bad_config_values_are_one_line_errors(tiny_corpus, tiny_actor_run, tmp_path, capsys):
    for bad in ("trainer.epochs=ten", "trainer.batch_size=2.5", "model.heads=3"):
        assert main(["train", *tiny_train_overrides(tiny_corpus, tmp_path), bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("facerl: error:") and err.count("\n") == 1


def test_resume_with_another_model_config_is_refused(tiny_corpus, tiny_actor_run, capsys):
    assert main(["train", *cfg_args(tiny_corpus, tiny_actor_run), "trainer.epochs=3", "model.width=48"]) == 2
    assert "another model config" in capsys.readouterr().err
