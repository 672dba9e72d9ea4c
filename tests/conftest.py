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


def tiny_train_overrides(corpus: Path, root: Path, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long supervised run on the tiny corpus, writing under ``root``."""
    return ["experiment=supervised_tiny", f"data.out={corpus}", f"paths.root={root}", "run_name=t",
            "trainer.device=cpu", *extra]


@pytest.fixture(scope="session")
def tiny_actor_run(tiny_corpus, tmp_path_factory) -> Path:
    """A 2-epoch tiny actor trained through the real CLI; returns its run folder (runs/t)."""
    from facerl.cli import main

    root = tmp_path_factory.mktemp("sup")
    assert main(["train", *tiny_train_overrides(tiny_corpus, root)]) == 0
    return root / "runs" / "t"
