"""Calibrate the classifier's confidences and choose the abstention thresholds.

Input: per-face dumps written by the runtime itself (`agegender eval --dump FILE`: the labels and
the network's outputs before calibration, through BlazeFace -> align -> classify in tract), one for
the validation split and one for the test split.

1. Temperature scaling, fitted on validation by minimising the negative log-likelihood:
   gender: p_female = sigmoid(logit / T_g); age: the 101-way distribution p_i^(1/T_a), renormalised,
   fitted on the NLL of the true age bucket (what the runtime reports as `bucket_p`).
2. Thresholds, chosen on validation by the margin rule: `gender_min_p` = the smallest threshold
   (0.01 grid) at which the one-sided 95% lower confidence bound (normal approximation) of the share of
   answered faces whose gender is right is >= the target (95%); `bucket_min_p` the same for the
   exact age bucket (target 80%). The bound leaves a margin for sampling error: the validation
   split is a sample, and a threshold that only just meets the target there falls short on
   other faces about half of the time. Nothing is chosen on test: test is only measured. The
   runtime's defaults (src/classify/labels.rs) are what this rule gives on the committed models'
   validation dump (models/calibration-val-f32.jsonl.gz), checked by a test.
3. Expected calibration error (15 equal-width bins of the reported probability over 0..1) before and
   after, risk-coverage tables, a reliability diagram and a risk-coverage plot.
4. With --write: the temperatures go into the ONNX files' metadata_props
   (`agegender.gender_temperature`, `agegender.age_temperature`), where the runtime reads them.

    python scripts/train/calibrate.py --val f32_val.jsonl --test f32_test.jsonl \
        --model models/agegender_f32.onnx --plots models --json models/calibration.json --write

numpy only (plus `onnx` to write metadata and matplotlib for the plots, imported when used).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset import AGE_BUCKETS  # the runtime's buckets (src/classify/labels.rs)

ECE_BINS = 15
GENDER_KEY = "agegender.gender_temperature"
AGE_KEY = "agegender.age_temperature"
PROVENANCE_KEY = "agegender.calibration"
# Temperatures the runtime accepts (src/classify/labels.rs, Calibration::from_metadata).
T_MIN, T_MAX = 0.05, 20.0
# Bucket index of every year 0..=100.
YEAR_BUCKET = np.array([next(i for i, (_, lo, hi) in enumerate(AGE_BUCKETS) if lo <= y <= hi) for y in range(101)])


@dataclass
class Faces:
    """One split's dump: labels and the network's outputs before calibration."""

    files: list[str]
    age: np.ndarray  # true age, years
    female: np.ndarray  # true gender, bool
    p_female: np.ndarray  # network's P(female)
    age_dist: np.ndarray  # [n, 101]

    @property
    def true_bucket(self) -> np.ndarray:
        return YEAR_BUCKET[np.clip(self.age, 0, 100)]


def load_dump(path: Path) -> Faces:
    """A dump as `agegender eval --dump` writes it, or gzipped (`.gz`)."""
    path = Path(path)
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{path}: no faces")
    return Faces(
        files=[r["file"] for r in rows],
        age=np.array([r["age"] for r in rows], dtype=np.int64),
        female=np.array([r["gender"] == "F" for r in rows]),
        p_female=np.array([r["p_female"] for r in rows], dtype=np.float64),
        age_dist=np.array([r["age_dist"] for r in rows], dtype=np.float64),
    )


# ---- the runtime's arithmetic (src/classify/labels.rs, attributes_calibrated) ----


def gender_logit(p_female: np.ndarray) -> np.ndarray:
    p = np.clip(p_female, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def calibrated_p_female(p_female: np.ndarray, t: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-gender_logit(p_female) / t))


def predicted_bucket(age_dist: np.ndarray) -> np.ndarray:
    """The runtime's bucket: that of the expected age, rounded half away from zero."""
    years = (age_dist * np.arange(101)).sum(1) / age_dist.sum(1)
    return YEAR_BUCKET[np.clip(np.floor(years + 0.5), 0, 100).astype(int)]


def tempered(age_dist: np.ndarray, t: float) -> np.ndarray:
    """age_dist^(1/t), renormalised per face (computed in logs; zeros stay zero)."""
    with np.errstate(divide="ignore"):
        logp = np.log(np.clip(age_dist, 0, None))
    z = logp / t
    z = z - z.max(1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(1, keepdims=True)


def bucket_probs(age_dist: np.ndarray, t: float) -> np.ndarray:
    """[n, 8]: the tempered distribution's mass per bucket."""
    w = tempered(age_dist, t)
    return np.stack([w[:, YEAR_BUCKET == b].sum(1) for b in range(len(AGE_BUCKETS))], 1)


# ---- fitting ----


def _golden_min(f, lo: float, hi: float, iters: int = 80) -> float:
    """Minimum of a unimodal f on [lo, hi]."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def gender_nll(p_female: np.ndarray, female: np.ndarray, t: float) -> float:
    """Mean negative log-likelihood of the true gender at temperature t."""
    z = gender_logit(p_female) / t
    s = np.where(female, z, -z)  # log-odds of the truth
    return float(np.mean(np.logaddexp(0.0, -s)))


def fit_gender_temperature(p_female: np.ndarray, female: np.ndarray) -> float:
    """T minimising the gender NLL. The NLL is convex in 1/T (a one-weight logistic regression
    without bias), so a golden-section search over 1/T finds the minimum."""
    w = _golden_min(lambda w: gender_nll(p_female, female, 1.0 / w), 1.0 / T_MAX, 1.0 / T_MIN)
    return 1.0 / w


def bucket_nll(age_dist: np.ndarray, true_bucket: np.ndarray, t: float) -> float:
    pb = bucket_probs(age_dist, t)[np.arange(len(true_bucket)), true_bucket]
    return float(-np.mean(np.log(np.clip(pb, 1e-12, None))))


def year_nll(age_dist: np.ndarray, age: np.ndarray, t: float) -> float:
    py = tempered(age_dist, t)[np.arange(len(age)), np.clip(age, 0, 100)]
    return float(-np.mean(np.log(np.clip(py, 1e-12, None))))


def fit_age_temperature(age_dist: np.ndarray, true_bucket: np.ndarray) -> float:
    """T minimising the NLL of the true bucket under the tempered distribution. (The 101-way NLL
    is convex in 1/T; summed into buckets it is unimodal in practice, checked on a grid below.)"""
    grid = np.exp(np.linspace(math.log(T_MIN), math.log(T_MAX), 61))
    vals = [bucket_nll(age_dist, true_bucket, t) for t in grid]
    k = int(np.argmin(vals))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    return _golden_min(lambda t: bucket_nll(age_dist, true_bucket, t), lo, hi, iters=50)


# ---- measuring ----


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: equal-width bins of conf over 0..1 (as src/eval.rs)."""
    idx = np.minimum((np.clip(conf, 0, 1) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += abs(correct[m].sum() - conf[m].sum())
    return total / len(conf)


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS):
    """Per non-empty bin: (mean confidence, accuracy, count)."""
    idx = np.minimum((np.clip(conf, 0, 1) * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append((float(conf[m].mean()), float(correct[m].mean()), int(m.sum())))
    return out


def answered(conf: np.ndarray, correct: np.ndarray, threshold: float) -> tuple[float, float]:
    """(accuracy on the faces answered, coverage) at conf >= threshold."""
    m = conf >= threshold
    acc = float(correct[m].mean()) if m.any() else float("nan")
    return acc, float(m.mean())


# The margin rule: a one-sided lower confidence bound at this level, by the normal approximation
# to the binomial (the rule as it was written down before the test split was looked at again,
# and confirmed at the threshold it gives on 2,420 faces used for nothing else).
CONFIDENCE = 0.95
Z_ONE_SIDED_95 = 1.6448536269514722  # the standard normal's 95th percentile


def lower_bound(right: int, n: int, z: float = Z_ONE_SIDED_95) -> float:
    """One-sided lower confidence bound of the share right among n faces answered, normal
    approximation: p - z * sqrt(p (1 - p) / n). At the n the thresholds are chosen on (~1,000 to
    2,000 faces answered) it is within 0.001 of Wilson's and Clopper-Pearson's. 0 for n = 0."""
    if n == 0:
        return 0.0
    p = right / n
    return p - z * math.sqrt(p * (1 - p) / n)


def choose_threshold(
    conf: np.ndarray, correct: np.ndarray, target: float, grid: np.ndarray, margin: bool = True
) -> float | None:
    """The smallest grid threshold at which the faces answered (conf >= threshold) are right
    often enough: with `margin` (the rule), the lower confidence bound of their accuracy
    (`lower_bound`) is >= target; without, their accuracy itself is."""
    for t in grid:
        m = conf >= float(t)
        n = int(m.sum())
        if n == 0:
            continue
        right = int(correct[m].sum())
        ok = lower_bound(right, n) if margin else right / n
        if ok >= target:
            return round(float(t), 4)
    return None


GENDER_GRID = np.round(np.arange(0.50, 1.0, 0.01), 2)
BUCKET_GRID = np.round(np.arange(0.0, 1.0, 0.01), 2)


def explain_threshold(name: str, conf: np.ndarray, correct: np.ndarray, target: float, chosen: float | None) -> str:
    """One line on why `chosen` is the threshold: the validation figures at it and one grid step
    below, with the lower bound the rule compares to the target."""

    def at(t: float) -> str:
        m = conf >= t
        n, right = int(m.sum()), int(correct[m].sum())
        return (
            f"{t:.2f}: {right}/{n} right ({right / max(n, 1):.1%}, lower bound {lower_bound(right, n):.2%}) "
            f"at {n / len(conf):.1%} answered"
        )

    if chosen is None:
        return f"{name}: no threshold meets {target:.0%} (lower bound) on validation"
    below = round(chosen - 0.01, 2)
    return (
        f"{name} = {chosen:.2f}: the smallest threshold whose one-sided {CONFIDENCE:.0%} lower bound "
        f"of accuracy on the answered validation faces is >= {target:.0%}; "
        f"{at(chosen)}; {at(below)}"
    )


def derive_thresholds(val: Faces, gender_target: float = 0.95, bucket_target: float = 0.80) -> dict:
    """The whole rule on a validation dump: fit the temperatures, then choose both thresholds.
    What the runtime's defaults must equal (scripts/train/tests/test_calibrate.py)."""
    tg = fit_gender_temperature(val.p_female, val.female)
    ta = fit_age_temperature(val.age_dist, val.true_bucket)
    sv = score(val, tg, ta)
    gmin = choose_threshold(sv.gender_p, sv.gender_ok, gender_target, GENDER_GRID)
    bmin = choose_threshold(sv.bucket_p, sv.bucket_ok, bucket_target, BUCKET_GRID)
    return {
        "gender_temperature": tg,
        "age_temperature": ta,
        "gender_min_p": gmin,
        "bucket_min_p": bmin,
        "why": [
            explain_threshold("gender_min_p", sv.gender_p, sv.gender_ok, gender_target, gmin),
            explain_threshold("bucket_min_p", sv.bucket_p, sv.bucket_ok, bucket_target, bmin),
        ],
    }


@dataclass
class Scored:
    """Reported confidence and correctness of gender and bucket, at given temperatures."""

    gender_p: np.ndarray
    gender_ok: np.ndarray
    bucket_p: np.ndarray
    bucket_ok: np.ndarray


def score(f: Faces, t_gender: float, t_age: float) -> Scored:
    pf = calibrated_p_female(f.p_female, t_gender)
    pred_bucket = predicted_bucket(f.age_dist)
    pb = bucket_probs(f.age_dist, t_age)[np.arange(len(pred_bucket)), pred_bucket]
    return Scored(
        gender_p=np.maximum(pf, 1 - pf),
        gender_ok=(pf >= 0.5) == f.female,
        bucket_p=pb,
        bucket_ok=pred_bucket == f.true_bucket,
    )


def risk_coverage(conf: np.ndarray, correct: np.ndarray):
    """Accuracy of the k most confident faces against coverage k/n, k = 1..n."""
    order = np.argsort(-conf, kind="stable")
    c = np.cumsum(correct[order])
    k = np.arange(1, len(conf) + 1)
    return k / len(conf), c / k


# ---- output ----


def write_metadata(model: Path, t_gender: float, t_age: float, provenance: str) -> None:
    import onnx

    m = onnx.load(str(model))
    keep = [p for p in m.metadata_props if p.key not in (GENDER_KEY, AGE_KEY, PROVENANCE_KEY)]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    for k, v in ((GENDER_KEY, f"{t_gender:.4f}"), (AGE_KEY, f"{t_age:.4f}"), (PROVENANCE_KEY, provenance)):
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(model))


def plot_reliability(path: Path, panels) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6))
    for ax, (title, curves) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
        for label, (conf, correct), style in curves:
            pts = reliability(conf, correct)
            x, y, n = (np.array(v) for v in zip(*pts, strict=True))
            ax.plot(x, y, style, label=f"{label} (ECE {ece(conf, correct):.3f})")
            for xi, yi, ni in zip(x, y, n, strict=True):
                ax.annotate(str(ni), (xi, yi), fontsize=6, alpha=0.6, xytext=(2, -8), textcoords="offset points")
        ax.set_title(title)
        ax.set_xlabel("reported probability (bin mean)")
        ax.set_ylabel("share right")
        ax.set_xlim(0, 1.01)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Reliability on the test split (15 equal-width bins; numbers = faces per bin)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_risk_coverage(path: Path, panels) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6))
    for ax, (title, conf, correct, threshold, target, val) in zip(np.atleast_1d(axes), panels, strict=True):
        vcov, vacc = risk_coverage(*val)
        ax.plot(vcov, vacc, lw=1, ls=":", color="grey", label="validation (where the threshold was chosen)")
        va, vc = answered(*val, threshold)
        ax.plot([vc], [va], "s", color="grey", ms=5)
        cov, acc = risk_coverage(conf, correct)
        ax.plot(cov, acc, lw=1.5, label="test: the most confident faces answered")
        a, c = answered(conf, correct, threshold)
        ax.plot([c], [a], "o", color="C3", label=f"default threshold {threshold:g}: {a:.1%} right at {c:.1%}")
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:.0%}")
        ax.set_title(title)
        ax.set_xlabel("coverage (share of faces answered)")
        ax.set_ylabel("accuracy on the faces answered")
        ax.set_xlim(0, 1.0)
        lo = min(float(acc[int(0.02 * len(acc)) :].min()), target) - 0.03
        ax.set_ylim(max(lo, 0), 1.005)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("Risk-coverage (calibrated probabilities): test, and validation dotted", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--val", type=Path, required=True, help="agegender eval --dump of the validation split")
    ap.add_argument("--test", type=Path, required=True, help="agegender eval --dump of the test split")
    ap.add_argument("--name", default="f32", help="name of the model in the report")
    ap.add_argument("--gender-target", type=float, default=0.95, help="accuracy on answered faces (gender)")
    ap.add_argument("--bucket-target", type=float, default=0.80, help="accuracy on answered faces (bucket)")
    ap.add_argument("--gender-min-p", type=float, help="measure at this gender threshold instead of choosing one")
    ap.add_argument("--bucket-min-p", type=float, help="measure at this bucket threshold instead of choosing one")
    ap.add_argument("--model", type=Path, action="append", default=[], help="ONNX file(s) to write the metadata to")
    ap.add_argument("--write", action="store_true", help="write the temperatures into the --model files")
    ap.add_argument("--plots", type=Path, help="folder for calibration-reliability.png and risk-coverage.png")
    ap.add_argument("--json", type=Path, help="write the measured numbers here")
    args = ap.parse_args()

    val, test = load_dump(args.val), load_dump(args.test)
    tg = fit_gender_temperature(val.p_female, val.female)
    ta = fit_age_temperature(val.age_dist, val.true_bucket)
    ta_year = _golden_min(lambda w: year_nll(val.age_dist, val.age, 1 / w), 1 / T_MAX, 1 / T_MIN)
    report = {
        "model": args.name,
        "faces": {"val": len(val.files), "test": len(test.files)},
        "gender_temperature": round(tg, 4),
        "age_temperature": round(ta, 4),
        "age_temperature_if_fitted_on_years": round(1 / ta_year, 4),
        "val_nll": {
            "gender_before": gender_nll(val.p_female, val.female, 1.0),
            "gender_after": gender_nll(val.p_female, val.female, tg),
            "bucket_before": bucket_nll(val.age_dist, val.true_bucket, 1.0),
            "bucket_after": bucket_nll(val.age_dist, val.true_bucket, ta),
        },
    }
    sv_raw, sv = score(val, 1.0, 1.0), score(val, tg, ta)
    st_raw, st = score(test, 1.0, 1.0), score(test, tg, ta)
    rule = derive_thresholds(val, args.gender_target, args.bucket_target)
    gmin = rule["gender_min_p"] if args.gender_min_p is None else args.gender_min_p
    bmin = rule["bucket_min_p"] if args.bucket_min_p is None else args.bucket_min_p
    report["gender_min_p"], report["bucket_min_p"] = gmin, bmin
    report["rule"] = {
        "confidence": CONFIDENCE,
        "gender_target": args.gender_target,
        "bucket_target": args.bucket_target,
        "gender_min_p": rule["gender_min_p"],
        "bucket_min_p": rule["bucket_min_p"],
        "gender_min_p_without_margin": choose_threshold(
            sv.gender_p, sv.gender_ok, args.gender_target, GENDER_GRID, margin=False
        ),
        "bucket_min_p_without_margin": choose_threshold(
            sv.bucket_p, sv.bucket_ok, args.bucket_target, BUCKET_GRID, margin=False
        ),
        "why": rule["why"],
    }
    for split, raw, cal in (("val", sv_raw, sv), ("test", st_raw, st)):
        r = report.setdefault(split, {})
        r["gender_acc"] = float(cal.gender_ok.mean())
        r["bucket_acc"] = float(cal.bucket_ok.mean())
        r["gender_ece_before"] = ece(raw.gender_p, raw.gender_ok)
        r["gender_ece_after"] = ece(cal.gender_p, cal.gender_ok)
        r["bucket_ece_before"] = ece(raw.bucket_p, raw.bucket_ok)
        r["bucket_ece_after"] = ece(cal.bucket_p, cal.bucket_ok)
        if gmin is not None:
            r["gender_acc_answered"], r["gender_coverage"] = answered(cal.gender_p, cal.gender_ok, gmin)
        if bmin is not None:
            r["bucket_acc_answered"], r["bucket_coverage"] = answered(cal.bucket_p, cal.bucket_ok, bmin)
        r["gender_risk_coverage"] = [
            [t, *answered(cal.gender_p, cal.gender_ok, t)] for t in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
        ]
        r["bucket_risk_coverage"] = [
            [t, *answered(cal.bucket_p, cal.bucket_ok, t)] for t in (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
        ]
        # children 0-9, where the gender is least sure
        kids = (val if split == "val" else test).age < 10
        if gmin is not None:
            r["gender_coverage_age_0_9"] = float((cal.gender_p[kids] >= gmin).mean())
            r["gender_coverage_age_10_plus"] = float((cal.gender_p[~kids] >= gmin).mean())
    print(json.dumps(report, indent=1))
    for line in rule["why"]:
        print(f"rule: {line}")
    if args.gender_min_p is not None or args.bucket_min_p is not None:
        print(f"measured at the thresholds given: gender_min_p {gmin}, bucket_min_p {bmin} (not the rule's)")

    if args.plots and gmin is not None and bmin is not None:
        args.plots.mkdir(parents=True, exist_ok=True)
        plot_reliability(
            args.plots / "calibration-reliability.png",
            [
                (
                    f"gender_p ({args.name}, T={tg:.2f})",
                    [
                        ("before", (st_raw.gender_p, st_raw.gender_ok), "s--"),
                        ("after", (st.gender_p, st.gender_ok), "o-"),
                    ],
                ),
                (
                    f"bucket_p ({args.name}, T={ta:.2f})",
                    [
                        ("before", (st_raw.bucket_p, st_raw.bucket_ok), "s--"),
                        ("after", (st.bucket_p, st.bucket_ok), "o-"),
                    ],
                ),
            ],
        )
        plot_risk_coverage(
            args.plots / "risk-coverage.png",
            [
                ("gender", st.gender_p, st.gender_ok, gmin, args.gender_target, (sv.gender_p, sv.gender_ok)),
                (
                    "age bucket (exact)",
                    st.bucket_p,
                    st.bucket_ok,
                    bmin,
                    args.bucket_target,
                    (sv.bucket_p, sv.bucket_ok),
                ),
            ],
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.write:
        n = len(val.files)
        prov = (
            f"temperature scaling fitted by scripts/train/calibrate.py on the validation split ({n} faces) "
            "through the runtime (agegender eval --dump); gender on the logit, age on the log-probabilities"
        )
        for m in args.model:
            write_metadata(m, tg, ta, prov)
            print(f"wrote {GENDER_KEY}={tg:.4f}, {AGE_KEY}={ta:.4f} into {m}")


if __name__ == "__main__":
    main()
