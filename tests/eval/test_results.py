"""`facerl test`'s writer (write_results: a few sequences decoded at a time, files saved in the background,
audio features shared between actors) against the plain batch prediction of predict_dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerl.data.dataset import VocaDataset, spec_from_corpus
from facerl.eval.predict import predict_dataset
from facerl.eval.results import background_saves, style_conditions, write_results
from facerl.models.checkpoint import load_actor


def test_written_files_are_the_batch_predictions(tiny_corpus, tiny_actor_run, tmp_path):
    spec = spec_from_corpus(str(tiny_corpus))
    actor, meta, _ = load_actor(tiny_actor_run / "actor" / "best.pt", "cpu")
    conditions = style_conditions(meta, "both")
    shared: dict = {}
    n = write_results(actor, meta, spec, ["test"], "both", tmp_path / "a", torch.device("cpu"), shared=shared)
    ds = VocaDataset(spec, "test", with_phones=False)
    assert n == len(ds) * len(conditions)
    for clips, pred in predict_dataset(actor, ds, [i for i, _ in conditions], "cpu"):      # (B, C, T, V*3)
        for b, clip in enumerate(clips):
            for c, (_, name) in enumerate(conditions):
                written = np.load(tmp_path / "a" / f"{clip.name}_condition_{name}.npy")
                np.testing.assert_allclose(written, pred[b, c, :len(clip.vertices)].numpy(), rtol=0, atol=1e-7)
    # a second actor with the same encoder reuses the first one's audio features: the same files
    assert shared and write_results(actor, meta, spec, ["test"], "both", tmp_path / "b", torch.device("cpu"),
                                    shared=shared) == n
    for path in sorted((tmp_path / "a").glob("*.npy")):
        np.testing.assert_array_equal(np.load(path), np.load(tmp_path / "b" / path.name))


def test_background_saves_write_everything_and_raise_the_first_error(tmp_path):
    with background_saves(pending=2) as save:
        for k in range(7):
            save(tmp_path / f"{k}.npy", np.full((3, 6), k, np.float32))
    assert [float(np.load(tmp_path / f"{k}.npy")[0, 0]) for k in range(7)] == list(range(7))
    (tmp_path / "taken").mkdir()
    with pytest.raises(Exception, match="directory"), background_saves() as save:
        save(tmp_path / "taken", np.zeros(3))             # a folder where the file should go
