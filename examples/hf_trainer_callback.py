"""Hugging Face: sgdlab's ``MonitorCallback`` in ``Trainer.train`` — a GPT-2 built from a
config (two layers, 64 wide; no download), character-level, on 4.9 KB of Shakespeare.

    .venv/bin/python examples/hf_trainer_callback.py [--quick] [--store PATH]

The callback takes each step's batch from the trainer (what the model is called with),
measures after the optimizer step with the clipped gradient, and stores loss, gradient
norm, learning rate, tr Σ, noise scale and temperature. The loss measured is GPT-2's own:
next-token cross-entropy, mean over the predicted tokens (windows of equal length: per-sample
quantities are per window). ``--quick`` trains 20 steps (seconds) instead of 300. Needs
``pip install transformers accelerate``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from sgdlab.integrations.huggingface import MonitorCallback
from sgdlab.store import default_store_path

TEXT = Path(__file__).resolve().parent / "data" / "coriolanus_act1_scene1.txt"


class CharWindows(torch.utils.data.Dataset):
    """Every window of ``context`` characters: ``input_ids`` = ``labels`` (GPT-2 shifts)."""

    def __init__(self, text: str, context: int) -> None:
        self.chars = sorted(set(text))
        self.ids = torch.tensor([self.chars.index(c) for c in text])
        self.context = context

    def __len__(self) -> int:
        return len(self.ids) - self.context

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        window = self.ids[i : i + self.context]
        return {"input_ids": window, "labels": window.clone()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(default_store_path()))
    parser.add_argument("--quick", action="store_true", help="20 steps: a run of seconds")
    args = parser.parse_args(argv)

    data = CharWindows(TEXT.read_text(), context=32)
    torch.manual_seed(0)  # the model's initialization
    config = GPT2Config(vocab_size=len(data.chars), n_positions=32, n_embd=64, n_layer=2,
                        n_head=4, bos_token_id=0, eos_token_id=0)  # fmt: skip
    model = GPT2LMHeadModel(config)
    callback = MonitorCallback(store=args.store, every=2, noise_every=5, name="hf-char-gpt2")
    training = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="sgdlab-hf-"), max_steps=20 if args.quick else 300,
        per_device_train_batch_size=16, learning_rate=3e-3, warmup_steps=5, max_grad_norm=1.0,
        lr_scheduler_type="cosine", logging_steps=10, save_strategy="no", report_to=[],
        seed=0, use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    Trainer(model=model, args=training, train_dataset=data, callbacks=[callback]).train()

    mon = callback.monitor
    last = mon.summary()
    print(f"run {mon.run_id}: {mon.t} steps, final loss {last['loss']:.3f}; gradient noise "
          f"tr Σ = {last['trace_cov']:.3g}; noise scale B_simple ≈ {last['noise_scale']:.3g} "
          "at batch 16 (NaN: not resolved at this batch)")  # fmt: skip
    for item in mon.advice():
        print(f"advice ({item.kind}): {item.message}")
    print(f"next: sgdlab show {mon.run_id} --store {args.store}")
    return {"run_id": mon.run_id, "summary": last}


if __name__ == "__main__":
    main()
