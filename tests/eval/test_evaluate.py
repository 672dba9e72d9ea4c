"""Clip-by-clip, batched scoring (evaluate.score_clip / pool / evaluate) against the per-sequence definitions:
the same numbers whether a clip's predictions are scored together or one at a time, and the same rows as the
metric functions of facerl.eval.metrics pooled over the sequences directly (the evaluation before batching).

Dimensions: T frames, V vertices.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from facerl.eval import metrics as M
from facerl.eval.evaluate import (
    FPS,
    Judge,
    Reference,
    Regions,
    RewardScore,
    evaluate,
    load_references,
    score,
    score_clip,
)
from facerl.speech.timing import Phone

V = 12
REGIONS = Regions(lips=np.arange(0, 4), face=np.arange(0, 10), upper_face=np.arange(6, 12),
                  inner_lip_pair=np.array([1, 2]))
PHONES = [Phone(0.0, 0.2, "SIL"), Phone(0.2, 0.3, "B"), Phone(0.3, 0.5, "AA"), Phone(0.5, 0.6, "M"),
          Phone(0.6, 0.9, "IY"), Phone(0.9, 1.0, "P")]


def _reference(name: str, subject: str, t: int, rng: np.random.Generator) -> Reference:
    template = rng.normal(scale=0.05, size=(V, 3)).astype(np.float32)
    phase = np.arange(t)[:, None, None] / 4.0
    vertices = (template + 2e-3 * np.sin(phase + rng.uniform(0, 6, size=(1, V, 3)))).astype(np.float32)
    audio = rng.normal(scale=0.1, size=t * 16000 // 30).astype(np.float32)
    return Reference(name, subject, vertices, template, PHONES, M.speech_intensity(audio), audio)


def _clips(seed: int = 0) -> tuple[list[Reference], list[list[np.ndarray]]]:
    """Three clips of two speakers and, per clip, noisy predictions: some shorter or longer than the clip."""
    rng = np.random.default_rng(seed)
    refs = [_reference("a_sentence01", "a", 36, rng), _reference("a_sentence02", "a", 30, rng),
            _reference("b_sentence01", "b", 33, rng)]
    preds = []
    for ref in refs:
        t = len(ref.vertices)
        clip = [ref.vertices + rng.normal(scale=s, size=ref.vertices.shape).astype(np.float32) for s in (5e-4, 1e-3)]
        clip.append(np.concatenate([clip[0], clip[0][-3:]]))                   # longer than the clip
        clip.append(clip[1][: t - 4])                                          # shorter
        clip.append(np.repeat(ref.template[None], t, 0))                       # a still face
        preds.append(clip)
    return refs, preds


def _per_sequence_score(pairs, regions, conditions=None) -> dict[str, float]:
    """The pooled metric functions applied to the sequences themselves (evaluate.score before batching)."""
    preds, gts = [p for _, p in pairs], [r.vertices for r, _ in pairs]
    groups = [f"{r.subject}|{c}" for (r, _), c in zip(pairs, conditions or [""] * len(pairs))]
    out = {
        "lve": M.lip_vertex_error(preds, gts, regions.lips),
        "max_lip_mm": M.max_lip_error_mm(preds, gts, regions.lips),
        "fdd": M.face_dynamics_deviation(preds, gts, [r.template for r, _ in pairs], regions.upper_face),
        "mve_mm": 1000.0 * M.mean_vertex_error(preds, gts, regions.face),
        "slcc": M.speech_lip_correlation(np.array([r.speech_rms for r, _ in pairs]),
                                         np.array([M.lip_intensity(p, r.template, regions.lips) for r, p in pairs]),
                                         speakers=groups),
        "jitter": float(np.nanmean([M.jitter(p, r.vertices, regions.face) for r, p in pairs])),
    }
    pair = regions.inner_lip_pair
    openings = [M.lip_opening(p, r.template, pair) for r, p in pairs]
    gt_open = [M.lip_opening(r.vertices, r.template, pair) for r, _ in pairs]
    closed, total = M.closure_rate(openings, [r.phones for r, _ in pairs], FPS)
    out["closure_rate"] = closed / total
    fits = [M.opening_correlation(o, g) for o, g in zip(openings, gt_open)]
    out["opening_r"] = float(np.nanmean([r for r, _ in fits]))
    out["opening_lag"] = float(np.mean([abs(lag) for r, lag in fits if np.isfinite(r)]))
    out["mtm_ms"] = float(np.nanmean([M.mean_temporal_misalignment(o, g, FPS) for o, g in zip(openings, gt_open)]))
    return out


def test_pooled_rows_equal_the_metric_functions_on_the_sequences():
    refs, preds = _clips()
    pairs = [(r, p) for r, clip in zip(refs, preds) for p in clip]
    conditions = [f"style{k % 2}" for k in range(len(pairs))]
    row = score(pairs, REGIONS, conditions)
    expected = _per_sequence_score(pairs, REGIONS, conditions)
    for key, value in expected.items():
        if key == "mve_mm":  # pooled as one sum over all errors: the same to rounding
            assert row[key] == pytest.approx(value, rel=1e-12)
        else:
            assert row[key] == value or (math.isnan(row[key]) and math.isnan(value)), key
    assert row["sequences"] == len(pairs) and math.isnan(row["judge_sync"]) and math.isnan(row["reward"])


def _save_tiny_reward(folder, n_coords: int, seed: int) -> None:
    """A randomly initialised reward model (backbone + score head) in the files FrozenReward.load reads."""
    from facerl.reward.frozen import REWARD_KIND
    from facerl.reward.model import BackboneConfig, ScoreHead, SpeechMeshTransformer
    from facerl.utils.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    cfg = BackboneConfig(width=16, depth=1, heads=2, embed=24)
    backbone = SpeechMeshTransformer(n_coords, cfg)
    backbone.mesh_scale.fill_(1e-3)
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.1 * torch.randn_like(p))
    meta = {"n_coords": n_coords, "backbone_config": dataclasses.asdict(cfg), "head_trained": True}
    save_checkpoint(folder / "backbone.pt", {"kind": REWARD_KIND, "meta": meta, "backbone": backbone.state_dict()})
    save_checkpoint(folder / "head.pt", {"kind": REWARD_KIND, "meta": meta, "head": ScoreHead(24).state_dict()})


def test_a_clip_scored_in_one_batch_equals_its_sequences_scored_alone(tmp_path):
    _save_tiny_reward(tmp_path / "judge", V * 3, seed=1)
    _save_tiny_reward(tmp_path / "reward", V * 3, seed=2)
    judge, reward = Judge(tmp_path / "judge"), RewardScore(tmp_path / "reward")
    refs, preds = _clips(seed=3)
    for ref, clip in zip(refs, preds):
        clip = [p for p in clip if len(p) <= len(ref.vertices)]  # the models need audio under all the motion
        batched = score_clip(ref, clip, REGIONS, judge, reward)
        for pred, together in zip(clip, batched):
            alone = score_clip(ref, [pred], REGIONS, judge, reward)[0]
            for f in dataclasses.fields(together):
                a, b = getattr(together, f.name), getattr(alone, f.name)
                if f.name in ("judge_sync", "reward"):
                    assert a == pytest.approx(b, rel=1e-5, abs=1e-6), f.name
                else:
                    np.testing.assert_array_equal(a, b, err_msg=f.name)
            assert math.isfinite(together.judge_sync) and math.isfinite(together.reward)
            assert together.reward == pytest.approx(reward(ref, pred), rel=1e-5)
            assert together.judge_offset == judge(ref, pred)[1]


def test_evaluate_reads_a_folder_clip_by_clip_into_the_same_rows(tiny_corpus, tmp_path):
    from facerl.data.dataset import spec_from_corpus
    from facerl.utils.io import save_npy

    spec = spec_from_corpus(str(tiny_corpus))
    refs, regions = load_references(spec, "test")
    rng = np.random.default_rng(0)
    written = {}
    for ref in refs:
        for style in ("SynthTalk_02_f1_TA", "SynthTalk_01_m1_TA", "average"):
            pred = ref.vertices + rng.normal(scale=1e-3, size=ref.vertices.shape).astype(np.float32)
            save_npy(tmp_path / f"{ref.name}_condition_{style}.npy", pred.reshape(len(pred), -1))
            written[ref.name, style] = pred
    rows = {r["method"]: r for r in evaluate(spec, "test", {"m": tmp_path})}
    assert list(rows) == ["static template", "ground truth", "m", "m (average style)"]
    by_name = {r.name: r for r in refs}
    ordered = sorted(written, key=lambda k: f"{k[0]}_condition_{k[1]}")     # the folder's file order
    styled = [k for k in ordered if k[1] != "average"]
    expected = score([(by_name[c], written[c, s]) for c, s in styled], regions, [s for _, s in styled])
    assert rows["m"].pop("method") == "m"
    for key, value in expected.items():  # exactly: the same sequences pooled in the same order
        assert rows["m"][key] == value or (math.isnan(rows["m"][key]) and math.isnan(value)), key
    average = score([(by_name[c], written[c, s]) for c, s in ordered if s == "average"], regions, ["average"] * 3)
    assert rows["m (average style)"]["lve"] == average["lve"] and rows["m (average style)"]["sequences"] == 3
    assert rows["ground truth"]["lve"] == 0.0 and rows["ground truth"]["mtm_ms"] == 0.0
