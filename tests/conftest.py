"""Shared fixtures: one tiny synthetic corpus per test session (real eSpeak, real head, real files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facerl.data.synthetic import CorpusConfig, build_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(CorpusConfig(out=str(root), tiny=True, workers=1, seed=0), progress=False)
    return root
