"""Supervised training end to end on the tiny corpus (real files, real CLI), resume, and torchrun/DDP."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from facerl.cli import main
from facerl.models.checkpoint import load_actor
from facerl.train.common import load_checkpoint
from tests.conftest import tiny_train_overrides as overrides


def test_training_writes_self_describing_checkpoints(tiny_actor_run):
    last = load_checkpoint(tiny_actor_run / "actor" / "last.pt", "facerl-actor")
    assert {"model", "optimizer", "step", "epoch", "config", "metrics", "meta", "rng", "best"} <= set(last)
    assert last["epoch"] == 2 and last["step"] > 0 and len(last["history"]) == 2
    assert last["metrics"]["val_lve"] > 0 and last["config"]["trainer"]["batch_size"] == 2
    assert (tiny_actor_run / "actor" / "best.pt").is_file()
    assert any((tiny_actor_run / "actor" / "tensorboard").iterdir())
    actor, meta, _ = load_actor(tiny_actor_run / "actor" / "best.pt")
    assert meta.styles == ["SynthTalk_01_m1_TA", "SynthTalk_02_f1_TA"] and not actor.training
    assert meta.faces is not None and meta.faces.shape[1] == 3


def test_training_moves_every_trainable_parameter(tiny_actor_run):
    ckpt = load_checkpoint(tiny_actor_run / "actor" / "last.pt", "facerl-actor")
    from facerl.config import to_dataclass
    from facerl.models.actor import ActorConfig
    from facerl.models.checkpoint import ActorMeta, build_actor

    torch.manual_seed(0)
    fresh = build_actor(to_dataclass(ActorConfig, ckpt["config"]["model"]), ActorMeta(**ckpt["meta"]))
    trained_state = ckpt["model"]
    for name, p in fresh.named_parameters():
        # The policy std is not a supervised parameter. The cross-attention query is dead by design: the
        # alignment mask leaves each frame exactly one audio key, so softmax weights are 1 whatever the
        # query (true of FaceFormer on VOCASET too).
        if name == "log_std" or ".cross_attn.q." in name:
            assert torch.equal(trained_state[name], p.detach()), name
            continue
        assert not torch.equal(trained_state[name], p.detach()), f"{name} did not change"


def test_resume_continues_from_last(tiny_corpus, tmp_path):
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.epochs=1")]) == 0
    first = load_checkpoint(tmp_path / "runs/t/actor/last.pt", "facerl-actor")
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.epochs=2")]) == 0
    second = load_checkpoint(tmp_path / "runs/t/actor/last.pt", "facerl-actor")
    assert second["epoch"] == 2 and second["step"] == 2 * first["step"]
    assert [h["epoch"] for h in second["history"]] == [1, 2]


def test_bad_trainer_config_is_one_line_error(tiny_corpus, tmp_path, capsys):
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.mode=sideways")]) == 2
    assert "trainer.mode must be" in capsys.readouterr().err
    assert main(["train", *overrides(tiny_corpus, tmp_path, "+trainer.bogus=1")]) == 2
    assert "unknown config key" in capsys.readouterr().err


def test_torchrun_ddp_two_processes_on_gloo(tiny_corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "facerl.cli", "train", *overrides(tiny_corpus, tmp_path, "trainer.epochs=1")]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "world 2" in res.stdout and res.stdout.count("epoch   1/1") == 1   # rank 0 alone logs
    ckpt = load_checkpoint(tmp_path / "runs/t/actor/last.pt", "facerl-actor")
    # 6 train clips, batch 2, 2 ranks -> 2 steps per rank (DistributedSampler pads to equal shards)
    assert ckpt["step"] == 2


def test_training_with_a_local_wav2vec2_caches_its_features(tiny_corpus, tmp_path):
    """The real-user path: a (tiny, randomly initialised) wav2vec2 saved locally, frozen, features cached."""
    from tests.models.test_pretrained import tiny_checkpoint

    encoder_dir = tiny_checkpoint(tmp_path / "w2v", "wav2vec2", "group")
    cache = tmp_path / "cache"
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.epochs=1", "model.audio.kind=wav2vec2",
                                     f"model.audio.pretrained={encoder_dir}", f"trainer.cache_dir={cache}")]) == 0
    cached = list(cache.rglob("*.npy"))
    assert len(cached) == 6 + 3          # every train and val clip once
    import shutil

    shutil.rmtree(encoder_dir)  # the checkpoint alone rebuilds the encoder (architecture in meta, weights inside)
    actor, _, _ = load_actor(tmp_path / "runs/t/actor/last.pt")
    assert actor.audio_encoder.frozen and actor.audio_encoder.rate_hz == 50


def test_autoregressive_training_mode_runs(tiny_corpus, tmp_path):
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.epochs=1", "trainer.mode=autoregressive")]) == 0
    assert load_checkpoint(tmp_path / "runs/t/actor/last.pt", "facerl-actor")["step"] == 3
