"""Retargeting check: one ARKit curve file drives other heads without re-solving; writes a still (PNG).

The curves (a .json or Live Link .csv made by `facerl animate` / `facerl export` for one face) are applied
unchanged to other faces of the same rig: the first is the face the curves were solved on, the others are
speaker templates with their own identity shapes (``--subject``, from the corpus) and one made-up identity
(random identity weights at the corpus's extremes, +-0.45 each). Top row: the frame of widest jawOpen;
bottom row: the frame of strongest mouthClose + mouthPress (a bilabial).

Usage: .venv/bin/python examples/retarget_still.py CURVES --dataset data/synthetic --subject NAME
       [--subject NAME ...] [--source-template NAME] --out retarget.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from facerl.data.layout import Layout
from facerl.export.curves import read_curves_json, read_livelink_csv
from facerl.export.outputs import head_colors
from facerl.export.solve import BlendshapeBasis
from facerl.head.rig import load_head
from facerl.render.renderer import Panel, render_still
from facerl.utils.io import atomic_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("curves", help="ARKit curves: .json or Live Link Face .csv")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--source-template", help="the subject whose face the curves were made on (default: mean face)")
    ap.add_argument("--subject", action="append", default=[], help="another subject's face to drive (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    curves = (read_livelink_csv if args.curves.endswith(".csv") else read_curves_json)(args.curves)
    head, basis = load_head(), BlendshapeBasis.from_head()
    templates = Layout(Path(args.dataset)).templates()
    source = templates[args.source_template] if args.source_template else np.mean(list(templates.values()), 0)
    unknown = [s for s in args.subject if s not in templates]
    if unknown:
        raise SystemExit(f"unknown --subject {', '.join(unknown)}; {args.dataset} has {', '.join(templates)}")
    faces_to_drive = [("solved on", source), *((s, templates[s]) for s in args.subject)]
    identity = np.random.default_rng(args.seed).choice([-0.45, 0.45], len(head.identity_basis))  # the corpus: U(-0.45, 0.45)
    faces_to_drive.append(("made-up identity", head.template(identity)))

    w = curves.weights
    open_frame = int(np.argmax(curves.curve("jawOpen")))
    closed_frame = int(np.argmax(curves.curve("mouthClose") + curves.curve("mouthPressLeft")))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frame, what in ((open_frame, "jawOpen"), (closed_frame, "bilabial")):
            panels = [Panel(basis.pose(w[frame:frame + 1], tmpl), f"{name} | {what} f{frame}")
                      for name, tmpl in faces_to_drive]
            path = render_still(panels, head.faces, Path(tmp) / f"{what}.png", size=args.size,
                                vertex_colors=head_colors(head.n_vertices))
            rows.append(Image.open(path).convert("RGB"))
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    for i, row in enumerate(rows):
        sheet.paste(row, (0, i * rows[0].height))
    with atomic_path(args.out) as tmp_out:
        sheet.save(tmp_out, format="PNG")
    print(f"wrote {args.out}: {len(faces_to_drive)} faces driven by one curve file, frames {open_frame} and "
          f"{closed_frame}")


if __name__ == "__main__":
    main()
