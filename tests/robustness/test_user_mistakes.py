"""The robustness suite: every case of the hardening review (issue 11) that used to go wrong.

Each test does what a user would do through the real CLI, on tiny real files, and asserts the exit code,
a single ``facerl: error:`` line without a traceback, and the file system afterwards: nothing of the
user's lost, nothing half-written, no temp files left.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facerl.audio import write_wav
from facerl.data.layout import Layout
from facerl.utils.io import atomic_path, save_npy
from tests.conftest import tiny_train_overrides
from tests.robustness.helpers import assert_one_line_error, partials, run, tree


# ---- helpers -------------------------------------------------------------------------------------------------
def linked_copy(src: Path, dst: Path) -> Path:
    """A copy of a dataset made of hard links (fast, no disk); change files only via :func:`rewrite`."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def rewrite(path: Path, data: bytes) -> None:
    """Replace a hard-linked file without touching the original it shares its bytes with."""
    path.unlink()
    path.write_bytes(data)


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def speech_wav(path: Path, seconds: float = 1.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    write_wav(path, 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)))
    return path


@pytest.fixture()
def actor_ckpt(tiny_actor_run) -> Path:
    return tiny_actor_run / "actor" / "best.pt"


# ---- 1. data loss --------------------------------------------------------------------------------------------
def test_pipeline_never_deletes_a_dataset_it_did_not_build(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "vertices_npy").mkdir(parents=True)
    (mine / "README.txt").write_text("keep")
    before = tree(mine)
    rc, _, err = run(["pipeline", "--tiny", f"data.out={mine}", f"paths.root={tmp_path}"], capsys)
    assert_one_line_error(rc, err, "did not make", "data.out=")
    assert tree(mine) == before
    assert not (tmp_path / "runs").exists()


def test_pipeline_leaves_a_converted_vocaset_folder_alone(tmp_path, capsys):
    from tests.data.test_vocaset import make_raw

    raw = tmp_path / "raw"
    raw.mkdir()
    make_raw(raw, np.random.default_rng(0))
    voca = tmp_path / "voca"
    assert run(["data", "convert-vocaset", raw, "--out", voca], capsys)[0] == 0
    before = tree(voca)
    rc, _, err = run(["pipeline", "--tiny", f"data.out={voca}", f"paths.root={tmp_path}"], capsys)
    assert_one_line_error(rc, err, "did not make")
    rc, _, err = run(["pipeline", "--tiny", "--rebuild", f"data.out={voca}", f"paths.root={tmp_path}"], capsys)
    assert_one_line_error(rc, err)
    assert tree(voca) == before


def test_overwrite_refuses_folders_facerl_did_not_make_or_that_hold_foreign_files(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "vertices_npy").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep")
    before = tree(mine)
    rc, _, err = run(["data", "build", "--tiny", "--out", mine, "--overwrite"], capsys)
    assert_one_line_error(rc, err, "not created by facerl")
    assert tree(mine) == before

    ours = Layout(tmp_path / "ours")
    ours.prepare("facerl data build")
    (ours.root / "my_notes.txt").write_text("keep")
    before = tree(ours.root)
    rc, _, err = run(["data", "build", "--tiny", "--out", ours.root, "--overwrite"], capsys)
    assert_one_line_error(rc, err, "my_notes.txt")
    assert tree(ours.root) == before


def test_overwrite_replaces_facerl_datasets_including_those_made_before_markers(tmp_path):
    from facerl.utils.owned import MARKER

    ours = Layout(tmp_path / "ours")
    ours.prepare("facerl data convert-vocaset")
    save_npy(ours.vertices("A_sentence01"), np.zeros((2, 3), np.float32))
    ours.prepare("facerl data build", overwrite=True)
    assert not ours.vertices("A_sentence01").exists() and ours.created_by == "facerl data build"

    legacy = Layout(tmp_path / "legacy")  # an older facerl corpus: corpus.json, no marker
    (legacy.root / "wav").mkdir(parents=True)
    legacy.meta_path.write_text("{}")
    legacy.prepare("facerl data build", overwrite=True)
    assert not legacy.meta_path.exists() and (legacy.root / MARKER).is_file()


def test_a_symlinked_dataset_root_is_never_deleted(tmp_path, capsys):
    target = Layout(tmp_path / "real")
    target.prepare("facerl data build")
    (tmp_path / "link").symlink_to(target.root)
    rc, _, err = run(["data", "build", "--tiny", "--out", tmp_path / "link", "--overwrite"], capsys)
    assert_one_line_error(rc, err, "symbolic link")
    assert target.root.is_dir() and (tmp_path / "link").is_symlink()


# ---- 2. symlink clobber --------------------------------------------------------------------------------------
def test_temp_files_never_open_a_planted_symlink(tiny_corpus, actor_ckpt, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # the old predictable temp name of this very process, planted as a link to the victim
    (out_dir / f".x.{os.getpid()}.partial.npy").symlink_to(victim)
    (out_dir / "y.npy").symlink_to(victim)  # an output that is itself a link: replaced, not written through
    wav = speech_wav(tmp_path / "s.wav")
    rc, _, err = run(["animate", wav, "--checkpoint", actor_ckpt, "--out", out_dir / "x.npy",
                      "--out", out_dir / "y.npy", "--device", "cpu"], capsys)
    assert rc == 0, err
    assert victim.read_text() == "precious"
    assert np.load(out_dir / "x.npy").ndim == 2 and not (out_dir / "y.npy").is_symlink()


def test_temp_names_are_exclusive_and_unpredictable(tmp_path):
    with atomic_path(tmp_path / "a.npy") as one, atomic_path(tmp_path / "a.npy") as two:
        assert one != two and one.is_file() and not one.is_symlink()
        assert one.name.startswith(f".a.{os.getpid()}@") and one.name.endswith(".partial.npy")
        one.write_bytes(b"1")
        two.write_bytes(b"2")
    assert (tmp_path / "a.npy").read_bytes() == b"1" and not partials(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.npy").stat().st_mode & 0o777 == 0o666 & ~umask   # not mkstemp's private 0600


# ---- 3. run names ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escaped", "", "a/b", "/abs", ".hidden", ".."])
def test_run_names_cannot_escape_runs(tiny_corpus, tmp_path, capsys, name):
    root = tmp_path / "proj"
    rc, _, err = run(["train", *tiny_train_overrides(tiny_corpus, root), f"run_name={name}"], capsys)
    assert_one_line_error(rc, err, "run_name must be a plain folder name")
    assert not any(tmp_path.iterdir())  # nothing written anywhere


# ---- 4. resume with changed settings -----------------------------------------------------------------------
def test_resume_refuses_changed_settings_unless_accepted_and_then_applies_and_records_them(tiny_corpus, tiny_actor_run,
                                                                                          tmp_path, capsys):
    last = tmp_path / "runs" / "t" / "actor" / "last.pt"
    last.parent.mkdir(parents=True)
    shutil.copyfile(tiny_actor_run / "actor" / "last.pt", last)  # a finished 2-epoch run (lr 1e-3, seed 0)
    before = last.read_bytes()
    args = tiny_train_overrides(tiny_corpus, tmp_path)

    rc, _, err = run(["train", *args, "trainer.epochs=3", "trainer.lr=0.5", "trainer.seed=7"], capsys)
    assert_one_line_error(rc, err, "trainer.lr=0.001 -> 0.5", "trainer.seed=0 -> 7", "trainer.accept_changes=true")
    assert last.read_bytes() == before

    rc, out, err = run(["train", *args, "trainer.epochs=3", "trainer.lr=0.5", "trainer.accept_changes=true"], capsys)
    assert rc == 0, err
    assert "changed settings" in out and "resuming" in out
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["config"]["trainer"]["lr"] == 0.5
    assert all(group["lr"] == 0.5 for group in ckpt["optimizer"]["param_groups"])
    assert ckpt["config_changes"] == [{"epoch": 3, "changes": {"trainer.lr": [0.001, 0.5]}}]

    # the same settings as recorded (and only a longer or equal budget) is a plain resume: no refusal
    rc, out, err = run(["train", *args, "trainer.epochs=3", "trainer.lr=0.5"], capsys)
    assert rc == 0, err
    assert torch.load(last, weights_only=True)["epoch"] == 3


# ---- 5. damaged files give one line, not a traceback ----------------------------------------------------------
def test_damaged_checkpoints(actor_ckpt, tmp_path, capsys):
    wav = speech_wav(tmp_path / "s.wav")
    out = tmp_path / "o.npy"
    good = torch.load(actor_ckpt, weights_only=True)
    assert len(good.pop("checksum")) == 64  # edited copies below are saved without one, as older facerl did

    def animate_with(ckpt_path: Path, *patterns: str) -> None:
        rc, _, err = run(["animate", wav, "--checkpoint", ckpt_path, "--out", out, "--device", "cpu"], capsys)
        line = assert_one_line_error(rc, err, str(ckpt_path), *patterns)
        assert "weights_only" not in line and "facerl facerl" not in line
        assert not out.exists() and not partials(tmp_path)

    (tmp_path / "empty.pt").write_bytes(b"")
    animate_with(tmp_path / "empty.pt", "empty")
    (tmp_path / "half.pt").write_bytes(actor_ckpt.read_bytes()[:5000])
    animate_with(tmp_path / "half.pt", "damaged")
    for key in ("model", "config"):
        torch.save({k: v for k, v in good.items() if k != key}, tmp_path / f"no_{key}.pt")
        animate_with(tmp_path / f"no_{key}.pt", f"no {key} entry")
    wrong = dict(good, model=dict(good["model"]))
    name = next(k for k, v in wrong["model"].items() if v.ndim == 2)
    wrong["model"][name] = torch.zeros(3, 3)
    torch.save(wrong, tmp_path / "shape.pt")
    animate_with(tmp_path / "shape.pt", "does not fit", name)
    torch.save({"kind": "facerl-reward", "config": {}}, tmp_path / "reward.pt")
    animate_with(tmp_path / "reward.pt", "not a facerl actor checkpoint")
    flipped = bytearray(actor_ckpt.read_bytes())   # one flipped byte inside a tensor: PyTorch loads it silently
    name, tensor = max(good["model"].items(), key=lambda kv: kv[1].numel())
    at = bytes(flipped).find(tensor.numpy().tobytes()[:64])
    assert at > 0, name
    flipped[at + 8] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    animate_with(tmp_path / "flipped.pt", "corrupted", "checksum")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"kind": "facerl-actor", "x": Evil()}, tmp_path / "evil.pt")
    animate_with(tmp_path / "evil.pt", "refusing to load")
    assert not (tmp_path / "pwned").exists()


def test_resume_from_an_empty_last_pt(tiny_corpus, tmp_path, capsys):
    last = tmp_path / "runs" / "t" / "actor" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    rc, _, err = run(["train", *tiny_train_overrides(tiny_corpus, tmp_path)], capsys)
    assert_one_line_error(rc, err, str(last), "empty")


def test_damaged_dataset_files(tiny_corpus, tmp_path, capsys):
    root = linked_copy(tiny_corpus, tmp_path / "data")
    layout = Layout(root)
    train_args = tiny_train_overrides(root, tmp_path)
    clip = layout.clips()[0]
    before = tree(root)

    def expect(args: list[str], *patterns: str) -> None:
        rc, _, err = run(args, capsys)
        assert_one_line_error(rc, err, *patterns)
        assert not (tmp_path / "runs" / "t" / "actor" / "last.pt").exists()

    vertices = np.load(layout.vertices(clip))
    rewrite(layout.vertices(clip), b"")                                       # an empty .npy
    expect(["data", "info", root], str(layout.vertices(clip)), "empty")
    rewrite(layout.vertices(clip), npy_bytes(np.where(np.arange(vertices.shape[1]) == 5, np.nan, vertices)))
    expect(["train", *train_args], str(layout.vertices(clip)), "NaN")        # NaN vertices (was: SVD error)
    rewrite(layout.vertices(clip), npy_bytes(vertices))

    faces = layout.faces_path.read_bytes()
    rewrite(layout.faces_path, faces[:100])                                  # a damaged faces.npy
    expect(["train", *train_args], "faces.npy")
    rewrite(layout.faces_path, faces)

    regions = layout.regions_path.read_bytes()
    rewrite(layout.regions_path, pickle.dumps([1, 2, 3]))                    # regions.pkl holding a list
    expect(["train", *train_args], "regions.pkl", "must hold a dict")
    rewrite(layout.regions_path, regions)

    templates = layout.templates_path.read_bytes()
    # a pickle whose allowed global (numpy.dtype) raises TypeError inside the restricted unpickler
    rewrite(layout.templates_path, b"cnumpy\ndtype\n(I1\nI2\nI3\nI4\nI5\ntR.")
    expect(["data", "info", root], "templates.pkl")
    rewrite(layout.templates_path, templates)
    assert tree(root) == before


# ---- 6. silent wrong results ----------------------------------------------------------------------------------
def test_truncated_wav_is_refused(actor_ckpt, tmp_path, capsys):
    wav = speech_wav(tmp_path / "s.wav", seconds=3.0)
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 3])                                  # header still promises 3 s
    rc, _, err = run(["animate", wav, "--checkpoint", actor_ckpt, "--out", tmp_path / "o.npy"], capsys)
    assert_one_line_error(rc, err, "truncated")
    assert not (tmp_path / "o.npy").exists()


def test_a_typo_in_the_first_phone_row_is_an_error_not_a_header(tmp_path, capsys):
    wav = speech_wav(tmp_path / "s.wav")
    (tmp_path / "p.csv").write_text("O.1,0.5,HH\n0.5,0.9,AH\n")
    rc, _, err = run(["data", "from-speech", wav, tmp_path / "p.csv", "--out", tmp_path / "o"], capsys)
    assert_one_line_error(rc, err, "line 1", "O.1")
    assert not (tmp_path / "o").exists()
    (tmp_path / "h.csv").write_text("start,end,phone\n0.1,0.5,HH\n0.5,0.9,AH\n")  # a real header still works
    assert run(["data", "from-speech", wav, tmp_path / "h.csv", "--out", tmp_path / "o"], capsys)[0] == 0


def test_nan_predictions_are_reported_not_scored(tiny_corpus, tiny_actor_run, tmp_path, capsys):
    args = tiny_train_overrides(tiny_corpus, tiny_actor_run.parent.parent)
    results = tmp_path / "results"
    assert run(["test", *args, "--splits", "test", "--out", results], capsys)[0] == 0
    victim = min(results.glob("*.npy"))
    pred = np.load(victim)
    pred[3] = np.nan
    np.save(victim, pred)
    rc, _, err = run(["evaluate", *args, "--results", f"x={results}", "--out", tmp_path / "ev", "--no-judge"],
                     capsys)
    assert_one_line_error(rc, err, victim.name, "NaN")
    assert not (tmp_path / "ev").exists()


def test_nan_template_is_refused(actor_ckpt, tmp_path, capsys):
    meta = torch.load(actor_ckpt, weights_only=True)["meta"]
    template = meta["template"].numpy().reshape(-1, 3).copy()
    template[0, 0] = np.nan
    np.save(tmp_path / "t.npy", template)
    rc, _, err = run(["animate", speech_wav(tmp_path / "s.wav"), "--checkpoint", actor_ckpt, "--template",
                      tmp_path / "t.npy", "--out", tmp_path / "o.npy"], capsys)
    assert_one_line_error(rc, err, "NaN")
    assert not (tmp_path / "o.npy").exists()


# ---- 7. messages -----------------------------------------------------------------------------------------------
def test_mp4_into_an_impossible_folder_is_one_line_before_any_work(actor_ckpt, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    rc, out, err = run(["animate", speech_wav(tmp_path / "s.wav"), "--checkpoint", actor_ckpt, "--out",
                        tmp_path / "file" / "x.mp4"], capsys)
    line = assert_one_line_error(rc, err, "file")
    assert "Broken pipe" not in err and "ffmpeg" not in err and "wrote" not in out
    assert line.count(":") <= 4


def test_unwritable_run_folder_is_reported_before_loading(tiny_corpus, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    rc, _, err = run(["train", *tiny_train_overrides(tiny_corpus, tmp_path / "file")], capsys)
    assert_one_line_error(rc, err, "cannot write into")
    assert "loading train clips" not in err


def test_config_type_messages_use_the_right_article(tiny_corpus, tmp_path, capsys):
    rc, _, err = run(["train", *tiny_train_overrides(tiny_corpus, tmp_path), "trainer.epochs=many"], capsys)
    assert_one_line_error(rc, err, "trainer.epochs must be an int")


# ---- 8. leftovers ------------------------------------------------------------------------------------------------
def test_stale_partials_of_dead_processes_are_removed_on_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".clip.{dead_pid}.k2j3h4.partial.npy"
    stale_dir = tmp_path / f".frames.{dead_pid}.a1b2c3.partial"
    old_style = tmp_path / f".clip.{dead_pid}.partial.npy"
    live = tmp_path / f".clip.{os.getppid()}.zz99.partial.npy"   # the parent is alive: not ours to remove
    other = tmp_path / ".my_hidden_file"
    elsewhere = tmp_path / f".clip.{dead_pid}@0123abcd.q1w2e3.partial.npy"  # another host's: its pid means nothing
    for path in (stale, old_style, live, other, elsewhere):
        path.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "frame_00000.obj").write_text("v 0 0 0\n")
    save_npy(tmp_path / "new.npy", np.zeros(3))
    assert not stale.exists() and not old_style.exists() and not stale_dir.exists()
    assert live.exists() and other.exists() and elsewhere.exists() and (tmp_path / "new.npy").is_file()
    day_old = os.stat(elsewhere).st_mtime - 25 * 3600
    os.utime(elsewhere, (day_old, day_old))                      # ... until nobody has touched it for a day
    save_npy(tmp_path / "newer.npy", np.zeros(3))
    assert not elsewhere.exists() and live.exists()
