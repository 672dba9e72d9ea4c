"""The main job on the embedded default: build the synthetic corpus, train the actor (CPU-sized
budget), generate and score the held-out test speakers, and render a test clip with ground truth and
prediction side by side (with sound), plus stills of a closed and an open mouth. Later stages (reward,
RL) plug in here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from facerl.data.dataset import DatasetSpec, VocaDataset, spec_from_config
from facerl.data.layout import Layout
from facerl.data.measures import BILABIALS, OPEN_VOWELS, clip_lip_gap, phone_frames
from facerl.data.synthetic import CorpusConfig, build_corpus
from facerl.errors import FacerlError
from facerl.head.rig import load_head
from facerl.render.commands import check_render_config, head_vertex_colors
from facerl.render.renderer import Panel, render_still, render_video
from facerl.speech.timing import read_phone_csv


def ensure_corpus(corpus: CorpusConfig, rebuild: bool) -> None:
    layout = Layout(Path(corpus.out))
    if layout.meta_path.exists() and not rebuild:
        meta = json.loads(layout.meta_path.read_text())
        if meta.get("seed") != corpus.seed or meta.get("tiny") != corpus.tiny:
            raise FacerlError(f"{corpus.out} holds a corpus with other settings (seed {meta.get('seed')}, "
                              f"tiny {meta.get('tiny')}); pass --rebuild to replace it")
        print(f"using the existing corpus at {corpus.out} (--rebuild to rebuild)")
        return
    incomplete = (layout.root / "vertices_npy").is_dir() and not layout.meta_path.exists()
    if incomplete:
        print(f"{corpus.out} holds an unfinished build (no corpus.json): rebuilding it")
    corpus.overwrite = corpus.overwrite or rebuild or incomplete
    print(build_corpus(corpus))


def mouth_stills(layout: Layout, clip: str) -> tuple[int, int]:
    """Frames (60 fps) of the most closed bilabial and the most open open-vowel in a clip."""
    gap = clip_lip_gap(layout, clip)
    phones = read_phone_csv(layout.phones(clip))

    def frames_in(symbols: set[str]) -> np.ndarray:
        mask = np.zeros(len(gap), bool)
        for p in phones:
            if p.phone in symbols:
                mask |= phone_frames(p, len(gap), 60.0)
        return np.flatnonzero(mask)

    closed, opened = frames_in(BILABIALS), frames_in(OPEN_VOWELS)
    closed_frame = int(closed[np.argmin(gap[closed])]) if len(closed) else 0
    open_frame = int(opened[np.argmax(gap[opened])]) if len(opened) else int(np.argmax(gap))
    return closed_frame, open_frame


def train_actor(cfg: DictConfig, spec: DatasetSpec, retrain: bool) -> Path:
    """Train the actor within ``pipeline.actor_minutes``, or reuse a finished actor of this very config
    (same model config and training speakers); an unfinished one resumes, ``--retrain`` starts over."""
    from facerl.models.checkpoint import ACTOR_KIND
    from facerl.train.common import load_checkpoint
    from facerl.train.supervised import train_supervised

    actor_dir = Path(cfg.paths.run_dir) / "actor"
    best, last = actor_dir / "best.pt", actor_dir / "last.pt"
    if best.exists() and last.exists() and not retrain:
        done = load_checkpoint(last, ACTOR_KIND)
        same = (done["config"]["model"] == OmegaConf.to_container(cfg.model, resolve=True)
                and done["meta"]["styles"] == spec.train_subjects)
        if done.get("finished") and same:
            print(f"using the trained actor {best} (--retrain to train again)")
            return best
    cfg = cfg.copy()
    cfg.trainer.max_minutes = cfg.pipeline.actor_minutes
    cfg.trainer.resume = not retrain
    return train_supervised(cfg)


def run_pipeline(cfg: DictConfig, rebuild: bool = False, retrain: bool = False) -> None:
    from facerl.eval.evaluate import evaluate, write_report
    from facerl.eval.results import write_results
    from facerl.models.checkpoint import load_actor
    from facerl.train.common import resolve_device

    size, fps, backend = check_render_config(cfg.render)
    corpus = CorpusConfig.from_config(cfg.data)
    ensure_corpus(corpus, rebuild)
    spec = spec_from_config(cfg.dataset)
    layout = Layout(Path(corpus.out))
    run_dir = Path(cfg.paths.run_dir)
    head = load_head()
    colors = head_vertex_colors(head)

    print("== actor (supervised FaceFormer) ==")
    checkpoint = train_actor(cfg, spec, retrain or rebuild)
    device = resolve_device(cfg.trainer.device)
    actor, meta, _ = load_actor(checkpoint, device)
    results = run_dir / "results"
    n = write_results(actor, meta, spec, ["test"], "both", results, device)
    print(f"wrote {n} test sequences to {results}")
    rows = evaluate(spec, "test", {"supervised": results})
    table = write_report(rows, run_dir / "evaluation" / "test", "test")
    print(f"held-out test speakers, every training style:\n{table}")

    clip = VocaDataset(spec, "test", with_phones=False).names[0]  # an unseen speaker
    vertices = np.load(layout.vertices(clip)).reshape(-1, head.n_vertices, 3)  # (T60, V, 3)
    pred = np.load(results / f"{clip}_condition_average.npy").reshape(-1, head.n_vertices, 3)  # (T30, V, 3)
    stride = max(1, round(60 / fps))
    gt = vertices[::stride]
    pred = pred[np.minimum(np.arange(len(gt)) * stride // 2, len(pred) - 1)]  # 30 fps -> the video rate
    info = render_video([Panel(gt, f"ground truth: {clip}"), Panel(pred, "supervised actor (average style)")],
                        head.faces, run_dir / f"{clip}.mp4", wav_path=layout.wav(clip), fps=60 / stride,
                        size=size, backend=backend, vertex_colors=colors)
    closed, opened = mouth_stills(layout, clip)
    still = render_still([Panel(vertices[closed:closed + 1], "bilabial: closed"),
                          Panel(vertices[opened:opened + 1], "open vowel: open")], head.faces,
                         run_dir / "mouth_closed_open.png", size=size, backend=backend,
                         vertex_colors=colors)
    duration = len(vertices) / 60.0
    print(f"video: {info.path} ({duration:.1f} s, {info.frames} frames, {info.render_fps:.1f} frames/s, "
          f"{info.backend} backend)\nstill: {still}")
