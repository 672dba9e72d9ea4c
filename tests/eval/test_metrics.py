"""Evaluation metrics against hand-computed values on tiny arrays (T frames, V vertices, 3 coordinates)."""

from __future__ import annotations

import numpy as np
import pytest

from facerl.eval import metrics
from facerl.eval.metrics import (
    closure_rate,
    face_dynamics_deviation,
    jitter,
    lip_intensity,
    lip_opening,
    lip_vertex_error,
    lip_vertex_error_per_frame,
    max_lip_error_mm,
    mean_temporal_misalignment,
    mean_vertex_error,
    speech_intensity,
    speech_lip_correlation,
)
from facerl.speech.timing import Phone

LIPS = [1, 2]


def _lip_pair() -> tuple[np.ndarray, np.ndarray]:
    """pred, gt (3, 4, 3): errors only on lip vertices 1 and 2, plus a big error on non-lip vertex 0."""
    gt = np.zeros((3, 4, 3))
    pred = np.zeros((3, 4, 3))
    pred[:, 0] = 100.0                 # not a lip vertex: must be ignored
    pred[0, 1], pred[0, 2] = (1, 2, 2), (0, 0, 1)   # squared errors 9, 1 -> max 9
    pred[1, 2] = (3, 0, 4)                          # squared errors 0, 25 -> max 25
    pred[2, 1], pred[2, 2] = (1, 1, 1), (0, 2, 0)   # squared errors 3, 4 -> max 4
    return pred * 1e-3, gt  # millimetres written as metres


def test_lip_vertex_error_per_frame_is_max_squared_error():
    pred, gt = _lip_pair()
    # [9, 25, 4] mm² = [9, 25, 4] * 1e-6 m²
    np.testing.assert_allclose(lip_vertex_error_per_frame(pred, gt, LIPS), [9e-6, 25e-6, 4e-6], rtol=1e-12)
    # mean of 9, 25, 4 = 38 / 3 mm²
    assert lip_vertex_error([pred], [gt], LIPS) == pytest.approx(38 / 3 * 1e-6, rel=1e-12)


def test_max_lip_error_is_unsquared_and_in_mm():
    pred, gt = _lip_pair()
    # per-frame max distances 3, 5, 2 mm -> mean 10 / 3 mm
    assert max_lip_error_mm([pred], [gt], LIPS) == pytest.approx(10 / 3, rel=1e-12)


def test_lip_vertex_error_pools_frames_not_sequences():
    gt_a, gt_b = np.zeros((1, 3, 3)), np.zeros((3, 3, 3))
    pred_a, pred_b = gt_a.copy(), gt_b.copy()
    pred_a[0, 1] = (3, 0, 0)  # one frame with squared error 9
    pred_b[:, 1] = (1, 0, 0)  # three frames with squared error 1
    # pooled: (9 + 1 + 1 + 1) / 4 = 3; a mean of per-sequence means would give (9 + 1) / 2 = 5
    assert lip_vertex_error([pred_a, pred_b], [gt_a, gt_b], [1]) == pytest.approx(3.0)


def test_pairs_are_truncated_to_the_shorter_sequence():
    pred, gt = _lip_pair()
    longer = np.concatenate([pred, np.full((2, 4, 3), 50.0)])  # extra frames with huge errors
    assert len(lip_vertex_error_per_frame(longer, gt, LIPS)) == 3
    assert lip_vertex_error([longer], [gt], LIPS) == pytest.approx(lip_vertex_error([pred], [gt], LIPS))
    assert lip_vertex_error([gt], [longer], LIPS) == pytest.approx(lip_vertex_error([gt], [pred], LIPS))
    assert mean_vertex_error([longer], [gt], LIPS) == pytest.approx(mean_vertex_error([pred], [gt], LIPS))
    assert jitter(longer, gt + 1e-3 * np.arange(3)[:, None, None] ** 2, LIPS) == pytest.approx(
        jitter(pred, gt + 1e-3 * np.arange(3)[:, None, None] ** 2, LIPS))


def test_lip_vertex_error_agrees_with_torchmetrics():
    torch = pytest.importorskip("torch")
    tm_functional = pytest.importorskip("torchmetrics.functional.multimodal")
    tm_modules = pytest.importorskip("torchmetrics.multimodal")
    rng = np.random.default_rng(0)
    lengths = [(7, 9), (5, 5), (6, 4)]  # (pred T, gt T): unequal pairs exercise the truncation
    preds = [rng.normal(size=(tp, 20, 3)) * 1e-3 for tp, _ in lengths]
    gts = [rng.normal(size=(tg, 20, 3)) * 1e-3 for _, tg in lengths]
    mouth = [0, 3, 4, 11, 19]

    # functional form scores one sequence: the mean of our per-frame values
    one = tm_functional.lip_vertex_error(torch.from_numpy(preds[0]), torch.from_numpy(gts[0]), mouth)
    assert float(one) == pytest.approx(lip_vertex_error_per_frame(preds[0], gts[0], mouth).mean(), rel=1e-9)

    # the Metric truncates each pair and concatenates frames: the same pooling as ours
    metric = tm_modules.LipVertexError(mouth_map=mouth)
    for p, g in zip(preds, gts):
        metric.update(torch.from_numpy(p), torch.from_numpy(g))
    assert float(metric.compute()) == pytest.approx(lip_vertex_error(preds, gts, mouth), rel=1e-9)


def test_mean_vertex_error_averages_distances_over_face_vertices():
    gt = np.zeros((2, 4, 3))
    pred = gt.copy()
    pred[0, 0] = (3, 4, 0)   # distance 5
    pred[1, 3] = (0, 0, 2)   # distance 2
    pred[:, 1] = 9.0         # outside the face region
    # face vertices 0 and 3 over 2 frames: (5 + 0 + 0 + 2) / 4 = 1.75
    assert mean_vertex_error([pred], [gt], [0, 3]) == pytest.approx(1.75)


def _upper_face_gt() -> tuple[np.ndarray, np.ndarray]:
    """gt (3, 3, 3) and template (3, 3): vertex 0 rises by 0, 1, 2 along y; vertex 1 sits 1 off in x."""
    template = np.array([[0.0, 5.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    gt = np.repeat(template[None], 3, axis=0)
    gt[:, 0, 1] += [0.0, 1.0, 2.0]   # |motion|² = 0, 1, 4: mean 5/3, var (25 + 4 + 49) / 27 = 26/9, std √26 / 3
    gt[:, 1, 0] += 1.0               # |motion|² = 1, 1, 1: std 0
    gt[:, 2] = [[7, 7, 7], [-7, 0, 1], [3, 3, 3]]  # not upper face: ignored
    return gt, template


def test_fdd_of_a_static_prediction_is_the_gt_std():
    gt, template = _upper_face_gt()
    static = np.repeat(template[None], 3, axis=0)
    # gt_std = mean(√26 / 3, 0) = √26 / 6 ≈ 0.850; pred_std = 0
    fdd = face_dynamics_deviation([static], [gt], [template], [0, 1])
    assert fdd == pytest.approx(np.sqrt(26) / 6, rel=1e-12)
    assert fdd > 0


def test_fdd_is_negative_when_the_prediction_moves_more_and_averages_sequences():
    gt, template = _upper_face_gt()
    pred = gt.copy()
    pred[:, 0, 1] = template[0, 1] + np.array([0.0, 2.0, 4.0])  # |motion|² = 0, 4, 16: std 4 √26 / 3
    # pred_std = (4 √26 / 3) / 2 = 2 √26 / 3; gt - pred = √26 / 6 - 4 √26 / 6 = -√26 / 2
    assert face_dynamics_deviation([pred], [gt], [template], [0, 1]) == pytest.approx(-np.sqrt(26) / 2)
    # two sequences: mean of -√26 / 2 and 0 (a perfect prediction)
    fdd = face_dynamics_deviation([pred, gt], [gt, gt], [template, template], [0, 1])
    assert fdd == pytest.approx(-np.sqrt(26) / 4)


def test_lip_opening_is_relative_to_the_template():
    template = np.zeros((3, 3))
    template[0, 1], template[1, 1] = 0.004, 0.001  # upper lip 3 mm above the lower at rest
    vertices = np.repeat(template[None], 2, axis=0)
    vertices[1, 1, 1] -= 0.005  # frame 1: jaw drops the lower lip 5 mm
    np.testing.assert_allclose(lip_opening(vertices, template, np.array([0, 1])), [0.0, 0.005], atol=1e-15)


OPEN = 0.01  # metres: clearly open


def _opening(closed_frames: list[int], n: int = 12) -> np.ndarray:
    opening = np.full(n, OPEN)
    opening[closed_frames] = 0.0
    return opening


def test_closure_rate_counts_closed_and_open_bilabials():
    phones = [Phone(0.0, 0.1, "SIL"), Phone(0.1, 0.2, "B"), Phone(0.2, 0.25, "AA"), Phone(0.25, 0.3, "M")]
    # B samples frames 3-5 (3-6 with the half-frame tolerance), M frame 8 (7-9); SIL and AA are ignored
    assert closure_rate([_opening([4])], [phones]) == (1, 2)
    assert closure_rate([_opening([4, 9])], [phones]) == (2, 2)
    assert closure_rate([_opening([0, 1, 11])], [phones]) == (0, 2)
    # closed means strictly below the 2 mm threshold
    assert closure_rate([np.full(12, 0.002)], [phones]) == (0, 2)
    assert closure_rate([np.full(12, 0.0019)], [phones]) == (2, 2)


def test_closure_rate_half_frame_tolerance_edges():
    phone = [[Phone(0.1, 0.2, "B")]]  # frames 3, 4, 5 sampled inside
    assert closure_rate([_opening([3])], phone, tolerance_frames=0.0) == (1, 1)
    summed = [[Phone(0.1 + 0.2, 0.4, "B")]]  # start * 30 = 9.000000000000002 in float: frame 9 still counts
    assert closure_rate([_opening([9])], summed, tolerance_frames=0.0) == (1, 1)
    assert closure_rate([_opening([6])], phone, tolerance_frames=0.0) == (0, 1)  # end is exclusive
    assert closure_rate([_opening([6])], phone) == (1, 1)                        # 6 < 6 + 0.5
    assert closure_rate([_opening([2])], phone) == (0, 1)                        # 2 < 3 - 0.5
    # a phone covering only the odd 60 fps frame 7 (30 fps frames 3.5-4.0): no 30 fps sample inside it, so
    # without tolerance the midpoint frame 4 is used and the closure sampled at frame 3 is missed
    odd = [[Phone(7 / 60, 8 / 60, "P")]]
    assert closure_rate([_opening([3])], odd, tolerance_frames=0.0) == (0, 1)
    assert closure_rate([_opening([3])], odd) == (1, 1)


def test_closure_rate_short_phone_uses_nearest_frame_and_skips_phones_past_the_end():
    short = Phone(3.2 / 30, 3.4 / 30, "M")  # no 30 fps frame inside; midpoint 3.3 -> frame 3
    assert closure_rate([_opening([3])], [[short]], tolerance_frames=0.0) == (1, 1)
    assert closure_rate([_opening([4])], [[short]], tolerance_frames=0.0) == (0, 1)
    past_end = Phone(1.0, 1.1, "B")  # the clip has 12 frames (0.4 s)
    overlapping_end = Phone(0.35, 0.5, "B")  # frames 10 and 11 lie inside
    assert closure_rate([_opening([11])], [[past_end, overlapping_end]]) == (1, 1)
    # several clips are summed
    assert closure_rate([_opening([11]), _opening([])], [[overlapping_end], [overlapping_end]]) == (1, 2)


def _naive_dtw_cost(cost: np.ndarray) -> float:
    acc = np.full((cost.shape[0] + 1, cost.shape[1] + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, cost.shape[0] + 1):
        for j in range(1, cost.shape[1] + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return acc[-1, -1]


def test_dtw_path_is_optimal_and_monotone():
    a, b = np.array([0.0, 1, 2, 3]), np.array([0.0, 0, 1, 2, 3])
    path = metrics._dtw_path(np.abs(a[:, None] - b[None, :]))
    assert path.tolist() == [[0, 0], [0, 1], [1, 2], [2, 3], [3, 4]]  # b repeats its first sample
    assert metrics._dtw_path(np.zeros((3, 3))).tolist() == [[0, 0], [1, 1], [2, 2]]  # ties take the diagonal
    rng = np.random.default_rng(1)
    cost = rng.random((9, 13))
    path = metrics._dtw_path(cost)
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [8, 12]
    assert set(map(tuple, np.diff(path, axis=0).tolist())) <= {(1, 0), (0, 1), (1, 1)}
    assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(_naive_dtw_cost(cost))


def _syllables(t: np.ndarray) -> np.ndarray:
    """A lip-opening curve (T,) in metres: one Gaussian bump per syllable, varied heights."""
    centres, heights = [0.4, 0.9, 1.3, 1.9, 2.4, 2.8, 3.5, 4.1], [6, 3, 8, 5, 7, 2, 9, 4]
    return sum(h * 1e-3 * np.exp(-0.5 * ((t - c) / 0.08) ** 2) for c, h in zip(centres, heights))


def test_mtm_is_zero_for_identical_curves():
    gt = _syllables(np.arange(150) / 30)
    assert mean_temporal_misalignment(gt, gt) == 0.0


@pytest.mark.parametrize("shift", [3, -3, 1])
def test_mtm_measures_a_shift_in_milliseconds(shift):
    t = np.arange(150) / 30
    gt, pred = _syllables(t), _syllables(t - shift / 30)  # pred lags (or leads) by |shift| frames
    # |shift| frames at 30 fps = |shift| * 33.3 ms; 3 frames -> 100 ms
    assert mean_temporal_misalignment(pred, gt) == pytest.approx(abs(shift) * 1000 / 30, abs=10.0)


def test_mtm_aligns_derivatives_so_a_constant_offset_does_not_matter():
    t = np.arange(150) / 30
    gt, pred = _syllables(t), _syllables(t - 3 / 30) + 0.01  # lagging 3 frames and held 1 cm more open
    assert mean_temporal_misalignment(pred, gt) == pytest.approx(100.0, abs=10.0)


def test_mtm_matches_only_same_kind_extrema_between_the_gt_neighbours():
    gt = np.array([0.0, 1, 0, 1, 0])  # max at 1, min at 2, max at 3
    late = np.array([0.0, 0, 0, 1, 0])  # max at 3
    # (1, 3): both maxima, but 3 lies beyond the GT min at 2 -> skipped; (2, 3): min vs max -> skipped
    assert metrics._matched_extremum_offsets(gt, late, np.array([[1, 3], [2, 3], [3, 3]])) == [0]
    early = np.array([0.0, 0, 1, 0, 0])  # max at 2, inside [2, 4] around the GT max at 3 -> offset 1
    assert metrics._matched_extremum_offsets(gt, early, np.array([[3, 2]])) == [1]


def test_mtm_is_nan_without_matching_extrema():
    ramp = np.linspace(0, 0.01, 40)
    assert np.isnan(mean_temporal_misalignment(ramp, ramp))


def test_speech_and_lip_intensity_hand_values():
    # RMS of [3, -4] = √((9 + 16) / 2) = √12.5
    assert speech_intensity(np.array([3.0, -4.0])) == pytest.approx(np.sqrt(12.5))
    vertices = np.zeros((3, 4, 3))
    vertices[1:, 0] = (3, 4, 0)      # lip vertex 0 moves 5 between frames 0 and 1, then stays
    vertices[2, 1] = (0, 0, 2)       # lip vertex 1 moves 2 between frames 1 and 2
    vertices[:, 3] = np.arange(3)[:, None] * 10.0  # not a lip vertex
    # mean speed per step: [2.5, 1.0] -> RMS √((6.25 + 1) / 2) = √3.625
    assert lip_intensity(vertices, np.zeros((4, 3)), [0, 1]) == pytest.approx(np.sqrt(3.625))


def test_speech_lip_correlation():
    speech = np.array([0.1, 0.2, 0.3, 0.5])
    assert speech_lip_correlation(speech, 2 * speech + 1) == pytest.approx(1.0)
    assert speech_lip_correlation(speech, -speech) == pytest.approx(-1.0)
    assert np.isnan(speech_lip_correlation(speech[:1], speech[:1]))
    assert np.isnan(speech_lip_correlation(speech, np.full(4, 0.3)))


def test_speech_lip_correlation_normalises_within_speakers():
    # within each speaker louder clips move the lips more, but the loud speaker moves them less overall
    speech = np.array([1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 5.0])
    lips = np.array([10.0, 11.0, 12.0, 1.0, 3.0, 5.0, 7.0])  # speakers differ in spread too
    speakers = ["a", "a", "a", "b", "b", "b", "c"]  # c has one clip: no z-score, dropped
    assert speech_lip_correlation(speech[:6], lips[:6]) < 0
    assert speech_lip_correlation(speech, lips, speakers) == pytest.approx(1.0)


def test_jitter_relative_to_ground_truth():
    t = np.arange(30)[:, None, None]
    gt = np.zeros((30, 2, 3)) + 1e-3 * np.sin(t / 4.0)
    assert jitter(gt, gt, [0, 1]) == pytest.approx(1.0)
    noisy = gt + np.random.default_rng(2).normal(scale=1e-3, size=gt.shape)
    assert jitter(noisy, gt, [0, 1]) > 1.5
    # one vertex along x: gt 0, 1, 4 -> acceleration 4 - 2 + 0 = 2; pred 1, 1, 4 -> 4 - 2 + 1 = 3; ratio 1.5
    gt1, pred1 = np.zeros((3, 1, 3)), np.zeros((3, 1, 3))
    gt1[:, 0, 0], pred1[:, 0, 0] = [0, 1, 4], [1, 1, 4]
    assert jitter(pred1, gt1, [0]) == pytest.approx(1.5)


def test_opening_correlation_finds_the_lag_and_ignores_amplitude():
    t = np.arange(90)
    gt = np.maximum(np.sin(t / 4.0), 0) * 0.01                     # opening curve in metres
    r, lag = metrics.opening_correlation(gt, gt)
    assert r == pytest.approx(1.0) and lag == 0
    late = np.concatenate([np.zeros(3), gt[:-3]]) * 0.3              # 3 frames late, a third of the amplitude
    r, lag = metrics.opening_correlation(late, gt)
    assert lag == 3 and r > 0.99
    early = np.concatenate([gt[2:], np.zeros(2)])
    assert metrics.opening_correlation(early, gt)[1] == -2
    r, lag = metrics.opening_correlation(np.zeros(90), gt)                 # a still mouth: undefined, not 0
    assert np.isnan(r) and lag == 0
    r, _ = metrics.opening_correlation(-gt, gt, max_lag=0)                 # opens when it should close
    assert r == pytest.approx(-1.0)


def _reference_dtw_path(cost: np.ndarray) -> np.ndarray:
    """The plain cell-by-cell DTW and backtrack (steps (1, 0), (0, 1), (1, 1); ties: diagonal, then up)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        diag, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
        if diag <= up and diag <= left:
            i, j = i - 1, j - 1
        elif up <= left:
            i -= 1
        else:
            j -= 1
    return np.array(path[::-1])


def test_vectorised_dtw_takes_exactly_the_reference_path():
    rng = np.random.default_rng(3)
    for trial in range(60):
        n, m = rng.integers(1, 25, size=2)
        cost = rng.random((n, m))
        if trial % 3 == 0:
            cost = np.round(cost * 2) / 2          # many exact ties
        if trial % 7 == 0:
            cost = np.zeros((n, m))                # all ties: the diagonal, then down the last column
        np.testing.assert_array_equal(metrics._dtw_path(cost), _reference_dtw_path(cost))


def test_batched_dtw_equals_one_matrix_at_a_time():
    rng = np.random.default_rng(4)
    costs = np.abs(rng.normal(size=(7, 1, 30)) - rng.normal(size=(7, 30, 1)))   # (B, T, T), |a' - b'| as in MTM
    costs[2] = 0.0
    costs[5] = np.round(costs[5])
    paths = metrics._dtw_paths(costs)
    assert len(paths) == 7
    for cost, path in zip(costs, paths):
        np.testing.assert_array_equal(path, _reference_dtw_path(cost))


def test_batched_mtm_equals_one_pair_at_a_time():
    t = np.arange(150) / 30
    gt = _syllables(t)
    pairs = [(_syllables(t - s / 30), gt) for s in (-3, 0, 2, 5)] + [(_syllables(t)[:120], gt), (gt, gt[:90]),
                                                                     (np.linspace(0, 0.01, 150), gt)]
    batched = metrics.mean_temporal_misalignments(pairs)
    single = [mean_temporal_misalignment(p, g) for p, g in pairs]
    np.testing.assert_array_equal(batched, single)       # nan where no extrema match, in the same places
    assert np.isfinite(batched[:4]).all()


def test_squared_norm_adds_like_numpy_sum():
    x = np.random.default_rng(5).normal(size=(50, 40, 3)) * 1e-3
    np.testing.assert_array_equal(metrics._squared_norm(x), (x**2).sum(axis=-1))   # bitwise, not approximately
