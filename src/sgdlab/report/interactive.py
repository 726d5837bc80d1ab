"""Interactive figures for the HTML page: Plotly figure specs (plain dicts) from arrays.

A spec is ``{"data": [traces], "layout": {...}, "logx": bool, "logy": bool}``; the page
(:mod:`sgdlab.report.html`) draws it with the inlined plotly.js — zoom (drag a box,
double-click to reset), hover values, and the page's log-axis switches (``logx``/``logy``
are the initial states). Everything here is numpy → JSON-ready lists; nothing is drawn in
Python.

* :func:`band_traces` — median across chains and the 10–90% band (as :func:`band`);
* :func:`chain_groups` — the groups of chains a per-chain hyperparameter list defines
  (chains ``0 … K/L−1`` get the first of ``L`` values, see :mod:`sgdlab.optim.perchain`),
  so a run that sweeps η across its chains shows one band per η, never one band over
  different step sizes;
* :func:`curve_figure` / :func:`forest_figure` — a metric over steps, and a study's
  findings as deviations from their references in units of the interval's standard error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sgdlab.report.figures import band

#: series are thinned to at most this many points (first, last and log-spaced steps kept)
MAX_POINTS = 160
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
#: z₀.₉₇₅: a 95% interval's half-width over its standard error
Z95 = 1.959963984540054
#: the findings plot's axis: ±LIMIT standard errors
LIMIT = 12.0


def thin(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` of ``n`` points: evenly spaced ones and log-spaced
    ones (so a log step axis keeps its early points), first and last included."""
    if n <= max_points:
        return np.arange(n)
    half = max_points // 2
    even = np.linspace(0, n - 1, half).round()
    logs = np.geomspace(1, n, max_points - half).round() - 1
    return np.unique(np.concatenate([even, logs]).astype(int))


def _num(x: float) -> float | None:
    """4 significant digits (what a hover shows), ``None`` (a gap) for NaN/inf."""
    x = float(x)
    return float(f"{x:.4g}") if math.isfinite(x) else None


def nums(a: np.ndarray) -> list[float | None]:
    return [_num(v) for v in np.asarray(a, dtype=float).reshape(-1)]


def chain_groups(optimizer: dict[str, Any], chains: int) -> list[tuple[str, np.ndarray]]:
    """``[(label, chain indices)]``: chains grouped by the per-chain lists of ``optimizer``
    (one group ``("all chains", …)`` when no hyperparameter is a list)."""
    per_chain: dict[str, np.ndarray] = {}
    for key, value in optimizer.items():
        if isinstance(value, list) and value and chains % len(value) == 0:
            per_chain[key] = np.repeat(np.asarray(value, dtype=float), chains // len(value))
    if not per_chain:
        return [("all chains", np.arange(chains))]
    labels = [", ".join(f"{k}={v[i]:g}" for k, v in per_chain.items()) for i in range(chains)]
    order = list(dict.fromkeys(labels))
    return [(lab, np.array([i for i in range(chains) if labels[i] == lab])) for lab in order]


def band_traces(steps: np.ndarray, values: np.ndarray, name: str, color: str,
                with_band: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Plotly traces of the median of ``values [K, n]`` across chains and, for several chains
    with ``with_band``, its 10–90% band (a filled area; hover shows all three)."""
    idx = thin(len(steps))
    med, lo, hi = band(np.asarray(values, dtype=float)[:, idx])
    x = nums(np.asarray(steps)[idx])
    k = values.shape[0]
    median = {"type": "scatter", "mode": "lines", "x": x, "y": nums(med), "name": name,
              "legendgroup": name, "line": {"color": color, "width": 2},
              "hovertemplate": f"{name}<br>step %{{x}}<br>median %{{y:.4g}}<extra></extra>"}
    if not with_band or k < 2:
        return [median]
    edge = {"type": "scatter", "mode": "lines", "x": x, "legendgroup": name, "showlegend": False,
            "line": {"width": 0, "color": color}}  # fmt: skip
    low = {**edge, "y": nums(lo), "name": f"{name} 10%",
           "hovertemplate": f"10% of {k} chains: %{{y:.4g}}<extra></extra>"}
    high = {**edge, "y": nums(hi), "name": f"{name} 90%", "fill": "tonexty",
            "fillcolor": _rgba(color, 0.2),
            "hovertemplate": f"90% of {k} chains: %{{y:.4g}}<extra></extra>"}
    return [low, high, median]


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(xlabel: str, ylabel: str, logx: bool, logy: bool) -> dict[str, Any]:
    return {
        "xaxis": {"title": {"text": xlabel}, "type": "log" if logx else "linear"},
        "yaxis": {"title": {"text": ylabel}, "type": "log" if logy else "linear",
                  "exponentformat": "power"},
        "margin": {"l": 60, "r": 10, "t": 10, "b": 44},
        "legend": {"font": {"size": 10}},
        "hovermode": "closest",
        "height": 340,
    }  # fmt: skip


def positive(values: np.ndarray) -> bool:
    """Whether a log y-axis can show ``values`` (every finite value > 0)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool((v > 0).all())


def curve_figure(
    title: str,
    ylabel: str,
    series: list[tuple[str, np.ndarray, np.ndarray]],
    *,
    with_band: bool = True,
    logx: bool = False,
) -> dict[str, Any]:
    """A metric over steps: one median (and band) per ``(name, steps, values [K, n])``;
    log y when every value is positive."""
    data: list[dict[str, Any]] = []
    for i, (name, steps, values) in enumerate(series):
        data += band_traces(steps, values, name, COLORS[i % len(COLORS)], with_band)
    logy = all(positive(v) for _, _, v in series)
    return {"title": title, "data": data, "layout": _layout("step t", ylabel, logx, logy),
            "logx": logx, "logy": logy}  # fmt: skip


_VERDICT_COLORS = {"agrees": "#2ca02c", "disagrees": "#d62728", "inconclusive": "#ff7f0e",
                   "no_claim": "#7f7f7f"}  # fmt: skip


def forest_figure(title: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A study's judged findings as z = (measured − reference) / SE, SE = CI half-width /
    z₀.₉₇₅: each row shows its 95% interval (z ± 1.96) and, shaded, the reference's
    tolerance band ±τ/SE. A rule's verdict is read off the picture: ``contains`` agrees when
    the interval meets the band, ``band`` when it lies inside, an upper bound when it lies
    left of +τ/SE. Direction-only rules use reference 0. Findings without an interval or a
    reference (analytic, ``report``, ``inside``) are left out; ``None`` if none remain.

    ``rows``: dicts with ``label``, ``measured``, ``ci_low``, ``ci_high``, ``predicted``
    (``None`` for a direction), ``tolerance``, ``rule``, ``verdict``, ``hover``.
    """
    kept = []
    for r in rows:
        lo, hi, m = r["ci_low"], r["ci_high"], r["measured"]
        if r["rule"] in ("report", "inside", "exact") or lo is None or hi is None or m is None:
            continue
        se = (hi - lo) / (2 * Z95)
        if not (math.isfinite(se) and se > 0):
            continue
        ref = r["predicted"] if r["predicted"] is not None else 0.0
        kept.append((r, (m - ref) / se, (r["tolerance"] or 0.0) / se))
    if not kept:
        return None
    labels = [r["label"] for r, _, _ in kept]
    # a loose bound sits thousands of SE away: the axis shows ±LIMIT, farther points are
    # drawn at the edge as triangles (hover gives the true z)
    half = [min(max(t, 0.04), LIMIT + 1) for _, _, t in kept]  # τ = 0: a thin mark
    data = [{"type": "bar", "orientation": "h", "y": labels, "base": [-h for h in half],
             "x": [2 * h for h in half], "name": "reference ± τ/SE",
             "marker": {"color": "rgba(31,119,180,0.22)"}, "hoverinfo": "skip"}]  # fmt: skip
    for verdict, color in _VERDICT_COLORS.items():
        for far in (False, True):
            sel = [(r, z) for r, z, _ in kept
                   if r["verdict"] == verdict and (abs(z) > LIMIT) == far]  # fmt: skip
            if not sel:
                continue
            trace = {
                "type": "scatter", "mode": "markers", "legendgroup": verdict,
                "name": verdict.replace("_", " ") + (" (off the axis)" if far else ""),
                "y": [r["label"] for r, _ in sel],
                "x": [max(-LIMIT, min(LIMIT, z)) for _, z in sel],
                "customdata": [_num(z) for _, z in sel], "text": [r["hover"] for r, _ in sel],
                "hovertemplate": "%{text}<br>z = %{customdata}<extra></extra>",
                "marker": {"color": color, "size": 8},
            }  # fmt: skip
            if far:
                trace["marker"]["symbol"] = [
                    "triangle-right" if z > 0 else "triangle-left" for _, z in sel
                ]
                trace["marker"]["size"] = 11
            else:
                trace["error_x"] = {"type": "constant", "value": Z95, "color": color,
                                    "thickness": 2}  # fmt: skip
            data.append(trace)
    layout = _layout("(measured − reference) / SE", "", False, False)
    layout["xaxis"]["range"] = [-LIMIT - 1, LIMIT + 1]
    layout["yaxis"] = {"automargin": True, "autorange": "reversed", "tickfont": {"size": 10}}
    layout["height"] = 90 + 26 * len(kept)
    layout["barmode"] = "overlay"
    layout["shapes"] = [{"type": "line", "x0": 0, "x1": 0, "yref": "paper", "y0": 0, "y1": 1,
                         "line": {"color": "#444", "width": 1, "dash": "dot"}}]  # fmt: skip
    return {"title": title, "data": data, "layout": layout, "logx": False, "logy": False,
            "nolog": True}
