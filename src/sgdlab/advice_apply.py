"""Advice that closes the loop: a run's config rewritten with what :mod:`sgdlab.advice` says.

``sgdlab advise RUN_ID --apply NEW.yaml`` writes the stored run's config with the advised
changes, each with its evidence (the measured quantity and the rule that fired); ``sgdlab
run NEW.yaml`` then runs it. The changes, by advice kind (§5 of the article: lower the
learning rate, increase the batch size, clip the gradients):

* ``instability`` (a diverged chain, or a rising loss) — the learning rate ÷ 3
  (:data:`INSTABILITY_FACTOR`); with ``clipping`` advised too, both apply;
* ``clipping`` (gradient-norm spikes, max/median > 10) — ``clip.norm`` at the advised level
  (the 95th percentile of the recorded gradient norms; the smaller one if the run already
  clipped);
* ``batch_size`` (b ≪ B or b ≫ B) — ``batch.size`` at the advised batch, the learning rate
  scaled by McCandlish's optimal step ε ∝ 1/(1 + B/b) (the advice's ``suggested_lr``),
  unless an instability asks for a smaller one;
* ``oscillation`` (loss spread > 0.25 of its drop) — the learning rate ÷ 2
  (:data:`OSCILLATION_FACTOR`), unless a rule above already changed it.

A per-chain list of learning rates is scaled element by element (the factor is the advised
step over the run's median step). Nothing is written when no advice applies.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sgdlab.advice import advise_stored_run
from sgdlab.advice_batch import Advice
from sgdlab.config import load_config
from sgdlab.errors import ConfigError, SgdlabError
from sgdlab.store import Store

__all__ = ["INSTABILITY_FACTOR", "OSCILLATION_FACTOR", "Change", "advised_config",
           "apply_stored_run", "write_config"]  # fmt: skip

#: the learning rate is divided by this after an instability (the advice says "e.g. ÷3")
INSTABILITY_FACTOR = 3.0
#: … and by this when the loss oscillates
OSCILLATION_FACTOR = 2.0


@dataclass(frozen=True)
class Change:
    """One change to a config: ``field`` (dotted), ``old`` → ``new``, and ``why`` (the
    advice's kind, measured quantity and rule)."""

    field: str
    old: Any
    new: Any
    why: str

    def describe(self) -> str:
        return f"{self.field}: {_fmt(self.old)} → {_fmt(self.new)} ({self.why})"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _scaled(lr: Any, factor: float) -> Any:
    if isinstance(lr, list):
        return [float(x) * factor for x in lr]
    return float(lr) * factor


def _median(lr: Any) -> float:
    values = sorted(float(x) for x in (lr if isinstance(lr, list) else [lr]))
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def advised_config(config: dict[str, Any], items: list[Advice]) -> tuple[dict, list[Change]]:
    """``config`` with the changes ``items`` advise (module docstring), and the changes."""
    new = copy.deepcopy(config)
    opt = new.setdefault("optimizer", {"name": "sgd", "lr": 0.01})
    lr = opt.get("lr", 0.01)
    by_kind = {a.kind: a for a in items}
    changes: list[Change] = []
    factor, why = None, ""
    if "instability" in by_kind:
        factor = 1.0 / INSTABILITY_FACTOR
        why = f"instability: {by_kind['instability'].evidence.get('rule', '')}"
    batch = by_kind.get("batch_size")
    if batch is not None and batch.evidence.get("suggested_batch_size"):
        b_new = int(batch.evidence["suggested_batch_size"])
        b_old = (new.get("batch") or {}).get("size")
        if b_new != b_old:
            new.setdefault("batch", {})["size"] = b_new
            changes.append(Change("batch.size", b_old, b_new, (
                f"batch_size: {batch.evidence.get('noise_scale_name', 'B')} ≈ "
                f"{batch.evidence.get('noise_scale', float('nan')):.3g}; "
                f"{batch.evidence.get('rule', '')}")))  # fmt: skip
            advised = batch.evidence.get("suggested_lr")
            ref = batch.evidence.get("lr")
            if factor is None and advised and ref:
                factor = float(advised) / float(ref)
                why = "batch_size: McCandlish's optimal step ε ∝ 1/(1 + B/b)"
    if factor is None and "oscillation" in by_kind:
        factor = 1.0 / OSCILLATION_FACTOR
        why = (f"oscillation: MAD/drop = {by_kind['oscillation'].evidence['mad_over_drop']:.3g}; "
               f"{by_kind['oscillation'].evidence.get('rule', '')}")  # fmt: skip
    if factor is not None and factor != 1.0:
        opt["lr"] = _scaled(lr, factor)
        changes.append(Change("optimizer.lr", lr, opt["lr"], why))
    clip = by_kind.get("clipping")
    if clip is not None:
        level = float(clip.evidence["suggested_max_norm"])
        old = (new.get("clip") or {}).get("norm")
        level = level if old is None else min(level, float(old))
        if level != old:
            new.setdefault("clip", {})["norm"] = level
            changes.append(Change("clip.norm", old, level, (
                f"clipping: max/median gradient norm = {clip.evidence['max_over_median']:.3g}; "
                f"{clip.evidence.get('rule', '')}")))  # fmt: skip
    if changes:
        load_config(copy.deepcopy(new)).canonical()  # the new config is valid
    return new, changes


def write_config(config: dict[str, Any], path: Path, changes: list[Change]) -> None:
    """Write ``config`` as YAML to ``path`` (a new file; its changes as a comment header),
    atomically: a failed write leaves nothing behind.

    Raises:
        ConfigError: ``--apply`` when ``path`` exists or its folder does not.
    """
    path = Path(path)
    if path.exists():
        raise ConfigError("--apply", f"{path} exists: choose a new file name")
    if not path.parent.is_dir():
        raise ConfigError("--apply", f"folder {path.parent} does not exist")
    head = "".join(f"# {c.describe()}\n" for c in changes)
    text = "# written by sgdlab advise --apply\n" + head + yaml.safe_dump(
        config, sort_keys=False, allow_unicode=True
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stored_config(info: dict[str, Any]) -> dict[str, Any]:
    """The config of a stored engine run (a Monitor run has none: a one-line error)."""
    if info.get("kind") == "monitor" or not info.get("config"):
        raise SgdlabError("--apply rewrites an engine run's config; a Monitor run has none: "
                          "apply the advice to your training loop by hand")  # fmt: skip
    return dict(info["config"])


def apply_stored_run(
    run_id: str, store_path: Path, out: Path, b_noise: bool = False, seed: int = 0
) -> tuple[list[Change], list[Advice]]:
    """Advise on a stored run and write its config with the advised changes to ``out``
    (nothing is written when no change applies). Returns the changes and the advice."""
    with Store(store_path, read_only=True) as db:
        info = db.run(run_id)
    config = stored_config(info)
    items, _ = advise_stored_run(info["run_id"], store_path, b_noise=b_noise, seed=seed)
    new, changes = advised_config(config, items)
    if changes:
        new["name"] = f"{info.get('name') or info['run_id']} (advised)"
        write_config(new, out, changes)
    return changes, items
