"""Offline forced alignment (pocketsphinx) of real eSpeak speech, and `facerl data from-speech` without a CSV."""

from __future__ import annotations

import difflib
from itertools import pairwise

import numpy as np
import pytest

from facerl.audio import SAMPLE_RATE, write_wav
from facerl.cli import main
from facerl.errors import FacerlError
from facerl.speech.align import align_text, normalise_text
from facerl.speech.espeak import Espeak, Voice
from facerl.speech.phoneset import PHONES
from facerl.speech.timing import read_phone_csv, write_phone_csv

BOB = "Bob met a happy man."
MAYA = "Maya bought a big map of Paris."


@pytest.fixture(scope="module")
def bob():
    return Espeak.get().synthesize(BOB, Voice("en-us+m3"))


@pytest.fixture(scope="module")
def maya():
    return Espeak.get().synthesize(MAYA, Voice("en-us+f2"))


def onset_errors(truth, aligned) -> np.ndarray:
    """|aligned - true| onsets (s) of the phones both sequences share (CMU and eSpeak spell a few differently)."""
    a, b = [p.phone for p in truth], [p.phone for p in aligned]
    blocks = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks()
    pairs = [(m.a + k, m.b + k) for m in blocks for k in range(m.size)]
    return np.array([abs(aligned[j].start_s - truth[i].start_s) for i, j in pairs if (i, j) != (0, 0)])


def run(args, capsys):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_error(rc, err, pattern):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert pattern in lines[0], lines[0]


def test_aligned_boundaries_are_close_to_the_exact_espeak_timings(bob, maya):
    errors = []
    for utt, text in ((bob, BOB), (maya, MAYA)):
        phones = align_text(utt.audio, text)
        assert phones[0].start_s == 0.0 and phones[-1].end_s == pytest.approx(utt.duration_s)
        assert all(a.end_s == pytest.approx(b.start_s) and b.end_s > b.start_s for a, b in pairwise(phones))
        assert all(p.phone in PHONES for p in phones)
        errors.append(onset_errors(utt.phones, phones))
    spoken = [p.phone for p in align_text(bob.audio, BOB) if p.phone != "SIL"]
    assert " ".join(spoken) == "B AA B M EH T AH HH AE P IY M AE N"
    errors = np.concatenate(errors)
    # Measured: median ~7 ms, ~75 % within 20 ms. Phones spread evenly over the clip, or all shifted by
    # 50 ms, give medians of 30-50 ms.
    assert len(errors) >= 25
    assert np.median(errors) < 0.015 and np.mean(errors <= 0.020) >= 0.6, np.round(errors * 1000)


def test_text_normalisation():
    assert normalise_text("Bob's 21st \u201cbig\u201d map\u2019s, forty-four CAFÉS & 7 pies!") == [
        "bob's", "twenty", "first", "big", "map's", "forty", "four", "cafes", "and", "seven", "pies"]
    with pytest.raises(FacerlError, match="'1999', '3.5'"):
        normalise_text("In 1999 it cost 3.5 dollars")
    with pytest.raises(FacerlError, match="no words"):
        normalise_text(" ... !")


def test_unknown_words_are_all_named_and_a_user_dictionary_fixes_them(tmp_path):
    utt = Espeak.get().synthesize("Bob met a happy zorblax.", Voice("en-us+m3"))
    with pytest.raises(FacerlError) as info:
        align_text(utt.audio, "Bob met a happy zorblax quibbit.", source="z.wav")
    message = str(info.value)
    assert "ZORBLAX" in message and "QUIBBIT" in message and "--dict" in message and message.startswith("z.wav")
    assert "\n" not in message
    dictionary = tmp_path / "extra.dict"
    dictionary.write_text(";;; my words\nZORBLAX  Z AO1 R B L AE2 K S\n")
    spoken = " ".join(p.phone for p in align_text(utt.audio, "Bob met a happy zorblax.", dictionary))
    assert "Z AO R B L AE K S" in spoken
    with pytest.raises(FacerlError, match="ZORBLAX"):  # the user's words do not leak into later alignments
        align_text(utt.audio, "Bob met a happy zorblax.")
    dictionary.write_text("ZORBLAX  Z AO1 R B L QQ K S\n")
    with pytest.raises(FacerlError, match=r"extra.dict: line 1: .*'QQ'"):
        align_text(utt.audio, "Bob met a happy zorblax.", dictionary)


def test_cli_aligns_text_from_the_option_and_from_a_txt_beside_the_wav(bob, tmp_path, capsys):
    wav = tmp_path / "speech.wav"
    write_wav(wav, bob.audio)
    out = tmp_path / "d"
    rc, stdout, err = run(["data", "from-speech", wav, "--text", BOB, "--out", out], capsys)
    assert rc == 0, err
    assert "wrote clip External_01_TA_sentence01" in stdout
    phones = read_phone_csv(out / "phones" / "External_01_TA_sentence01.csv")
    assert [p.phone for p in phones if p.phone != "SIL"][:4] == ["B", "AA", "B", "M"]
    assert phones[-1].end_s == pytest.approx(bob.duration_s, abs=1e-3)
    assert (out / "vertices_npy" / "External_01_TA_sentence01.npy").exists()

    (tmp_path / "speech.txt").write_text(BOB.upper() + "\n")
    rc, _, err = run(["data", "from-speech", wav, "--out", out, "--sentence", "2"], capsys)
    assert rc == 0, err
    assert read_phone_csv(out / "phones" / "External_01_TA_sentence02.csv") == phones


def test_cli_folder_mode_checks_every_transcript_first(bob, maya, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_wav(folder / "a.wav", bob.audio)
    (folder / "a.txt").write_text(BOB)
    write_wav(folder / "b.wav", maya.audio)
    write_phone_csv(folder / "b.csv", maya.phones)  # exact timings: used as they are
    write_wav(folder / "c.wav", bob.audio)
    out = tmp_path / "d"
    rc, _, err = run(["data", "from-speech", folder, "--out", out, "--sentence", "5"], capsys)
    assert_clean_error(rc, err, "c.wav")
    assert not out.exists()

    (folder / "c.wav").unlink()
    rc, stdout, err = run(["data", "from-speech", folder, "--out", out, "--sentence", "5"], capsys)
    assert rc == 0, err
    assert "wrote 2 clips" in stdout
    assert sorted(p.name for p in (out / "vertices_npy").iterdir()) == [
        "External_01_TA_sentence05.npy", "External_01_TA_sentence06.npy"]
    copied = read_phone_csv(out / "phones" / "External_01_TA_sentence06.csv")
    assert [p.phone for p in copied if p.phone != "SIL"] == [p.phone for p in maya.phones if p.phone != "SIL"]


@pytest.mark.parametrize("case", ["wrong text", "silence", "missing words"])
def test_cli_refuses_audio_that_does_not_match_its_text(bob, tmp_path, capsys, case):
    wav = tmp_path / "speech.wav"
    audio = np.zeros(2 * SAMPLE_RATE, np.float32) if case == "silence" else bob.audio
    write_wav(wav, audio)
    text = {"wrong text": "The cat sat on the mat and ate a fish.", "silence": BOB, "missing words": "Bob"}[case]
    out = tmp_path / "d"
    rc, _, err = run(["data", "from-speech", wav, "--text", text, "--out", out], capsys)
    assert_clean_error(rc, err, str(wav))
    assert not out.exists()
