"""The mesh lip-reader: viseme labels from phones, its metrics by hand, the fully convolutional net, and
`facerl train experiment=lipreader` end to end on the tiny corpus (real CLI, real files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.cli import main
from facerl.data.dataset import VocaDataset, spec_from_corpus
from facerl.errors import FacerlError
from facerl.eval.lipreader import (
    LIPREADER_KIND,
    VISEME_INDEX,
    VISEMES,
    LipReader,
    LipReaderNet,
    LipReaderNetConfig,
    confusion_matrix,
    frame_visemes,
    pad_edges,
    reading_scores,
    viseme_of,
)
from facerl.speech.phoneset import PHONES
from facerl.speech.timing import Phone
from facerl.train.common import load_checkpoint, save_checkpoint


def overrides(corpus, root, *extra):
    return ["experiment=lipreader_tiny", f"data.out={corpus}", f"paths.root={root}", "trainer.device=cpu", *extra]


def test_every_phone_has_a_viseme_and_every_viseme_a_phone():
    classes = {phone: VISEMES[viseme_of(phone)] for phone in PHONES}
    assert set(classes.values()) == set(VISEMES)
    assert {p for p, v in classes.items() if v == "bilabial"} == {"P", "B", "M"}
    assert {p for p, v in classes.items() if v == "labiodental"} == {"F", "V"}
    assert classes["SIL"] == "rest" and classes["AA"] == "open" and classes["UW"] == "rounded"
    assert classes["IY"] == "spread" and classes["T"] == classes["K"] == "lingual"


def test_frame_labels_follow_the_phone_timing():
    # 10 fps for round numbers: frames at 0.0, 0.1, ... 0.5 s; the last frame lies after every phone
    phones = [Phone(0.0, 0.1, "SIL"), Phone(0.1, 0.3, "M"), Phone(0.3, 0.5, "AA")]
    expected = ["rest", "bilabial", "bilabial", "open", "open", "rest"]
    assert frame_visemes(phones, 6, fps=10.0).tolist() == [VISEME_INDEX[v] for v in expected]


def test_balanced_accuracy_by_hand():
    truth = np.array([0, 0, 0, 0, 1, 1])          # class 2.. never occurs: left out of the balanced mean
    predicted = np.array([0, 0, 0, 1, 1, 0])
    confusion = confusion_matrix(truth, predicted)
    assert confusion[0, 0] == 3 and confusion[0, 1] == 1 and confusion[1, 0] == 1 and confusion.sum() == 6
    scores = reading_scores(confusion)
    assert scores.balanced_accuracy == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert scores.accuracy == pytest.approx(4 / 6) and scores.frames == 6
    static = reading_scores(confusion_matrix(truth, np.zeros(6, np.int64)))  # one class everywhere: chance
    assert static.balanced_accuracy == pytest.approx(1 / 2)


def test_a_whole_sequence_is_classified_as_its_windows_are():
    torch.manual_seed(0)
    cfg = LipReaderNetConfig(window=7, width=8, depth=2, dropout=0.0)
    net = LipReaderNet(6, len(VISEMES), cfg).eval()
    motion = torch.randn(12, 6)                                                   # (T, P)
    padded = pad_edges(motion, cfg.window // 2)                                   # (T + W - 1, P)
    whole = net(padded[None])[0]                                                  # (T, C)
    windows = torch.stack([padded[t:t + cfg.window] for t in range(12)])          # (T, W, P)
    assert whole.shape == (12, len(VISEMES))
    torch.testing.assert_close(whole, net(windows)[:, 0])
    assert torch.equal(padded[0], motion[0]) and torch.equal(padded[-1], motion[-1])


def test_training_writes_a_loadable_checkpoint(tiny_corpus, tmp_path):
    assert main(["train", *overrides(tiny_corpus, tmp_path)]) == 0
    path = tmp_path / "runs" / "tiny" / "lipreader" / "lipreader.pt"
    ckpt = load_checkpoint(path, LIPREADER_KIND, keys=("net", "lips", "meta", "optimizer", "config"))
    assert ckpt["meta"]["classes"] == list(VISEMES) and 1 <= ckpt["epoch"] <= 2 and ckpt["step"] in (3, 6)
    assert 0.0 <= ckpt["metrics"]["val_balanced_accuracy"] <= 1.0
    reader = LipReader.load(path.parent)                                          # the folder works too
    assert reader.n_vertices == ckpt["meta"]["n_vertices"] and len(reader.lips) * 3 == ckpt["meta"]["n_coords"]


@pytest.fixture(scope="module")
def trained_reader(tiny_corpus, tmp_path_factory) -> LipReader:
    root = tmp_path_factory.mktemp("lipreader")
    assert main(["train", *overrides(tiny_corpus, root, "trainer.epochs=4", "trainer.steps_per_epoch=40")]) == 0
    return LipReader.load(root / "runs" / "tiny" / "lipreader")


def test_ground_truth_reads_far_better_than_a_static_face(trained_reader, tiny_corpus):
    ds = VocaDataset(spec_from_corpus(str(tiny_corpus)), "test")
    clips = [ds[i] for i in range(len(ds))]
    truth = [(c.vertices.numpy().reshape(len(c.vertices), -1, 3), c.template.numpy().reshape(-1, 3), c.phones)
             for c in clips]
    static = [(np.repeat(template[None], len(v), 0), template, phones) for v, template, phones in truth]
    gt, still = trained_reader.score(truth), trained_reader.score(static)
    n_present = int((gt.confusion.sum(1) > 0).sum())
    assert still.balanced_accuracy == pytest.approx(1 / n_present)                # one viseme everywhere
    assert gt.balanced_accuracy > still.balanced_accuracy + 0.15                  # measured 0.41-0.56 vs 0.125
    assert gt.frames == still.frames == sum(len(c.vertices) for c in clips)


def test_mismatched_meshes_and_missing_phones_are_one_line_errors(trained_reader):
    with pytest.raises(FacerlError, match="vertices"):
        trained_reader.predict(np.zeros((5, 10, 3), np.float32), np.zeros((10, 3), np.float32))
    n = trained_reader.n_vertices
    with pytest.raises(FacerlError, match="phone timings"):
        trained_reader.score([(np.zeros((5, n, 3), np.float32), np.zeros((n, 3), np.float32), None)])


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    for path in (tmp_path / "missing.pt", tmp_path):                              # no file; a folder without one
        with pytest.raises(FacerlError, match="not found") as err:
            LipReader.load(path)
        assert "\n" not in str(err.value)
    save_checkpoint(tmp_path / "actor.pt", {"kind": "facerl-actor", "weights": torch.zeros(2)})
    with pytest.raises(FacerlError, match="not a facerl"):
        LipReader.load(tmp_path / "actor.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FacerlError, match="cannot read"):
        LipReader.load(tmp_path / "junk.pt")


def test_config_errors_are_one_line(tiny_corpus, tmp_path, capsys):
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.net.window=10")]) == 2
    assert "window must be odd" in capsys.readouterr().err
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.speed=3")]) == 2
    assert "trainer.speed" in capsys.readouterr().err


def test_hitting_the_safety_cap_is_reported_loudly(tiny_corpus, tmp_path, capsys):
    assert main(["train", *overrides(tiny_corpus, tmp_path, "trainer.max_minutes=0.000001")]) == 0
    assert "WARNING: the lip-reader stopped at step 1 of 6" in capsys.readouterr().out
    ckpt = load_checkpoint(tmp_path / "runs" / "tiny" / "lipreader" / "lipreader.pt", LIPREADER_KIND)
    assert ckpt["step"] == 1 and ckpt["epoch"] == 1
