"""CLI smoke tests and bad-input handling: one clear line on stderr, exit 2, nothing half-written."""

import json
import subprocess
import sys
import wave

import numpy as np
import pytest

from facerl.cli import main
from facerl.data.layout import Layout


def run(args, capsys):
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_error(rc, err, pattern):
    assert rc == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert pattern in lines[0], lines[0]


def write_pcm(path, audio, rate, channels=1):
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def test_help_explains_every_command():
    out = subprocess.run([sys.executable, "-m", "facerl.cli", "--help"], capture_output=True, text=True,
                         check=False).stdout
    for word in ("data", "render", "pipeline", "Hydra"):
        assert word in out
    out = subprocess.run([sys.executable, "-m", "facerl.cli", "data", "build", "--help"], check=False,
                         capture_output=True, text=True).stdout
    assert "--tiny" in out and "--seed" in out


def test_data_build_tiny_and_refuses_to_clobber(tmp_path, capsys):
    out = tmp_path / "c"
    rc, stdout, _ = run(["data", "build", "--tiny", "--out", str(out), "--workers", "1"], capsys)
    assert rc == 0 and "12 clips from 4 speakers" in stdout and "min of audio" in stdout
    rc, _, err = run(["data", "build", "--tiny", "--out", str(out)], capsys)
    assert_clean_error(rc, err, "already exists")
    rc, _, err = run(["data", "build", "--tiny", "--out", str(out), "data.nope=1"], capsys)
    assert_clean_error(rc, err, "bad config override")


def test_render_cli_makes_mp4_and_still(tiny_corpus, tmp_path, capsys):
    layout = Layout(tiny_corpus)
    clip = layout.clips()[0]
    out = tmp_path / "v.mp4"
    rc, _, err = run(["render", str(layout.vertices(clip)), str(layout.vertices(clip)), "--wav",
                      str(layout.wav(clip)), "--out", str(out), "--titles", "gt", "copy", "--still",
                      str(tmp_path / "s.png"), "render.size=96"], capsys)
    assert rc == 0, err
    assert out.stat().st_size > 1000 and (tmp_path / "s.png").exists()


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt"])
def test_bad_wav_files(tiny_corpus, tmp_path, capsys, case):
    wav = tmp_path / "bad.wav"
    if case == "empty":
        wav.write_bytes(b"")
    elif case == "corrupt":
        wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    phones = tmp_path / "p.csv"
    phones.write_text("0,0.5,AA\n")
    rc, _, err = run(["data", "from-speech", str(wav), str(phones), "--out", str(tmp_path / "o")], capsys)
    assert_clean_error(rc, err, {"missing": "not found", "empty": "empty", "corrupt": "cannot read"}[case])
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.npy"))


def test_wrong_rate_is_resampled_and_stereo_downmixed(tmp_path, capsys):
    from facerl.audio import read_wav

    t = np.arange(44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    write_pcm(tmp_path / "s.wav", np.repeat(tone, 2), 44100, channels=2)  # stereo, 44.1 kHz
    audio = read_wav(tmp_path / "s.wav")
    assert audio.ndim == 1 and abs(len(audio) - 16000) <= 1
    phones = tmp_path / "p.csv"
    phones.write_text("0.0,0.3,M\n0.3,0.8,AA1\n0.8,1.0,sil\n")
    rc, _, err = run(["data", "from-speech", str(tmp_path / "s.wav"), str(phones), "--out", str(tmp_path / "o")],
                     capsys)
    assert rc == 0, err
    assert len(np.load(tmp_path / "o" / "vertices_npy" / "External_01_TA_sentence01.npy")) == 60


def test_unknown_phone_symbol(tmp_path, capsys):
    write_pcm(tmp_path / "s.wav", np.zeros(16000), 16000)
    phones = tmp_path / "p.csv"
    phones.write_text("start,end,phone\n0.0,0.5,AA\n0.5,1.0,QQQ\n")
    rc, _, err = run(["data", "from-speech", str(tmp_path / "s.wav"), str(phones), "--out", str(tmp_path / "o")],
                     capsys)
    assert_clean_error(rc, err, "QQQ")
    assert not (tmp_path / "o").exists()


def test_render_rejects_wrong_vertex_count_and_leaves_nothing(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.zeros((5, 300), np.float32))
    out = tmp_path / "v.mp4"
    rc, _, err = run(["render", str(tmp_path / "v.npy"), "--out", str(out)], capsys)
    assert_clean_error(rc, err, "vertices per frame")
    assert list(tmp_path.iterdir()) == [tmp_path / "v.npy"]
    rc, _, err = run(["render", str(tmp_path / "missing.npy"), "--out", str(out)], capsys)
    assert_clean_error(rc, err, "not found")


def test_pipeline_tiny(tmp_path, capsys):
    rc, stdout, err = run(["pipeline", "--tiny", f"paths.root={tmp_path}", "render.size=96"], capsys)
    assert rc == 0, err
    run_dir = tmp_path / "runs" / "tiny"
    assert list(run_dir.glob("*.mp4"))
    assert (run_dir / "mouth_closed_open.png").exists()
    assert (run_dir / "actor" / "best.pt").exists()
    assert len(list((run_dir / "results").glob("*_condition_*.npy"))) == 3 * 3   # 3 test clips x (2 styles + avg)
    table = (run_dir / "compare" / "metrics.md").read_text()
    for row in ("| supervised |", "| perceptual |", "| RL |", "| RL (average style) |", "| static template |"):
        assert row in table and row in stdout
    assert (run_dir / "compare" / "training_curves.png").exists()
    for stage in ("rl", "perceptual"):
        assert (run_dir / stage / "best.pt").exists()
    assert len(list((run_dir / "results_rl").glob("*_condition_*.npy"))) == 3 * 3
    for stage in ("reward", "judge"):
        assert (run_dir / stage / "backbone.pt").exists()
    calibration = json.loads((run_dir / "evaluation" / "reward_test" / "calibration.json").read_text())
    assert calibration["actor"]["checkpoint"].endswith("best.pt") and "judge" in calibration
    assert "offset accuracy" in stdout and "sync (judge)" in stdout
    voices = (run_dir / "evaluation" / "voices" / "metrics.md").read_text()
    assert "| supervised: piper-joe |" in voices and "| RL: eSpeak test speakers (in domain) |" in voices
    assert "opening r" in stdout
    budgets = (run_dir / "budgets.md").read_text()
    assert "| actor | 2 / 2 |" in budgets and "| rl | 2 / 2 | 4 |" in budgets and "YES" not in budgets
    assert "training budgets (steps, not minutes" in stdout
    assert (run_dir / "lipreader" / "lipreader.pt").exists() and "lip-read acc (%)" in table
    assert "lip-read acc (%)" in voices
    pages = list((run_dir / "viewer").glob("*.html"))                    # supervised | RL as GLBs + a viewer page
    assert len(pages) == 1 and len(list((run_dir / "viewer").glob("*.glb"))) == 2 and "browser viewer:" in stdout
    rc, stdout, err = run(["pipeline", "--tiny", f"paths.root={tmp_path}", "render.size=96"], capsys)
    assert rc == 0 and "existing corpus" in stdout and "using the trained actor" in stdout
    assert "using the trained reward model" in stdout and "using the trained judge model" in stdout
    assert "using the fine-tuned rl actor" in stdout and "using the fine-tuned perceptual actor" in stdout
    assert "using the voice sets" in stdout and "using the trained lip-reader" in stdout


def test_nan_wav_and_bad_seeds_and_unknown_config_keys(tmp_path, capsys):
    from scipy.io import wavfile

    wavfile.write(tmp_path / "nan.wav", 16000, np.full(1600, np.nan, np.float32))
    (tmp_path / "p.csv").write_text("0,0.1,AA\n")
    rc, _, err = run(["data", "from-speech", str(tmp_path / "nan.wav"), str(tmp_path / "p.csv"), "--out",
                      str(tmp_path / "o")], capsys)
    assert_clean_error(rc, err, "NaN")
    with pytest.raises(SystemExit):  # argparse: usage + one error line
        main(["data", "build", "--tiny", "--seed", "-1", "--out", str(tmp_path / "c")])
    assert "must be >= 0" in capsys.readouterr().err
    rc, _, err = run(["data", "build", "--tiny", "--out", str(tmp_path / "c"), "data.seed=-1"], capsys)
    assert_clean_error(rc, err, "data.seed")
    rc, _, err = run(["data", "build", "--tiny", "--out", str(tmp_path / "c"), "+data.nope=1"], capsys)
    assert_clean_error(rc, err, "bad data config")
    assert not (tmp_path / "c").exists()  # validated before anything was created
    with pytest.raises(SystemExit):
        main(["data", "from-speech", str(tmp_path / "nan.wav"), str(tmp_path / "p.csv"), "--out",
              str(tmp_path / "o"), "--subject", "../../evil"])


def test_render_checks_outputs_and_config_before_work(tiny_corpus, tmp_path, capsys):
    clip = Layout(tiny_corpus).clips()[0]
    verts = str(Layout(tiny_corpus).vertices(clip))
    (tmp_path / "d.mp4").mkdir()
    (tmp_path / "afile").write_text("x")
    np.save(tmp_path / "faces.npy", np.zeros((4, 3), np.float32))
    cases = [
        (["--out", str(tmp_path / "d.mp4")], "is a directory"),
        (["--out", str(tmp_path / "afile" / "v.mp4")], "is a file"),
        (["--out", str(tmp_path / "v.mp4"), "--still", str(tmp_path / "s.jpg")], "--still must end in .png"),
        (["--out", str(tmp_path / "v.mp4"), "render.size=101"], "render.size"),
        (["--out", str(tmp_path / "v.mp4"), "render.fps=0"], "render.fps"),
        (["--out", str(tmp_path / "v.mp4"), "--faces", str(tmp_path / "faces.npy")], "faces must be"),
        (["--out", str(tmp_path / "v.mp4"), "--still", str(tmp_path / "s.png"), "--still-frame", "100000"],
         "past the last frame"),
    ]
    for extra, message in cases:
        rc, _, err = run(["render", verts, *extra], capsys)
        assert_clean_error(rc, err, message)
    assert not (tmp_path / "v.mp4").exists() and not list(tmp_path.glob(".*partial*"))


def test_info_reads_converted_vocaset_through_the_dataset_config(tmp_path, capsys):
    from tests.data.test_vocaset import SUBJECTS, make_raw

    raw = tmp_path / "raw"
    raw.mkdir()
    make_raw(raw, np.random.default_rng(0))
    out = tmp_path / "voca"
    assert run(["data", "convert-vocaset", str(raw), "--out", str(out)], capsys)[0] == 0
    rc, _, err = run(["data", "convert-vocaset", str(raw), "--out", str(out)], capsys)
    assert_clean_error(rc, err, "--overwrite")
    rc, stdout, err = run(["data", "info", str(out), "dataset=vocaset", f"dataset.train_subjects=[{SUBJECTS[0]}]",
                           "dataset.val_subjects=[]", f"dataset.test_subjects=[{SUBJECTS[1]}]"], capsys)
    assert rc == 0, err
    assert "train:    2 clips" in stdout and "test :    1 clips" in stdout
