from itertools import pairwise

import numpy as np
import pytest

from facerl.audio import SAMPLE_RATE
from facerl.errors import FacerlError
from facerl.speech.espeak import Espeak, Variant, Voice, bundled_variant, write_data_dir
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


# --- custom voice variants (the corpus's voice bank) ---------------------------------------------------

CUSTOM = [
    Variant("t_child", "female", (260, 340), tuple((128, 90, 130, 0) for _ in range(9)), flutter=8, roughness=1,
            breath=(0, 3, 5, 5, 5, 4, 2, 2), breathw=(150, 150, 200, 200, 400, 400, 600, 600),
            tone=(600, 120, 1200, 135, 2000, 140, 3000, 150)),
    Variant("t_low", "male", (68, 95), tuple((92, 110, 80, 0) for _ in range(9)), roughness=6, voicing=120,
            consonants=(80, 110), echo=(120, 5)),
    Variant("t_klatt", "male", (100, 150), tuple((101, 100, 140, 0) for _ in range(9)), klatt=3),
]
TEXT = "Mama bought a pie. Then, happy Bob paused, and ate a banana!"


@pytest.fixture(scope="module")
def custom_utterances(tmp_path_factory):
    data = write_data_dir(tmp_path_factory.mktemp("espeak") / "data", CUSTOM)
    engine = Espeak.get(data)
    out = {v.name: engine.synthesize(TEXT, Voice(f"en-us+{v.name}", rate=170)) for v in CUSTOM}
    Espeak.get()  # back to the bundled data for the other tests
    return out


def test_variant_files_round_trip():
    for v in [*CUSTOM, bundled_variant("m1"), bundled_variant("f5")]:
        assert Variant.parse(v.name, v.text()) == v
    m1 = bundled_variant("m1")
    assert m1.pitch == (75, 109) and len(m1.formants) == 9 and m1.formants[5] == (105, 80, 100, 0)
    with pytest.raises(FacerlError, match="variant name"):
        Variant("no spaces").text()


def test_custom_variants_keep_exact_timings(custom_utterances, utterance):
    for name, utt in custom_utterances.items():
        phones = utt.phones
        assert phones[0].start_s == 0.0 and abs(phones[-1].end_s - utt.duration_s) < 2.0 / SAMPLE_RATE, name
        assert all(a.end_s == pytest.approx(b.start_s, abs=1e-9) for a, b in pairwise(phones))
        # the same words give the same phones, whatever the voice
        assert [p.phone for p in phones if p.phone != "SIL"] == [p.phone for p in utterance.phones
                                                                   if p.phone != "SIL"], name
        vowel_rms = np.median([rms(utt.audio, p.start_s, p.end_s) for p in phones if p.phone in VOWELS])
        pauses = [p for p in phones if p.phone == "SIL" and p.duration_s > 0.05]
        assert len(pauses) >= 3, name
        for p in pauses:  # silence is silent where the events say so
            assert rms(utt.audio, p.start_s + 0.01, p.end_s - 0.01) < 0.1 * vowel_rms, name


def test_custom_variants_change_the_voice(custom_utterances):
    def pitch(audio):  # median autocorrelation pitch (55-450 Hz) of clearly periodic 40 ms frames
        out = []
        for i in range(0, len(audio) - 640, 160):
            x = audio[i:i + 640] - audio[i:i + 640].mean()
            ac = np.correlate(x, x, "full")[639:]
            lo, hi = SAMPLE_RATE // 450, SAMPLE_RATE // 55
            lag = lo + int(np.argmax(ac[lo:hi]))
            if ac[0] > 0 and ac[lag] > 0.6 * ac[0]:
                out.append(SAMPLE_RATE / lag)
        return float(np.median(out))

    f0 = {name: pitch(u.audio) for name, u in custom_utterances.items()}
    assert f0["t_low"] < 110 < f0["t_klatt"] < 200 < f0["t_child"]


def test_unknown_variants_and_bad_data_folders_are_refused(tmp_path):
    with pytest.raises(FacerlError, match="unknown eSpeak voice variant"):
        Espeak.get().synthesize("Hello.", Voice("en-us+t_child"))  # only in a data folder made for it
    with pytest.raises(FacerlError, match="unique"):
        write_data_dir(tmp_path / "a", [CUSTOM[0], CUSTOM[0]])
    with pytest.raises(FacerlError, match="at most"):
        write_data_dir(tmp_path / "b", [Variant(f"v{i}") for i in range(300)])
    with pytest.raises(FacerlError, match="too long"):
        write_data_dir(tmp_path / ("x" * 150), CUSTOM)
