"""calibrate.py on synthetic data: the fitted temperatures recover the ones that made the data, the
ECE drops, and the threshold choice meets its target (numpy only); and the runtime's default
thresholds are what the margin rule gives on the committed validation dump."""

import re
from pathlib import Path

import numpy as np

import calibrate as cal

ROOT = Path(__file__).resolve().parents[3]


def overconfident_gender(n: int, t_true: float, seed: int = 0):
    """Faces whose true P(female) is sigmoid(z); the 'network' reports sigmoid(z * t_true)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.5, n)
    female = rng.random(n) < 1 / (1 + np.exp(-z))
    reported = 1 / (1 + np.exp(-z * t_true))
    return reported, female


def test_gender_temperature_is_recovered_and_ece_drops():
    reported, female = overconfident_gender(40000, 1.8)
    t = cal.fit_gender_temperature(reported, female)
    assert abs(t - 1.8) < 0.08, t
    before = cal.ece(np.maximum(reported, 1 - reported), (reported >= 0.5) == female)
    p = cal.calibrated_p_female(reported, t)
    after = cal.ece(np.maximum(p, 1 - p), (p >= 0.5) == female)
    assert before > 0.04 and after < 0.01, (before, after)
    # temperature 1 is the identity
    assert np.allclose(cal.calibrated_p_female(reported, 1.0), reported, atol=1e-9)


def test_age_temperature_is_recovered_on_buckets():
    rng = np.random.default_rng(1)
    n, t_true = 6000, 0.6  # the "network" is too sharp: p_net ∝ p_true^(1/0.6)
    centre = rng.uniform(2, 90, n)
    years = np.arange(101)
    logits = -0.5 * ((years[None, :] - centre[:, None]) / 6.0) ** 2
    p_true = np.exp(logits - logits.max(1, keepdims=True))
    p_true /= p_true.sum(1, keepdims=True)
    age = np.array([rng.choice(101, p=row) for row in p_true])
    p_net = cal.tempered(p_true, t_true)
    t = cal.fit_age_temperature(p_net, cal.YEAR_BUCKET[age])
    assert abs(t - 1 / t_true) < 0.15, t  # tempering p_net by 1/0.6 undoes it
    assert np.allclose(cal.tempered(p_net, t), p_true, atol=0.05)
    # bucket probabilities sum to one; temperature 1 leaves the distribution as it is
    assert np.allclose(cal.bucket_probs(p_net, t).sum(1), 1.0)
    assert np.allclose(cal.tempered(p_net, 1.0), p_net)


def test_predicted_bucket_rounds_like_the_runtime():
    d = np.zeros((3, 101))
    d[0, 3], d[0, 4] = 0.5, 0.5  # 3.5 years: rounds up to 4 -> "4-6"
    d[1, 13], d[1, 14] = 0.5, 0.5  # 13.5 -> 14 -> "15-20"
    d[2, 100] = 1.0
    assert list(cal.predicted_bucket(d)) == [1, 3, 7]


def test_ece_and_threshold_choice():
    conf = np.array([0.55, 0.65, 0.75, 0.85, 0.95, 0.99])
    correct = np.array([False, True, False, True, True, True])
    # bins of width 1/15: every face in its own bin, so ECE = mean |correct - conf|
    assert abs(cal.ece(conf, correct) - np.mean(np.abs(correct - conf))) < 1e-12
    grid = np.round(np.arange(0.5, 1.0, 0.01), 2)
    t = cal.choose_threshold(conf, correct, 0.95, grid, margin=False)
    assert t == 0.76  # the smallest threshold that drops the 0.75 face
    acc, cov = cal.answered(conf, correct, t)
    assert acc == 1.0 and abs(cov - 0.5) < 1e-12
    assert cal.choose_threshold(conf, np.zeros(6, bool), 0.95, grid, margin=False) is None
    cov_curve, acc_curve = cal.risk_coverage(conf, correct)
    assert cov_curve[-1] == 1.0 and abs(acc_curve[-1] - 4 / 6) < 1e-12 and acc_curve[0] == 1.0


def test_the_margin_rule_asks_the_lower_bound_to_meet_the_target():
    # 2,000 faces at 95.2% right clear a 95% target, but not with the margin for sampling error
    # (the lower bound is 94.4%); 2,000 at 96% clear it with it (95.3%)
    assert abs(cal.lower_bound(1904, 2000) - (0.952 - 1.6448536 * (0.952 * 0.048 / 2000) ** 0.5)) < 1e-9
    assert cal.lower_bound(1904, 2000) < 0.95 < cal.lower_bound(1920, 2000)
    assert cal.lower_bound(0, 0) == 0.0
    # 2,000 faces at confidence 0.6 are right 94% of the time, 2,000 at 0.7 96%: all of them
    # together are right 95.0%, which meets the target without the margin (threshold 0.5); with
    # it, only the 0.7 faces do (lower bound 95.3%): the smallest threshold above 0.6
    conf = np.concatenate([np.full(2000, 0.6), np.full(2000, 0.7)])
    correct = np.concatenate([np.arange(2000) < 1880, np.arange(2000) < 1920])  # 94.0%, 96.0%
    grid = np.round(np.arange(0.5, 1.0, 0.01), 2)
    assert cal.choose_threshold(conf, correct, 0.95, grid, margin=False) == 0.5  # 95.0% of all
    assert cal.choose_threshold(conf, correct, 0.95, grid) == 0.61


def test_the_runtime_defaults_are_what_the_rule_gives_on_validation():
    """src/classify/labels.rs's DEFAULT_GENDER_MIN_P and DEFAULT_BUCKET_MIN_P, re-derived from the
    committed validation dump of the f32 model (`agegender eval --subset val --dump`) by the
    whole rule: temperatures fitted, then the thresholds chosen, on validation alone."""
    rule = cal.derive_thresholds(cal.load_dump(ROOT / "models/calibration-val-f32.jsonl.gz"))
    src = (ROOT / "src/classify/labels.rs").read_text()

    def const(name: str) -> float:
        m = re.search(rf"pub const {name}: f32 = ([0-9.]+);", src)
        assert m, f"{name} not found in src/classify/labels.rs"
        return float(m.group(1))

    assert const("DEFAULT_GENDER_MIN_P") == rule["gender_min_p"], rule["why"]
    assert const("DEFAULT_BUCKET_MIN_P") == rule["bucket_min_p"], rule["why"]
