"""Reward-model training end to end on the tiny corpus (real CLI, real files), and resume."""

from __future__ import annotations

import torch

from facerl.cli import main
from facerl.reward.model import BackboneConfig, ScoreHead, SpeechMeshTransformer
from facerl.train.common import load_checkpoint
from facerl.train.reward import adversarial_windows


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


def test_time_cap_stops_loudly_and_is_recorded(tiny_corpus, tmp_path, capsys):
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.epochs=3", "trainer.max_minutes=1e-6")]) == 0
    out = capsys.readouterr()
    assert "STOPPED BY THE TIME CAP" in out.out and "STOPPED BY THE TIME CAP" in out.err
    last = load_checkpoint(tmp_path / "runs" / "tiny" / "reward" / "last.pt", "facerl-reward")
    assert last["epoch"] == 1 and last["metrics"]["stopped_by_time_cap"] is True and not last["finished"]


def test_reward_training_with_adversarial_and_degraded_actor_negatives(tiny_corpus, tmp_path):
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.adversarial.share=0.5",
                                     "trainer.negatives.jitter=3")]) == 0
    last = load_checkpoint(tmp_path / "runs" / "tiny" / "reward" / "last.pt", "facerl-reward")
    assert last["finished"] and last["metrics"]["stopped_by_time_cap"] is False


def test_adversarial_windows_stay_within_eps_and_raise_the_realism_logit():
    torch.manual_seed(0)
    backbone = SpeechMeshTransformer(12, BackboneConfig(width=16, depth=1, heads=2, embed=8, dropout=0.0))
    head = ScoreHead(8, hidden=16)
    fake, audio = 1e-3 * torch.randn(6, 5, 12), torch.randn(6, 8)
    eps = torch.full((6,), 1e-6)
    for steps in (1, 3):
        adv = adversarial_windows(backbone, head, fake, audio, eps, steps)
        assert (adv - fake).abs().max() <= 1e-6 * (1 + 1e-4) and not torch.equal(adv, fake)
        with torch.no_grad():
            before = head(backbone.encode_mesh(fake), audio).real_logit
            after = head(backbone.encode_mesh(adv), audio).real_logit
        assert torch.all(after > before)
    assert not any(p.grad is not None for p in [*backbone.parameters(), *head.parameters()])
