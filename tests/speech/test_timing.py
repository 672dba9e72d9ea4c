import numpy as np
import pytest

from facerl.errors import FacerlError
from facerl.speech.timing import Phone, pad_to, read_phone_csv, write_phone_csv


def test_round_trip(tmp_path):
    phones = [Phone(0.0, 0.1, "SIL"), Phone(0.1, 0.25, "M"), Phone(0.25, 0.4, "AA")]
    write_phone_csv(tmp_path / "p.csv", phones)
    assert read_phone_csv(tmp_path / "p.csv") == phones


@pytest.mark.parametrize("text", [
    "\ufeff0.1,0.2,P\n0.2,0.4,AA1\n",             # byte-order mark, no header
    "start\tend\tphone\n0.1\t0.2\tP\n0.2\t0.4\tAA1\n",  # tabs
    "0.1;0.2;P\n0.2;0.4;AA1\n",                    # semicolons
    "0.1 0.2 P\n0.2  0.4 AA1\n",                   # spaces
])
def test_separators_bom_and_headers(tmp_path, text):
    (tmp_path / "p.csv").write_text(text, encoding="utf-8")
    phones = read_phone_csv(tmp_path / "p.csv", alphabet="arpabet")
    assert [p.phone for p in phones] == ["SIL", "P", "AA"]  # leading gap -> SIL, first phone kept
    assert phones[1].start_s == pytest.approx(0.1)


@pytest.mark.parametrize("text, message", [
    ("-0.2,0.1,P\n", "line 1"),
    ("0.0,nan,P\n", "line 1"),
    ("start,end,phone\n0,0.1,P\n0.05,0.2,AA\n", "line 3 overlaps"),
    ("0,0.1,P\n0.2,0.1,AA\n", "line 2 ends before"),
    ("start,end,phone\n", "no phones"),
    ("0,0.1,P\n0.1,0.2,QQ\n", "QQ"),
])
def test_bad_rows_name_the_line(tmp_path, text, message):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(FacerlError, match=message):
        read_phone_csv(tmp_path / "p.csv", alphabet="arpabet")


def test_non_utf8_is_a_clear_error(tmp_path):
    (tmp_path / "p.csv").write_bytes(b"0,0.1,\xff\xfe\n")
    with pytest.raises(FacerlError, match="not UTF-8"):
        read_phone_csv(tmp_path / "p.csv")


def test_pad_to_fills_trailing_audio_with_silence():
    phones = pad_to([Phone(0.0, 0.5, "AA")], 0.8)
    assert phones[-1] == Phone(0.5, 0.8, "SIL")
    assert pad_to(phones, 0.8) == phones
    assert np.isclose(phones[-1].duration_s, 0.3)
