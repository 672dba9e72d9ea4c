import numpy as np

from facerl.head.arkit import ARKIT_INDEX, N_ARKIT
from facerl.head.rig import lip_gap, load_head


def test_asset_is_a_5k_head_in_metres_with_regions():
    head = load_head()
    assert 4000 <= head.n_vertices <= 6000
    assert head.blendshapes.shape == (N_ARKIT, head.n_vertices, 3)
    height = np.ptp(head.vertices[:, 1])
    assert 0.18 < height < 0.35  # a human head, in metres
    assert set(np.unique(head.part)) == {0, 1, 2, 3}  # skin, eyes, teeth, tongue kept
    for name in ("lips", "eye_region", "forehead", "face"):
        idx = head.regions[name]
        assert len(idx) > 50 and idx.max() < head.n_vertices
    assert head.faces.max() < head.n_vertices


def test_neutral_weights_give_the_template_exactly():
    head = load_head()
    template = head.template(np.full(len(head.identity_names), 0.3))
    posed = head.pose(np.zeros((4, N_ARKIT)), template)
    assert np.array_equal(posed, np.broadcast_to(template, posed.shape))


def test_jaw_open_opens_and_mouth_close_cancels_it():
    head = load_head()
    pair = head.regions["inner_lip_pair"]
    w = np.zeros((3, N_ARKIT))
    w[1, ARKIT_INDEX["jawOpen"]] = 1.0
    w[2, ARKIT_INDEX["jawOpen"]] = w[2, ARKIT_INDEX["mouthClose"]] = 0.6
    gap = lip_gap(head.pose(w), pair)
    assert gap[1] - gap[0] > 0.02          # full jaw opening separates the lips by > 2 cm
    assert abs(gap[2] - gap[0]) < 0.001    # ARKit convention: mouthClose = jawOpen keeps the lips sealed
