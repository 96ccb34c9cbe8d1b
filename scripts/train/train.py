"""Train the age/gender ResNet on prepared UTKFace faces (see prepare.py).

    python scripts/train/train.py --data scripts/train/work --out scripts/train/runs/main
    python scripts/train/train.py ... --resume            # carry on after an interruption
    torchrun --nproc_per_node=4 scripts/train/train.py ... # several GPUs / machines (DDP)

Every epoch: OUT/last.pt (resumable), OUT/best.pt (best validation score), a row in
OUT/metrics.csv and OUT/curves.png. The test split is not touched here (evaluate.py does it once).
Crops are made on the fly from each face's detector landmarks with the runtime's alignment,
jittered in scale/shift/rotation, flipped, colour/blur/JPEG/occlusion-augmented.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from agegender_reference.align import INPUT_SIZE, align_fast, crop_to_image_matrix
from dataset import bucket_of, landmarks_of, read_meta
from model import AGE_CLASSES, AgeGenderNet, count_macs, expected_age, widths_of

AGES = torch.arange(AGE_CLASSES, dtype=torch.float32)


class Faces(Dataset):
    def __init__(self, data: str, split: str, augment: bool, seed: int):
        self.rows = [r for r in read_meta(data) if r["split"] == split]
        self.images = np.load(Path(data) / "images.npy", mmap_mode="r")
        self.matrices = [crop_to_image_matrix(landmarks_of(r)) for r in self.rows]
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.weights = np.ones(len(self.rows), np.float32)

    def balance_gender_by_race(self):
        """Weight each face's gender loss by 1 / (faces of its race and gender), mean 1. Faces
        without a race field (2 in the training split) keep weight 1: a cell of one face would
        otherwise weigh a thousand times the others."""
        known = np.array([int(r["race"]) >= 0 for r in self.rows])
        cell = [(r["race"], r["gender"]) for r in self.rows]
        counts = Counter(cell)
        w = np.array([1.0 / counts[c] for c in cell], np.float32)
        w[known] /= w[known].mean()
        w[~known] = 1.0
        self.weights = w

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        r = self.rows[i]
        img = np.ascontiguousarray(self.images[int(r["index"])])
        m = self.matrices[i]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            m = jitter(m, rng)
            face = align_fast(img, m)
            face = photometric(face, rng)
        else:
            face = align_fast(img, m)
        x = torch.from_numpy(np.ascontiguousarray(face.transpose(2, 0, 1))).float()
        return x, int(r["gender"]), min(int(r["age"]), AGE_CLASSES - 1), self.weights[i]


def jitter(m: np.ndarray, rng) -> np.ndarray:
    """Compose a random similarity about the crop centre (scale ±10%, shift ±6%, rotation ±12°)
    and a horizontal flip with the crop->image matrix."""
    c = INPUT_SIZE / 2
    s = math.exp(rng.uniform(-0.1, 0.1))
    th = math.radians(rng.uniform(-12, 12))
    t = rng.uniform(-0.06, 0.06, size=2) * INPUT_SIZE
    flip = -1.0 if rng.random() < 0.5 else 1.0
    a, b = s * math.cos(th), s * math.sin(th)
    j = np.array([[a * flip, -b, 0.0], [b * flip, a, 0.0], [0, 0, 1.0]])
    # crop pixel u -> centred -> jittered -> back
    j[:2, 2] = np.array([c, c]) + t - j[:2, :2] @ np.array([c, c])
    full = np.vstack([m, [0, 0, 1.0]])
    return (full @ j)[:2]


def photometric(face: np.ndarray, rng) -> np.ndarray:
    import cv2

    f = face.astype(np.float32)
    if rng.random() < 0.8:  # brightness / contrast / colour
        f = f * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40)
        gray = f.mean(axis=2, keepdims=True)
        f = gray + (f - gray) * rng.uniform(0.5, 1.5)
        f = f * rng.uniform(0.9, 1.1, size=3)
    if rng.random() < 0.1:
        f = np.repeat(f.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.2:
        k = int(rng.choice([3, 5]))
        f = cv2.GaussianBlur(f, (k, k), rng.uniform(0.5, 1.5))
    f = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, enc = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        f = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
    if rng.random() < 0.25:  # a small occlusion (hand, glasses, mask edge)
        h, w = int(rng.integers(12, 40)), int(rng.integers(12, 40))
        y, x = int(rng.integers(0, INPUT_SIZE - h)), int(rng.integers(0, INPUT_SIZE - w))
        f = f.copy()
        f[y : y + h, x : x + w] = rng.integers(0, 256, size=3)
    return f


def age_targets(age: torch.Tensor, sigma: float) -> torch.Tensor:
    d = AGES.to(age.device)[None, :] - age.float()[:, None]
    p = torch.exp(-0.5 * (d / sigma) ** 2)
    return p / p.sum(1, keepdim=True)


def losses(g_logits, a_logits, gender, age, weight, args):
    if args.balance_gender_by_race:
        lg = (F.cross_entropy(g_logits, gender, label_smoothing=0.05, reduction="none") * weight).mean()
    else:  # the plain mean, bit for bit as before the option existed
        lg = F.cross_entropy(g_logits, gender, label_smoothing=0.05)
    lg_scaled = args.gender_weight * lg
    if args.age_head == "coral":
        # one binary task per threshold k: is the age above k?
        older = (age[:, None] > torch.arange(a_logits.shape[1], device=age.device)[None, :]).float()
        la_ord = args.coral_weight * F.binary_cross_entropy_with_logits(a_logits, older, reduction="none").sum(1).mean()
        la_l1 = F.l1_loss(expected_age(a_logits, "coral"), age.float())
        return lg_scaled + la_ord + args.l1_weight * la_l1, lg, la_l1
    logp = F.log_softmax(a_logits, dim=1)
    la_dist = -(age_targets(age, args.age_sigma) * logp).sum(1).mean()
    expected = (logp.exp() * AGES.to(logp.device)).sum(1)
    la_l1 = F.l1_loss(expected, age.float())
    return lg_scaled + la_dist + args.l1_weight * la_l1, lg, la_l1


@torch.no_grad()
def evaluate(net, loader, device):
    net.eval()
    n = correct = abs_err = bucket_ok = 0
    for x, g, a, _w in loader:
        x = x.to(device)
        gl, al = net(x)
        pg = gl.argmax(1).cpu()
        exp_age = expected_age(al, net.age_head).cpu()
        correct += (pg == g).sum().item()
        abs_err += (exp_age - a.float()).abs().sum().item()
        bucket_ok += sum(bucket_of(float(p)) == bucket_of(int(t)) for p, t in zip(exp_age, a, strict=True))
        n += len(g)
    if dist.is_initialized():
        t = torch.tensor([n, correct, abs_err, bucket_ok], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        n, correct, abs_err, bucket_ok = t.tolist()
    return {"gender_acc": correct / n, "age_mae": abs_err / n, "bucket_acc": bucket_ok / n}


def plot(csv_path: Path, png: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    ep = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ax[0].plot(ep, [float(r["train_loss"]) for r in rows])
    ax[0].set_title("train loss")
    ax[1].plot(ep, [100 * float(r["val_gender_acc"]) for r in rows])
    ax[1].set_title("val gender accuracy %")
    ax[2].plot(ep, [float(r["val_age_mae"]) for r in rows])
    ax[2].set_title("val age MAE (years)")
    for a in ax:
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="scripts/train/work")
    p.add_argument("--out", default="scripts/train/runs/main")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128, help="per process")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument(
        "--base-width", type=int, default=32, help="first stage's channels (x2 per stage); 32: half ResNet-18"
    )
    p.add_argument("--age-head", choices=["dex", "coral"], default="dex", help="see model.py")
    p.add_argument(
        "--coral-weight",
        type=float,
        default=1.0,
        help="weight of the CORAL loss (a sum of 100 binary cross-entropies, ~10x the DEX loss)",
    )
    p.add_argument("--age-sigma", type=float, default=2.5, help="DEX label distribution width (years)")
    p.add_argument("--l1-weight", type=float, default=0.05)
    p.add_argument("--gender-weight", type=float, default=1.0, help="weight of the gender cross-entropy")
    p.add_argument(
        "--balance-gender-by-race",
        action="store_true",
        help="weight each face's gender loss by the inverse frequency of its race x gender cell",
    )
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after N steps (smoke test)")
    args = p.parse_args(argv)

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed + rank)
    np.random.seed(args.seed + rank)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    train_set = Faces(args.data, "train", augment=True, seed=args.seed)
    val_set = Faces(args.data, "val", augment=False, seed=args.seed)
    if args.balance_gender_by_race:
        train_set.balance_gender_by_race()
    sampler = DistributedSampler(train_set, seed=args.seed) if distributed else None
    gen = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        train_set,
        args.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=args.workers,
        drop_last=True,
        generator=gen,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    val_sampler = DistributedSampler(val_set, shuffle=False) if distributed else None
    val_loader = DataLoader(val_set, 256, sampler=val_sampler, num_workers=args.workers)

    widths = widths_of(args.base_width)
    net = AgeGenderNet(widths=widths, age_head=args.age_head).to(device)
    if rank == 0:
        macs = count_macs(AgeGenderNet(widths=widths, age_head=args.age_head))
        print(
            f"model: {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M params, "
            f"{macs / 1e9:.3f} GMACs ({2 * macs / 1e9:.3f} GFLOPs) at {INPUT_SIZE}x{INPUT_SIZE}; "
            f"train {len(train_set)} val {len(val_set)}",
            flush=True,
        )
    ema = copy.deepcopy(net).eval()
    for q in ema.parameters():
        q.requires_grad_(False)
    model = (
        torch.nn.parallel.DistributedDataParallel(net, device_ids=[local] if device.type == "cuda" else None)
        if distributed
        else net
    )
    decay, no_decay = [], []
    for _name, q in net.named_parameters():
        (no_decay if q.ndim <= 1 else decay).append(q)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
    )
    steps_per_epoch = len(train_loader) if not args.max_steps else min(args.max_steps, len(train_loader))
    total = args.epochs * steps_per_epoch
    warm = int(args.warmup_epochs * steps_per_epoch)

    def lr_at(step):
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    start_epoch, best, step = 0, -1e9, 0
    if args.resume and (out / "last.pt").exists():
        ck = torch.load(out / "last.pt", map_location=device, weights_only=False)
        net.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        start_epoch, best, step = ck["epoch"] + 1, ck["best"], ck["step"]
        torch.set_rng_state(ck["torch_rng"])
        if rank == 0:
            print(f"resumed from {out / 'last.pt'} at epoch {start_epoch}", flush=True)

    metrics_path = out / "metrics.csv"
    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        train_set.epoch = epoch
        if sampler:
            sampler.set_epoch(epoch)
        gen.manual_seed(args.seed * 1000 + epoch)
        model.train()
        tot = n = 0.0
        for i, (x, g, a, w) in enumerate(train_loader):
            if args.max_steps and i >= args.max_steps:
                break
            for grp in opt.param_groups:
                grp["lr"] = lr_at(step)
            x, g, a, w = x.to(device, non_blocking=True), g.to(device), a.to(device), w.to(device)
            gl, al = model(x)
            loss, lg, l1 = losses(gl, al, g, a, w, args)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            with torch.no_grad():
                d = min(args.ema, (1 + step) / (10 + step))
                for e, q in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
                    if e.dtype.is_floating_point:
                        e.mul_(d).add_(q.detach(), alpha=1 - d)
                    else:
                        e.copy_(q)
            tot += loss.item() * len(g)
            n += len(g)
            if rank == 0 and i % 20 == 0:
                print(
                    f"epoch {epoch} step {i}/{steps_per_epoch} loss {loss.item():.3f} gender {lg.item():.3f} "
                    f"age L1 {l1.item():.2f} {n / (time.time() - t0):.0f} img/s",
                    flush=True,
                )
        val = evaluate(ema, val_loader, device)
        score = val["gender_acc"] * 100 - val["age_mae"]
        if rank == 0:
            row = {
                "epoch": epoch,
                "train_loss": f"{tot / max(n, 1):.4f}",
                "val_gender_acc": f"{val['gender_acc']:.4f}",
                "val_age_mae": f"{val['age_mae']:.3f}",
                "val_bucket_acc": f"{val['bucket_acc']:.4f}",
                "lr": f"{lr_at(step):.2e}",
                "seconds": f"{time.time() - t0:.0f}",
            }
            new = not metrics_path.exists() or epoch == 0
            with open(metrics_path, "w" if new else "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)
            plot(metrics_path, out / "curves.png")
            state = {
                "model": net.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "epoch": epoch,
                "best": max(best, score),
                "step": step,
                "torch_rng": torch.get_rng_state(),
                "args": vars(args),
            }
            torch.save(state, out / "last.pt.tmp")
            os.replace(out / "last.pt.tmp", out / "last.pt")
            if score > best:
                torch.save({"ema": ema.state_dict(), "epoch": epoch, "val": val}, out / "best.pt")
            print(f"epoch {epoch}: {row}", flush=True)
        best = max(best, score)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
