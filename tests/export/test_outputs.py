"""ARKit outputs through the real CLI: `facerl animate --out x.csv/.json/.glb` and `facerl export RESULTS`."""

from __future__ import annotations

import numpy as np
import pytest

from facerl.cli import main
from facerl.data.layout import Layout
from facerl.errors import FacerlError
from facerl.export.curves import read_curves_json, read_livelink_csv
from facerl.export.outputs import CurveOptions, load_basis
from facerl.export.solve import BlendshapeBasis
from facerl.models.checkpoint import load_actor


def test_animate_writes_curves_that_resynthesise_its_vertices(tiny_corpus, tiny_actor_run, tmp_path, capsys):
    wav = min((tiny_corpus / "wav").glob("*.wav"))
    ckpt = tiny_actor_run / "actor" / "best.pt"
    outs = [tmp_path / "a.csv", tmp_path / "a.json", tmp_path / "a.npy"]
    args = ["animate", str(wav), "--checkpoint", str(ckpt), "--device", "cpu", "--smooth", "0"]
    assert main([*args, *(x for o in outs for x in ("--out", str(o)))]) == 0
    verts = np.load(tmp_path / "a.npy").reshape(-1, 4784, 3)                       # (T, V, 3)
    curves = read_curves_json(tmp_path / "a.json")
    assert curves.fps == 30.0 and curves.audio == wav.name and curves.n_frames == len(verts)
    csv = read_livelink_csv(tmp_path / "a.csv")
    assert np.abs(csv.weights - curves.weights).max() < 2e-6                       # both 6 decimals
    # The actor's motion lies in the head's blendshape span, so the curves rebuild its mesh on its face.
    template = load_actor(ckpt, "cpu")[1].template.numpy().reshape(-1, 3)         # the default (mean) face
    basis = BlendshapeBasis.from_head()
    resynth = basis.pose(curves.weights, template)
    motion = np.linalg.norm(verts - template, axis=-1).max()
    assert np.linalg.norm(resynth - verts, axis=-1).max() < 0.02 * motion + 1e-6

    readout = tmp_path / "b.json"
    assert main([*args, "--out", str(readout), "--arkit", "readout"]) == 0
    direct = read_curves_json(readout).weights
    assert np.abs(direct - curves.weights).max() < 0.02                            # two routes, one animation


def test_export_recovers_the_ground_truth_curves_of_a_results_folder(tiny_corpus, tmp_path, capsys):
    layout = Layout(tiny_corpus)
    clip = layout.clips()[0]
    gt = np.load(layout.vertices(clip))[::2]                                        # 60 -> 30 fps (T, V*3)
    results = tmp_path / "results"
    results.mkdir()
    np.save(results / f"{clip}_condition_someone.npy", gt)
    assert main(["export", str(results), "--dataset", str(tiny_corpus), "--format", "json", "--format", "csv",
                 "--smooth", "0", "--out-dir", str(tmp_path / "out")]) == 0
    curves = read_curves_json(tmp_path / "out" / f"{clip}_condition_someone.json")
    truth = np.load(layout.blendshapes(clip))[::2]                                  # (T, 52) the corpus's own
    assert np.abs(curves.weights - truth).max() < 5e-3                             # the solver tolerance
    assert (tmp_path / "out" / f"{clip}_condition_someone.csv").is_file()


def test_export_and_basis_mistakes_are_one_line_errors(tiny_corpus, tmp_path, capsys):
    assert main(["export", str(tmp_path / "none"), "--dataset", str(tiny_corpus)]) == 2
    assert "results folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "--dataset", str(tiny_corpus)]) == 2
    assert "no <clip>_condition_<style>.npy" in capsys.readouterr().err
    with pytest.raises(FacerlError, match="--basis basis.npz"):
        load_basis(CurveOptions(), n_vertices=5023)                                # FLAME without a basis
    with pytest.raises(FacerlError, match="--arkit must be one of"):
        CurveOptions(route="magic")
    for bad in ("-1", "nan"):
        assert main(["export", str(tmp_path / "empty"), "--dataset", str(tiny_corpus), "--smooth", bad]) == 2
        assert "--smooth must be a number >= 0" in capsys.readouterr().err
    clip = Layout(tiny_corpus).clips()[0]
    np.save(tmp_path / "empty" / f"{clip}_condition_x.npy", np.zeros((0, 4784 * 3), np.float32))
    assert main(["export", str(tmp_path / "empty"), "--dataset", str(tiny_corpus), "--out-dir",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{clip}_condition_x.npy" in err and "expected (T > 0" in err and "Traceback" not in err


def test_animate_glb_carries_the_same_curves_and_opens_in_the_viewer_page(tiny_corpus, tiny_actor_run, tmp_path,
                                                                           capsys):
    from facerl.export.gltf import read_glb_animation
    from tests.export.test_gltf import validate

    wav = min((tiny_corpus / "wav").glob("*.wav"))
    ckpt = tiny_actor_run / "actor" / "best.pt"
    outs = [tmp_path / f"a.{suffix}" for suffix in ("csv", "glb", "json", "mp4")]   # the issue's command
    assert main(["animate", str(wav), "--checkpoint", str(ckpt), "--device", "cpu", "render.size=96",
                 *(x for o in outs for x in ("--out", str(o)))]) == 0
    assert all(o.stat().st_size > 0 for o in outs)
    glb = read_glb_animation(tmp_path / "a.glb")
    curves = read_curves_json(tmp_path / "a.json")
    assert glb["n_vertices"] == 4784 and list(glb["names"]) == list(curves.names)
    assert np.abs(glb["weights"] - curves.weights).max() < 2e-6
    assert np.allclose(glb["times"], np.arange(curves.n_frames) / 30.0, atol=1e-6)
    page = tmp_path / "page.html"
    assert main(["view", str(tmp_path / "a.glb"), "--compare", str(tmp_path / "a.glb"), "--label", "one",
                 "--label", "two", "--audio", str(wav), "--write", str(page), "--no-browser"]) == 0
    assert page.stat().st_size > (tmp_path / "a.glb").stat().st_size      # both GLBs and the wav inside
    assert main(["view", str(tmp_path / "a.json"), "--write", str(tmp_path / "x.html"), "--no-browser"]) == 2
    assert not (tmp_path / "x.html").exists()
    assert main(["view", str(tmp_path / "a.glb"), "--port", "70000", "--no-browser"]) == 2
    assert "--port must be 0-65535" in capsys.readouterr().err
    issues = validate(tmp_path / "a.glb")["issues"]                                 # skips without node
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]
