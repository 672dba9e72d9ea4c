"""RL fine-tuning and its baselines on the tiny corpus: the frozen reward stays frozen, every trainable
parameter (actor and the RL run's critic) moves, the state critic never sees the action, and
`facerl train experiment=rl|perceptual|supervised_continued` runs end to end and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.cli import main
from facerl.data.dataset import VocaDataset, collate, spec_from_corpus
from facerl.models.checkpoint import load_actor
from facerl.reward.frozen import FrozenReward
from facerl.rl.critic import StateCritic
from facerl.rl.train import (
    RLConfig,
    Update,
    make_critic,
    trainable_actor,
    trainable_parameters,
)
from facerl.utils.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def setup(tiny_corpus, tiny_actor_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("rl")
    actor = tiny_actor_run / "actor" / "best.pt"
    common = [f"data.out={tiny_corpus}", f"paths.root={root}", "run_name=t", "trainer.device=cpu"]
    assert main(["train", "experiment=reward_tiny", *common]) == 0
    return root, common, actor


def test_the_frozen_reward_has_no_trainable_parameter_and_never_trains(setup):
    root, _, _ = setup
    reward = FrozenReward.load(root / "runs" / "t" / "reward")
    assert not any(p.requires_grad for p in reward.parameters())
    wrapper = torch.nn.Sequential(reward)
    wrapper.train()
    assert not reward.training and not any(m.training for m in reward.modules())
    assert not hasattr(reward.head, "value")                          # the critic left the reward model


@pytest.mark.parametrize("options", [
    {"baseline": "critic", "per_window": True, "loss": {"kl": 0.1}},
    {"baseline": "sample_critic", "per_window": False},
    {"baseline": "group", "clip": 0.2, "ppo_epochs": 2, "noise": "antithetic"},
    {"baseline": "group", "noise": "smooth", "recipe": "rl+perceptual"},
    {"recipe": "perceptual"},
])
def test_one_update_moves_every_trainable_parameter_and_no_frozen_one(setup, tiny_corpus, options):
    root, _, actor_path = setup
    torch.manual_seed(0)
    actor, meta, _ = load_actor(actor_path)
    reward = FrozenReward.load(root / "runs" / "t" / "reward")
    loss = options.pop("loss", {})
    rc = RLConfig(samples=2, **options)
    for k, v in loss.items():
        setattr(rc.loss, k, v)
    rc.validate()
    reference = None
    if rc.loss.kl > 0:
        reference, _, _ = load_actor(actor_path)
        reference.requires_grad_(False)
    trainable_actor(actor, rc.samples_motion)
    critic = make_critic(rc, actor, reward, len(meta.styles))
    assert (critic is not None) == (rc.baseline in ("critic", "sample_critic") and rc.samples_motion)
    params = trainable_parameters(actor, critic)
    frozen = {n: p.clone() for n, p in reward.named_parameters()}
    before = [p.clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    ds = VocaDataset(spec_from_corpus(str(tiny_corpus)), "train", with_phones=False)
    batch = collate([ds[i] for i in range(len(ds))])                   # every training style present
    stats = Update(actor, reward, critic, reference, rc, opt, params, None).step(batch)
    assert np.isfinite(stats["objective/total"])
    if rc.samples_motion:
        assert 0 <= stats["objective/reward"] <= 2                       # lip + real, each in [0, 1]
        assert {"policy/approx_kl", "policy/clipfrac", "policy/entropy", "objective/advantage_var"} <= set(stats)
    if critic is not None:
        assert stats["value/loss"] >= 0 and "value/explained_variance" in stats
    moved = [not torch.equal(a, b) for a, b in zip(before, params)]
    assert all(moved), f"{moved.count(False)} trainable parameters did not change"
    assert actor.log_std.requires_grad == rc.samples_motion
    for name, p in reward.named_parameters():
        assert torch.equal(p, frozen[name]), f"{name} changed"


def test_the_state_critic_depends_on_audio_and_style_only():
    torch.manual_seed(0)
    critic = StateCritic(audio_dim=6, n_styles=3)
    feats = torch.randn(2, 12, 6)
    style = torch.tensor([0, -1])
    values = critic(feats, style)
    assert values.shape == (2, 8)                                       # one per 5-frame window
    assert "motion" not in StateCritic.forward.__code__.co_varnames     # there is no way to pass the action
    assert not torch.equal(critic(feats, torch.tensor([1, -1]))[0], values[0])
    assert torch.equal(critic(feats, torch.tensor([1, -1]))[1], values[1])


@pytest.mark.parametrize("stage", ["rl", "perceptual"])
def test_fine_tuning_end_to_end_writes_loadable_actor_and_resumes(setup, stage):
    root, common, actor_path = setup
    assert main(["train", f"experiment={stage}_tiny", *common, f"trainer.actor_checkpoint={actor_path}"]) == 0
    folder = root / "runs" / "t" / stage
    load_actor(folder / "best.pt")                                   # a regular actor checkpoint
    last = load_checkpoint(folder / "last.pt", "facerl-actor")
    assert last["epoch"] == 2 and [h["epoch"] for h in last["history"]] == [0, 1, 2]
    assert {"val_lve", "val_reward", "val_judge_sync"} <= set(last["history"][-1])
    assert not last["history"][-1]["stopped_by_time_cap"]
    assert (folder / "tensorboard").is_dir()
    if stage == "rl":
        assert "train_objective_reward" in last["history"][-1]
    assert main(["train", f"experiment={stage}_tiny", *common, f"trainer.actor_checkpoint={actor_path}",
                 "trainer.epochs=3"]) == 0
    assert load_checkpoint(folder / "last.pt", "facerl-actor")["epoch"] == 3
    # a finished run whose best.pt went missing resumes to the end without training (it used to crash)
    (folder / "best.pt").unlink()
    assert main(["train", f"experiment={stage}_tiny", *common, f"trainer.actor_checkpoint={actor_path}",
                 "trainer.epochs=3"]) == 0
    load_actor(folder / "best.pt")


def test_the_seed_formulation_saves_its_value_beside_the_run(setup):
    root, common, actor_path = setup
    assert main(["train", "experiment=rl_tiny", *common, f"trainer.actor_checkpoint={actor_path}",
                 "stage=rl_seed", "trainer.baseline=sample_critic", "trainer.epochs=1"]) == 0
    head = load_checkpoint(root / "runs" / "t" / "rl_seed" / "best_head.pt", "facerl-reward")
    assert set(head["head"]) == {"value.0.weight", "value.0.bias", "value.2.weight", "value.2.bias"}


def test_the_safety_cap_is_reported(setup, capsys):
    root, common, actor_path = setup
    assert main(["train", "experiment=rl_tiny", *common, f"trainer.actor_checkpoint={actor_path}",
                 "stage=rl_capped", "trainer.max_minutes=0.0001", "trainer.epochs=5"]) == 0
    assert "NOT the configured budget" in capsys.readouterr().out
    last = load_checkpoint(root / "runs" / "t" / "rl_capped" / "last.pt", "facerl-actor")
    assert last["epoch"] == 1 and last["history"][-1]["stopped_by_time_cap"]


def test_bad_rl_options_are_one_line_errors(setup, capsys):
    _, common, _ = setup
    for option, word in [("trainer.baseline=magic", "trainer.baseline"), ("trainer.recipe=magic", "trainer.recipe"),
                         ("trainer.noise=pink", "trainer.noise"), ("trainer.samples=1", "samples")]:
        assert main(["train", "experiment=rl_tiny", *common, option]) == 2
        assert word in capsys.readouterr().err
    assert main(["train", "experiment=rl_tiny", *common, "trainer.noise=antithetic", "trainer.samples=3"]) == 2
    assert "even" in capsys.readouterr().err
