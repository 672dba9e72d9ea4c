"""Other synthesisers (Piper, SVOX Pico, flite, Festival): real synthesis, phones that match the audio."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facerl.audio import SAMPLE_RATE
from facerl.errors import FacerlError
from facerl.speech import engines
from facerl.speech.engines import piper_phones, speak

TEXT = "Bob bought a map of Paris."


def test_piper_tokens_merge_into_phones():
    # ^ b ˈ ɑ ː b ␠ m ˈ a ɪ . $ with sample counts; stress joins the next vowel, length the previous one,
    # a space is split between its neighbours, a diphthong's two letters are one phone, punctuation is a pause
    tokens = [("^", 100), ("b", 50), ("ˈ", 20), ("ɑ", 60), ("ː", 40), ("b", 30), (" ", 10), ("m", 40),
              ("ˈ", 10), ("a", 30), ("ɪ", 30), (".", 80), ("$", 20)]
    phones = piper_phones(tokens, rate_hz=1000)
    assert [p.phone for p in phones] == ["SIL", "B", "AA", "B", "M", "AY", "SIL"]
    durations = [round(p.duration_s * 1000) for p in phones]
    assert durations == [100, 50, 120, 35, 45, 70, 100]
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(phones))
    assert phones[-1].end_s == pytest.approx(sum(n for _, n in tokens) / 1000)


def _check_speech(speech, exact: bool):
    assert speech.audio.dtype == np.float32 and 0.5 < speech.duration_s < 5
    assert 0.1 < np.abs(speech.audio).max() <= 1.0
    if not exact:
        assert speech.phones is None
        return
    phones = speech.phones
    assert phones[0].start_s == 0 and phones[-1].end_s == pytest.approx(speech.duration_s, abs=0.02)
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in itertools.pairwise(phones))
    spoken = [p.phone for p in phones if p.phone != "SIL"]
    assert spoken.count("B") >= 3 and "M" in spoken and "P" in spoken   # Bob, bought, map, Paris
    # the audio is loud where phones are and quiet in the leading pause
    lead = phones[0].end_s if phones[0].phone == "SIL" else 0.0
    speech_part = speech.audio[int(lead * SAMPLE_RATE):]
    if lead > 0.05:
        assert np.abs(speech.audio[:int(0.8 * lead * SAMPLE_RATE)]).mean() < np.abs(speech_part).mean()


def test_piper_speaks_with_exact_phones():
    _check_speech(speak("piper", TEXT, "joe"), exact=True)
    # Piper draws its phone durations (VITS), so one clip's length varies by a few percent: single clips at rate
    # 0.8 and 1.0 came out only 1.04x apart at worst, their medians 1.16x. Compare medians of three.
    normal = np.median([speak("piper", TEXT, "joe").duration_s for _ in range(3)])
    slow = np.median([speak("piper", TEXT, "joe", rate=0.8).duration_s for _ in range(3)])
    assert slow > normal * 1.08


def test_pico_speaks_without_phones():
    _check_speech(speak("pico", TEXT, "en-US"), exact=False)
    _check_speech(speak("pico", TEXT, "en-GB"), exact=False)


@pytest.mark.parametrize(("engine", "voice"), [("flite", "slt"), ("flite", "kal"), ("festival", "kal_diphone")])
def test_debian_engines_when_installed(engine, voice):
    reason = engines.available(engine)
    if reason:
        pytest.skip(reason)
    _check_speech(speak(engine, TEXT, voice), exact=True)


def test_unknown_engine_or_voice_is_one_line():
    with pytest.raises(FacerlError, match="unknown speech engine"):
        speak("sam", TEXT, "x")
    with pytest.raises(FacerlError, match="no voice"):
        speak("piper", TEXT, "amy")
