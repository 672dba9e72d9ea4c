"""Reward calibration: the statistics on hand-made scores, and `facerl evaluate-reward` end to end on the
tiny corpus with a tiny reward model, judge and actor trained through the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facerl.cli import main
from facerl.eval.reward_report import SyncTally, agreement, auc
from facerl.reward.degrade import DEGRADATIONS
from facerl.reward.frozen import SHIFTS, offset_estimate, valid_mask


def test_auc_counts_pairs_and_ties():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0]), np.array([2.0])) == 0.0
    assert auc(np.array([1.0, 3.0]), np.array([2.0])) == 0.5
    assert auc(np.array([2.0]), np.array([2.0])) == 0.5


def test_valid_mask_keeps_shifted_audio_inside_the_clip():
    m = valid_mask(40)
    assert m.shape == (len(SHIFTS), 40)
    assert m[SHIFTS.index(0)].all()
    assert not m[SHIFTS.index(-15), 14] and m[SHIFTS.index(-15), 15]
    assert m[SHIFTS.index(15), 24] and not m[SHIFTS.index(15), 25]


def peaked(n_windows: int, best: int) -> torch.Tensor:
    """Scores (S, W) highest at shift ``best`` for every window."""
    k = torch.tensor(SHIFTS, dtype=torch.float32)[:, None]
    return torch.exp(-0.5 * (k - best) ** 2).expand(len(SHIFTS), n_windows).clone()


def test_offset_estimate_is_the_best_shift_on_common_windows():
    assert offset_estimate(peaked(60, 0)) == 0
    assert offset_estimate(peaked(60, -3)) == -3
    assert offset_estimate(peaked(20, 0)) is None          # no window is valid at every shift


def test_sync_tally_on_a_perfect_and_a_late_scorer():
    good, late = SyncTally(), SyncTally()
    for _ in range(3):
        good.add(peaked(60, 0))
        late.add(peaked(60, 4))
    g = good.summary(threshold=0.5)
    assert g["offset_accuracy"] == 1.0 and g["offset_mean_abs_error_frames"] == 0.0
    assert g["sync_accuracy"] == 1.0 and g["pair_accuracy"] == 1.0 and g["clip_sync_accuracy"] == 1.0
    bad = late.summary(threshold=0.5)
    assert bad["offset_accuracy"] == 0.0 and bad["offset_mean_abs_error_frames"] == 4.0
    assert bad["aligned_accepted"] == 0.0 and bad["pair_accuracy"] < 0.9   # shifts 2..6 beat aligned


def test_agreement_compares_orders_not_values():
    a = peaked(60, 0)
    assert agreement(a, 10 * a - 3).all()
    assert not agreement(a, -a).any()


@pytest.fixture(scope="module")
def reward_run(tiny_corpus, tiny_actor_run, tmp_path_factory):
    """Tiny reward model (with the tiny actor's outputs as realism negatives) and tiny judge in one run."""
    root = tmp_path_factory.mktemp("rw")
    common = [f"data.out={tiny_corpus}", f"paths.root={root}", "run_name=t", "trainer.device=cpu"]
    actor = tiny_actor_run / "actor" / "best.pt"
    assert main(["train", "experiment=reward_tiny", *common, f"trainer.actor_checkpoint={actor}"]) == 0
    assert main(["train", "experiment=judge_tiny", *common]) == 0
    return root, common, actor


def test_judge_is_saved_apart_with_its_own_size_and_no_head(reward_run):
    from facerl.reward.frozen import FrozenReward
    from facerl.utils.checkpoint import load_checkpoint

    root, _, _ = reward_run
    run = root / "runs" / "t"
    judge, reward = FrozenReward.load(run / "judge", judge=True), FrozenReward.load(run / "reward")
    assert judge.is_judge and not reward.is_judge
    assert judge.backbone.cfg.embed != reward.backbone.cfg.embed
    assert load_checkpoint(run / "judge" / "last.pt", "facerl-reward")["config"]["trainer"]["seed"] == 1
    assert not load_checkpoint(run / "judge" / "head.pt", "facerl-reward")["meta"]["head_trained"]
    with pytest.raises(Exception, match="judge"):
        FrozenReward.load(run / "judge")


def test_evaluate_reward_writes_report_plot_and_judge_agreement(reward_run, capsys):
    root, common, actor = reward_run
    out = root / "cal"
    assert main(["evaluate-reward", "--split", "test", "--actor", str(actor), "--out", str(out),
                 "--device", "cpu", *common]) == 0
    report = json.loads((out / "calibration.json").read_text())
    assert report["clips"] == 3 and report["split"] == "test"
    sync = report["reward"]["sync"]
    for key in ("sync_accuracy", "pair_accuracy", "aligned_accepted", "shifted_rejected"):
        assert 0.0 <= sync[key] <= 1.0
    assert len(report["reward"]["score_by_shift"]) == len(SHIFTS) == len(report["judge"]["score_by_shift"])
    assert set(report["realism"]) == set(DEGRADATIONS)
    assert 0.0 <= report["actor"]["real_window_auc_vs_ground_truth"] <= 1.0
    assert 0.0 <= report["judge"]["agreement_with_reward"]["pair_order_actor"] <= 1.0
    assert (out / "calibration.png").stat().st_size > 1000
    text = (out / "calibration.md").read_text()
    assert "offset accuracy" in text and "supervised actor" in text and "agreement" in text
    assert "wrote" in capsys.readouterr().out


def test_evaluate_reward_without_a_model_is_a_one_line_error(tiny_corpus, tmp_path, capsys):
    assert main(["evaluate-reward", f"data.out={tiny_corpus}", f"paths.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "no trained reward model" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_evaluate_fills_the_judge_columns(reward_run, tiny_corpus):
    import numpy as np

    from facerl.data.dataset import VocaDataset, spec_from_corpus

    root, common, _ = reward_run
    results = root / "gt_results"
    results.mkdir()
    ds = VocaDataset(spec_from_corpus(str(tiny_corpus)), "test", with_phones=False)
    for i in range(len(ds)):
        np.save(results / f"{ds[i].name}_condition_average.npy", ds[i].vertices.numpy())
    out = root / "eval"
    assert main(["evaluate", "--results", f"copy={results}", "--out", str(out), "--device", "cpu", *common]) == 0
    rows = {r["method"]: r for r in json.loads((out / "metrics.json").read_text())["rows"]}
    gt, copy = rows["ground truth"], rows["copy (average style)"]
    assert gt["judge_sync"] is not None and 0.0 <= gt["judge_offset_acc"] <= 1.0
    assert copy["judge_sync"] == pytest.approx(gt["judge_sync"], abs=1e-5)   # the same motion, scored alike
    assert "sync (judge)" in (out / "metrics.md").read_text()
    assert main(["evaluate", "--results", f"copy={results}", "--out", str(out), "--no-judge", *common]) == 0
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    assert all(r["judge_sync"] is None for r in rows)


def test_evaluate_reward_per_voice_source(reward_run, tmp_path, capsys):
    root, common, _ = reward_run
    voices = tmp_path / "voices"
    assert main(["data", "voices", "--out", str(voices), "--sources", "piper-joe", "--clips", "2"]) == 0
    out = root / "cal_voices"
    assert main(["evaluate-reward", "--voices", str(voices), "--out", str(out), "--device", "cpu", *common]) == 0
    rows = {r["source"]: r for r in json.loads((out / "calibration_voices.json").read_text())["rows"]}
    assert set(rows) == {"eSpeak test speakers (in domain) (test)", "piper-joe"}
    assert rows["piper-joe"]["clips"] == 2 and rows["eSpeak test speakers (in domain) (test)"]["clips"] == 3
    for row in rows.values():
        assert 0.0 <= row["reward_pair"] <= 1.0 and 0.0 <= row["judge_offset"] <= 1.0
        assert 0.0 <= row["realism_min_clip_auc"] <= 1.0
    assert "| piper-joe | 2 |" in (out / "calibration_voices.md").read_text()
    assert "calibration_voices.md" in capsys.readouterr().out
