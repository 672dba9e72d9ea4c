from itertools import pairwise

import numpy as np
import pytest

from facerl.audio import SAMPLE_RATE
from facerl.speech.espeak import Espeak, Voice
from facerl.speech.phoneset import PHONES

VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def rms(audio: np.ndarray, start: float, end: float) -> float:
    seg = audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
    return float(np.sqrt(np.mean(seg ** 2))) if len(seg) else 0.0


@pytest.fixture(scope="module")
def utterance():
    return Espeak.get().synthesize("Mama bought a pie. Then, happy Bob paused, and ate a banana!", Voice("en-us+f2"))


def test_phones_tile_the_audio_exactly(utterance):
    phones = utterance.phones
    assert phones[0].start_s == 0.0
    assert abs(phones[-1].end_s - utterance.duration_s) < 2.0 / SAMPLE_RATE
    for a, b in pairwise(phones):
        assert a.end_s == pytest.approx(b.start_s, abs=1e-9)
        assert b.end_s > b.start_s
    assert all(p.phone in PHONES for p in phones)
    assert [p.phone for p in phones if p.phone != "SIL"][:4] == ["M", "AA", "M", "AH"]


def test_phone_events_line_up_with_the_audio(utterance):
    audio, phones = utterance.audio, utterance.phones
    vowel_rms = np.median([rms(audio, p.start_s, p.end_s) for p in phones if p.phone in VOWELS])
    pauses = [p for p in phones if p.phone == "SIL" and p.duration_s > 0.05]
    assert pauses, "the comma and full stops must give pauses"
    for p in pauses:  # silence is silent, speech is loud: boundaries are where the sound is
        assert rms(audio, p.start_s + 0.01, p.end_s - 0.01) < 0.1 * vowel_rms
    # the voiceless closure of a stop is much quieter than the vowel after it
    for a, b in pairwise(phones):
        if a.phone == "P" and b.phone in VOWELS:
            assert rms(audio, a.start_s, a.start_s + 0.5 * a.duration_s) < 0.5 * rms(audio, b.start_s, b.end_s)


def test_voices_differ_and_output_is_16k_mono():
    e = Espeak.get()
    a = e.synthesize("A simple test.", Voice("en-us+m1", pitch=40))
    b = e.synthesize("A simple test.", Voice("en-us+f3", pitch=65))
    assert a.audio.ndim == 1 and a.audio.dtype == np.float32
    assert 0.5 < a.duration_s < 3.0

    def spec(x):
        return np.abs(np.fft.rfft(x[:8000]))

    assert np.argmax(spec(b.audio)[20:]) != np.argmax(spec(a.audio)[20:])
