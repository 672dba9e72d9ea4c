"""Why the policy samples in the PCA motion basis: REINFORCE gradient quality, basis vs raw vertices.

Usage: python benchmarks/policy_space.py [--checkpoint runs/pipeline/actor/best.pt] [--root data/synthetic]

For one held-out clip, the actor's deterministic output is perturbed with Gaussian exploration noise
either in its K-dimensional motion basis (the policy's space) or independently per vertex coordinate
(V*3 dimensions, FaceFormer's output space), with the same average displacement per coordinate. The
reward is a stand-in sync reward: minus the squared lip error to ground truth. The score-function
(REINFORCE) estimate of the reward gradient with respect to the per-frame means, from n samples with
a mean baseline, is compared with the exact gradient (autograd): the cosine between them says how much
of each update points the right way. Also prints how much held-out motion the basis explains.
"""

import argparse

import torch

from facerl.data.dataset import VocaDataset, spec_from_corpus
from facerl.models.checkpoint import load_actor


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="runs/pipeline/actor/best.pt")
    ap.add_argument("--root", default="data/synthetic")
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    actor, _, _ = load_actor(args.checkpoint)
    ds = VocaDataset(spec_from_corpus(args.root), "test", with_phones=False)
    lips = torch.from_numpy(ds.layout.regions()["lips"])
    lip_coords = (lips[:, None] * 3 + torch.arange(3)).reshape(-1)

    # how much of the held-out speakers' motion the training basis spans
    offsets = torch.cat([ds[i].vertices - ds[i].template for i in range(len(ds))])   # (N, V*3)
    recon = actor.motion.decode(actor.motion.encode(offsets))
    explained = 1 - ((offsets - recon) ** 2).sum() / (offsets ** 2).sum()
    print(f"basis K={actor.motion.dim}: explains {100 * explained:.3f} % of held-out test-speaker motion energy")

    clip = ds[0]
    with torch.no_grad():
        feats = actor.encode_audio(clip.audio[None], torch.ones(1, len(clip.audio), dtype=torch.bool),
                                   len(clip.vertices))
        mean_c = actor.generate(feats, torch.tensor([-1])).motion[0]                  # (T, K)
    basis = actor.motion.basis                                                         # (K, V*3)
    gt = clip.vertices

    def reward(verts: torch.Tensor) -> torch.Tensor:                                  # (..., T, V*3) -> (...)
        return -((verts[..., lip_coords] - gt[:, lip_coords]) ** 2).sum(-1).mean(-1)

    mean_v = (clip.template + mean_c @ basis).requires_grad_(True)                    # (T, V*3)
    reward(mean_v).backward()
    true_v = mean_v.grad                                                               # (T, V*3)
    true_c = true_v @ basis.T                                                          # (T, K) chain rule
    sigma_c = float(actor.log_std.detach().exp().mean())
    sigma_v = float(sigma_c * basis.pow(2).sum(0).mean().sqrt())                      # same mean displacement
    base_v = mean_v.detach()
    print(f"clip {clip.name}: T={len(gt)}, policy std {sigma_c:.3f} (basis units) "
          f"~ {1000 * sigma_v:.3f} mm per coordinate")
    print("   n samples | cos(REINFORCE, exact) basis | per-vertex")
    for n in (4, 16, 64):
        cos_c, cos_v = [], []
        for _ in range(args.trials):
            eps_c = torch.randn(n, *mean_c.shape)
            r = reward(base_v + (sigma_c * eps_c) @ basis)
            est_c = ((r - r.mean())[:, None, None] * eps_c).mean(0) / sigma_c
            eps_v = torch.randn(n, *base_v.shape)
            r = reward(base_v + sigma_v * eps_v)
            est_v = ((r - r.mean())[:, None, None] * eps_v).mean(0) / sigma_v
            cos_c.append(cosine(est_c, true_c))
            cos_v.append(cosine(est_v, true_v))
        print(f"   {n:9d} | {sum(cos_c) / len(cos_c):27.3f} | {sum(cos_v) / len(cos_v):10.3f}")


if __name__ == "__main__":
    main()
