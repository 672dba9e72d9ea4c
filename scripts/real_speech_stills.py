"""Animate a real recording with a trained actor and render the frames people check first: the most closed
mouth inside a bilabial (p/b/m) and the most open inside an open vowel, next to the ground truth that the
aligned phones give. Writes an mp4 with sound (prediction | ground truth) and one PNG still.

    .venv/bin/python scripts/real_speech_stills.py --checkpoint runs/pipeline/actor/best.pt \\
        --wav /usr/share/asterisk/sounds/en_US_f_Allison/vm-intro.wav \\
        --text "Please leave your message after the tone. When done, hang up, or press the pound key." \\
        --out docs/images/real_speech

The wav can be anything with a transcript (the words are aligned offline with pocketsphinx).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from facerl.animate import animate
from facerl.audio import SAMPLE_RATE, read_wav, write_wav
from facerl.data.layout import Layout
from facerl.data.measures import BILABIALS, OPEN_VOWELS, phone_frames
from facerl.head.rig import lip_gap, load_head
from facerl.render.commands import head_vertex_colors
from facerl.render.renderer import Panel, render_still, render_video
from facerl.speech.align import align_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True, help="output stem: <out>.mp4 and <out>.png")
    ap.add_argument("--size", type=int, default=384)
    args = ap.parse_args()

    from facerl.animation.style import SpeakerStyle
    from facerl.data.synthetic import clip_from_speech

    audio = read_wav(args.wav)
    phones = align_text(audio, args.text, source=args.wav)
    head = load_head()
    with tempfile.TemporaryDirectory() as tmp:
        wav16 = Path(tmp) / "speech.wav"
        write_wav(wav16, audio)
        name = clip_from_speech(phones, audio, tmp + "/gt", "Real_01_TA", 1, SpeakerStyle(), seed=0)
        gt = np.load(Layout(Path(tmp) / "gt").vertices(name)).reshape(-1, head.n_vertices, 3)[::2]  # (T30, V, 3)
        pred = animate(str(wav16), args.checkpoint, "average", [f"{tmp}/pred.npy"], device="cpu")  # (T30, V, 3)
        n = min(len(gt), len(pred))
        gap = lip_gap(pred[:n], head.regions["inner_lip_pair"]) - lip_gap(head.vertices, head.regions["inner_lip_pair"])

        def frames_in(symbols: set[str]) -> np.ndarray:
            mask = np.zeros(n, bool)
            for p in phones:
                if p.phone in symbols:
                    mask |= phone_frames(p, n, 30.0)
            return np.flatnonzero(mask)

        closed, opened = frames_in(BILABIALS), frames_in(OPEN_VOWELS)
        c = int(closed[np.argmin(gap[closed])]) if len(closed) else int(np.argmin(gap))
        o = int(opened[np.argmax(gap[opened])]) if len(opened) else int(np.argmax(gap))
        colors = head_vertex_colors(head)
        word = {True: "closed", False: "open"}
        panels = [Panel(pred[c:c + 1], f"facerl, {word[True]} ({c / 30:.2f} s)"),
                  Panel(gt[c:c + 1], "ground truth"),
                  Panel(pred[o:o + 1], f"facerl, {word[False]} ({o / 30:.2f} s)"),
                  Panel(gt[o:o + 1], "ground truth")]
        still = render_still(panels, head.faces, f"{args.out}.png", size=args.size, vertex_colors=colors)
        video = render_video([Panel(pred[:n], "facerl (real recording)"), Panel(gt[:n], "ground truth (aligned)")],
                             head.faces, f"{args.out}.mp4", wav_path=wav16, fps=30, size=args.size,
                             vertex_colors=colors)
    print(f"{len(audio) / SAMPLE_RATE:.2f} s, {len(phones)} phones; still {still}, video {video.path}; "
          f"predicted gap at the closure {1000 * gap[c]:.1f} mm, at the opening {1000 * gap[o]:.1f} mm")


if __name__ == "__main__":
    main()
