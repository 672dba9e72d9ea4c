"""Real-VOCASET path, tested with a tiny stand-in of its raw release made here."""

import pickle

import numpy as np
import pytest

from facerl.data.dataset import DatasetSpec, VocaDataset
from facerl.data.vocaset import convert_vocaset
from facerl.errors import FacerlError

SUBJECTS = ["FaceTalk_A_TA", "FaceTalk_B_TA"]
V = 25


def make_raw(root, rng):
    rows, index, audio = [], {}, {}
    for s in SUBJECTS:
        index[s], audio[s] = {}, {}
        for q in ("sentence01", "sentence21"):
            n = int(rng.integers(30, 50))
            index[s][q] = {f: len(rows) + f for f in range(n)}
            rows.extend(rng.normal(size=(n, V, 3)).astype(np.float32))
            audio[s][q] = {"audio": (rng.normal(size=int(n / 60 * 22000)) * 3000).astype(np.int16),
                           "sample_rate": 22000}
    np.save(root / "data_verts.npy", np.stack(rows))
    for name, obj in [("subj_seq_to_idx.pkl", index), ("raw_audio_fixed.pkl", audio),
                      ("templates.pkl", {s: np.zeros((V, 3)) for s in SUBJECTS}),
                      ("FLAME_masks.pkl", {"lips": np.arange(5), "forehead": np.arange(5, 10)})]:
        (root / name).write_bytes(pickle.dumps(obj, protocol=2))
    return np.stack(rows), index


def test_convert_then_read(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    verts, index = make_raw(raw, np.random.default_rng(0))
    out = tmp_path / "vocaset"
    assert convert_vocaset(raw, out, masks=raw / "FLAME_masks.pkl", progress=False) == 4
    spec = DatasetSpec(root=str(out), train_subjects=[SUBJECTS[0]], val_subjects=[], test_subjects=[SUBJECTS[1]])
    train, test = VocaDataset(spec, "train"), VocaDataset(spec, "test")
    assert train.names == ["FaceTalk_A_TA_sentence01", "FaceTalk_A_TA_sentence21"]
    assert test.names == ["FaceTalk_B_TA_sentence21"]  # held-out speakers read sentences 21-40 only
    clip = test[0]
    rows = [index["FaceTalk_B_TA"]["sentence21"][f] for f in sorted(index["FaceTalk_B_TA"]["sentence21"])]
    np.testing.assert_array_equal(clip.vertices.numpy(), verts[rows][::2].reshape(-1, V * 3))
    assert abs(len(clip.audio) / 16000 - len(rows) / 60) < 0.01  # resampled 22 kHz -> 16 kHz
    assert (out / "regions.pkl").exists()


def test_missing_raw_files_and_unsafe_pickles_are_refused(tmp_path):
    with pytest.raises(FacerlError, match="missing VOCASET"):
        convert_vocaset(tmp_path, tmp_path / "out", progress=False)
    raw = tmp_path / "raw"
    raw.mkdir()
    make_raw(raw, np.random.default_rng(1))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (raw / "templates.pkl").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(FacerlError, match="refusing"):
        convert_vocaset(raw, tmp_path / "out2", progress=False)
