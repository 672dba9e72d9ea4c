import numpy as np
import pytest

from facerl.animation.ground_truth import CLOSURE_THRESHOLD_M, FPS, animate
from facerl.animation.style import SpeakerStyle, sample_style
from facerl.data.layout import Layout
from facerl.data.measures import clip_lip_gap, phone_frames
from facerl.head.arkit import ARKIT_INDEX
from facerl.head.rig import load_head
from facerl.speech.espeak import Espeak, Voice
from facerl.speech.timing import read_phone_csv

OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY"}


def clip_gaps(root, clip):
    """Inner-lip gap relative to the speaker's template (T60,) and the clip's phones."""
    layout = Layout(root)
    return clip_lip_gap(layout, clip), read_phone_csv(layout.phones(clip))


def frames_of(phone, n):
    return phone_frames(phone, n, FPS)


def test_lips_close_inside_every_bilabial(tiny_corpus):
    checked = 0
    for clip in Layout(tiny_corpus).clips():
        gap, phones = clip_gaps(tiny_corpus, clip)
        for p in phones:
            inside = frames_of(p, len(gap))
            if p.phone in ("P", "B", "M") and inside.any():
                assert gap[inside].min() < CLOSURE_THRESHOLD_M, f"{clip}: {p} never closes"
                checked += 1
    assert checked > 20


def test_lips_open_clearly_on_open_vowels(tiny_corpus):
    peaks = []
    for clip in Layout(tiny_corpus).clips():
        gap, phones = clip_gaps(tiny_corpus, clip)
        peaks += [gap[frames_of(p, len(gap))].max() for p in phones
                  if p.phone in OPEN_VOWELS and p.duration_s >= 0.09 and frames_of(p, len(gap)).any()]
    peaks = np.array(peaks)
    assert len(peaks) > 10
    assert np.median(peaks) > 0.006           # typically 6+ mm open
    assert (peaks > 0.003).mean() > 0.9       # and nearly always clearly above closure


@pytest.fixture(scope="module")
def long_utterance():
    text = ("My brother Paul bought a bright blue boat. We sailed past the harbour, waving at people on the "
            "pier, and by evening the whole family was happy, tired and hungry. Maybe next summer we will "
            "travel further, perhaps to the islands, if the weather permits.")
    return Espeak.get().synthesize(text, Voice("en-us+m2"))


def test_same_seed_same_animation_other_seed_differs(long_utterance):
    style = SpeakerStyle()
    a = animate(long_utterance.phones, long_utterance.audio, style, np.random.default_rng(1))
    b = animate(long_utterance.phones, long_utterance.audio, style, np.random.default_rng(1))
    c = animate(long_utterance.phones, long_utterance.audio, style, np.random.default_rng(2))
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 0.05
    assert a.shape == (round(long_utterance.duration_s * FPS), 52)
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_upper_face_blinks_and_raises_brows(long_utterance):
    w = animate(long_utterance.phones, long_utterance.audio, SpeakerStyle(blink_per_min=20, brow_prob=1.0),
                np.random.default_rng(0))
    blink = w[:, ARKIT_INDEX["eyeBlinkLeft"]] > 0.5
    n_blinks = int((np.diff(blink.astype(int)) == 1).sum())
    minutes = len(w) / FPS / 60
    assert 1 <= n_blinks <= 40 * minutes + 1
    assert w[:, ARKIT_INDEX["browInnerUp"]].max() > 0.1


def test_speaker_styles_differ_in_articulation(long_utterance):
    head = load_head()
    rng = np.random.default_rng
    styles = [sample_style(rng([0, 1, k]), len(head.identity_names)) for k in range(12)]
    assert np.ptp([s.jaw_gain for s in styles]) > 0.2 and np.ptp([s.lip_gain for s in styles]) > 0.2
    jaw = [animate(long_utterance.phones, long_utterance.audio, SpeakerStyle(jaw_gain=g), rng(5))
           [:, ARKIT_INDEX["jawOpen"]].mean() for g in (0.8, 1.2)]
    assert 1.3 < jaw[1] / jaw[0] < 1.7


@pytest.mark.parametrize("duration", [0.012, 0.02, 0.034, 0.08])
@pytest.mark.parametrize("lead", [0.0, 0.04])
def test_even_a_very_short_bilabial_seals_at_a_frame_inside_it(duration, lead):
    from facerl.animation.ground_truth import closure_envelope
    from facerl.speech.timing import Phone

    start = 0.6185
    phones = [Phone(0.0, start, "AH"), Phone(start, start + duration, "P"), Phone(start + duration, 1.0, "AY")]
    times = np.arange(60) / FPS
    env = closure_envelope(phones, times, lead)
    inside = (times >= start) & (times < start + duration)
    assert env.max() == 1.0
    if inside.any():
        assert env[inside].max() == 1.0
