"""Which config differences a resumed or reused stage accepts (pure functions of train/common.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facerl.errors import FacerlError
from facerl.train.common import check_resume, config_changes, record_changes

SAVED = {"paths": {"root": "/a"}, "run_name": "x", "model": {"width": 32},
         "trainer": {"lr": 1e-3, "seed": 0, "epochs": 2, "max_minutes": 4.0, "device": "cpu", "resume": True,
                     "loss": {"mse": 1.0}},
         "reward": {"width": 128}, "dataset": {"root": "/a/data"}}


def changed(**edits) -> dict:
    import copy

    cfg = copy.deepcopy(SAVED)
    for dotted, value in edits.items():
        *parents, leaf = dotted.split("__")
        node = cfg
        for key in parents:
            node = node[key]
        node[leaf] = value
    return cfg


def test_budget_device_and_locations_are_free_everything_else_is_a_change():
    free = changed(paths__root="/b", run_name="y", trainer__epochs=9, trainer__max_minutes=1.0,
                   trainer__device="cuda", trainer__resume=False)
    assert config_changes(SAVED, free) == {}
    assert config_changes(SAVED, changed(trainer__lr=0.5, trainer__loss__mse=2.0)) == {
        "trainer.loss.mse": (1.0, 2.0), "trainer.lr": (1e-3, 0.5)}
    assert config_changes(SAVED, changed(dataset__root="/other")) == {"dataset.root": ("/a/data", "/other")}
    # a section the stage does not use is ignored; a key added since the run was saved (a newer facerl's
    # setting) is not a change, a key that is gone is
    assert config_changes(SAVED, changed(reward__width=64), ignore=("reward",)) == {}
    new_key = changed()
    new_key["trainer"]["passes"] = 3
    assert config_changes(SAVED, new_key) == {}
    del new_key["trainer"]["lr"]
    assert config_changes(SAVED, new_key) == {"trainer.lr": (1e-3, "<unset>")}


def test_check_resume_refuses_accepts_and_never_accepts_architecture(capsys):
    path = Path("runs/x/actor/last.pt")
    assert check_resume(path, SAVED, changed(trainer__epochs=5), False, fixed=("model",)) == {}
    with pytest.raises(FacerlError, match=r"trainer.lr=0.001 -> 0.5.*accept_changes=true"):
        check_resume(path, SAVED, changed(trainer__lr=0.5), False, fixed=("model",))
    assert check_resume(path, SAVED, changed(trainer__lr=0.5), True, fixed=("model",)) == {"trainer.lr": (1e-3, 0.5)}
    assert "changed settings" in capsys.readouterr().out
    with pytest.raises(FacerlError, match="another model config"):
        check_resume(path, SAVED, changed(model__width=48), True, fixed=("model",))


def test_accepted_changes_are_logged_with_their_epoch():
    log = record_changes(None, 3, {"trainer.lr": (1e-3, 0.5)})
    log = record_changes(log, 5, {})
    assert record_changes(log, 7, {"trainer.seed": (0, 7)}) == [
        {"epoch": 3, "changes": {"trainer.lr": [1e-3, 0.5]}}, {"epoch": 7, "changes": {"trainer.seed": [0, 7]}}]
