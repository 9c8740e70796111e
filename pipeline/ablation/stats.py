"""Statistics for ablations: seed spread, t-based intervals, significance tests, power-law fits,
and diversity measures of a training set.

Student's t (quantiles and tail probabilities) and Shannon entropy come from ``scipy.stats``; the
differences, standard errors and degrees of freedom are computed here so that the edge cases a
seed sweep meets (one seed, no spread at all) get a defined answer instead of NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

# --- seed spread -----------------------------------------------------------------------------


def describe(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample standard deviation (n-1), standard error and the t-based confidence interval."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "sd": nan, "se": nan, "ci_low": nan, "ci_high": nan}
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": float("nan"), "se": float("nan"), "ci_low": mean, "ci_high": mean}
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1)) * se
    return {"n": n, "mean": mean, "sd": sd, "se": se, "ci_low": mean - half, "ci_high": mean + half}


def _t_result(diff: float, se: float, df: float, confidence: float) -> dict[str, float]:
    """Test statistic, two-sided p and interval of a difference with standard error ``se``."""
    if se == 0.0:  # no spread at all: the difference is certain (or exactly zero)
        t = math.copysign(math.inf, diff) if diff else 0.0
        return {"diff": diff, "se": 0.0, "t": t, "df": df, "p": 0.0 if diff else 1.0, "ci_low": diff, "ci_high": diff}
    t = diff / se
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df)) * se
    return {
        "diff": diff,
        "se": se,
        "t": t,
        "df": df,
        "p": float(2.0 * sps.t.sf(abs(t), df)),  # two-sided
        "ci_low": diff - half,
        "ci_high": diff + half,
    }


def welch_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Welch's unequal-variance t test of mean(a) - mean(b), with the difference's interval."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("a t test needs at least two values per group")
    diff = float(x.mean() - y.mean())
    vx, vy = float(x.var(ddof=1)) / len(x), float(y.var(ddof=1)) / len(y)
    se = math.sqrt(vx + vy)
    # Welch-Satterthwaite degrees of freedom (n_x + n_y - 2 when there is no spread to weigh)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if se else float(len(x) + len(y) - 2)
    return _t_result(diff, se, df, confidence)


def paired_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Paired t test over matched seeds (a[i] and b[i] share seed i: same initialisation and batch order)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("a paired t test needs two equal-length samples of at least two values")
    d = x - y
    se = float(d.std(ddof=1)) / math.sqrt(len(d))
    return _t_result(float(d.mean()), se, float(len(d) - 1), confidence)


# --- scaling fit -----------------------------------------------------------------------------


def _loglog(tokens: np.ndarray, loss: np.ndarray) -> tuple[float, float, float]:
    """Least-squares fit of log(loss) = log(a) - b log(T); returns (a, b, sse in log space)."""
    lx, ly = np.log(tokens), np.log(loss)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    return float(math.exp(intercept)), float(-slope), float(resid @ resid)


def _sse_given_c(tokens: np.ndarray, loss: np.ndarray, c: float) -> tuple[float, float, float]:
    a, b, _ = _loglog(tokens, loss - c)
    pred = a * tokens ** (-b) + c
    return a, b, float(((loss - pred) ** 2).sum())


def power_law_fit(tokens: Sequence[float], loss: Sequence[float]) -> dict[str, Any]:
    """Fit ``loss = a * T**-b + c`` (c: the irreducible loss) to points, seeds as separate points.

    For a fixed c the fit is linear in log space, so c is found by a grid then golden-section search
    on the squared error in loss space; with fewer than three distinct budgets only the pure power
    law (c = 0) is identifiable. Also returns the c = 0 log-log fit, R^2 of the chosen fit and whether
    the mean loss falls at every larger budget (``monotone``).
    """
    t = np.asarray(tokens, np.float64)
    y = np.asarray(loss, np.float64)
    ok = np.isfinite(t) & np.isfinite(y) & (t > 0) & (y > 0)
    t, y = t[ok], y[ok]
    budgets = np.unique(t)
    if len(budgets) < 2:
        raise ValueError("a scaling fit needs at least two distinct token budgets")
    means = np.array([y[t == b].mean() for b in budgets])
    a0, b0, _ = _loglog(t, y)
    out: dict[str, Any] = {"n_points": int(len(t)), "budgets": budgets.tolist(), "mean_loss": means.tolist()}
    out["loglog"] = {"a": a0, "b": b0}
    a, b, c = a0, b0, 0.0
    if len(budgets) >= 3:
        hi = float(y.min()) * (1 - 1e-9)
        grid = np.linspace(0.0, hi, 200, endpoint=False)
        sses = [_sse_given_c(t, y, c)[2] for c in grid]
        k = int(np.argmin(sses))
        lo_c, hi_c = grid[max(k - 1, 0)], grid[k + 1] if k + 1 < len(grid) else hi
        g = (math.sqrt(5) - 1) / 2
        x1, x2 = hi_c - g * (hi_c - lo_c), lo_c + g * (hi_c - lo_c)
        f1, f2 = _sse_given_c(t, y, x1)[2], _sse_given_c(t, y, x2)[2]
        for _ in range(100):
            if f1 < f2:
                hi_c, x2, f2 = x2, x1, f1
                x1 = hi_c - g * (hi_c - lo_c)
                f1 = _sse_given_c(t, y, x1)[2]
            else:
                lo_c, x1, f1 = x1, x2, f2
                x2 = lo_c + g * (hi_c - lo_c)
                f2 = _sse_given_c(t, y, x2)[2]
        c = float(0.5 * (lo_c + hi_c))
        # the search ends a hair above its bound when the floor is 0: report the bound itself
        if _sse_given_c(t, y, 0.0)[2] - _sse_given_c(t, y, c)[2] <= 1e-12 * float(((y - y.mean()) ** 2).sum()):
            c = 0.0
        a, b, _ = _sse_given_c(t, y, c)
    pred = a * t ** (-b) + c
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    out.update(
        a=a,
        b=b,
        c=c,
        r2=1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        monotone=bool(np.all(np.diff(means) < 0)),
    )
    return out


# --- diversity -------------------------------------------------------------------------------


def shannon_entropy(counts: Sequence[float] | np.ndarray) -> float:
    """Entropy in bits of the distribution proportional to ``counts`` (zeros ignored)."""
    c = np.asarray(counts, np.float64)
    c = c[c > 0]
    return float(sps.entropy(c, base=2)) if len(c) else 0.0


def ngram_entropy(tokens: np.ndarray, n: int, vocab_size: int) -> float:
    """Entropy in bits of the token n-gram distribution of one stream (n-grams packed into int64).

    Depends on the sample size, so compare arms on equal-length samples.
    """
    tokens = np.asarray(tokens, np.int64)
    if len(tokens) < n:
        return 0.0
    if vocab_size**n >= 2**63:
        raise ValueError(f"{n}-grams of a {vocab_size}-token vocabulary do not fit in int64")
    code = np.zeros(len(tokens) - n + 1, np.int64)
    for k in range(n):
        code = code * vocab_size + tokens[k : len(tokens) - n + 1 + k]
    _, counts = np.unique(code, return_counts=True)
    return shannon_entropy(counts)
