"""Real (tiny) renders of the MakeHuman head with both backends, video/audio muxing and atomic writes."""

import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from facerl.head.arkit import ARKIT_INDEX, N_ARKIT
from facerl.head.rig import load_head
from facerl.render import (
    Panel,
    available_backend,
    default_vertex_colors,
    render_frames,
    render_still,
    render_video,
    vertex_normals,
)
from facerl.render import renderer as renderer_mod

SIZE = 128
BACKENDS = [
    pytest.param("egl", marks=pytest.mark.skipif(available_backend() != "egl", reason="no EGL context")),
    "software",
]


@pytest.fixture(scope="module")
def head():
    rig = load_head()
    w = np.zeros((2, N_ARKIT), np.float32)
    w[1, ARKIT_INDEX["jawOpen"]] = 1.0  # frame 0 neutral, frame 1 mouth open
    return {"seq": rig.pose(w), "faces": rig.faces, "colors": default_vertex_colors(rig.part)}


def _write_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_show_face_and_jaw_motion(head, backend):
    frames = list(render_frames([Panel(head["seq"])], head["faces"], size=SIZE, backend=backend,
                                vertex_colors=head["colors"], progress=False))
    assert len(frames) == 2
    f0, f1 = (f.astype(np.int16) for f in frames)
    assert frames[0].shape == (SIZE, SIZE, 3) and frames[0].dtype == np.uint8
    assert f0.std() > 20
    background, face = f0[2, 2], f0[SIZE // 2, SIZE // 2]
    assert np.abs(background - face).sum() > 100
    changed = np.abs(f1 - f0).sum(-1) > 60  # (S, S)
    rows = np.nonzero(changed)[0]
    assert changed.sum() > 50
    assert rows.mean() > 0.6 * SIZE  # motion is in the lower (mouth/jaw) part of the image
    assert changed[: int(0.45 * SIZE)].mean() < 0.005  # forehead/eyes barely change


@pytest.mark.parametrize("backend", BACKENDS)
def test_side_by_side_titles_and_padding(head, backend):
    panels = [Panel(head["seq"], "two frames"), Panel(head["seq"][:1], "one frame")]
    frames = list(render_frames(panels, head["faces"], size=SIZE, backend=backend, progress=False))
    assert len(frames) == 2  # the shorter panel is padded with its last frame
    assert frames[0].shape == (SIZE, 2 * SIZE, 3)
    untitled = next(render_frames([Panel(head["seq"][:1])], head["faces"], size=SIZE,
                                  backend=backend, progress=False))
    band = int(0.07 * SIZE)
    assert frames[0][:band, :SIZE].max() > untitled[:band].max() + 50  # white title text
    right = frames[1][:, SIZE:]  # padded panel repeats the neutral frame
    assert np.abs(right[band:].astype(int) - untitled[band:]).mean() < 1.0


def test_vertex_normals_of_flat_quad():
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    n = vertex_normals(v, np.array([[0, 1, 2], [0, 2, 3]]))
    np.testing.assert_allclose(n, np.tile([0, 0, 1], (4, 1)), atol=1e-6)


def test_validation_errors(head, tmp_path):
    faces, seq = head["faces"], head["seq"]
    with pytest.raises(ValueError, match=r"\(T, V, 3\)"):
        render_frames([Panel(seq[0])], faces)
    with pytest.raises(ValueError, match="out of range"):
        render_frames([Panel(seq)], faces + seq.shape[1])
    with pytest.raises(ValueError, match="same V"):
        render_frames([Panel(seq), Panel(seq[:, :10])], faces)
    with pytest.raises(ValueError, match="backend"):
        render_frames([Panel(seq)], faces, backend="vulkan")
    with pytest.raises(ValueError, match="wav_path"):
        render_video([Panel(seq)], faces, tmp_path / "a.mp4", wav_path=tmp_path / "missing.wav")
    assert list(tmp_path.iterdir()) == []


def test_render_video_with_audio(head, tmp_path):
    fps, n = 10, 12
    w = np.sin(np.linspace(0, np.pi, n))[:, None, None]
    seq = head["seq"][0] + w * (head["seq"][1] - head["seq"][0])  # (T, V, 3)
    wav = _write_wav(tmp_path / "speech.wav", n / fps)
    out = tmp_path / "sub" / "clip.mp4"
    info = render_video([Panel(seq, "a"), Panel(seq, "b")], head["faces"], out, wav_path=wav,
                        fps=fps, size=SIZE, vertex_colors=head["colors"], progress=False)
    assert info.path == out and out.stat().st_size > 0
    assert info.frames == n and info.backend == available_backend() and info.render_fps > 0
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == n
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(out)], check=False,
                           capture_output=True, text=True)
    assert "Audio:" in probe.stderr and f"{2 * SIZE}x{SIZE}" in probe.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.mp4"]


def test_nan_vertices_rejected_before_writing(head, tmp_path):
    bad = head["seq"].copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        render_video([Panel(bad)], head["faces"], tmp_path / "nan.mp4", size=SIZE, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_video_leaves_no_file(head, tmp_path, monkeypatch, error):
    real_frames = renderer_mod._frames

    def failing_frames(*args, **kwargs):
        yield next(real_frames(*args, **kwargs))  # one frame reaches ffmpeg, then the render dies
        raise error("boom")

    monkeypatch.setattr(renderer_mod, "_frames", failing_frames)
    with pytest.raises(error, match="boom"):
        render_video([Panel(head["seq"])], head["faces"], tmp_path / "boom.mp4", size=SIZE,
                     progress=False)
    assert list(tmp_path.iterdir()) == []


def test_render_still(head, tmp_path):
    out = render_still([head["seq"][0], head["seq"][1]], head["faces"], tmp_path / "s" / "still.png",
                       size=SIZE, vertex_colors=head["colors"])
    assert Image.open(out).size == (2 * SIZE, SIZE)
    assert [p.name for p in out.parent.iterdir()] == ["still.png"]
    single = render_still(head["seq"][0], head["faces"], tmp_path / "one.png", size=SIZE,
                          backend="software")
    assert np.asarray(Image.open(single)).std() > 20
