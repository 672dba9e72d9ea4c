import numpy as np

from facerl.audio import read_wav, write_wav
from facerl.cli import main
from facerl.data.dataset import DatasetSpec, VocaDataset
from facerl.data.layout import Layout
from facerl.head.rig import lip_gap, load_head
from facerl.speech.espeak import Espeak, Voice


def write_alignment(path, phones, symbols):
    rows = ["start,end,phone"] + [f"{p.start_s:.4f},{p.end_s:.4f},{symbols.get(p.phone, p.phone)}" for p in phones]
    path.write_text("\n".join(rows) + "\n")


def test_from_speech_with_arpabet_and_xsampa(tmp_path):
    utt = Espeak.get().synthesize("Bob met a happy man.", Voice("en-us+f4"))
    wav = tmp_path / "speech.wav"
    write_wav(wav, utt.audio)
    arpa = tmp_path / "arpabet.csv"  # forced-aligner style: stress digits and 'sil'
    write_alignment(arpa, utt.phones, {"AA": "AA1", "AE": "AE1", "EH": "EH1", "AH": "AH0", "SIL": "sil"})
    xsampa = tmp_path / "xsampa.csv"
    write_alignment(xsampa, utt.phones, {"AA": "A", "AE": "{", "EH": "E", "AH": "@", "B": "b", "M": "m", "T": "t",
                                         "P": "p", "IY": "i:", "N": "n", "HH": "h", "SIL": "_"})
    root = tmp_path / "ext"
    assert main(["data", "from-speech", str(wav), str(arpa), "--out", str(root), "--subject", "Ext_TA",
                 "--sentence", "1"]) == 0
    assert main(["data", "from-speech", str(wav), str(xsampa), "--out", str(root), "--subject", "Ext_TA",
                 "--sentence", "2", "--alphabet", "xsampa"]) == 0
    assert main(["data", "from-speech", str(wav), str(xsampa), "--out", str(root), "--subject", "Ext2_TA",
                 "--alphabet", "xsampa", "--style-seed", "3"]) == 0
    layout, head = Layout(root), load_head()
    assert layout.clips() == ["Ext2_TA_sentence01", "Ext_TA_sentence01", "Ext_TA_sentence02"]
    before = layout.vertices("Ext_TA_sentence01").read_bytes()
    # nothing is silently replaced: an existing clip, or an existing subject with another face
    assert main(["data", "from-speech", str(wav), str(arpa), "--out", str(root), "--subject", "Ext_TA"]) == 2
    assert main(["data", "from-speech", str(wav), str(arpa), "--out", str(root), "--subject", "Ext_TA",
                 "--sentence", "3", "--style-seed", "4"]) == 2
    assert layout.vertices("Ext_TA_sentence01").read_bytes() == before
    assert not layout.vertices("Ext_TA_sentence03").exists()
    spec = DatasetSpec(root=str(root), train_subjects=["Ext_TA"], val_subjects=[], test_subjects=[])
    clip = VocaDataset(spec, "train")[0]
    assert clip.name == "Ext_TA_sentence01"
    verts = clip.vertices.numpy().reshape(len(clip.vertices), -1, 3)
    gap = lip_gap(verts, head.regions["inner_lip_pair"])
    assert np.ptp(gap) > 0.004  # the mouth moves
    np.testing.assert_allclose(read_wav(layout.wav("Ext_TA_sentence01")), utt.audio, atol=1e-4)
