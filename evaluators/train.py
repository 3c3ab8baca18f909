"""Brief training: :meth:`Recipe.brief <srnas.evaluators.recipe.Recipe.brief>` (L1 loss,
AdamW with ESC's lr 5e-4 and betas 0.9/0.9, cosine decay) for a fixed budget of steps (or
seconds), seeded; validation PSNR/SSIM at the end and every ``val_every`` steps through a
callback (how the search reports progress)."""

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
from srnas.evaluators.recipe import Recipe, lr_at_step
from srnas.space.errors import ConfigError, TrainingError


def check_brief(recipe: Recipe, seconds: float | None = None, val_every: int = 0,
                val_at: Sequence[int] = ()) -> None:
    """Refuse what the brief trainer cannot do with ``recipe`` (a moving average, autocast:
    those are ``srnas train``'s), and stops or validations outside its steps."""
    if recipe.ema:
        raise ConfigError("ema", "must be 0: the brief trainer keeps no moving average",
                          recipe.ema)
    if recipe.amp:
        raise ConfigError("amp", "must be false: the brief trainer trains in float32", True)
    if recipe.patch_size is None:
        raise ConfigError("patch_size", "must be given: the brief trainer has no scale to "
                          "derive ESC's from (Recipe.brief's is 48)", None)
    if seconds is not None and not seconds > 0:
        raise ConfigError("seconds", "must be positive", seconds)
    if isinstance(val_every, bool) or not isinstance(val_every, int) or val_every < 0:
        raise ConfigError("val_every", "must be an integer >= 0", val_every)
    if any(not 1 <= s <= recipe.steps for s in val_at):
        raise ConfigError("val_at", f"every step must be between 1 and {recipe.steps}",
                          list(val_at))


@dataclass
class TrainResult:
    steps: int
    seconds: float
    final_loss: float
    losses: list[float] = field(default_factory=list)


ValPair = tuple[str, np.ndarray, np.ndarray]  # (name, lr uint8 HxWx3, hr uint8 HxWx3)
Progress = Callable[[int, float, float | None], None]  # (step, loss, psnr or None)


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
          recipe: Recipe, device: torch.device, *, seconds: float | None = None,
          val_every: int = 0, val_at: Sequence[int] = (),
          val_pairs: Sequence[ValPair] = (), scale: int = 4,
          progress: Progress | None = None,
          step_guard: Callable[[], AbstractContextManager[object]] | None = None
          ) -> TrainResult:
    """Train in place for ``recipe.steps`` steps, or until ``seconds`` of wall time are spent.
    ``next_batch`` yields (lr, hr) float tensors in [0, 1] (``recipe``'s batch and patch size
    are the sampler's business). Validates every ``val_every`` steps (0: only at the end, which
    is the caller's) and at the steps ``val_at`` (the rungs of a multi-fidelity search);
    validation changes nothing in training, so a run validated at its rungs ends where one
    without does.

    ``step_guard`` wraps every optimisation step (the evaluators pass the device's shared lock,
    so that another trial's latency measurement never runs while this one computes; taking it
    per step lets a waiting measurement in between steps)."""
    check_brief(recipe, seconds, val_every, val_at)
    model.train().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=recipe.betas,
                                  weight_decay=recipe.weight_decay)
    start = time.perf_counter()
    losses: list[float] = []
    step = 0
    for step in range(recipe.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at_step(step, recipe)
        lr_img, hr_img = next_batch()
        validate_now = bool(((val_every and (step + 1) % val_every == 0)
                             or step + 1 in val_at)
                            and val_pairs and step + 1 < recipe.steps)
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
        if seconds is not None and time.perf_counter() - start >= seconds:
            break
    return TrainResult(steps=step + 1, seconds=time.perf_counter() - start,
                       final_loss=losses[-1], losses=losses)
