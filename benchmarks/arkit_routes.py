"""ARKit curves from an actor, two routes side by side: (a) solved from its vertices, (b) read out of its motion.

For every clip of a split (the style-independent average style), the actor's deterministic motion is made
once; then

* ``vertices``: the actor's own vertex output (what `facerl animate --out x.npy` writes), the reference;
* ``solve s=<smooth>``: route (a), bounded least squares with smoothness ``s`` (facerl.export.solve);
* ``read-out``: route (b), the actor's motion coefficients mapped linearly to the 52 weights, clipped to [0, 1].

Each route's curves are re-synthesised on the clip's template (template + sum_k w_k B_k) and scored against
the ground truth: LVE (mean over frames of the max squared lip-vertex error, m^2), its ratio to the vertex
output's, MVE (mm) and jitter (mean lip acceleration / ground truth's), plus the largest distance (mm) of the
re-synthesised mesh from the vertex output and the curves' seconds of speech per second of computing
(real-time factor; the read-out also includes nothing but its matrix product and the clip).

Choose settings on ``--split val``; report test and unseen voices without changing them.

Usage: .venv/bin/python benchmarks/arkit_routes.py --checkpoint runs/pipeline/actor/best.pt
       [--split val | --voices data/voices] [--smooth 0 0.01 0.03 0.1 0.3] [--dataset data/synthetic] [--limit N] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tqdm import tqdm

from facerl.data.dataset import VocaDataset, spec_from_corpus
from facerl.eval import metrics as M
from facerl.eval.evaluate import Regions
from facerl.eval.predict import dataset_batches, generate_styles
from facerl.export.curves import ArkitCurves
from facerl.export.solve import BlendshapeBasis, CurveSolver, readout_matrix
from facerl.models.audio import MOTION_FPS
from facerl.models.checkpoint import load_actor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", help="corpus folder (default: the checkpoint's training corpus)")
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--smooth", type=float, nargs="+", default=[0.0, 0.01, 0.03, 0.1, 0.3])
    ap.add_argument("--voices", help="a voice-set root (facerl data voices): every unseen voice source, pooled, "
                                     "instead of --split")
    ap.add_argument("--limit", type=int, default=0, help="first N clips of each dataset only (0: all)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    actor, meta, ckpt = load_actor(args.checkpoint, args.device)
    if args.voices:
        from facerl.eval.voices import voice_specs

        datasets = [VocaDataset(spec, "test", with_phones=True) for spec in voice_specs(args.voices).values()]
        where = f"unseen voices ({len(datasets)} sources of {args.voices})"
    else:
        spec = spec_from_corpus(args.dataset or str(ckpt["config"]["dataset"]["root"]))
        datasets, where = [VocaDataset(spec, args.split, with_phones=True)], args.split
    layout = datasets[0].layout
    regions = Regions.from_dict(layout.regions(), str(layout.regions_path))
    lips = regions.lips
    basis = BlendshapeBasis.from_head()
    readout = None if actor.motion.is_identity else readout_matrix(actor.motion.basis.cpu().numpy(), basis)
    solvers = {f"solve s={s:g}": CurveSolver(basis, s) for s in args.smooth}

    routes = ["vertices", *solvers, *(["read-out"] if readout is not None else [])]
    out = {r: {"pred": [], "seconds": 0.0, "dist_mm": 0.0} for r in routes}
    gts, templates, phones, speech_s = [], [], [], 0.0
    subsets = [torch.utils.data.Subset(ds, range(len(ds) if args.limit <= 0 else min(args.limit, len(ds))))
               for ds in datasets]
    n = sum(len(sub) for sub in subsets)
    batches = (b for sub in subsets for b in dataset_batches(actor, sub, args.device, 4))
    for clips, batch, feats in tqdm(batches, total=sum(-(-len(sub) // 4) for sub in subsets), unit="batch"):
        motion = generate_styles(actor, batch, [-1], feats=feats)[:, 0]                      # (B, T, K)
        for b, clip in enumerate(clips):
            t = len(clip.vertices)
            template = clip.template.numpy().reshape(-1, 3)                                   # (V, 3)
            coeffs = motion[b, :t]                                                            # (T, K)
            with torch.no_grad():
                verts = actor.vertices(coeffs[None], batch.template[b:b + 1])[0].cpu().numpy().reshape(t, -1, 3)
            gts.append(clip.vertices.numpy().reshape(t, -1, 3))
            templates.append(template)
            phones.append(clip.phones)
            speech_s += t / MOTION_FPS
            out["vertices"]["pred"].append(verts)
            for name, solver in solvers.items():
                t0 = time.perf_counter()
                curves = solver.solve(verts, template, MOTION_FPS)
                out[name]["seconds"] += time.perf_counter() - t0
                _add(out[name], basis.pose(curves.weights, template), verts)
            if readout is not None:
                t0 = time.perf_counter()
                curves = ArkitCurves(np.clip(coeffs.cpu().numpy() @ readout, 0.0, 1.0).astype(np.float32),
                                     MOTION_FPS)
                out["read-out"]["seconds"] += time.perf_counter() - t0
                _add(out["read-out"], basis.pose(curves.weights, template), verts)

    ref_lve = M.lip_vertex_error(out["vertices"]["pred"], gts, lips)
    print(f"\n{n} clips ({where}), {speech_s:.0f} s of speech; {args.checkpoint}; motion K={meta.motion_dim}"
          f"{'' if readout is not None else ' (no read-out: the motion basis is not inside the blendshape span)'}\n")
    print("| route | LVE (m²) | LVE vs vertices | MVE (mm) | jitter | closure % | max dist to vertices (mm) "
          "| real-time factor |")
    print("|---|---|---|---|---|---|---|---|")
    for r in routes:
        preds = out[r]["pred"]
        lve = M.lip_vertex_error(preds, gts, lips)
        mve = M.mean_vertex_error(preds, gts, regions.face) * 1000
        jit = float(np.nanmean([M.jitter(p, g, lips) for p, g in zip(preds, gts)]))
        closed, total = M.closure_rate([M.lip_opening(p, tm, regions.inner_lip_pair) for p, tm in zip(preds, templates)],
                                       phones) if regions.inner_lip_pair is not None else (0, 0)
        closure = f"{100 * closed / total:.1f}" if total else "-"
        rtf = f"{speech_s / out[r]['seconds']:.0f}x" if out[r]["seconds"] > 0 else "-"
        dist = f"{out[r]['dist_mm']:.3f}" if r != "vertices" else "-"
        print(f"| {r} | {lve:.4e} | {100 * (lve / ref_lve - 1):+.2f} % | {mve:.4f} | {jit:.3f} | {closure} | {dist} | {rtf} |")
    ten_seconds(out["vertices"]["pred"], templates[0], solvers)


def ten_seconds(preds: list[np.ndarray], template: np.ndarray, solvers: dict, repeats: int = 7) -> None:
    """Seconds to solve one 10 s animation (the first clips' vertex outputs joined to 300 frames): median and
    range of ``repeats`` runs per setting, and the real-time factor of the median."""
    clip = np.concatenate(preds)[:10 * MOTION_FPS]                                           # (300, V, 3)
    print(f"\none 10 s animation ({len(clip)} frames), {repeats} runs each:")
    for name, solver in solvers.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            solver.solve(clip, template, MOTION_FPS)
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        print(f"  {name}: median {1000 * med:.1f} ms (min {1000 * min(times):.1f}, max {1000 * max(times):.1f}) = "
              f"{len(clip) / MOTION_FPS / med:.0f}x real time")


def _add(slot: dict, resynth: np.ndarray, verts: np.ndarray) -> None:
    slot["pred"].append(resynth)
    slot["dist_mm"] = max(slot["dist_mm"], float(np.sqrt(((resynth - verts) ** 2).sum(-1)).max()) * 1000)


if __name__ == "__main__":
    main()
