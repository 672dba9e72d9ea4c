import json
import pickle

import numpy as np
from scipy.io import wavfile

from facerl.data.layout import Layout
from facerl.data.synthetic import CorpusConfig, build_corpus
from facerl.head.rig import load_head
from facerl.speech.phoneset import PHONES
from facerl.speech.timing import read_phone_csv


def test_tiny_corpus_has_the_vocaset_layout(tiny_corpus):
    layout, head = Layout(tiny_corpus), load_head()
    clips = layout.clips()
    assert len(clips) == 12
    templates = pickle.loads(layout.templates_path.read_bytes())
    assert len(templates) == 4 and all(t.shape == (head.n_vertices, 3) for t in templates.values())
    assert len({t.tobytes() for t in templates.values()}) == 4  # every speaker has their own face shape
    regions = pickle.loads(layout.regions_path.read_bytes())
    assert {"lips", "forehead", "eye_region", "face", "inner_lip_pair"} <= set(regions)
    meta = json.loads(layout.meta_path.read_text())
    assert meta["splits"]["test"] == ["SynthTalk_11_m6_TA"]
    for clip in clips:
        subject, sentence = Layout.parse_clip(clip)
        rate, audio = wavfile.read(layout.wav(clip))
        assert rate == 16000 and audio.ndim == 1 and audio.dtype == np.int16
        verts = np.load(layout.vertices(clip))
        assert verts.dtype == np.float32 and verts.shape[1] == head.n_vertices * 3
        seconds = len(audio) / rate
        assert 1.5 < seconds < 6.0
        assert abs(len(verts) - seconds * 60) <= 1  # 60 fps, aligned with the audio
        weights = np.load(layout.blendshapes(clip))
        assert weights.shape == (len(verts), 52)
        phones = read_phone_csv(layout.phones(clip))
        assert all(p.phone in PHONES for p in phones)
        assert abs(phones[-1].end_s - seconds) < 0.01
        assert (sentence <= 3) if subject in meta["splits"]["train"] else (21 <= sentence <= 23)


def test_vertices_are_the_template_plus_blendshapes(tiny_corpus):
    layout, head = Layout(tiny_corpus), load_head()
    clip = layout.clips()[0]
    subject, _ = Layout.parse_clip(clip)
    weights = np.load(layout.blendshapes(clip))
    verts = np.load(layout.vertices(clip)).reshape(len(weights), -1, 3)
    np.testing.assert_allclose(verts, head.pose(weights, layout.templates()[subject]), atol=1e-6)


def test_build_is_deterministic_for_a_seed(tiny_corpus, tmp_path):
    again = tmp_path / "again"
    build_corpus(CorpusConfig(out=str(again), tiny=True, workers=2, seed=0), progress=False)
    a, b = Layout(tiny_corpus), Layout(again)
    assert a.clips() == b.clips()
    for clip in a.clips()[:4]:
        assert np.array_equal(np.load(a.vertices(clip)), np.load(b.vertices(clip)))
        assert a.wav(clip).read_bytes() == b.wav(clip).read_bytes()
    other = tmp_path / "other"
    build_corpus(CorpusConfig(out=str(other), tiny=True, workers=1, seed=1), progress=False)
    assert a.wav(a.clips()[0]).read_bytes() != Layout(other).wav(a.clips()[0]).read_bytes()
