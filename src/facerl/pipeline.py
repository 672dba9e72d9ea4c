"""The main job on the embedded default: build the synthetic corpus, train the actor (CPU-sized
budget), train the reward model (with the actor's outputs as realism negatives) and the judge, calibrate
them on the held-out test speakers, fine-tune the actor with RL and with the perceptual-loss baseline
(same budget), compare everything on the test speakers (judge and reward columns included), and render
a test clip with ground truth | supervised | RL side by side (with sound), plus stills of a closed and
an open mouth. Each stage runs from its own experiment config (``experiment=supervised``,
``reward``, ``judge``; ``*_tiny`` with ``--tiny``), with the user's overrides on top."""

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
from facerl.utils.io import save_text


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
    if incomplete and layout.created_by != "facerl data build":
        # a converted VOCASET folder, a `data from-speech` folder or the user's own: never the pipeline's to delete
        raise FacerlError(f"{corpus.out} holds a dataset that `facerl data build` did not make (no corpus.json); "
                          "the pipeline builds its corpus elsewhere: pass data.out=<new folder> (to train on "
                          f"that dataset use `facerl train dataset=vocaset dataset.root={corpus.out}`)")
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


def stage_config(experiment: str, tiny: bool, overrides: list[str]) -> DictConfig:
    """The config of one stage: its experiment (``_tiny`` variant with ``--tiny``) + the user's overrides."""
    from facerl.config import load_config

    return load_config([f"experiment={experiment}{'_tiny' if tiny else ''}",
                        *(o for o in overrides if not o.startswith("experiment="))])


def _same_settings(last: Path, done: dict, cfg: DictConfig, ignore: tuple[str, ...]) -> bool:
    """Whether a stage's checkpoint was trained with the settings asked for now (else it is trained again,
    with a line saying why: a reused or resumed stage never silently differs from the config)."""
    from facerl.train.common import config_changes, describe_changes

    current = OmegaConf.to_container(cfg, resolve=True)
    if cfg.stage in ("rl", "perceptual"):
        current["model"] = done["config"].get("model")  # fine-tuning keeps the actor's own model config
    changes = config_changes(done["config"], current, ignore)
    if changes:
        print(f"{last} was trained with other settings ({describe_changes(changes)}): training it again")
    return not changes


def budget(cfg: DictConfig, epochs: int, safety_cap: float) -> DictConfig:
    """A stage's config with the pipeline's step budget (epochs) and wall-clock safety cap."""
    cfg = cfg.copy()
    cfg.trainer.epochs = epochs
    cfg.trainer.max_minutes = safety_cap
    return cfg


def train_reward_stage(cfg: DictConfig, actor: Path | None, retrain: bool) -> Path:
    """Train the reward model or the judge (``cfg.stage``), or reuse a finished one of the same reward config
    and realism-negative actor; a different one is trained from scratch."""
    from facerl.reward.frozen import REWARD_KIND
    from facerl.train.reward import train_reward
    from facerl.utils.checkpoint import load_checkpoint

    cfg = cfg.copy()
    cfg.trainer.actor_checkpoint = None if actor is None else str(actor)
    folder = Path(cfg.paths.run_dir) / str(cfg.stage)
    last = folder / "last.pt"
    if last.exists() and not retrain:
        done = load_checkpoint(last, REWARD_KIND, keys=("config",))
        same = _same_settings(last, done, cfg, ignore=("model",))
        if done.get("finished") and same:
            print(f"using the trained {cfg.stage} model in {folder} (--retrain to train again)")
            return folder
        retrain = retrain or not same
    cfg.trainer.resume = not retrain
    return train_reward(cfg)


def fine_tune_stage(cfg: DictConfig, actor: Path, retrain: bool) -> Path:
    """RL or the perceptual baseline (``cfg.stage``) from ``actor``, or reuse a finished run that started
    from the same actor."""
    from facerl.models.checkpoint import ACTOR_KIND
    from facerl.rl.train import train_rl
    from facerl.utils.checkpoint import load_checkpoint

    cfg = cfg.copy()
    cfg.trainer.actor_checkpoint = str(actor)
    folder = Path(cfg.paths.run_dir) / str(cfg.stage)
    last = folder / "last.pt"
    if last.exists() and not retrain:
        done = load_checkpoint(last, ACTOR_KIND, keys=("config",))
        same = done.get("source_actor") == str(actor) and _same_settings(last, done, cfg, ignore=("model", "reward"))
        if done.get("finished") and same and (folder / "best.pt").exists():
            print(f"using the fine-tuned {cfg.stage} actor in {folder} (--retrain to train again)")
            return folder / "best.pt"
        retrain = retrain or not same
    cfg.trainer.resume = not retrain
    return train_rl(cfg)


def lipreader_stage(cfg: DictConfig, retrain: bool) -> Path:
    """Train the mesh lip-reader (ground truth only, evaluation only), or reuse one of the same settings."""
    from facerl.eval.lipreader import CHECKPOINT_NAME, LIPREADER_KIND, train_lipreader
    from facerl.utils.checkpoint import load_checkpoint

    folder = Path(cfg.paths.run_dir) / "lipreader"
    path = folder / CHECKPOINT_NAME
    if path.exists() and not retrain:
        done = load_checkpoint(path, LIPREADER_KIND, keys=("config",))
        if _same_settings(path, done, cfg, ignore=("model", "reward")):
            print(f"using the trained lip-reader {path} (--retrain to train again)")
            return folder
    train_lipreader(cfg)
    return folder


def train_actor(cfg: DictConfig, spec: DatasetSpec, retrain: bool) -> tuple[Path, bool]:
    """Train the actor for ``pipeline.actor_epochs``, or reuse a finished actor of this very config
    (same model config and training speakers); an unfinished one resumes, ``--retrain`` starts over.
    Returns (best checkpoint, whether it was (re)trained now)."""
    from facerl.models.checkpoint import ACTOR_KIND
    from facerl.train.supervised import train_supervised
    from facerl.utils.checkpoint import load_checkpoint

    actor_dir = Path(cfg.paths.run_dir) / "actor"
    best, last = actor_dir / "best.pt", actor_dir / "last.pt"
    cfg = budget(cfg, cfg.pipeline.actor_epochs, cfg.pipeline.max_minutes)
    if last.exists() and not retrain:
        done = load_checkpoint(last, ACTOR_KIND, keys=("config", "meta"))
        same = (_same_settings(last, done, cfg, ignore=("reward",))
                and done["meta"].get("styles") == spec.train_subjects)
        if done.get("finished") and same and best.exists():
            print(f"using the trained actor {best} (--retrain to train again)")
            return best, False
        retrain = retrain or not same
    cfg.trainer.resume = not retrain
    return train_supervised(cfg), True


def run_pipeline(cfg: DictConfig, rebuild: bool = False, retrain: bool = False, tiny: bool = False,
                 overrides: list[str] | None = None) -> None:
    from facerl.eval.compare import compare
    from facerl.eval.reward_report import calibrate, write_calibration
    from facerl.utils.checkpoint import resolve_device

    size, fps, backend = check_render_config(cfg.render)
    corpus = CorpusConfig.from_config(cfg.data)
    ensure_corpus(corpus, rebuild)
    spec = spec_from_config(cfg.dataset)
    layout = Layout(Path(corpus.out))
    run_dir = Path(cfg.paths.run_dir)
    head = load_head()

    print("== actor (supervised FaceFormer) ==")
    checkpoint, fresh = train_actor(cfg, spec, retrain or rebuild)
    device = resolve_device(cfg.trainer.device)
    overrides = list(overrides or [])
    print("== reward model (sync backbone + lip / real head) ==")
    negatives = checkpoint if cfg.pipeline.actor_negatives else None
    pl = cfg.pipeline
    reward_dir = train_reward_stage(budget(stage_config("reward", tiny, overrides), pl.reward_epochs, pl.max_minutes),
                                    negatives, retrain or rebuild or fresh)
    print("== judge (independent sync model, evaluation only) ==")
    judge_dir = train_reward_stage(budget(stage_config("judge", tiny, overrides), pl.judge_epochs, pl.max_minutes),
                                   None, retrain or rebuild)
    print("== mesh lip-reader (visemes from lip motion; ground truth only, evaluation only) ==")
    lipreader_dir = lipreader_stage(budget(stage_config("lipreader", tiny, overrides), pl.lipreader_epochs,
                                           pl.max_minutes), retrain or rebuild)
    report = calibrate(reward_dir, spec, "test", judge_dir, checkpoint, device)
    calibration = write_calibration(report, run_dir / "evaluation" / "reward_test")
    print(f"reward calibration on the held-out test speakers:\n{calibration}")

    print("== RL fine-tuning (actor-critic against the frozen reward) ==")
    fine_tune_stage(budget(stage_config("rl", tiny, overrides), pl.finetune_epochs, pl.max_minutes), checkpoint,
                    retrain or rebuild or fresh)
    print("== perceptual-loss baseline (same budget) ==")
    fine_tune_stage(budget(stage_config("perceptual", tiny, overrides), pl.finetune_epochs, pl.max_minutes),
                    checkpoint, retrain or rebuild or fresh)

    print("== comparison on the held-out test speakers ==")
    table, folders = compare(run_dir, spec, device, run_dir / "compare")
    print(f"held-out test speakers, every training style (and the average style):\n{table}")
    if cfg.pipeline.voice_clips > 0:
        print("== voices the actors never heard (other synthesisers, real recordings) ==")
        print(voices_table(cfg, spec, judge_dir, device, lipreader_dir))
    clip = VocaDataset(spec, "test", with_phones=False).names[0]  # an unseen speaker
    info = comparison_video(layout, head, clip, {k: v for k, v in folders.items() if k != "perceptual"},
                            run_dir / f"{clip}.mp4", size, fps, backend)
    page = comparison_viewer(layout, clip, {k: v for k, v in folders.items() if k != "perceptual"},
                             run_dir / "viewer")
    vertices = np.load(layout.vertices(clip)).reshape(-1, head.n_vertices, 3)  # (T60, V, 3)
    closed, opened = mouth_stills(layout, clip)
    still = render_still([Panel(vertices[closed:closed + 1], "bilabial: closed"),
                          Panel(vertices[opened:opened + 1], "open vowel: open")], head.faces,
                         run_dir / "mouth_closed_open.png", size=size, backend=backend,
                         vertex_colors=head_vertex_colors(head))
    print(f"training budgets (steps, not minutes; the same seed and commit give the same table):\n"
          f"{budget_table(run_dir)}")
    print(f"video: {info.path} ({info.frames} frames, {info.render_fps:.1f} frames/s, {info.backend} backend)\n"
          f"still: {still}\nbrowser viewer: {page} (or `facerl view {page.parent}/{clip}_supervised.glb "
          f"--compare {page.parent}/{clip}_RL.glb --audio {layout.wav(clip)}`)\nreport: {run_dir / 'compare'}/metrics.md, training_curves.png; "
          f"reward calibration: {run_dir / 'evaluation' / 'reward_test'}/calibration.md")


STAGES = (("actor", "facerl-actor"), ("reward", "facerl-reward"), ("judge", "facerl-reward"),
          ("rl", "facerl-actor"), ("perceptual", "facerl-actor"))


def budget_table(run_dir: Path) -> str:
    """Each trained stage's configured budget against what it ran, from its last.pt; a stage the wall-clock
    safety cap stopped is flagged, since its results are not those of the configured budget."""
    from facerl.utils.checkpoint import load_checkpoint

    lines = ["| stage | epochs run / budget | optimiser steps | minutes | stopped by the safety cap |",
             "|---|---|---|---|---|"]
    capped = []
    for stage, kind in STAGES:
        last = run_dir / stage / "last.pt"
        if not last.is_file():
            continue
        ckpt = load_checkpoint(last, kind)
        metrics = ckpt.get("metrics") or (ckpt.get("history") or [{}])[-1]
        stopped = bool(metrics.get("stopped_by_time_cap"))
        if stopped:
            capped.append(stage)
        lines.append(f"| {stage} | {ckpt.get('epoch')} / {ckpt['config']['trainer'].get('epochs')} | "
                     f"{ckpt.get('step', metrics.get('step', '–'))} | {metrics.get('time_s', 0) / 60:.1f} | "
                     f"{'**YES**' if stopped else 'no'} |")
    if capped:
        lines.append(f"\nWARNING: the safety cap (pipeline.max_minutes) stopped {', '.join(capped)} before its "
                     "budget: these rows are not reproducible; raise pipeline.max_minutes or use a faster machine")
    save_text(run_dir / "budgets.md", "\n".join(lines) + "\n")
    return "\n".join(lines)


def voices_table(cfg: DictConfig, spec: DatasetSpec, judge_dir: Path | None, device,
                 lipreader_dir: Path | None = None) -> str:
    """Build the out-of-domain voice sets once (reused while their settings match) and score every trained
    actor on them next to the in-domain test speakers: runs/<run>/evaluation/voices/."""
    from facerl.data.voices import build_voice_sets, read_manifest
    from facerl.eval.evaluate import write_report
    from facerl.eval.voices import (
        IN_DOMAIN,
        VOICE_COLUMNS,
        evaluate_voices,
        voice_specs,
    )

    root = Path(cfg.paths.voices_dir)
    sources = list(cfg.pipeline.voice_sources) or None
    manifest = read_manifest(root) if (root / "voices.json").is_file() else None
    wanted = {"clips_per_source": cfg.pipeline.voice_clips, "requested": sources, "seed": 0}
    if manifest is None or {k: manifest.get(k) for k in wanted} != wanted:
        # replace older sets, and an interrupted build of ours (marker, no voices.json); never anything else
        ours = Layout(root).created_by == "facerl data voices"
        build_voice_sets(root, sources, cfg.pipeline.voice_clips, overwrite=manifest is not None or ours)
    else:
        print(f"using the voice sets in {root}")
    run_dir = Path(cfg.paths.run_dir)
    actors = {label: run_dir / stage / "best.pt" for stage, label in
              (("actor", "supervised"), ("rl", "RL"), ("perceptual", "perceptual"))
              if (run_dir / stage / "best.pt").is_file()}
    rows = evaluate_voices(actors, {IN_DOMAIN: spec, **voice_specs(root)}, judge_dir, device, lipreader_dir)
    return write_report(rows, run_dir / "evaluation" / "voices", "voices", VOICE_COLUMNS)


def comparison_viewer(layout: Layout, clip: str, folders: dict[str, Path], out_dir: Path) -> Path:
    """Each method's ARKit curves of one clip (average style) as ``<clip>_<method>.glb`` and a self-contained
    viewer page ``<clip>.html`` playing them side by side with the clip's sound."""
    from facerl.export.outputs import CurveMaker, CurveOptions, head_colors
    from facerl.export.results import export_sequence
    from facerl.view import write_page

    template = layout.templates()[Layout.parse_clip(clip)[0]]                                   # (V, 3)
    maker, faces, colors = CurveMaker(CurveOptions(), len(template)), layout.faces(), head_colors(len(template))
    out_dir.mkdir(parents=True, exist_ok=True)
    glbs = [out_dir / f"{clip}_{label}.glb" for label in folders]
    for glb, folder in zip(glbs, folders.values()):
        verts = np.load(folder / f"{clip}_condition_average.npy").reshape(-1, len(template), 3)   # (T30, V, 3)
        export_sequence(verts, template, maker, [str(glb)], faces, colors, audio=layout.wav(clip).name)
    return write_page(out_dir / f"{clip}.html", glbs, list(folders), layout.wav(clip))


def comparison_video(layout: Layout, head, clip: str, folders: dict[str, Path], out: Path, size: int, fps: float,
                     backend: str):
    """Ground truth | each method (average style) for one clip, with its sound."""
    vertices = np.load(layout.vertices(clip)).reshape(-1, head.n_vertices, 3)  # (T60, V, 3)
    stride = max(1, round(60 / fps))
    gt = vertices[::stride]
    panels = [Panel(gt, f"ground truth: {clip}")]
    for label, folder in folders.items():
        pred = np.load(folder / f"{clip}_condition_average.npy").reshape(-1, head.n_vertices, 3)  # (T30, V, 3)
        pred = pred[np.minimum(np.arange(len(gt)) * stride // 2, len(pred) - 1)]  # 30 fps -> the video rate
        panels.append(Panel(pred, f"{label} (average style)"))
    return render_video(panels, head.faces, out, wav_path=layout.wav(clip), fps=60 / stride, size=size,
                        backend=backend, vertex_colors=head_vertex_colors(head))
