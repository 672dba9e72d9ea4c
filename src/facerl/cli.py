"""The `facerl` command. Each subcommand is one pipeline stage; extra ``key=value`` arguments are Hydra
overrides of ``facerl/conf/config.yaml`` (e.g. ``data.seed=3``, ``paths.root=/scratch``)."""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import time

from facerl.errors import FacerlError

OVERRIDE_RE = re.compile(r"^[+~]{0,2}[A-Za-z_][\w.]*=")  # Hydra override: key=value, +key=value, ~key=
SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def split_overrides(argv: list[str], value_options: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """Separate Hydra ``key=value`` overrides from the command's own arguments (they may come anywhere).

    An argument right after an option in ``value_options`` is that option's value (``--results a=b``)."""
    rest, overrides = [], []
    takes_value = False
    for arg in argv:
        (overrides if OVERRIDE_RE.match(arg) and not takes_value else rest).append(arg)
        takes_value = arg in value_options
    return rest, overrides


def value_options(parser: argparse.ArgumentParser) -> frozenset[str]:
    """Every option string, in any subcommand, that takes a value."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= value_options(sub)
        elif action.option_strings and action.nargs != 0:
            found.update(action.option_strings)
    return frozenset(found)


def int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def subject_name(text: str) -> str:
    if not SUBJECT_RE.match(text):
        raise argparse.ArgumentTypeError(f"subject names use letters, digits, '_' and '-' only, got {text!r}")
    return text

EPILOG = ("Extra key=value arguments override the Hydra config (facerl/conf/config.yaml), "
          "e.g. `facerl data build data.seed=3 paths.root=/scratch`.")


def _cfg(overrides: list[str]):
    from facerl.config import load_config

    return load_config(overrides)


def cmd_data_build(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.data.synthetic import CorpusConfig, build_corpus

    overrides = (["data=synthetic_tiny"] if args.tiny else []) + extra
    corpus = CorpusConfig.from_config(_cfg(overrides).data)
    corpus.out = args.out or corpus.out
    corpus.seed = corpus.seed if args.seed is None else args.seed
    corpus.workers = args.workers or corpus.workers
    corpus.overwrite = corpus.overwrite or args.overwrite
    summary = build_corpus(corpus)
    print(summary)


def cmd_data_from_speech(args: argparse.Namespace, extra: list[str]) -> None:
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from facerl.animation.style import SpeakerStyle, sample_style
    from facerl.audio import SAMPLE_RATE, read_wav
    from facerl.data.layout import Layout
    from facerl.data.synthetic import clip_from_speech
    from facerl.head.rig import load_head
    from facerl.speech.align import align_text, read_dictionary
    from facerl.speech.timing import read_phone_csv

    def beside(wav: Path) -> tuple[str, Path] | None:
        """The transcript next to a wav: its words (.txt), else its phone timings (.csv)."""
        return next(((kind, p) for kind, p in (("words", wav.with_suffix(".txt")), ("phones", wav.with_suffix(".csv")))
                     if p.is_file()), None)

    _cfg(extra)  # validates overrides
    source = Path(args.wav)
    if source.is_dir():  # one clip per wav, each with its transcript beside it
        if args.phones or args.text is not None:
            raise FacerlError(f"{source} is a folder: each wav takes its .txt or .csv from beside it "
                              "(drop the phones CSV / --text)")
        wavs = sorted(p for p in source.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
        if not wavs:
            raise FacerlError(f"no .wav files in {source}")
        missing = [w.name for w in wavs if beside(w) is None]
        if missing:
            raise FacerlError(f"no transcript for {', '.join(missing)} in {source}: put a .txt with the words "
                              "(or a .csv of phone timings) of the same name beside each wav")
        jobs: list[tuple[Path, tuple[str, Path | str]]] = [(w, beside(w)) for w in wavs]
    elif args.phones and args.text is not None:
        raise FacerlError("give either a phones CSV or --text, not both")
    else:
        transcript = (("phones", Path(args.phones)) if args.phones else ("text", args.text)
                      if args.text is not None else beside(source))
        if transcript is None and not source.is_file():
            raise FacerlError(f"audio file or folder not found: {source}")
        if transcript is None:
            raise FacerlError(f"no transcript for {source}: give a phones CSV, --text \"...\", or put "
                              f"{source.with_suffix('.txt').name} with the words beside it")
        jobs = [(source, transcript)]
    if args.dict:
        read_dictionary(args.dict)  # a bad --dict is reported before any audio is read
    names = [Layout.clip_name(args.subject, args.sentence + i) for i in range(len(jobs))]
    taken = [n for n in names if Layout(Path(args.out)).vertices(n).exists()]
    if taken and not args.overwrite:
        raise FacerlError(f"clip {taken[0]} already exists in {args.out} (pass --overwrite to replace it)")

    # Everything is read and aligned before the first clip is written: one bad file writes nothing.
    clips, aligned = [], 0
    for wav, (kind, transcript) in tqdm(jobs, desc="aligning", unit="clip", leave=False, disable=len(jobs) == 1):
        audio = read_wav(wav)
        duration = len(audio) / SAMPLE_RATE
        if kind == "phones":
            phones = read_phone_csv(transcript, alphabet=args.alphabet)
            if phones[-1].end_s > duration + 0.05:
                raise FacerlError(f"{transcript} runs to {phones[-1].end_s:.2f} s but {wav} lasts {duration:.2f} s")
        else:
            try:
                text = transcript.read_text(encoding="utf-8-sig") if kind == "words" else transcript
            except (OSError, UnicodeDecodeError) as exc:
                raise FacerlError(f"cannot read the transcript {transcript}: {exc}") from None
            phones = align_text(audio, text, args.dict, source=wav)
            aligned += 1
        clips.append((audio, phones))

    style = (sample_style(np.random.default_rng([args.style_seed, 1]), len(load_head().identity_names))
             if args.style_seed is not None else SpeakerStyle())
    for i, (audio, phones) in enumerate(tqdm(clips, desc="building clips", unit="clip", leave=False,
                                             disable=len(clips) == 1)):
        clip_from_speech(phones, audio, args.out, args.subject, args.sentence + i, style, args.seed,
                         overwrite=args.overwrite)
    seconds = sum(len(audio) for audio, _ in clips) / SAMPLE_RATE
    n_phones = sum(len(phones) for _, phones in clips)
    if len(clips) == 1:
        print(f"wrote clip {names[0]} ({seconds:.2f} s, {n_phones} phones) under {args.out}")
    else:
        print(f"wrote {len(clips)} clips {names[0]} .. {names[-1]} ({seconds:.1f} s of speech, {n_phones} phones, "
              f"{aligned} aligned to their transcripts, {len(clips) - aligned} from phone CSVs) under {args.out}")


def cmd_data_convert_vocaset(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.data.vocaset import convert_vocaset

    _cfg(extra)  # validates overrides
    n = convert_vocaset(args.raw_dir, args.out, masks=args.masks, overwrite=args.overwrite)
    print(f"converted {n} VOCASET sequences into {args.out}")


def cmd_data_info(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.data.dataset import VocaDataset, spec_from_config

    cfg = _cfg(([f"dataset.root={args.root}"] if args.root else []) + extra)
    spec = spec_from_config(cfg.dataset)
    print(f"{spec.root}:")
    for split in ("train", "val", "test"):
        if not spec.subjects(split):
            print(f"{split:5s}: no subjects")
            continue
        ds = VocaDataset(spec, split, with_phones=False)
        print(f"{split:5s}: {len(ds):4d} clips, subjects {', '.join(spec.subjects(split))}")


def cmd_data_voices(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.data.voices import build_voice_sets

    cfg = _cfg(extra)
    out = args.out or cfg.paths.voices_dir
    manifest = build_voice_sets(out, args.sources, args.clips, args.seed, overwrite=args.overwrite)
    n = sum(len(v["clips"]) for v in manifest["sources"].values())
    skipped = f" ({len(manifest['skipped'])} skipped)" if manifest["skipped"] else ""
    print(f"wrote {n} clips of {len(manifest['sources'])} voice sources under {out}{skipped}")


def cmd_render(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.render.commands import render_command

    cfg = _cfg(extra)
    render_command(args, cfg.render)


def cmd_train(args: argparse.Namespace, extra: list[str]) -> None:
    cfg = _cfg(extra if any(o.startswith("experiment=") for o in extra) else ["experiment=supervised", *extra])
    if cfg.stage == "supervised":
        from facerl.train.supervised import train_supervised

        train_supervised(cfg)
    elif cfg.stage in ("reward", "judge"):
        from facerl.train.reward import train_reward

        train_reward(cfg)
    elif "recipe" in cfg.trainer:  # fine-tuning (rl, perceptual, supervised_continued, or a stage name of one's own)
        from facerl.config import check_run_name

        check_run_name(str(cfg.stage), "stage")
        from facerl.rl.train import train_rl

        train_rl(cfg)
    elif cfg.stage == "lipreader":
        from facerl.eval.lipreader import train_lipreader

        train_lipreader(cfg)
    else:
        raise FacerlError(f"stage {cfg.stage!r} cannot be trained (available: supervised, reward, judge, rl, "
                          "perceptual, lipreader)")


def _run_dir_file(cfg, *parts: str) -> str:
    from pathlib import Path

    return str(Path(cfg.paths.run_dir, *parts))


def cmd_test(args: argparse.Namespace, extra: list[str]) -> None:
    from pathlib import Path

    from facerl.data.dataset import spec_from_config
    from facerl.eval.results import write_results
    from facerl.models.checkpoint import load_actor
    from facerl.utils.checkpoint import resolve_device

    cfg = _cfg(extra)
    checkpoint = args.checkpoint or _run_dir_file(cfg, "actor", "best.pt")
    device = resolve_device(args.device)
    actor, meta, _ = load_actor(checkpoint, device)
    out = Path(args.out or _run_dir_file(cfg, "results"))
    n = write_results(actor, meta, spec_from_config(cfg.dataset), args.splits, args.styles, out, device)
    print(f"wrote {n} sequences to {out}")


def _named_paths(items: list[str] | None, default: str, option: str, what: str) -> dict:
    """``NAME=PATH`` arguments (repeatable option) -> {name: Path}; malformed ones are a one-line error."""
    from pathlib import Path

    named = {}
    for item in items or [default]:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise FacerlError(f"{option} takes NAME={what}, got {item!r}")
        named[name] = Path(path)
    return named


def _optional_judge(args: argparse.Namespace, cfg):
    """The judge folder of --judge (must hold a judge) or of the run (used when it exists), or None."""
    from pathlib import Path

    if args.no_judge:
        return None
    judge = Path(args.judge or _run_dir_file(cfg, "judge"))
    if (judge / "backbone.pt").is_file():
        return judge
    if args.judge:
        raise FacerlError(f"no trained judge in {judge} (train one: facerl train experiment=judge)")
    print(f"no judge in {judge}: the sync (judge) columns stay empty (facerl train experiment=judge)")
    return None


def cmd_evaluate(args: argparse.Namespace, extra: list[str]) -> None:
    from pathlib import Path

    from facerl.data.dataset import spec_from_config
    from facerl.eval.evaluate import evaluate, run_scorers, write_report
    from facerl.utils.checkpoint import resolve_device

    cfg = _cfg(extra)
    methods = _named_paths(args.results, f"supervised={_run_dir_file(cfg, 'results')}", "--results", "FOLDER")
    judge = _optional_judge(args, cfg)
    scorers = run_scorers(Path(_run_dir_file(cfg)))  # the run's reward model and lip-reader, when trained
    rows = evaluate(spec_from_config(cfg.dataset), args.split, methods, judge, str(resolve_device(args.device)),
                    scorers["reward"], scorers["lipreader"])
    out = Path(args.out or _run_dir_file(cfg, "evaluation", args.split))
    print(write_report(rows, out, args.split))
    print(f"wrote {out}/metrics.md, metrics.json, metrics.csv")


def cmd_evaluate_reward(args: argparse.Namespace, extra: list[str]) -> None:
    from pathlib import Path

    from facerl.data.dataset import spec_from_config
    from facerl.eval.reward_report import calibrate, write_calibration
    from facerl.utils.checkpoint import resolve_device

    cfg = _cfg(extra)
    reward = Path(args.reward or _run_dir_file(cfg, "reward"))
    judge = Path(args.judge or _run_dir_file(cfg, "judge"))
    actor = Path(args.actor or _run_dir_file(cfg, "actor", "best.pt"))
    if not (reward / "backbone.pt").is_file():
        raise FacerlError(f"no trained reward model in {reward} (train one: facerl train experiment=reward)")
    judge_dir = judge if (judge / "backbone.pt").is_file() else None
    if args.judge and judge_dir is None:
        raise FacerlError(f"no trained judge in {judge} (train one: facerl train experiment=judge)")
    if args.actor and not actor.is_file():
        raise FacerlError(f"actor checkpoint not found: {actor}")
    if judge_dir is None:
        print(f"no judge in {judge}: judge columns left out (facerl train experiment=judge)")
    report = calibrate(reward, spec_from_config(cfg.dataset), args.split, judge_dir,
                       actor if actor.is_file() else None, resolve_device(args.device))
    out = Path(args.out or _run_dir_file(cfg, "evaluation", f"reward_{args.split}"))
    print(write_calibration(report, out))
    print(f"wrote {out}/calibration.md, calibration.json, calibration.png")
    if args.voices:
        from facerl.eval.reward_report import calibrate_voices, write_voice_calibration
        from facerl.eval.voices import IN_DOMAIN, voice_specs

        sources = {f"{IN_DOMAIN} ({args.split})": spec_from_config(cfg.dataset), **voice_specs(args.voices)}
        if args.split != "test":
            sources.pop(f"{IN_DOMAIN} ({args.split})")  # calibrate_voices reads each source's test split
        rows = calibrate_voices(reward, sources, judge_dir, resolve_device(args.device))
        print(write_voice_calibration(rows, out))
        print(f"wrote {out}/calibration_voices.md, calibration_voices.json")


def cmd_evaluate_voices(args: argparse.Namespace, extra: list[str]) -> None:
    from pathlib import Path

    from facerl.data.dataset import spec_from_config
    from facerl.eval.evaluate import write_report
    from facerl.eval.voices import (
        IN_DOMAIN,
        VOICE_COLUMNS,
        evaluate_voices,
        voice_specs,
    )
    from facerl.utils.checkpoint import resolve_device

    cfg = _cfg(extra)
    actors = _named_paths(args.actor, f"supervised={_run_dir_file(cfg, 'actor', 'best.pt')}", "--actor",
                          "CHECKPOINT")
    sources = {} if args.no_in_domain else {IN_DOMAIN: spec_from_config(cfg.dataset)}
    sources.update(voice_specs(args.voices or cfg.paths.voices_dir))
    judge = _optional_judge(args, cfg)
    out = Path(args.out or _run_dir_file(cfg, "evaluation", "voices"))
    rows = evaluate_voices(actors, sources, judge, resolve_device(args.device))
    print(write_report(rows, out, "voices", VOICE_COLUMNS))
    print(f"wrote {out}/metrics.md, metrics.json, metrics.csv")


def cmd_compare(args: argparse.Namespace, extra: list[str]) -> None:
    from pathlib import Path

    from facerl.data.dataset import VocaDataset, spec_from_config
    from facerl.data.layout import Layout
    from facerl.eval.compare import compare
    from facerl.head.rig import load_head
    from facerl.pipeline import comparison_video
    from facerl.render.commands import check_render_config
    from facerl.utils.checkpoint import resolve_device

    cfg = _cfg(extra)
    size, fps, backend = check_render_config(cfg.render)
    run_dir = Path(cfg.paths.run_dir)
    out = Path(args.out or run_dir / "compare")
    spec = spec_from_config(cfg.dataset)
    table, folders = compare(run_dir, spec, resolve_device(args.device), out)
    print(table)
    print(f"wrote {out}/metrics.md, metrics.json, metrics.csv")
    if not args.no_video:
        clip = args.clip or VocaDataset(spec, "test", with_phones=False).names[0]
        info = comparison_video(Layout(Path(spec.root)), load_head(), clip,
                                {k: v for k, v in folders.items() if k != "perceptual"}, out / f"{clip}.mp4",
                                size, fps, backend)
        print(f"video: {info.path}")


def cmd_animate(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.animate import animate
    from facerl.export.outputs import CurveOptions
    from facerl.utils.checkpoint import resolve_device

    cfg = _cfg(extra)
    device = resolve_device(args.device)
    animate(args.wav, args.checkpoint, args.style, args.out, template=args.template, faces_path=args.faces,
            device=str(device), render_cfg=cfg.render,
            curve_options=CurveOptions(args.arkit, args.smooth, args.basis))


def cmd_export(args: argparse.Namespace, extra: list[str]) -> None:
    from pathlib import Path

    from facerl.export.outputs import CurveOptions
    from facerl.export.results import export_results

    cfg = _cfg(extra)
    dataset = Path(args.dataset or str(cfg.dataset.root))
    out = Path(args.out_dir or f"{args.results.rstrip('/')}_arkit")
    formats = list(dict.fromkeys(args.format or ["csv", "json", "glb"]))
    n = export_results(Path(args.results), dataset, out, formats, CurveOptions(args.arkit, args.smooth, args.basis))
    print(f"wrote {n} sequences to {out} ({', '.join(formats)})")


def cmd_view(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.view import view_main

    glbs = [args.glb, *([args.compare] if args.compare else [])]
    view_main(glbs, args.label, args.audio, args.write, args.port, open_browser=not args.no_browser)


def cmd_serve(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.stream.server import serve_main

    _cfg(extra)  # validates overrides
    serve_main(args)


def cmd_pipeline(args: argparse.Namespace, extra: list[str]) -> None:
    from facerl.pipeline import run_pipeline

    overrides = (["experiment=supervised_tiny"] if args.tiny else []) + extra
    run_pipeline(_cfg(overrides), rebuild=args.rebuild, retrain=args.retrain, tiny=args.tiny, overrides=extra)


def _add_curve_args(parser: argparse.ArgumentParser) -> None:
    """How .csv / .json / .glb outputs get their ARKit curves (animate and export)."""
    from facerl.export.outputs import ROUTES

    parser.add_argument("--arkit", default="solve", choices=ROUTES,
                        help="ARKit curves: solve = bounded least squares from the vertices (default; any actor); "
                             "readout = a linear read-out of the actor's motion coefficients (no solve)")
    parser.add_argument("--smooth", type=float,
                        help="temporal smoothness of the solve (default 0.03; 0 = every frame on its own)")
    parser.add_argument("--basis", help="blendshapes of another topology for ARKit outputs: an .npz with "
                                        "`neutral` (V, 3) and one (V, 3) target shape per ARKit name "
                                        "(default: facerl's head)")


def _config_help(*groups: tuple[str, str]) -> str:
    """The commented YAML of config groups, so `--help` lists every knob with its one-line meaning."""
    from importlib import resources

    parts = []
    for group, name in groups:
        text = resources.files("facerl.conf").joinpath(group, f"{name}.yaml").read_text()
        body = "\n".join(f"  {group}.{line}" if line and not line.startswith((" ", "#")) else f"  {line}"
                         for line in text.splitlines() if line.strip())
        parts.append(f"{group}.* options (conf/{group}/{name}.yaml):\n{body}\n")
    return "\n".join(parts) + "\n"


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="facerl", formatter_class=fmt, epilog=EPILOG,
        description="facerl: speech-driven 3D facial animation that looks right.\n\n"
                    "Stages: `data` builds or converts a VOCASET-layout dataset, `train` trains the actor, "
                    "the reward model and the judge, `test` generates held-out results, `evaluate` scores them, "
                    "`evaluate-reward` calibrates the reward model, `score` scores any method's output with "
                    "it, `animate` turns any speech "
                    "into an animation, `render` turns vertex sequences into mp4 with sound, `pipeline` "
                    "runs everything on the embedded default.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = sub.add_parser("data", help="build, import or inspect datasets", formatter_class=fmt)
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    b = dsub.add_parser("build", help="synthesise the embedded corpus (eSpeak speech + MakeHuman ARKit head)",
                        epilog=EPILOG, formatter_class=fmt)
    b.add_argument("--tiny", action="store_true",
                   help="4 speakers x 3 sentences, for tests (config data=synthetic_tiny)")
    b.add_argument("--out", help="dataset root to write (default: data/synthetic)")
    b.add_argument("--seed", type=int_at_least(0),
                   help="random seed (default 0); the corpus is deterministic for a seed")
    b.add_argument("--workers", type=int_at_least(1), help="parallel synthesis processes (default 2)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing corpus at --out")
    b.set_defaults(func=cmd_data_build)

    f = dsub.add_parser(
        "from-speech", formatter_class=fmt,
        help="add clips made from any speech: wav + transcript (aligned offline) or wav + phone timings",
        description="Builds ground-truth animation for external speech. Phone timings come from a CSV of rows\n"
                    "start,end,phone (seconds; --alphabet says how phones are written) or from the words,\n"
                    "force-aligned offline by pocketsphinx (its bundled en-us model and CMU dictionary).\n\n"
                    "  facerl data from-speech speech.wav phones.csv --out D    timings from the CSV\n"
                    "  facerl data from-speech speech.wav --text \"...\" --out D  align these words\n"
                    "  facerl data from-speech speech.wav --out D               align the words of speech.txt\n"
                    "  facerl data from-speech FOLDER --out D                   every *.wav in FOLDER with its\n"
                    "                                                           .txt (or .csv) beside it, as\n"
                    "                                                           sentences --sentence, +1, ...\n\n"
                    "Transcripts are plain English: case and punctuation do not matter, numbers up to 999 are\n"
                    "spelled out. Words missing from the CMU dictionary are listed: add them with --dict FILE.\n"
                    "Every file is read and aligned before anything is written.")
    f.add_argument("wav", help="speech audio (any rate, mono or stereo PCM wav), or a folder of them")
    f.add_argument("phones", nargs="?", help="CSV start,end,phone (header optional); omit it to align a transcript")
    f.add_argument("--text", help="the words spoken in the wav, to align (default: the .txt beside the wav)")
    f.add_argument("--dict", metavar="FILE",
                   help="extra pronunciations, lines 'WORD  PH1 PH2 ...' (CMU format: ARPAbet, stress digits "
                        "allowed), for words the CMU dictionary lacks")
    f.add_argument("--out", required=True, help="dataset root to add the clip to (created if missing)")
    f.add_argument("--subject", type=subject_name, default="External_01_TA",
                   help="subject name (default External_01_TA)")
    f.add_argument("--sentence", type=int_at_least(1), default=1,
                   help="sentence number NN in <subject>_sentenceNN (a folder's wavs count up from it)")
    f.add_argument("--alphabet", default="arpabet", choices=["arpabet", "xsampa", "ipa", "facerl"],
                   help="phone symbols of the CSV (default arpabet; stress digits allowed)")
    f.add_argument("--style-seed", type=int_at_least(0), help="sample a random speaker style (default: neutral style)")
    f.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the per-utterance randomness")
    f.add_argument("--overwrite", action="store_true", help="replace existing clips of the same names")
    f.set_defaults(func=cmd_data_from_speech)

    c = dsub.add_parser("convert-vocaset", help="convert raw VOCASET (data_verts.npy + raw_audio_fixed.pkl)",
                        formatter_class=fmt)
    c.add_argument("raw_dir",
                   help="folder with data_verts.npy, raw_audio_fixed.pkl, subj_seq_to_idx.pkl, templates.pkl")
    c.add_argument("--out", required=True, help="dataset root to write")
    c.add_argument("--masks", help="FLAME_masks.pkl, copied to regions.pkl")
    c.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    c.set_defaults(func=cmd_data_convert_vocaset)

    i = dsub.add_parser("info", help="clips per split of a dataset (a facerl corpus, or dataset=vocaset)",
                        epilog=EPILOG, formatter_class=fmt)
    i.add_argument("root", nargs="?", help="dataset root (default: the config's dataset.root)")
    i.set_defaults(func=cmd_data_info)

    vo = dsub.add_parser("voices", formatter_class=fmt, epilog=EPILOG,
                         help="out-of-domain voice sets: other synthesisers and real recordings, with ground truth",
                         description="Builds one subject per voice source (Piper, SVOX Pico, flite, Festival, "
                                     "real recordings) with the corpus's kind of ground truth, for "
                                     "`facerl evaluate-voices`. Sources whose engine is not installed are "
                                     "skipped with a message (flite, Festival and the Asterisk recordings are "
                                     "optional Debian packages).")
    vo.add_argument("--out", help="voice-set root (default: data/voices)")
    vo.add_argument("--sources", nargs="+", metavar="NAME",
                    help="sources or engines to build (default: all available): piper-joe, pico-us, pico-gb, "
                         "flite-slt, flite-rms, flite-awb, flite-kal, festival-kal, festival-slt, recorded-allison")
    vo.add_argument("--clips", type=int_at_least(1), default=12, help="clips per source (default 12)")
    vo.add_argument("--seed", type=int_at_least(0), default=0, help="sentence / prompt choice seed (default 0)")
    vo.add_argument("--overwrite", action="store_true", help="replace existing voice sets at --out")
    vo.set_defaults(func=cmd_data_voices)

    r = sub.add_parser("render", help="vertex sequence(s) + wav -> mp4 with sound (and a PNG still)",
                       epilog=EPILOG, formatter_class=fmt)
    r.add_argument("vertices", nargs="+",
                   help="one or more .npy (T, V*3) or (T, V, 3); several render side by side")
    r.add_argument("--wav", help="audio track to mux")
    r.add_argument("--out", required=True, help="output .mp4")
    r.add_argument("--titles", nargs="*", help="panel titles (default: file names)")
    r.add_argument("--faces",
                   help="(F, 3) triangle .npy for another mesh, e.g. <dataset>/faces.npy (default: the MakeHuman head)")
    r.add_argument("--fps-in", type=positive_float, default=60.0, help="frame rate of the vertex files (default 60)")
    r.add_argument("--still", help="also write a PNG of frame --still-frame")
    r.add_argument("--still-frame", type=int_at_least(0), default=0, help="frame (at the input rate) for --still")
    r.set_defaults(func=cmd_render)

    t = sub.add_parser("train", formatter_class=fmt,
                       epilog=_config_help(("trainer", "supervised"), ("model", "faceformer"), ("trainer", "reward"),
                                           ("reward", "small")) + EPILOG,
                       help="train a stage: experiment=supervised (the FaceFormer actor; default), "
                            "experiment=reward (reward model), experiment=judge (independent sync judge), "
                            "experiment=lipreader (viseme classifier, evaluation only)",
                       description="Train one stage, configured by a Hydra experiment (conf/experiment/): "
                                   "`facerl train experiment=supervised run_name=myrun trainer.epochs=20`.\n"
                                   "experiment=supervised writes runs/<run_name>/actor/{best,last}.pt; "
                                   "experiment=reward writes runs/<run_name>/reward/{backbone,head,last}.pt "
                                   "(trainer.actor_checkpoint=... adds an actor's outputs as realism negatives); "
                                   "experiment=judge writes runs/<run_name>/judge/ (evaluation only); "
                                   "experiment=lipreader writes runs/<run_name>/lipreader/lipreader.pt (a viseme "
                                   "classifier on ground-truth lip motion, evaluation only; always trains afresh).\n"
                                   "Every stage logs to TensorBoard and resumes "
                                   "from last.pt (trainer.resume=false to start over). Multi-process (supervised): "
                                   "`torchrun --nproc_per_node 2 -m facerl.cli train ...`.")
    t.set_defaults(func=cmd_train)

    te = sub.add_parser("test", formatter_class=fmt, epilog=EPILOG,
                        help="generate every held-out clip under every training style -> results/*.npy",
                        description="Writes <out>/<clip>_condition_<style>.npy (T30, V*3), as FaceFormer does, "
                                    "for every clip of the chosen splits and every training-style condition "
                                    "('average' = the style-independent mode, mean of the one-hots).")
    te.add_argument("--checkpoint", help="actor checkpoint (default: runs/<run_name>/actor/best.pt)")
    te.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"],
                    help="splits to generate (default: val test)")
    te.add_argument("--styles", default="all", choices=["all", "average", "both"],
                    help="every training style (default), the style-independent average, or both")
    te.add_argument("--out", help="results folder (default: runs/<run_name>/results)")
    te.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    te.set_defaults(func=cmd_test)

    ev = sub.add_parser("evaluate", formatter_class=fmt, epilog=EPILOG,
                        help="score result folders: LVE, max lip error, FDD, MVE, closure rate, MTM, SLCC, jitter, "
                             "judge sync",
                        description="Prints one table row per method (static template and ground truth are "
                                    "always included) and writes metrics.md / .json / .csv. With a trained "
                                    "judge, `sync (judge)` is the judge's mean cosine of aligned windows minus "
                                    "that of audio shifted 2..15 frames (higher = more in sync) and `offset acc "
                                    "(judge)` how often the judge's best audio shift for a sequence is 0.")
    ev.add_argument("--results", action="append", metavar="NAME=FOLDER",
                    help="a method's results folder (repeatable; default supervised=runs/<run_name>/results)")
    ev.add_argument("--split", default="test", choices=["val", "test"], help="held-out split (default test)")
    ev.add_argument("--out", help="report folder (default runs/<run_name>/evaluation/<split>)")
    ev.add_argument("--judge", help="judge folder (default runs/<run_name>/judge when it exists)")
    ev.add_argument("--no-judge", action="store_true", help="leave the sync (judge) columns out")
    ev.add_argument("--device", default="auto", help="device of the judge: auto | cpu | cuda (default auto)")
    ev.set_defaults(func=cmd_evaluate)

    an = sub.add_parser("animate", formatter_class=fmt, epilog=EPILOG,
                        help="speech.wav -> animated face: .mp4 with sound, .npy, OBJ folder, ARKit curves "
                             "(.csv Live Link Face, .json), animated .glb",
                        description="Animates any length of speech (any rate; stereo is downmixed) with a "
                                    "trained actor, e.g. `facerl animate talk.wav --checkpoint "
                                    "runs/pipeline/actor/best.pt --out talk.mp4 --out talk.csv --out talk.glb`. "
                                    "ARKit curves (52 weights in [0, 1] per frame, 30 fps) are solved from the "
                                    "vertices by bounded least squares on the head's blendshapes.")
    an.add_argument("wav", help="speech audio (.wav)")
    an.add_argument("--checkpoint", required=True, help="actor checkpoint (best.pt / last.pt of `facerl train`)")
    an.add_argument("--style", default="average",
                    help="speaking style: a training speaker's name or 'average' (default)")
    an.add_argument("--out", action="append", required=True,
                    help="output, by suffix: .mp4 (rendered, with sound), .npy (T, V*3), .csv (Live Link Face, for "
                         "Unreal), .json (ARKit curves), .glb (glTF 2.0 with 52 morph targets and the animation), "
                         "or a new folder (OBJ sequence); repeatable")
    an.add_argument("--template", help="face to animate: a .npy (V, 3) or a training-corpus subject "
                                       "(default: the mean training face)")
    an.add_argument("--faces", help="(F, 3) triangle .npy (default: from the checkpoint)")
    _add_curve_args(an)
    an.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    an.set_defaults(func=cmd_animate)

    ex = sub.add_parser("export", formatter_class=fmt, epilog=EPILOG,
                        help="a results folder -> ARKit curves (.csv Live Link Face, .json) and animated .glb",
                        description="Converts every <clip>_condition_<style>.npy of a results folder (facerl's, "
                                    "or another method's on the same topology) into ARKit files, e.g. `facerl "
                                    "export runs/pipeline/results_rl --format glb`. Each sequence's face is its "
                                    "subject's template in the dataset.")
    ex.add_argument("results", help="results folder of (T, V*3) vertex .npy files at 30 fps")
    ex.add_argument("--format", action="append", choices=["csv", "json", "glb"],
                    help="what to write (repeatable; default all three)")
    ex.add_argument("--out-dir", help="output folder (default <results>_arkit)")
    ex.add_argument("--dataset", help="the corpus the results were made on (default: dataset.root of the config)")
    _add_curve_args(ex)
    ex.set_defaults(func=cmd_export)

    vw = sub.add_parser("view", formatter_class=fmt, epilog=EPILOG,
                        help="play a .glb (or two side by side) with its audio in the browser",
                        description="A WebGL page with play/pause, scrub, orbit (drag), zoom (wheel), wireframe and "
                                    "a live plot of jawOpen, mouthClose, mouthFunnel, mouthPucker, mouthSmileLeft, "
                                    "e.g. `facerl view sup.glb --compare rl.glb --audio talk.wav`. Served on "
                                    "127.0.0.1 until Ctrl-C, or written as one self-contained .html (--write) that "
                                    "works offline. URL hash #frame=N (or #t=S) seeks and pauses.")
    vw.add_argument("glb", help="an animated .glb from `facerl animate --out x.glb` or `facerl export`")
    vw.add_argument("--compare", help="a second .glb shown beside the first (e.g. supervised | RL)")
    vw.add_argument("--label", action="append", help="panel titles, one per .glb (default: the file names)")
    vw.add_argument("--audio", help="the speech (.wav) played in sync")
    vw.add_argument("--write", metavar="HTML", help="write a self-contained page instead of serving it")
    vw.add_argument("--port", type=int, default=0, help="local port (default: a free one)")
    vw.add_argument("--no-browser", action="store_true", help="do not open a browser")
    vw.set_defaults(func=cmd_view)

    sv = sub.add_parser("serve", formatter_class=fmt, epilog=EPILOG,
                        help="stream live speech over a WebSocket -> 30 fps ARKit frames, with a microphone page",
                        description="Serves a streaming actor (Whisper on short windows: python -m facerl.train.distil "
                                    "ACTOR OUT --whisper-window-ms 1000 --finetune-steps 600; or a light one: facerl "
                                    "train experiment=stream): PCM16 16 kHz mono in "
                                    "over ws://HOST:PORT/ws, ARKit frames (JSON or compact binary) out, one stream per "
                                    "connection (protocol: facerl/stream/protocol.py), and the live page at "
                                    "http://HOST:PORT/ (microphone -> animated head). Binds to 127.0.0.1; Ctrl-C closes "
                                    "every stream cleanly, e.g. `facerl serve runs/stream/actor/best.pt`.")
    sv.add_argument("checkpoint", help="a streaming actor checkpoint (e.g. runs/stream/actor/best.pt)")
    sv.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; any other is reachable "
                    "from other machines without authentication: a warning is printed)")
    sv.add_argument("--port", type=int, default=8765,
                    help="port of the WebSocket and the page (default 8765; 0: a free one)")
    sv.add_argument("--style", default="average", help="speaking style: a training speaker's name or 'average' (default)")
    sv.add_argument("--max-clients", type=int_at_least(1), default=16, help="concurrent streams (default 16)")
    sv.add_argument("--allow-origin", action="append", metavar="ORIGIN", help="a web page origin (e.g. "
                    "http://localhost:3000) allowed to connect besides the server's own page; repeatable; '*': any")
    sv.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    sv.set_defaults(func=cmd_serve)

    from facerl.reward.score_command import (
        add_score_parser,  # no torch at import: help stays fast
    )
    add_score_parser(sub, fmt)

    er = sub.add_parser("evaluate-reward", formatter_class=fmt, epilog=EPILOG,
                        help="calibration report of the reward model and the judge on held-out speakers",
                        description="Scores held-out clips with their audio moved by -15..15 frames and with "
                                    "degraded motion: sync accuracy (lip score at 0.5, aligned vs shifted >= 2 "
                                    "frames), offset accuracy (per clip, is the best-scoring shift 0?), realism "
                                    "AUC per degradation, ground truth vs the supervised actor, and how often "
                                    "the judge agrees with the reward. Writes calibration.{md,json,png}.")
    er.add_argument("--split", default="test", choices=["val", "test"], help="held-out split (default test)")
    er.add_argument("--reward", help="reward folder (default runs/<run_name>/reward)")
    er.add_argument("--judge", help="judge folder (default runs/<run_name>/judge, skipped if absent)")
    er.add_argument("--actor", help="actor checkpoint to compare with ground truth "
                                    "(default runs/<run_name>/actor/best.pt, skipped if absent)")
    er.add_argument("--out", help="output folder (default runs/<run_name>/evaluation/reward_<split>)")
    er.add_argument("--voices", metavar="DIR",
                    help="also calibrate on every source of a voice-set root (facerl data voices): one summary row "
                         "per source in calibration_voices.{md,json}")
    er.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    er.set_defaults(func=cmd_evaluate_reward)

    ev2 = sub.add_parser("evaluate-voices", formatter_class=fmt, epilog=EPILOG,
                         help="out-of-domain table: each actor on the held-out eSpeak speakers and on every "
                              "voice source of `facerl data voices`",
                         description="One row per (actor, voice source): opening correlation r (per clip at its "
                                     "best lag within +-6 frames, mean over clips), mean |best lag| (frames), "
                                     "closure rate (2 mm), LVE, MTM and judge sync; average style, neutral "
                                     "face. Writes metrics.{md,json,csv}.")
    ev2.add_argument("--actor", action="append", metavar="NAME=CKPT",
                     help="an actor checkpoint (repeatable; default supervised=runs/<run_name>/actor/best.pt)")
    ev2.add_argument("--voices", help="voice-set root (default data/voices)")
    ev2.add_argument("--no-in-domain", action="store_true", help="leave out the corpus's test speakers")
    ev2.add_argument("--judge", help="judge folder (default runs/<run_name>/judge when it exists)")
    ev2.add_argument("--no-judge", action="store_true", help="leave the judge column out")
    ev2.add_argument("--out", help="report folder (default runs/<run_name>/evaluation/voices)")
    ev2.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    ev2.set_defaults(func=cmd_evaluate_voices)

    cp = sub.add_parser("compare", formatter_class=fmt, epilog=EPILOG,
                        help="side-by-side table of the run's actors (supervised / perceptual / RL) on the test "
                             "speakers, training curves and a GT | supervised | RL video",
                        description="Writes fresh test results of <run>/actor, <run>/perceptual and <run>/rl "
                                    "(best.pt of each that exists), then one table (markdown, JSON, CSV) with "
                                    "rows static template / ground truth / each method under every training "
                                    "style and the average style, columns LVE, max lip error, FDD, MVE, closure "
                                    "rate, MTM, SLCC, jitter, judge sync and offset accuracy, and the reward "
                                    "model's mean score; plus training_curves.png and an mp4 with sound.")
    cp.add_argument("--out", help="output folder (default runs/<run_name>/compare)")
    cp.add_argument("--clip", help="test clip of the video (default: the first)")
    cp.add_argument("--no-video", action="store_true", help="skip the video")
    cp.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    cp.set_defaults(func=cmd_compare)

    pl = sub.add_parser("pipeline", help="the main job: corpus -> actor -> reward model + judge -> calibration -> "
                                         "RL + perceptual baseline -> comparison table -> side-by-side video",
                        epilog=EPILOG, formatter_class=fmt)
    pl.add_argument("--tiny", action="store_true", help="tiny corpus (seconds instead of minutes)")
    pl.add_argument("--rebuild", action="store_true", help="rebuild the corpus (and retrain) even if it exists")
    pl.add_argument("--retrain", action="store_true",
                    help="train every stage again even if finished ones exist")
    pl.set_defaults(func=cmd_pipeline)
    return p


def _close_progress_bars() -> None:
    """An error raised inside a loop leaves its tqdm bar drawn: clear it so the error gets a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: partial files are removed


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    rest, extra = split_overrides(list(sys.argv[1:] if argv is None else argv), value_options(parser))
    args, unknown = parser.parse_known_args(rest)
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        args.func(args, extra)
    except FacerlError as exc:
        _close_progress_bars()
        print(f"facerl: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable output, a file where a folder should be, disk full, ...
        _close_progress_bars()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"facerl: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("facerl: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.command != "data" or args.data_command == "build":
        print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
