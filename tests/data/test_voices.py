"""Out-of-domain voice sets (`facerl data voices`) and the voices table (`facerl evaluate-voices`)."""

from __future__ import annotations

import json

import numpy as np

from facerl.cli import main
from facerl.data.layout import Layout
from facerl.data.measures import BILABIALS, clip_lip_gap, phone_frames
from facerl.speech.timing import read_phone_csv
from tests.conftest import tiny_train_overrides


def test_voice_sets_have_corpus_like_ground_truth_and_evaluate_per_source(tiny_corpus, tiny_actor_run, tmp_path,
                                                                          capsys):
    out = tmp_path / "voices"
    assert main(["data", "voices", "--out", str(out), "--sources", "piper-joe", "pico-us", "flite-slt",
                 "recorded-allison", "--clips", "2"]) == 0
    stdout = capsys.readouterr().out
    manifest = json.loads((out / "voices.json").read_text())
    built = manifest["sources"]
    assert "piper-joe" in built and len(built["piper-joe"]["clips"]) == 2
    assert built["piper-joe"]["phones"] == "exact" and "MIT" in built["piper-joe"]["licence"]
    assert built["pico-us"]["phones"] == "aligned"                          # no timings: pocketsphinx
    for optional in ("flite-slt", "recorded-allison"):                      # Debian extras: built or skipped
        assert (optional in built) != (optional in manifest["skipped"])
        assert optional in built or f"skipping voice source {optional}" in stdout
    if "recorded-allison" in built:
        assert "CC-BY-SA" in built["recorded-allison"]["licence"] and built["recorded-allison"]["clips"][0]["recording"]
    layout = Layout(out)
    closed = total = 0
    for clip in layout.clips():   # the ground truth closes the lips on bilabials, as in the corpus
        gap = clip_lip_gap(layout, clip)
        for phone in read_phone_csv(layout.phones(clip)):
            if phone.phone in BILABIALS:
                total += 1
                closed += int(gap[phone_frames(phone, len(gap), 60.0)].min() < 0.002)
    assert total >= 2 and closed == total

    report = tmp_path / "report"
    args = tiny_train_overrides(tiny_corpus, tiny_actor_run.parent.parent)
    assert main(["evaluate-voices", *args, "--actor", f"tiny={tiny_actor_run / 'actor' / 'best.pt'}",
                 "--voices", str(out), "--out", str(report), "--no-judge"]) == 0
    rows = {r["source"]: r for r in json.loads((report / "metrics.json").read_text())["rows"]}
    assert set(rows) == {"eSpeak test speakers (in domain)", *built}
    for row in rows.values():
        assert -1 <= row["opening_r"] <= 1 and 0 <= row["opening_lag"] <= 6 and row["lve"] > 0
        assert row["sequences"] == (3 if "in domain" in row["source"] else 2)
    table = (report / "metrics.md").read_text()
    assert "opening r" in table and "| tiny: piper-joe |" in table and np.isfinite(rows["piper-joe"]["lve"])
