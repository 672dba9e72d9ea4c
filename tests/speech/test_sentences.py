"""Tests for facerl.speech.sentences."""

from __future__ import annotations

import time

import pytest

from facerl.speech.sentences import (
    MAX_WORDS,
    MIN_WORDS,
    count_bilabial_letters,
    make_sentences,
    plural,
)


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return make_sentences(480, seed=0)


def test_deterministic_for_seed():
    assert make_sentences(50, seed=7) == make_sentences(50, seed=7)


def test_prefix_stable_in_n():
    assert make_sentences(100, seed=3)[:20] == make_sentences(20, seed=3)


def test_different_seeds_differ():
    a, b = make_sentences(50, seed=1), make_sentences(50, seed=2)
    assert a != b
    assert len(set(a) & set(b)) < 5


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31 - 1, -5])
def test_480_distinct_sentences_quickly(seed):
    start = time.perf_counter()
    result = make_sentences(480, seed)
    assert time.perf_counter() - start < 0.5
    assert len(result) == 480
    assert len(set(result)) == 480


def test_zero_and_negative_n():
    assert make_sentences(0, seed=0) == []
    with pytest.raises(ValueError):
        make_sentences(-1, seed=0)


def test_word_count_within_bounds(sentences):
    counts = [len(s.split()) for s in sentences]
    assert MIN_WORDS == 6 and MAX_WORDS == 13
    assert min(counts) >= MIN_WORDS
    assert max(counts) <= MAX_WORDS


def test_at_least_two_bilabial_letters(sentences):
    for s in sentences:
        assert count_bilabial_letters(s) >= 2, s
        assert sum(s.lower().count(c) for c in "pbm") >= 2, s


def test_plain_ascii_and_punctuation(sentences):
    for s in sentences:
        assert s.isascii(), s
        assert s[-1] in ".?!", s
        assert s[0].isupper(), s
        assert "  " not in s and s == s.strip(), s


def test_templates_are_varied(sentences):
    endings = {s[-1] for s in sentences}
    assert endings == {".", "?", "!"}
    openers = {s.split()[0] for s in sentences}
    assert len(openers) > 30
    assert any(any(ch.isdigit() for ch in s) for s in sentences) is False  # numbers are spelled out
    assert any(w in s.split() for s in sentences for w in ("three", "twelve", "ninety-nine"))


def test_plural():
    assert [plural(w) for w in ("map", "box", "peach", "brush", "puppy", "key", "mouse", "knife")] == [
        "maps", "boxes", "peaches", "brushes", "puppies", "keys", "mice", "knives"]
