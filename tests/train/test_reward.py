"""Reward-model training end to end on the tiny corpus (real CLI, real files), and resume."""

from __future__ import annotations

import torch

from facerl.cli import main
from facerl.train.common import load_checkpoint


def overrides(corpus, root, *extra):
    return ["experiment=reward_tiny", f"data.out={corpus}", f"paths.root={root}", "trainer.device=cpu", *extra]


def test_reward_training_writes_backbone_head_and_resumes(tiny_corpus, tmp_path):
    assert main(["train", *overrides(tiny_corpus, tmp_path)]) == 0
    folder = tmp_path / "runs" / "tiny" / "reward"
    last = load_checkpoint(folder / "last.pt", "facerl-reward")
    backbone = load_checkpoint(folder / "backbone.pt", "facerl-reward")
    head = load_checkpoint(folder / "head.pt", "facerl-reward")
    assert last["epoch"] == 2 and len(last["history"]) == 2 and "val_lip_acc" in last["metrics"]
    assert "backbone" in backbone and "head" in head and backbone["meta"]["n_coords"] % 3 == 0
    assert any(not torch.equal(a, b) for a, b in zip(last["backbone"].values(), backbone["backbone"].values())) \
        or backbone["epoch"] == 2
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.epochs=3")]) == 0
    resumed = load_checkpoint(folder / "last.pt", "facerl-reward")
    assert resumed["epoch"] == 3 and resumed["step"] == last["step"] * 3 // 2


def test_reward_config_errors_are_one_line(tiny_corpus, tmp_path, capsys):
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.min_shift=0")]) == 2
    assert "min_shift" in capsys.readouterr().err
