import numpy as np
import pytest
import torch

from facerl.data.dataset import VocaDataset, collate, spec_from_corpus
from facerl.data.layout import Layout
from facerl.errors import FacerlError


def test_splits_read_at_30_fps(tiny_corpus):
    spec = spec_from_corpus(str(tiny_corpus))
    sizes = {split: len(VocaDataset(spec, split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 3, "test": 3}
    ds = VocaDataset(spec, "test")
    clip = ds[0]
    raw = np.load(Layout(tiny_corpus).vertices(clip.name))
    assert torch.equal(clip.vertices, torch.from_numpy(raw[::2]))  # round trip, every 2nd frame
    assert clip.style == -1 and clip.phones is not None
    assert VocaDataset(spec, "train")[0].style in (0, 1)


def test_batches_pad_and_mask(tiny_corpus):
    ds = VocaDataset(spec_from_corpus(str(tiny_corpus)), "train")
    clips = [ds[i] for i in range(3)]
    batch = collate(clips)
    lengths = [len(c.vertices) for c in clips]
    assert batch.vertices.shape == (3, max(lengths), clips[0].vertices.shape[1])
    assert batch.frame_mask.sum(1).tolist() == lengths
    assert batch.audio_mask.sum(1).tolist() == [len(c.audio) for c in clips]
    for b, n in enumerate(lengths):
        assert torch.equal(batch.vertices[b, :n], clips[b].vertices)
        assert batch.vertices[b, n:].abs().sum() == 0
    assert batch.template.shape == (3, clips[0].template.numel())


def test_missing_subject_in_templates_is_a_clear_error(tiny_corpus):
    spec = spec_from_corpus(str(tiny_corpus))
    spec.test_subjects = ["Nobody_TA"]
    with pytest.raises(FacerlError, match="Nobody_TA"):
        VocaDataset(spec, "test")


def test_vertex_count_must_match_template(tiny_corpus, tmp_path):
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(tiny_corpus, root)
    layout = Layout(root)
    clip = next(c for c in layout.clips() if "SynthTalk_11" in c)
    np.save(layout.vertices(clip), np.zeros((10, 30), np.float32))
    np.save(layout.root / "vertices_npy" / "notes.npy", np.zeros(3))  # stray files are ignored
    with pytest.raises(FacerlError, match="vertices per frame"):  # caught before any training starts
        VocaDataset(spec_from_corpus(str(root)), "test")
