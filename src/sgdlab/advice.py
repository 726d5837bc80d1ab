"""Advice from measured noise: batch size, learning rate, clipping (the article's §4–§5).

:func:`advise` turns a run's recorded metrics into a short list of :class:`Advice`, each with
the rule that fired and the numbers behind it. The rules, in order:

1. **Instability** — any chain with a non-finite loss (a diverged chain; the other rules then
   summarize the chains that stayed finite), or a loss that ends clearly above where it started
   (last-quarter mean > 1.5 × first-quarter mean, by more than 3 standard errors of the
   difference, so minibatch noise alone does not trigger it; for a positive loss the same
   test on its logarithm too, which a heavy-tailed blow-up — a few huge values — cannot
   hide from): lower the learning rate (§5).
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
   When B is not resolved at this batch (the bias-corrected |G|² is ≤ 0: B = ∞, or the
   Monitor's ``noise_scale`` is NaN at its last record) the advice says so — "the signal is
   below the noise at this batch: the noise scale exceeds what this batch can resolve" —
   and quotes the lower bound on B (the Monitor's ``noise_scale_lower``, or the lower end of
   B's interval) when it is finite, advising no batch size from it
   (:mod:`sgdlab.advice_batch`). Otherwise, or when B is NaN, nothing is advised. The noise scale
   changes about tenfold along training (the lab's ``critical-batch``), so B is the order of
   magnitude of B_crit (the evidence says so).
3. **Gradient spikes** — max/median of the recorded gradient norms above 10: clip the
   global norm near the 95th percentile of the norms recorded while the loss had not yet
   risen above 1.5× its start (a blow-up's own norms would set the level far too high;
   §5, "gradient clipping").
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgdlab.advice_batch import (
    BATCH_FACTOR,
    Advice,
    batch_size_advice,
    unresolved_batch_advice,
)
from sgdlab.config import load_config
from sgdlab.errors import SgdlabError
from sgdlab.noise_evidence import (
    NoiseScale,
    chains_b_noise,
    engine_b_simple,
    monitor_b_simple,
)
from sgdlab.problems import build_problem
from sgdlab.run_noise import chain_noise_scales
from sgdlab.store import Store

__all__ = ["BATCH_FACTOR", "Advice", "advise", "advise_stored_run", "batch_size_advice",
           "noise_report_stored_run", "noise_scale", "stored_b_noise",
           "unresolved_batch_advice"]  # fmt: skip
#: max/median gradient norm above which clipping is advised
SPIKE_RATIO = 10.0
#: median absolute deviation of the loss's last half, relative to its total drop (early
#: median − minimum), above which it is called oscillating
OSCILLATION = 0.25


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
    if found is None and "noise_scale" in metrics:
        # the Monitor's EMA: NaN at its last record means |G|² is not resolved (issue 14),
        # never an older finite value
        ema = _series(metrics, "noise_scale", live)
        if ema is not None and ema.size and not np.isfinite(ema[-1]):
            lower = _last_value(_series(metrics, "noise_scale_lower", live))
            return NoiseScale("B_simple", math.inf, (lower, math.inf),
                              "Monitor EMA of two-batch estimates: the smoothed |G|² is ≤ 0 "
                              "at the last record (noise_scale NaN)")  # fmt: skip
    if found is None:
        for name, method in (("noise_scale", "Monitor EMA of two-batch estimates"),
                             ("noise_b_simple", "last per-step estimate")):  # fmt: skip
            value = _last_finite(_series(metrics, name, live))
            if value is not None:
                return NoiseScale("B_simple", value, (math.nan, math.nan),
                                  f"{method}; no interval")  # fmt: skip
    return found


def _last_value(x: np.ndarray | None) -> float:
    """The value at the last record (NaN when there is none or it is not finite)."""
    if x is None or x.size == 0 or not np.isfinite(x[-1]):
        return math.nan
    return float(x[-1])


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
        rose = _rose(head, tail) or (
            bool((loss > 0).all()) and _rose(np.log(head), np.log(tail), math.log(1.5))
        )
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
                        "above it by more than 3 standard errors (of the loss, or of its log "
                        "for a positive loss: heavy-tailed blow-ups)",
                    },
                )
            )
    if noise is None and batch_size:
        noise = noise_scale(metrics, batch_size, live, population, seed)
    if noise is not None and batch_size:
        lower = _last_value(_series(metrics, "noise_scale_lower", live))
        item = batch_size_advice(noise, batch_size, lr) or unresolved_batch_advice(
            noise, batch_size, lower
        )
        if item is not None:
            out.append(item)
    norms = _series(metrics, "grad_norm", live)
    if norms is not None:
        finite = norms[np.isfinite(norms)]
        if finite.size >= 5 and np.median(finite) > 0:
            ratio = float(finite.max() / np.median(finite))
            if ratio > SPIKE_RATIO:
                stable = _stable_records(loss, norms)
                clip = float(np.percentile(stable, 95))
                out.append(
                    Advice(
                        "clipping",
                        f"gradient-norm spikes (max/median = {ratio:.0f}): clip the global norm "
                        f"at about {clip:.3g} (the 95th percentile of the {stable.size} recorded "
                        "norms before the loss first rose above 1.5× its start)",
                        {
                            "max_over_median": ratio,
                            "suggested_max_norm": clip,
                            "stable_records": int(stable.size),
                            "rule": f"max/median > {SPIKE_RATIO:g}; level: 95th percentile of "
                            "the norms while the loss had not risen",
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


def _rose(head: np.ndarray, tail: np.ndarray, margin: float | None = None) -> bool:
    """The last quarter above the first by ``margin`` (default: ×1.5, i.e. 0.5·mean(head))
    and by more than 3 standard errors of the difference of the two means."""
    q = head.size
    first, last = float(np.mean(head)), float(np.mean(tail))
    se = math.sqrt(np.var(head, ddof=1) / q + np.var(tail, ddof=1) / q)
    gap = 0.5 * first if margin is None else margin
    return last - first > gap and last - first > 3 * se


def _stable_records(loss: np.ndarray | None, norms: np.ndarray) -> np.ndarray:
    """The finite gradient norms recorded before the loss (median over chains) first rose
    above 1.5× its first value (at least 5 records; all of them when it never rose or the
    loss is not positive)."""
    end = norms.size
    if loss is not None and loss.size == norms.size and np.isfinite(loss[0]) and loss[0] > 0:
        above = np.nonzero(~(loss <= 1.5 * loss[0]))[0]
        if above.size:
            end = max(5, int(above[0]))
    kept = norms[:end]
    kept = kept[np.isfinite(kept)]
    return kept if kept.size else norms[np.isfinite(norms)]


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
