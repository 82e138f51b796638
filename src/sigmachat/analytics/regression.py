"""Ordinary least squares on daily returns (numpy ``lstsq``; scipy is not a dependency)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True, slots=True)
class OLSResult:
    """Coefficients of ``y = alpha + X @ betas + e`` with their t-statistics."""

    alpha: float
    betas: np.ndarray
    t_stats: np.ndarray
    r_squared: float
    adj_r_squared: float
    observations: int
    residual_std: float


def ols(y: np.ndarray, x: np.ndarray) -> OLSResult:
    """Regress ``y`` (n) on the columns of ``x`` (n x k) with an intercept.

    Rows with a non-finite value anywhere are dropped. t-statistics use the classical
    homoskedastic standard errors; they are NaN when the design is rank-deficient or
    there are no residual degrees of freedom.
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    rows = np.isfinite(y) & np.all(np.isfinite(x), axis=1)
    y, x = y[rows], x[rows]
    n, k = x.shape
    if n < k + 2:
        nan = np.full(k, np.nan)
        return OLSResult(float("nan"), nan, nan, float("nan"), float("nan"), int(n), float("nan"))
    design = np.column_stack([np.ones(n), x])
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    ss_res = float(resid @ resid)
    centred = y - y.mean()
    ss_tot = float(centred @ centred)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    dof = n - k - 1
    adj = 1.0 - (1.0 - r2) * (n - 1) / dof if dof > 0 and np.isfinite(r2) else float("nan")
    sigma2 = ss_res / dof if dof > 0 else float("nan")
    t_stats = np.full(k, np.nan)
    if rank == k + 1 and dof > 0:
        cov = sigma2 * np.linalg.inv(design.T @ design)
        se = np.sqrt(np.clip(np.diag(cov)[1:], 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_stats = np.where(se > 0, coef[1:] / se, np.where(coef[1:] == 0, 0.0, np.inf))
    return OLSResult(
        alpha=float(coef[0]),
        betas=coef[1:],
        t_stats=t_stats,
        r_squared=r2,
        adj_r_squared=adj,
        observations=int(n),
        residual_std=float(np.sqrt(sigma2)) if np.isfinite(sigma2) else float("nan"),
    )


def betas_to(returns: pd.DataFrame, benchmark: pd.Series, *, min_obs: int = 20) -> pd.Series:
    """Univariate beta of every column to ``benchmark`` (cov / var), vectorised.

    Each column uses the days where both it and the benchmark have a return, so a series
    with a shorter history still gets a beta from what it has; fewer than ``min_obs``
    shared days gives NaN.
    """
    if returns.empty:
        return pd.Series(dtype=float)
    bench = benchmark.reindex(returns.index).to_numpy(dtype=float)
    r = returns.to_numpy(dtype=float)
    valid = np.isfinite(r) & np.isfinite(bench)[:, None]
    n = valid.sum(axis=0)
    rz = np.where(valid, r, 0.0)
    mz = np.where(valid, bench[:, None], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_mean = rz.sum(axis=0) / n
        m_mean = mz.sum(axis=0) / n
        sxy = (rz * mz).sum(axis=0) - n * r_mean * m_mean
        sxx = (mz * mz).sum(axis=0) - n * m_mean * m_mean
        beta = np.where((n >= min_obs) & (sxx > 0), sxy / sxx, np.nan)
    return pd.Series(beta, index=returns.columns, dtype=float)


def residualise(series: pd.DataFrame, on: pd.Series) -> pd.DataFrame:
    """Each column minus its OLS fit on ``on`` (with intercept): the part ``on`` does not explain.

    Residuals are orthogonal to ``on`` and to the constant in-sample, which is what makes
    a market beta estimated next to residualised style factors equal the univariate one.
    """
    x = on.reindex(series.index).to_numpy(dtype=float)
    out = {}
    for col in series.columns:
        y = series[col].to_numpy(dtype=float)
        rows = np.isfinite(y) & np.isfinite(x)
        res = np.full(y.shape, np.nan)
        if rows.sum() >= 3:
            design = np.column_stack([np.ones(rows.sum()), x[rows]])
            coef, *_ = np.linalg.lstsq(design, y[rows], rcond=None)
            res[rows] = y[rows] - design @ coef
        out[col] = res
    return pd.DataFrame(out, index=series.index)
