"""Brief training: L1 loss, AdamW (ESC's lr 5e-4, betas 0.9/0.9), optional warm-up and cosine
decay, a fixed budget of steps (or seconds), seeded; validation PSNR/SSIM at the end and every
``val_every`` steps through a callback (how the search reports progress)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srnas.evaluators.metrics import psnr_y, ssim_y, tensor_to_uint8
from srnas.space.errors import ConfigError, TrainingError


@dataclass(frozen=True)
class TrainBudget:
    steps: int = 300
    seconds: float | None = None  # stop early when this wall time is spent
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.9)
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    cosine: bool = True
    batch_size: int = 8
    patch_size: int = 48  # HR pixels; a multiple of the scale
    val_every: int = 0  # 0: validate only at the end
    # Steps after which to validate as well (the rungs of a multi-fidelity search). Validation
    # changes nothing in training, so a run validated at its rungs ends where one without does.
    val_at: tuple[int, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError("steps", "must be a positive integer", self.steps)
        if self.seconds is not None and self.seconds <= 0:
            raise ConfigError("seconds", "must be positive", self.seconds)
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError("lr", "must be a positive finite number", self.lr)
        if self.batch_size < 1:
            raise ConfigError("batch_size", "must be >= 1", self.batch_size)
        if self.patch_size < 8:
            raise ConfigError("patch_size", "must be >= 8 HR pixels", self.patch_size)
        if not 0 <= self.seed < 2**32:
            raise ConfigError("seed", "must be between 0 and 2**32 - 1", self.seed)
        if self.warmup_steps < 0:
            raise ConfigError("warmup_steps", "must be >= 0", self.warmup_steps)
        if self.val_every < 0:
            raise ConfigError("val_every", "must be >= 0", self.val_every)
        if any(not 1 <= s <= self.steps for s in self.val_at):
            raise ConfigError("val_at", f"every step must be between 1 and {self.steps}",
                              list(self.val_at))


@dataclass
class TrainResult:
    steps: int
    seconds: float
    final_loss: float
    losses: list[float] = field(default_factory=list)


ValPair = tuple[str, np.ndarray, np.ndarray]  # (name, lr uint8 HxWx3, hr uint8 HxWx3)
Progress = Callable[[int, float, float | None], None]  # (step, loss, psnr or None)


def lr_at(step: int, budget: TrainBudget) -> float:
    """Linear warm-up, then cosine decay to zero over the step budget (or constant)."""
    if not budget.cosine and step >= budget.warmup_steps:
        return budget.lr
    return warmup_cosine(step, budget.lr, budget.warmup_steps, budget.steps)


def warmup_cosine(step: int, lr: float, warmup: int, steps: int) -> float:
    """The rate of 0-based ``step``: linear warm-up ((step + 1) / warmup of ``lr``, as
    BasicSR's), then cosine decay to zero at the last of ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(steps - warmup, 1)
    t = min(step - warmup, span) / span
    return lr * 0.5 * (1 + math.cos(math.pi * t))


@torch.inference_mode()
def validate(model: nn.Module, pairs: Sequence[ValPair], scale: int,
             device: torch.device) -> tuple[float, float]:
    """Mean PSNR / SSIM (Y channel, ``scale`` pixels shaved, uint8-rounded output)."""
    was_training = model.training
    model.eval()
    psnrs, ssims = [], []
    try:
        for _, lr, hr in pairs:
            # A copy: decoded images are read-only, and from_numpy would warn about it.
            x = torch.tensor(lr).permute(2, 0, 1)[None].float().div(255).to(device)
            sr = tensor_to_uint8(model(x).cpu())
            hr_c = hr[: sr.shape[0], : sr.shape[1]]
            psnrs.append(psnr_y(sr, hr_c, scale))
            ssims.append(ssim_y(sr, hr_c, scale))
    finally:
        model.train(was_training)
    return float(np.mean(psnrs)), float(np.mean(ssims))


def train(model: nn.Module, next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
          budget: TrainBudget, device: torch.device, *,
          val_pairs: Sequence[ValPair] = (), scale: int = 4,
          progress: Progress | None = None,
          step_guard: Callable[[], AbstractContextManager[object]] | None = None
          ) -> TrainResult:
    """Train in place. ``next_batch`` yields (lr, hr) float tensors in [0, 1].

    ``step_guard`` wraps every optimisation step (the evaluators pass the device's shared lock,
    so that another trial's latency measurement never runs while this one computes; taking it
    per step lets a waiting measurement in between steps)."""
    model.train().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=budget.lr, betas=budget.betas,
                                  weight_decay=budget.weight_decay)
    start = time.perf_counter()
    losses: list[float] = []
    step = 0
    for step in range(budget.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, budget)
        lr_img, hr_img = next_batch()
        validate_now = bool(((budget.val_every and (step + 1) % budget.val_every == 0)
                             or step + 1 in budget.val_at)
                            and val_pairs and step + 1 < budget.steps)
        psnr = None
        with step_guard() if step_guard is not None else nullcontext():
            loss = F.l1_loss(model(lr_img.to(device)), hr_img.to(device))
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(f"non-finite loss ({value})", step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if validate_now:
                psnr = validate(model, val_pairs, scale, device)[0]
            if step_guard is not None and device.type == "cuda":
                # CUDA runs the backward pass after the call returns: finish it inside the
                # guard, or it could run during another trial's timing on this GPU.
                torch.cuda.synchronize(device)
        losses.append(value)
        if progress is not None:
            progress(step + 1, value, psnr)
        if budget.seconds is not None and time.perf_counter() - start >= budget.seconds:
            break
    return TrainResult(steps=step + 1, seconds=time.perf_counter() - start,
                       final_loss=losses[-1], losses=losses)
