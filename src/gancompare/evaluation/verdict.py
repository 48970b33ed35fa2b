"""The automatic verdict on how a run behaved: stable, mode-collapse, convergence-failure, diverged.

Rules, checked in this order (thresholds in `conf/verdict/default.yaml`):
1. diverged: a loss became NaN or Inf.
2. convergence-failure, from the curves over the judged window (the last part of training):
   - `d-wins`: D loss ~0 with D accuracy ~100 % on real and fake, sustained;
   - `g-loss-climbing`: G loss high and still rising while D spots its samples;
   or from the samples: `off-manifold` (precision and density ~0: noise images).
3. mode-collapse, from coverage: `few-distinct` (many near-duplicate samples, while the samples
   spread less than the real data: varied noisy samples in a tight cloud chain into one
   component), `low-coverage`
   (PRDC coverage), `missing-classes` (class count), `missing-modes` (2-D mixture or Stacked
   MNIST modes). Only when no evaluation ran, the curves stand in: `g-loss-oscillation` (a
   periodic G loss while D spots fakes). ganhacks: mode collapse is confirmed by coverage, not
   by losses, so an oscillation with good coverage is reported as evidence, not as the verdict.
4. stable otherwise.
Every verdict carries its evidence: the rule, from which step it holds, and the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _window(history: Mapping[str, np.ndarray], fraction: float) -> slice:
    n = len(history.get("step", []))
    return slice(int(n * (1 - fraction)), n)


def sustained_onset(condition: np.ndarray, steps: np.ndarray, share: float) -> int | None:
    """First step at which `condition` holds and goes on holding for at least `share` of the
    remaining steps."""
    if len(condition) == 0:
        return None
    from_here = np.cumsum(condition[::-1])[::-1] / np.arange(len(condition), 0, -1)
    hits = np.flatnonzero((from_here >= share) & condition)
    return int(steps[hits[0]]) if len(hits) else None


def oscillation(values: np.ndarray, min_lag: int = 5, max_lag: int = 100) -> tuple[float, int]:
    """Height and lag of the highest autocorrelation peak of a detrended curve."""
    x = values[np.isfinite(values)]
    if len(x) < 3 * min_lag:
        return 0.0, 0
    t = np.arange(len(x))
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    x = x - x.mean()
    denom = float(x @ x)
    if denom == 0:
        return 0.0, 0
    lags = range(min_lag, min(max_lag, len(x) // 2))
    acf = np.array([float(x[:-k] @ x[k:]) / denom for k in lags])
    if len(acf) == 0:
        return 0.0, 0
    best = int(np.argmax(acf))
    return float(acf[best]), int(list(lags)[best])


def _find(figures: Mapping[str, float], stem: str) -> tuple[str, float] | None:
    """The figure named `<stem>_<feature space>` (one per run), if any."""
    for key, value in figures.items():
        if key.startswith(stem + "_") or key == stem:
            return key, float(value)
    return None


def judge(history: Mapping[str, np.ndarray], figures: Mapping[str, float], critic: bool,
          divergence: Mapping[str, Any] | None, rules: Mapping[str, Any],
          known: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The verdict of a run from its per-step history and final evaluation figures.
    `known`: what the data set should show, {"modes": K} and/or {"classes": C}."""
    known = known or {}
    evidence: dict[str, Any] = {}

    def verdict(name: str, rule: str, reason: str, step: int | None = None, **values) -> dict:
        return {"verdict": name, "rule": rule, "reason": reason, "step": step, "values": values,
                "evidence": evidence}

    if divergence is not None:
        return verdict("diverged", "non-finite-loss",
                       f"{'/'.join(divergence['columns'])} became non-finite at step "
                       f"{divergence['step']}", divergence["step"], columns=divergence["columns"])

    window = _window(history, rules["window"])
    steps = history["step"][window] if "step" in history else np.array([])
    if len(steps):
        d_loss = (history["d_loss_real"][window] + history["d_loss_fake"][window]) / 2
        g_loss = history["g_loss"][window]
        if not critic:
            acc_real, acc_fake = history["d_acc_real"][window], history["d_acc_fake"][window]
            # The onset is searched over the whole run; the rule fires when the condition has
            # been sustained since before the judged window began.
            all_wins = (((history["d_loss_real"] + history["d_loss_fake"]) / 2
                         < rules["d_loss_max"])
                        & (history["d_acc_real"] >= rules["d_acc_min"])
                        & (history["d_acc_fake"] >= rules["d_acc_min"]))
            d_wins = all_wins[window]
            evidence["d_wins_share"] = float(d_wins.mean())
            onset = sustained_onset(all_wins, history["step"], rules["sustained_min"])
            if onset is not None and onset <= steps[0]:
                return verdict(
                    "convergence-failure", "d-wins",
                    f"D loss ~0 with ~100 % accuracy on real and fake from step {onset} on",
                    int(onset), d_loss=float(d_loss.mean()), d_acc_real=float(acc_real.mean()),
                    d_acc_fake=float(acc_fake.mean()), share=float(d_wins.mean()))
        tail = g_loss[-max(1, len(g_loss) // 5):]
        slope = float(np.polyfit(steps, g_loss, 1)[0]) if len(steps) > 1 else 0.0
        evidence["g_loss_end"], evidence["g_loss_slope"] = float(tail.mean()), slope
        # G losing for good is D rejecting its samples: a high mean G loss while D is fooled by
        # a share of fakes is a heavy tail of confidently rejected ones, not a lost G
        spotted = float(history["d_acc_fake"][window][-len(tail):].mean()) if not critic \
            else 0.0
        if not critic and tail.mean() > rules["g_loss_climbing_min"] and slope > 0 \
                and spotted >= rules["d_acc_fake_min"]:
            return verdict("convergence-failure", "g-loss-climbing",
                           f"G loss at {tail.mean():.2f} and still rising "
                           f"({slope * 100:+.2f} per 100 steps)", int(steps[0]),
                           g_loss_end=float(tail.mean()), slope_per_step=slope)

    precision, density = _find(figures, "precision"), _find(figures, "density")
    if precision and density and precision[1] < rules["precision_min"] \
            and density[1] < rules["precision_min"]:
        return verdict("convergence-failure", "off-manifold",
                       f"{precision[0]}={precision[1]:.3f} and {density[0]}={density[1]:.3f}: "
                       "samples lie off the data manifold (noise)", None,
                       **dict([precision, density]))

    collapse = _coverage_rules(figures, rules, known)
    if collapse:
        return verdict("mode-collapse", collapse[0], collapse[1], None, **collapse[2])

    if len(steps) and not critic:
        height, lag = oscillation(history["g_loss"][window])
        acc_fake = float(history["d_acc_fake"][window].mean())
        evidence["g_loss_oscillation"] = {"autocorrelation": height, "period_steps": lag,
                                          "d_acc_fake": acc_fake}
        oscillating = (height >= rules["oscillation_autocorr_min"]
                       and acc_fake >= rules["d_acc_fake_min"])
        if oscillating and not _has_coverage(figures):
            return verdict("mode-collapse", "g-loss-oscillation",
                           f"G loss oscillates (period ~{lag} steps, autocorrelation "
                           f"{height:.2f}) while D spots {acc_fake:.0%} of fakes; no coverage "
                           "metric was computed to confirm", int(steps[0]),
                           autocorrelation=height, period_steps=lag, d_acc_fake=acc_fake)
    return verdict("stable", "none", "no failure rule fired", None)


def _has_coverage(figures: Mapping[str, float]) -> bool:
    return any(_find(figures, s) for s in ("distinct", "coverage", "mixture_modes"))


def _coverage_rules(figures: Mapping[str, float], rules: Mapping[str, Any],
                    known: Mapping[str, float]) -> tuple[str, str, dict] | None:
    distinct, spread = _find(figures, "distinct"), _find(figures, "spread")
    if distinct and distinct[1] < rules["distinct_min"] \
            and (spread is None or spread[1] < rules["distinct_spread_max"]):
        if spread is None:  # evaluated before spread was measured
            return ("few-distinct", f"{distinct[0]}={distinct[1]:.3f}: most samples are "
                    "near-duplicates of each other", dict([distinct]))
        return ("few-distinct", f"{distinct[0]}={distinct[1]:.3f}, {spread[0]}="
                f"{spread[1]:.2f} of the real data's: most samples are near-duplicates of "
                "each other", dict([distinct, spread]))
    total = known.get("modes")
    for stem in ("mixture_modes", "stacked_modes"):
        found = _find(figures, stem)
        if found and total and found[1] < rules["mode_share_min"] * total:
            return ("missing-modes", f"{found[0]}={found[1]:.0f} of {total:.0f} modes",
                    dict([found]))
    coverage = _find(figures, "coverage")
    if coverage and coverage[1] < rules["coverage_min"]:
        return ("low-coverage", f"{coverage[0]}={coverage[1]:.3f}: generated samples cover few "
                "real neighbourhoods", dict([coverage]))
    classes, reference = _find(figures, "classes"), known.get("classes")
    if classes and reference and reference >= 2 \
            and classes[1] < rules["class_share_min"] * reference:
        return ("missing-classes", f"{classes[0]}={classes[1]:.0f} of {reference:.0f} classes",
                dict([classes]))
    return None
