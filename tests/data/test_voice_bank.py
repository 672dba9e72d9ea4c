"""The corpus's voice bank: many distinct eSpeak voices in disjoint per-split pools, dealt over clips."""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations

import numpy as np
import pytest

from facerl.data.layout import Layout
from facerl.data.synthetic import CorpusConfig
from facerl.data.voice_bank import (
    KINDS,
    MIN_GAP,
    SPLITS,
    deal_voices,
    trait_distance,
    voice_pools,
)
from facerl.speech.espeak import LICENCE


@pytest.fixture(scope="module")
def pools():
    return voice_pools(0, CorpusConfig().pool_sizes())


def params(voice) -> str:
    """The variant file without its name line: what eSpeak actually hears, plus rate and volume."""
    lines = [line for line in voice.variant.text().splitlines() if not line.startswith("name ")]
    return "\n".join(lines) + f"\nrate {voice.rate}\nvolume {voice.volume}"


def test_at_least_100_distinct_voices_of_every_kind(pools):
    bank = [v for split in SPLITS for v in pools[split]]
    assert len(bank) >= 100
    assert len({v.id for v in bank}) == len(bank) == len({v.variant.name for v in bank})
    assert len({params(v) for v in bank}) == len(bank)
    for split in SPLITS:  # every pool mixes kinds and bases
        kinds = Counter(v.kind for v in pools[split])
        assert set(kinds) == set(KINDS) and kinds["male"] >= kinds["child"]
        assert len({v.base for v in pools[split]}) >= 8
    pitch = {k: np.median([v.traits.pitch_hz for v in bank if v.kind == k]) for k in KINDS}
    assert pitch["male"] < 120 < pitch["female"] < 220 < pitch["child"]
    tract = {k: np.median([v.traits.tract for v in bank if v.kind == k]) for k in KINDS}
    assert tract["male"] < tract["female"] < tract["child"]


def test_no_two_voices_are_near_twins_across_or_within_splits(pools):
    bank = [v for split in SPLITS for v in pools[split]]
    gaps = [trait_distance(a.traits, b.traits, a.base == b.base) for a, b in combinations(bank, 2)]
    assert min(gaps) >= MIN_GAP - 1e-9


def test_split_pools_are_disjoint(pools):
    for a, b in combinations(SPLITS, 2):
        assert not {v.id for v in pools[a]} & {v.id for v in pools[b]}
        assert not {params(v) for v in pools[a]} & {params(v) for v in pools[b]}
    assert all(v.split == split and v.id.startswith(split) for split in SPLITS for v in pools[split])


def test_pools_are_deterministic_for_a_seed(pools):
    again = voice_pools(0, CorpusConfig().pool_sizes())
    assert [params(v) for s in SPLITS for v in again[s]] == [params(v) for s in SPLITS for v in pools[s]]
    other = voice_pools(1, CorpusConfig().pool_sizes())
    assert not {params(v) for v in other["train"]} & {params(v) for v in pools["train"]}


def test_voices_are_dealt_evenly_the_read_clips_first(pools):
    pool = pools["test"]                                     # 16 voices
    clips = [(s, n) for s in ("A", "B") for n in range(1, 41)]
    used = [n >= 21 for _, n in clips]                       # the reader takes sentences 21-40
    dealt = deal_voices(clips, used, pool, np.random.default_rng(0))
    counts = Counter(v.id for v in dealt)
    assert set(counts) == {v.id for v in pool} and max(counts.values()) - min(counts.values()) <= 1
    read = Counter(v.id for v, u in zip(dealt, used) if u)
    assert set(read) == {v.id for v in pool} and max(read.values()) - min(read.values()) <= 1
    assert dealt == deal_voices(clips, used, pool, np.random.default_rng(0))


def test_tiny_corpus_records_a_voice_per_clip_from_its_split_pool(tiny_corpus):
    layout = Layout(tiny_corpus)
    meta = json.loads(layout.meta_path.read_text())
    assert meta["seed"] == 0 and meta["tiny"] is True and set(meta["splits"]) == set(SPLITS)
    assert set(meta["clips"]) == set(layout.clips()) == set(meta["sentences"])
    split_of = {subject: split for split, subjects in meta["splits"].items() for subject in subjects}
    heard = {split: set() for split in SPLITS}
    for clip, info in meta["clips"].items():
        voice = meta["voices"][info["voice"]]
        split = split_of[Layout.parse_clip(clip)[0]]
        assert voice["split"] == split and 10 <= info["volume"] <= voice["volume"]
        heard[split].add(info["voice"])
    assert all(heard.values()) and not any(a & b for a, b in combinations(heard.values(), 2))
    assert len(meta["voices"]) == len(meta["clips"]) == 12   # tiny: every clip in another voice
    v = next(iter(meta["voices"].values()))
    assert v["variant_file"].startswith("language variant") and v["variant"]["pitch"] and v["traits"]["pitch_hz"]
    assert meta["voice_pools"] == CorpusConfig().pool_sizes()
    assert meta["provenance"]["speech"]["licence"] == LICENCE == "GPL-3.0-or-later"
    assert "eSpeak NG" in meta["provenance"]["speech"]["engine"]


def test_bad_voice_pool_sizes_are_user_errors():
    from facerl.errors import FacerlError

    with pytest.raises(FacerlError, match="data.val_voices"):
        CorpusConfig(val_voices=0).validate()
    with pytest.raises(FacerlError, match="at most 200"):
        CorpusConfig(train_voices=190).validate()
