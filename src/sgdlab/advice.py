"""Advice from measured noise: batch size, learning rate, clipping (the article's §4–§5).

:func:`advise` turns a run's recorded metrics into a short list of :class:`Advice`, each with
the rule that fired and the numbers behind it. The rules, in order:

1. **Instability** — any chain with a non-finite loss (a diverged chain; the other rules then
   summarize the chains that stayed finite), or a loss that ends clearly above where it started
   (last-quarter mean > 1.5 × first-quarter mean, by more than 3 standard errors of the
   difference, so minibatch noise alone does not trigger it): lower the learning rate (§5).
2. **Batch size against the noise scale** (McCandlish et al. 2018): B is the measured noise
   scale with its 95% interval (:mod:`sgdlab.noise_evidence`: B_simple = tr Σ/|G|² from the
   engine's noise probe over the last quarter of the records and the live chains — bootstrap
   over chains — or from the Monitor's per-step statistics — delta method —, or B_noise at
   a stored engine run's final parameters on request). Advice reports the implied
   S(b)/S_min = 1 + B/b and E(b)/E_min = 1 + b/B at the run's batch b (taking B_crit ≈ B).
   A batch b < B/4 (the whole interval above 4b) is noise-dominated — a batch near B (the
   power of 2 nearest it, where S/S_min = E/E_min = 2) needs
   S(b)/S(B) = (1 + B/b)/(1 + B/B') times fewer steps, with the step scaled by McCandlish's
   optimal step ε ∝ 1/(1 + B/b) — linear while b ≪ B, saturating beyond (the lab's
   ``lr-scaling`` study: the tuned step is linear in b only up to about B_crit/8, and the
   linear rule crosses the stability edge beyond B_crit; the linear and √ values are quoted
   too); b > 4B (the whole interval below b/4) is past the critical batch size —
   diminishing returns, a smaller batch needs fewer examples for the same progress.
   Otherwise, or when B is not a finite positive number, nothing is advised. The noise scale
   changes about tenfold along training (the lab's ``critical-batch``), so B is the order of
   magnitude of B_crit (the evidence says so).
3. **Gradient spikes** — max/median of the recorded gradient norms above 10: clip the
   global norm near the 95th percentile of the recorded norms (§5, "gradient clipping").
4. **Oscillating loss** — the median absolute deviation of the last half of the loss, relative
   to how far the loss has come down (median of the first quarter − minimum), above 0.25:
   the step is large for the noise level; lower η or raise b, which both lower the
   temperature T ∝ η/b (§5). Measured against the drop, it does not change when a constant
   is added to the loss.

The thresholds are rules of thumb, stated here and in each advice's evidence; advice never
replaces looking at the curves.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgdlab.config import load_config
from sgdlab.errors import SgdlabError
from sgdlab.noise_evidence import (
    LAB_NOTE,
    NoiseScale,
    chains_b_noise,
    engine_b_simple,
    monitor_b_simple,
)
from sgdlab.problems import build_problem
from sgdlab.run_noise import chain_noise_scales
from sgdlab.store import Store
from sgdlab.theory.batch_size import optimal_step, steps_to_target

#: a batch this many times below (above) the noise scale is noise-dominated (past critical)
BATCH_FACTOR = 4.0
#: max/median gradient norm above which clipping is advised
SPIKE_RATIO = 10.0
#: median absolute deviation of the loss's last half, relative to its total drop (early
#: median − minimum), above which it is called oscillating
OSCILLATION = 0.25


@dataclass(frozen=True)
class Advice:
    """One piece of advice: ``kind`` (instability, batch_size, clipping, oscillation),
    a one-line ``message`` and the ``evidence`` (numbers and the rule's threshold)."""

    kind: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _live(metrics: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
    """Chains whose recorded loss stayed finite (``None``: no loss recorded)."""
    if "loss" not in metrics:
        return None
    return np.isfinite(np.asarray(metrics["loss"][1], dtype=float)).all(axis=1)


def _series(
    metrics: dict[str, tuple[np.ndarray, np.ndarray]], name: str, live: np.ndarray | None = None
) -> np.ndarray | None:
    """The median over the live chains of metric ``name`` at each recorded step."""
    if name not in metrics:
        return None
    values = np.asarray(metrics[name][1], dtype=float)
    if live is not None and live.shape[0] == values.shape[0] and live.any():
        values = values[live]
    if values.shape[0] == 1:
        return values.reshape(-1)
    with warnings.catch_warnings():  # steps where every chain is NaN stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=0)


def _last_finite(x: np.ndarray | None) -> float | None:
    if x is None:
        return None
    finite = x[np.isfinite(x)]
    return float(finite[-1]) if finite.size else None


def noise_scale(
    metrics: dict[str, tuple[np.ndarray, np.ndarray]],
    batch_size: int,
    live: np.ndarray | None = None,
    population: int | None = None,
    seed: int = 0,
) -> NoiseScale | None:
    """The run's B_simple with its interval (:mod:`sgdlab.noise_evidence`): the engine's noise
    probe, else the Monitor's per-step statistics, else (no interval) the Monitor's EMA
    ``noise_scale`` or the engine's last per-step ``noise_b_simple``."""
    found = engine_b_simple(metrics, batch_size, live, population, seed)
    if found is None:
        found = monitor_b_simple(metrics, batch_size, population)
    if found is None:
        for name, method in (("noise_scale", "Monitor EMA of two-batch estimates"),
                             ("noise_b_simple", "last per-step estimate")):  # fmt: skip
            value = _last_finite(_series(metrics, name, live))
            if value is not None:
                return NoiseScale("B_simple", value, (math.nan, math.nan),
                                  f"{method}; no interval")  # fmt: skip
    return found


def batch_size_advice(noise: NoiseScale, batch_size: int, lr: float | None) -> Advice | None:
    """Rule 2 (module docstring) from a measured noise scale B: a batch below B/4 (by the
    whole interval) is noise-dominated, one above 4B (by the whole interval) is past the
    critical batch size; ``None`` otherwise, or when B is not a finite positive number."""
    if not noise.usable:
        return None
    lo, hi = noise.ci
    low = lo if math.isfinite(lo) else noise.estimate
    high = hi if math.isfinite(hi) else noise.estimate
    implied = noise.implied(batch_size)
    evidence = {
        "batch_size": batch_size,
        "noise_scale": noise.estimate,
        "noise_scale_ci": noise.ci,
        "noise_scale_name": noise.name,
        "method": noise.method,
        "lr": lr,
        **implied,
        "lab": LAB_NOTE,
        "rule": f"b < {noise.name}/{BATCH_FACTOR:g} or b > {BATCH_FACTOR:g}·{noise.name} "
        "(by the whole 95% interval when there is one)",
    }
    ratios = (f"at b = {batch_size}: S/S_min ≈ {implied['steps_over_min']:.3g}, "
              f"E/E_min ≈ {implied['examples_over_min']:.3g}")
    scale = noise.estimate
    if batch_size * BATCH_FACTOR < low:
        target = int(2 ** round(math.log2(scale)))
        fewer = float(
            steps_to_target(batch_size, 1.0, scale) / steps_to_target(target, 1.0, scale)
        )
        new_lr = _scaled_lr(lr, batch_size, target, scale)
        evidence.update(suggested_batch_size=target, suggested_lr=new_lr)
        lr_txt = (
            ""
            if lr is None
            else (
                f" (step: lr {lr:g} → {new_lr:.3g} by McCandlish's optimal step ε ∝ 1/(1 + B/b), "
                f"between the square-root {lr * math.sqrt(target / batch_size):.3g} and the "
                f"linear scaling: lr {lr:g} → {lr * target / batch_size:.3g}; the lab's "
                "lr-scaling study: linear holds only well below B_crit, and a large factor can "
                "cross the stability edge η·λ_max = 2 — raise the step gradually)"
            )
        )
        return Advice(
            "batch_size",
            f"batch {batch_size} is well below the noise scale {noise.describe()}: gradient "
            f"noise dominates ({ratios}); a batch of {target} needs about {fewer:.1f}× fewer "
            f"steps (S ∝ 1 + B/b){lr_txt}; {LAB_NOTE}",
            evidence,
        )
    if batch_size > BATCH_FACTOR * high:
        target = max(1, int(2 ** round(math.log2(scale))))
        evidence.update(suggested_batch_size=target,
                        suggested_lr=_scaled_lr(lr, batch_size, target, scale))
        return Advice(
            "batch_size",
            f"batch {batch_size} is far above the noise scale {noise.describe()} (the critical "
            f"batch size; {ratios}): larger batches bring diminishing returns; a batch of "
            f"{target} reaches the same loss with about {implied['examples_over_min'] / 2:.1f}× "
            "fewer examples",
            evidence,
        )
    return None


def _scaled_lr(lr: float | None, b: int, b_new: int, scale: float) -> float | None:
    """The step for batch ``b_new`` from ``lr`` at ``b`` by McCandlish's optimal step
    ε_opt(b) ∝ 1/(1 + B/b) (:func:`sgdlab.theory.batch_size.optimal_step`): linear in b for
    b ≪ B, saturating for b ≫ B."""
    if lr is None:
        return None
    return float(lr * optimal_step(b_new, 1.0, scale) / optimal_step(b, 1.0, scale))


def advise(
    metrics: dict[str, tuple[np.ndarray, np.ndarray]],
    batch_size: int | None = None,
    lr: float | None = None,
    population: int | None = None,
    noise: NoiseScale | None = None,
    seed: int = 0,
) -> list[Advice]:
    """Advice for a run from its metrics ``name -> (steps, values [K, n])``. Any chain whose
    loss is not finite is reported as instability; the other rules summarize the live chains
    (median over chains). ``batch_size`` and ``lr`` are the run's settings; ``population`` is
    N when its batches hold distinct samples of N (without replacement). ``noise`` replaces
    the B_simple measured from the metrics (e.g. a B_noise); ``seed`` seeds the bootstrap of
    its interval."""
    out: list[Advice] = []
    live = _live(metrics)
    if live is not None and not live.all():
        bad = int((~live).sum())
        out.append(
            Advice(
                "instability",
                f"{bad} of {live.size} chains diverged (non-finite loss): lower the learning "
                "rate (e.g. ÷3), then check the data pipeline and the gradient "
                "(sgdlab.measure.gradcheck)",
                {"diverged_chains": bad, "chains": int(live.size), "rule": "any non-finite loss"},
            )
        )
    loss = _series(metrics, "loss", live)
    if loss is not None and loss.size >= 8 and (live is None or live.all()):
        q = loss.size // 4
        head, tail = loss[:q], loss[-q:]
        first, last = float(np.mean(head)), float(np.mean(tail))
        se = math.sqrt(np.var(head, ddof=1) / q + np.var(tail, ddof=1) / q)
        rose = last > 1.5 * first and last - first > 3 * se
        if not np.isfinite(loss).all() or rose:
            out.append(
                Advice(
                    "instability",
                    "the loss diverged or rose: lower the learning rate (e.g. ÷3), then check the "
                    "data pipeline and the gradient (sgdlab.measure.gradcheck)",
                    {
                        "first_quarter_loss": first,
                        "last_quarter_loss": last,
                        "rule": "non-finite, or last-quarter mean > 1.5 × first-quarter mean and "
                        "above it by more than 3 standard errors",
                    },
                )
            )
    if noise is None and batch_size:
        noise = noise_scale(metrics, batch_size, live, population, seed)
    if noise is not None and batch_size:
        item = batch_size_advice(noise, batch_size, lr)
        if item is not None:
            out.append(item)
    norms = _series(metrics, "grad_norm", live)
    if norms is not None:
        finite = norms[np.isfinite(norms)]
        if finite.size >= 5 and np.median(finite) > 0:
            ratio = float(finite.max() / np.median(finite))
            if ratio > SPIKE_RATIO:
                clip = float(np.percentile(finite, 95))
                out.append(
                    Advice(
                        "clipping",
                        f"gradient-norm spikes (max/median = {ratio:.0f}): clip the global norm "
                        f"at about {clip:.3g} (the 95th percentile of the recorded norms)",
                        {
                            "max_over_median": ratio,
                            "suggested_max_norm": clip,
                            "rule": f"max/median > {SPIKE_RATIO:g}",
                        },
                    )
                )
    if loss is not None and loss.size >= 8:
        finite = loss[np.isfinite(loss)]
        tail = loss[loss.size // 2 :]
        tail = tail[np.isfinite(tail)]
        head = finite[: max(1, finite.size // 4)]
        drop = float(np.median(head) - finite.min()) if finite.size else 0.0
        if tail.size >= 4 and drop > 0:
            # spread relative to how far the loss has come down: adding a constant to the loss
            # (F* ≠ 0) changes nothing, and a run resting at its noise floor stays quiet
            rel = float(np.median(np.abs(tail - np.median(tail))) / drop)
            if rel > OSCILLATION:
                out.append(
                    Advice(
                        "oscillation",
                        f"the loss oscillates (its spread over the last half is {rel:.2f} of its "
                        "total drop): the step is large for this noise level; lower the learning "
                        "rate or raise the batch size (both lower the temperature T ∝ η/b)",
                        {
                            "mad_over_drop": rel,
                            "rule": f"MAD(last half) / (early median − min) > {OSCILLATION:g}",
                        },
                    )
                )
    return out


#: metrics from which the batch-size advice reads the noise scale
NOISE_METRICS = ("noise_scale", "noise_b_simple")


def _stored_settings(info: dict, metrics: dict) -> tuple[int | None, float | None, int | None]:
    """(batch size, learning rate, population N for distinct batches) of a stored run."""
    cfg = info["config"]
    batch = cfg.get("batch") or {}
    b = batch.get("size") if batch.get("sampling") != "full" else (info["problem"] or {}).get("n")
    lr = None
    with warnings.catch_warnings():  # chains that diverged hold NaN; all of them may
        warnings.simplefilter("ignore", RuntimeWarning)
        if "batch_size" in metrics:
            median = float(np.nanmedian(metrics["batch_size"][1][:, -1]))
            b = int(median) if np.isfinite(median) else b
        if "lr" in metrics:
            median = float(np.nanmedian(metrics["lr"][1][:, -1]))
            lr = median if np.isfinite(median) else None
    n = (info["problem"] or {}).get("n")
    distinct = batch.get("sampling") in ("without_replacement", "full", "auto")
    return b, lr, n if distinct and n else None


def advise_stored_run(
    run_id: str, store_path: Path, b_noise: bool = False, seed: int = 0
) -> tuple[list[Advice], bool]:
    """:func:`advise` on a stored run (engine or Monitor), and whether the run recorded noise
    statistics (without them there is no batch-size advice). With ``b_noise`` (engine runs on
    a finite dataset) the batch-size rule uses B_noise at the final parameters instead of
    B_simple (:func:`stored_b_noise`)."""
    with Store(store_path, read_only=True) as db:
        info = db.run(run_id)
        metrics = db.metrics(info["run_id"])
    b, lr, population = _stored_settings(info, metrics)
    noise = stored_b_noise(info["run_id"], store_path, seed) if b_noise else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        items = advise(metrics, batch_size=b, lr=lr, population=population, noise=noise,
                       seed=seed)  # fmt: skip
    return items, noise is not None or any(name in metrics for name in NOISE_METRICS)


def noise_report_stored_run(
    run_id: str, store_path: Path, b_noise: bool = False, seed: int = 0
) -> list[tuple[NoiseScale, dict[str, Any]]]:
    """The noise scales of a stored run (B_simple; B_noise too with ``b_noise``), each with
    the implied S(b)/S_min and E(b)/E_min at the run's batch size; only usable scales."""
    with Store(store_path, read_only=True) as db:
        info = db.run(run_id)
        metrics = db.metrics(info["run_id"])
    b, _, population = _stored_settings(info, metrics)
    if not b:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scales = [noise_scale(metrics, b, _live(metrics), population, seed)]
    if b_noise:
        scales.append(stored_b_noise(info["run_id"], store_path, seed))
    return [(sc, sc.implied(b)) for sc in scales if sc is not None and sc.usable]


def stored_b_noise(run_id: str, store_path: Path, seed: int = 0, chains: int = 8) -> NoiseScale:
    """B_noise of a stored engine run at the final parameters of (up to ``chains``) live
    chains (:func:`sgdlab.run_noise.chain_noise_scales`, :func:`sgdlab.noise_evidence.
    chains_b_noise`). A Monitor run, or a problem without a finite dataset, is a one-line
    :class:`~sgdlab.errors.SgdlabError`."""
    with Store(store_path, read_only=True) as db:
        info = db.run(run_id)
        if info.get("kind") == "monitor":
            raise SgdlabError("B_noise needs the model's parameters, which a Monitor run does "
                              "not store: measure it in your loop with sgdlab.measure.b_noise")
        result = db.load_result(info["run_id"])
    cfg = load_config(result.config)
    streams = cfg.make_streams(result.seed_entropy)
    problem = build_problem(cfg.problem.name, cfg.problem.params(), streams, torch.float64)
    if not problem.finite:
        raise SgdlabError(f"B_noise is measured over a finite dataset; problem "
                          f"{problem.name!r} is a population (set its n)")  # fmt: skip
    live = np.nonzero(~result.diverged)[0][:chains]
    if live.size == 0:
        raise SgdlabError("every chain of the run diverged: there is no B_noise to measure")
    values = chain_noise_scales(problem, result.final_params[live].double(), seed=seed)
    return chains_b_noise(values, seed)
