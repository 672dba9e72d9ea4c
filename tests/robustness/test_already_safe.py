"""Robustness that already holds, locked in: hostile files never run code, training survives kill -9 and
SIGTERM, runs are reproducible, and concurrent `facerl test` runs share an output folder safely.

Every error case asserts the CLI contract: exit 2, exactly one ``facerl: error:`` line on stderr, no
traceback, and the file system left whole (nothing lost, nothing half-written, no hidden ``*.partial*``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facerl.cli import main
from facerl.data.layout import Layout
from facerl.models.checkpoint import ACTOR_KIND, load_actor
from facerl.train.common import load_checkpoint
from tests.conftest import tiny_train_overrides

TIMEOUT_S = 120  # upper bound for any one subprocess; the tests themselves take seconds


# ---------------------------------------------------------------- helpers

def assert_clean_error(rc: int, err: str, pattern: str | None = None) -> None:
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("facerl: error:"), lines[0]
    if pattern is not None:
        assert pattern in lines[0], lines[0]


def partials(root: Path) -> list[Path]:
    """Hidden temp files of atomic writes (``.<stem>.<pid>.partial<suffix>``) or OBJ folders left behind."""
    return sorted(p for p in root.rglob("*") if ".partial" in p.name)


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class _Touch:
    """Unpickling this calls ``os.system('touch <target>')``: the classic pickle code-execution payload."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.target))}",)


class _Exec:
    """Unpickling this calls ``builtins.exec(...)`` on Python source that creates ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return exec, (f"import pathlib; pathlib.Path({str(self.target)!r}).touch()",)


PAYLOADS = {"os.system": _Touch, "exec": _Exec}


def evil_pickle_bytes(payload: str, target: Path, wrap=None) -> bytes:
    evil = PAYLOADS[payload](target)
    return pickle.dumps(wrap(evil) if wrap else evil, protocol=2)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "facerl.cli", *args]


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = TIMEOUT_S) -> None:
    """Poll ``predicate`` every few ms; fail early if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def stderr_lines(text: str) -> list[str]:
    """Lines of a captured stderr with tqdm's carriage-return redraws split apart."""
    return [s.strip() for s in text.replace("\r", "\n").splitlines() if s.strip()]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


def tensors_of(obj) -> list[torch.Tensor]:
    """Every tensor in a nested container, in a fixed order (optimizer state dicts)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj, key=str) for t in tensors_of(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in tensors_of(v)]
    return []


@pytest.fixture
def corpus_copy(tiny_corpus, tmp_path) -> Path:
    copy = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, copy)
    return copy


# ---------------------------------------------------------------- 1. hostile dataset pickles

def test_the_payloads_really_run_code_when_unpickled_naively(tmp_path):
    """Control: without facerl's safe loaders these files DO run code, so the tests below mean something."""
    for payload, make in PAYLOADS.items():
        target = tmp_path / f"control_{payload.replace('.', '_')}"
        pickle.loads(evil_pickle_bytes(payload, target))
        assert target.exists(), payload
        ckpt = tmp_path / f"{payload}.pt"
        torch.save({"kind": ACTOR_KIND, "model": make(target.with_suffix(".torch"))}, ckpt)
        torch.load(ckpt, weights_only=False)
        assert target.with_suffix(".torch").exists(), payload


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_malicious_templates_pkl_never_runs_code(corpus_copy, tmp_path, capsys, payload):
    pwned = tmp_path / "pwned"
    (corpus_copy / "templates.pkl").write_bytes(evil_pickle_bytes(payload, pwned))
    before = snapshot(corpus_copy)

    rc = main(["data", "info", str(corpus_copy)])
    assert_clean_error(rc, capsys.readouterr().err, "templates.pkl")
    assert not pwned.exists()

    root = tmp_path / "work"
    rc = main(["train", *tiny_train_overrides(corpus_copy, root)])
    assert_clean_error(rc, capsys.readouterr().err, "templates.pkl")
    assert not pwned.exists()
    assert not (root / "runs/t/actor/last.pt").exists() and not (root / "runs/t/actor/best.pt").exists()
    assert snapshot(corpus_copy) == before and not partials(tmp_path)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_malicious_regions_pkl_never_runs_code(corpus_copy, tmp_path, capsys, payload):
    pwned = tmp_path / "pwned"
    # a dict like the real one, the payload one value deep
    (corpus_copy / "regions.pkl").write_bytes(evil_pickle_bytes(payload, pwned, wrap=lambda e: {"lips": e}))
    before = snapshot(corpus_copy)

    root = tmp_path / "work"
    rc = main(["train", *tiny_train_overrides(corpus_copy, root)])
    assert_clean_error(rc, capsys.readouterr().err, "regions.pkl")
    assert not pwned.exists()
    assert not (root / "runs/t/actor/last.pt").exists() and not (root / "runs/t/actor/best.pt").exists()
    assert snapshot(corpus_copy) == before and not partials(tmp_path)


# ---------------------------------------------------------------- 2. hostile checkpoints

def _write_bad_checkpoint(path: Path, fmt: str, payload: str, target: Path) -> None:
    evil = PAYLOADS[payload](target)
    content = {"kind": ACTOR_KIND, "model": evil, "meta": {}, "config": {}}
    if fmt == "zip":
        torch.save(content, path)
    elif fmt == "legacy":
        torch.save(content, path, _use_new_zipfile_serialization=False)
    else:  # a bare pickle named .pt
        path.write_bytes(pickle.dumps(content, protocol=2))


@pytest.mark.parametrize("fmt", ["zip", "legacy", "raw-pickle"])
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_malicious_checkpoint_never_runs_code(tiny_corpus, tmp_path, capsys, fmt, payload):
    pwned = tmp_path / "pwned"
    bad = tmp_path / "bad.pt"
    _write_bad_checkpoint(bad, fmt, payload, pwned)
    bad_bytes = bad.read_bytes()
    wav = Layout(tiny_corpus).wav(Layout(tiny_corpus).clips()[0])

    out_npy = tmp_path / "x.npy"
    rc = main(["animate", str(wav), "--checkpoint", str(bad), "--out", str(out_npy), "--device", "cpu"])
    assert_clean_error(rc, capsys.readouterr().err, "bad.pt")
    assert not pwned.exists() and not out_npy.exists()

    results = tmp_path / "results"
    rc = main(["test", "--checkpoint", str(bad), "--out", str(results), "--device", "cpu",
               *tiny_train_overrides(tiny_corpus, tmp_path / "work")])
    assert_clean_error(rc, capsys.readouterr().err, "bad.pt")
    assert not pwned.exists()
    assert not results.exists() or not any(results.iterdir())
    assert bad.read_bytes() == bad_bytes and not partials(tmp_path)


# ---------------------------------------------------------------- 3. kill -9 mid-epoch, then resume

def test_kill9_mid_epoch_then_resume_is_bit_identical(tiny_corpus, tmp_path):
    epochs = 4
    # batch_size=1: 6 optimiser steps per epoch, so the kill lands well inside epoch 2
    extra = (f"trainer.epochs={epochs}", "trainer.batch_size=1", "trainer.max_minutes=1000")
    ref_root, run_root = tmp_path / "ref", tmp_path / "killed"

    # the uninterrupted reference runs in-process (same library, same thread count: bit-identical)
    assert main(["train", *tiny_train_overrides(tiny_corpus, ref_root, *extra)]) == 0

    last = run_root / "runs/t/actor/last.pt"
    cmd = cli("train", *tiny_train_overrides(tiny_corpus, run_root, *extra))
    with open(tmp_path / "killed.out", "w") as out, open(tmp_path / "killed.err", "w") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=err)
        try:
            wait_for(last.exists, proc, "the first epoch's last.pt")   # os.replace: it appears whole
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL
    interrupted = load_checkpoint(last, ACTOR_KIND)
    assert 1 <= interrupted["epoch"] < epochs and not interrupted["finished"]   # really killed mid-run
    # The kill comes within milliseconds of epoch 1's checkpoint, i.e. inside epoch 2's training, so there is
    # normally no temp file. Only a kill inside torch.save (a badly delayed poll) could leave one - SIGKILL
    # cannot be cleaned up after - and then it must be a hidden temp file beside a whole last.pt.
    left_by_kill = set(partials(run_root))
    assert all(p.name.startswith(".") for p in left_by_kill), left_by_kill

    resumed = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {last} at epoch {interrupted['epoch'] + 1}" in resumed.stdout

    a = load_checkpoint(ref_root / "runs/t/actor/last.pt", ACTOR_KIND)
    b = load_checkpoint(last, ACTOR_KIND)
    assert a["epoch"] == b["epoch"] == epochs and a["step"] == b["step"] == 6 * epochs and b["finished"]
    assert_same_weights(a["model"], b["model"])
    ta, tb = tensors_of(a["optimizer"]), tensors_of(b["optimizer"])
    assert len(ta) == len(tb) and all(torch.equal(x, y) for x, y in zip(ta, tb))
    strip = [{k: v for k, v in h.items() if k != "time_s"} for h in a["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "time_s"} for h in b["history"]]
    assert a["best"] == b["best"]
    assert_same_weights(load_checkpoint(ref_root / "runs/t/actor/best.pt", ACTOR_KIND)["model"],
                        load_checkpoint(run_root / "runs/t/actor/best.pt", ACTOR_KIND)["model"])
    assert set(partials(run_root)) <= left_by_kill and not partials(ref_root)   # resuming leaves none


# ---------------------------------------------------------------- 4. reproducibility

def test_same_seed_same_weights_other_seed_other_weights(tiny_corpus, tmp_path, capsys):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        rc = main(["train", *tiny_train_overrides(tiny_corpus, tmp_path / name, f"trainer.seed={seed}")])
        assert rc == 0, capsys.readouterr().err
        runs[name] = load_checkpoint(tmp_path / name / "runs/t/actor/last.pt", ACTOR_KIND)
    assert_same_weights(runs["a"]["model"], runs["b"]["model"])
    assert runs["a"]["metrics"]["val_lve"] == runs["b"]["metrics"]["val_lve"]
    assert runs["a"]["model"].keys() == runs["c"]["model"].keys()
    differ = [k for k in runs["a"]["model"] if not torch.equal(runs["a"]["model"][k], runs["c"]["model"][k])]
    assert differ, "trainer.seed=1 trained exactly the same weights as trainer.seed=0"
    assert not partials(tmp_path)


# ---------------------------------------------------------------- 5. SIGTERM mid-training

def test_sigterm_mid_training_exits_130_and_leaves_loadable_checkpoints(tiny_corpus, tmp_path):
    epochs = 200  # never reached: SIGTERM comes right after the first epoch
    root = tmp_path / "work"
    actor_dir = root / "runs/t/actor"
    cmd = cli("train", *tiny_train_overrides(tiny_corpus, root, f"trainer.epochs={epochs}",
                                             "trainer.max_minutes=1000"))
    with open(tmp_path / "err", "w+") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for((actor_dir / "last.pt").exists, proc, "the first epoch's last.pt")
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read()
    assert rc == 130, stderr[-3000:]
    lines = stderr_lines(stderr)
    assert "Traceback" not in stderr and lines[-1] == "facerl: interrupted", stderr[-3000:]
    assert [line for line in lines if line.startswith("facerl:")] == ["facerl: interrupted"]
    assert not partials(root), partials(root)

    last = load_checkpoint(actor_dir / "last.pt", ACTOR_KIND)
    assert 1 <= last["epoch"] < epochs and not last["finished"]
    load_actor(actor_dir / "last.pt")
    load_actor(actor_dir / "best.pt")

    # and the run resumes from it (one more epoch, in-process)
    assert main(["train", *tiny_train_overrides(tiny_corpus, root, f"trainer.epochs={last['epoch'] + 1}")]) == 0
    after = load_checkpoint(actor_dir / "last.pt", ACTOR_KIND)
    assert after["epoch"] == last["epoch"] + 1 and after["finished"]
    assert not partials(root)


# ---------------------------------------------------------------- 6. concurrent `facerl test`

def _test_args(tiny_corpus: Path, tiny_actor_run: Path, tmp_path: Path) -> list[str]:
    return ["test", "--checkpoint", str(tiny_actor_run / "actor" / "best.pt"), "--splits", "val", "test",
            "--styles", "both", "--device", "cpu", *tiny_train_overrides(tiny_corpus, tmp_path / "work")]


def test_concurrent_test_runs_into_one_folder(tiny_corpus, tiny_actor_run, tmp_path, capsys):
    """Two `facerl test` runs started together into one new folder: both succeed, every file is whole."""
    args = _test_args(tiny_corpus, tiny_actor_run, tmp_path)

    single = tmp_path / "single"
    assert main([*args, "--out", str(single)]) == 0, capsys.readouterr().err
    expected = {p.name: np.load(p) for p in single.glob("*.npy")}
    assert len(expected) == 6 * 3   # 6 held-out clips x (2 training styles + average)

    shared = tmp_path / "shared"
    procs = [subprocess.Popen(cli(*args, "--out", str(shared)), cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    assert not partials(shared), partials(shared)
    got = sorted(p.name for p in shared.iterdir())
    assert got == sorted(expected)
    for name, array in expected.items():
        loaded = np.load(shared / name, allow_pickle=False)
        assert loaded.dtype == array.dtype and np.array_equal(loaded, array), name


def test_test_rerun_while_another_run_replaces_the_same_results(tiny_corpus, tiny_actor_run, tmp_path, capsys,
                                                                 monkeypatch):
    """Deterministic form of two concurrent reruns into one populated folder: the other run deletes a
    clip's stale results between this run's listing of them and its unlink of them."""
    args = _test_args(tiny_corpus, tiny_actor_run, tmp_path)
    out = tmp_path / "shared"
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    expected = {p.name: np.load(p) for p in out.glob("*.npy")}
    capsys.readouterr()

    real_glob = Path.glob

    def glob_then_other_run_unlinks(self, pattern, *a, **k):
        found = list(real_glob(self, pattern, *a, **k))
        if pattern.endswith("_condition_*.npy"):
            for path in found:  # the concurrent run got there first
                path.unlink(missing_ok=True)
        return iter(found)

    monkeypatch.setattr(Path, "glob", glob_then_other_run_unlinks)
    rc = main([*args, "--out", str(out)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 0, err
    assert not partials(out) and sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, array in expected.items():
        assert np.array_equal(np.load(out / name), array), name
