"""RL fine-tuning and the perceptual baseline on the tiny corpus: the frozen parts stay frozen, every trainable
parameter moves, the objective's pieces are right, and `facerl train experiment=rl|perceptual` runs end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.cli import main
from facerl.data.dataset import VocaDataset, collate, spec_from_corpus
from facerl.models.checkpoint import load_actor
from facerl.reward.scoring import load_reward
from facerl.train.common import load_checkpoint
from facerl.train.rl import (
    Objective,
    RLConfig,
    frame_advantage,
    gaussian_kl,
    masked_mean,
    trainable_actor,
    trainable_parameters,
)


@pytest.fixture(scope="module")
def setup(tiny_corpus, tiny_actor_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("rl")
    actor = tiny_actor_run / "actor" / "best.pt"
    common = [f"data.out={tiny_corpus}", f"paths.root={root}", "run_name=t", "trainer.device=cpu"]
    assert main(["train", "experiment=reward_tiny", *common]) == 0
    return root, common, actor


def test_masked_mean_and_dense_advantage():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert masked_mean(x, torch.tensor([[True, True, False]])).item() == 1.5
    # 6 frames, 2 windows of 5: frame 0 sees window 0 only, frames 1-4 both, frame 5 window 1 only
    adv = frame_advantage(torch.tensor([[1.0, 3.0]]))
    assert torch.allclose(adv, torch.tensor([[1.0, 2.0, 2.0, 2.0, 2.0, 3.0]]))


def test_gaussian_kl_is_zero_for_equal_policies_and_matches_torch():
    mean, ref = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    ls, rls = torch.full((3,), -1.0), torch.full((3,), -0.5)
    mask = torch.ones(2, 4, dtype=torch.bool)
    assert gaussian_kl(mean, ls, mean, ls, mask).abs().item() < 1e-6
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mean, ls.exp()),
                                                 torch.distributions.Normal(ref, rls.exp())).sum(-1).mean()
    assert torch.allclose(gaussian_kl(mean, ls, ref, rls, mask), expected, atol=1e-5)


@pytest.mark.parametrize("options", [{"baseline": "critic", "dense": True, "loss": {"kl": 0.1}},
                                     {"baseline": "group", "clip": 0.2, "ppo_epochs": 2}])
def test_one_rl_step_moves_every_trainable_parameter_and_no_frozen_one(setup, tiny_corpus, options):
    root, _, actor_path = setup
    torch.manual_seed(0)
    actor, _, _ = load_actor(actor_path)
    reference, _, _ = load_actor(actor_path)
    reference.requires_grad_(False)
    reward = load_reward(root / "runs" / "t" / "reward")
    loss = options.pop("loss", {})
    rc = RLConfig(samples=2, **options)
    for k, v in loss.items():
        setattr(rc.loss, k, v)
    trainable_actor(actor)
    params = trainable_parameters(actor, reward, "rl")
    frozen = {f"backbone.{n}": p.clone() for n, p in reward.backbone.named_parameters()}
    frozen.update({f"head.{i}": p.clone() for i, p in enumerate(reward.head.reward_parameters())})
    before = [p.clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    ds = VocaDataset(spec_from_corpus(str(tiny_corpus)), "train", with_phones=False)
    batch = collate([ds[i] for i in range(len(ds))])                   # every training style present
    objective = Objective(actor, reference, reward, rc)
    ro = objective.rollouts(batch)
    assert ro.sample.shape[0] == 2 * len(ds) and torch.isfinite(ro.reward).all()
    assert ((ro.reward >= 0) & (ro.reward <= 2)).all()                 # lip + real, each in [0, 1]
    for _ in range(rc.ppo_epochs):
        total, stats = objective.loss(batch, ro)
        opt.zero_grad()
        total.backward()
        opt.step()
    assert np.isfinite(stats["total"]) and stats["critic"] >= 0
    moved = [not torch.equal(a, b) for a, b in zip(before, params)]
    assert all(moved), f"{moved.count(False)} trainable parameters did not change"
    for name, p in [*[(f"backbone.{n}", p) for n, p in reward.backbone.named_parameters()],
                    *[(f"head.{i}", p) for i, p in enumerate(reward.head.reward_parameters())]]:
        assert torch.equal(p, frozen[name]), f"{name} changed"


@pytest.mark.parametrize("stage", ["rl", "perceptual"])
def test_fine_tuning_end_to_end_writes_loadable_actor_and_resumes(setup, stage):
    root, common, actor_path = setup
    assert main(["train", f"experiment={stage}_tiny", *common, f"trainer.actor_checkpoint={actor_path}"]) == 0
    folder = root / "runs" / "t" / stage
    load_actor(folder / "best.pt")                                   # a regular actor checkpoint
    last = load_checkpoint(folder / "last.pt", "facerl-actor")
    assert last["epoch"] == 2 and [h["epoch"] for h in last["history"]] == [0, 1, 2]
    assert {"val_lve", "val_reward", "val_judge_sync"} <= set(last["history"][-1])
    assert (folder / "tensorboard").is_dir()
    if stage == "rl":
        assert "reward" in last["history"][-1] or "train_reward" in last["history"][-1]
        assert (folder / "best_head.pt").exists()
    assert main(["train", f"experiment={stage}_tiny", *common, f"trainer.actor_checkpoint={actor_path}",
                 "trainer.epochs=3"]) == 0
    assert load_checkpoint(folder / "last.pt", "facerl-actor")["epoch"] == 3


def test_bad_rl_options_are_one_line_errors(setup, capsys):
    _, common, _ = setup
    assert main(["train", "experiment=rl_tiny", *common, "trainer.baseline=magic"]) == 2
    assert "trainer.baseline" in capsys.readouterr().err
    assert main(["train", "experiment=rl_tiny", *common, "trainer.baseline=group", "trainer.samples=1"]) == 2
    assert "samples" in capsys.readouterr().err
