"""A trained network on disk: a training run folder (``RUN/``) or a weights file, the config it
belongs to, and the budget it was trained for; and the one way to rebuild it for inference.

A run folder (written by :mod:`evaluators.fit`) holds ``config.yaml``, ``best.safetensors``
and/or ``last.safetensors`` and, once the run ended, ``train.json``. ``benchmark`` and ``export
--onnx`` read it through here, so both agree on which weights a folder means (best, else last)
and on what they were trained for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from srnas.evaluators.runs import BEST_FILE, CONFIG_FILE, LAST_FILE, SUMMARY_FILE
from srnas.evaluators.weights import WEIGHTS_SUFFIX, load_weights, read_metadata, weights_config
from srnas.space.config import ArchConfig, load_config
from srnas.space.errors import ConfigError
from srnas.space.network import SRNet, build_model

RUN_CONFIG = CONFIG_FILE
RUN_WEIGHTS = (BEST_FILE, LAST_FILE)  # preference order
RUN_LOG = SUMMARY_FILE
# Random weights are seeded: two untrained rows of one config are one network.
UNTRAINED_SEED = 0


@dataclass(frozen=True)
class Trained:
    """A network to measure or ship: ``weights`` None means random initial weights; ``steps``
    is the training budget and ``step`` the step the weights are from, when recorded."""

    label: str
    config: ArchConfig
    weights: Path | None = None
    steps: int | None = None
    step: int | None = None

    @property
    def budget(self) -> str:
        """'untrained', 'unknown' (weights that record no budget), 'N steps', or 'N steps
        (weights of step M)' for a best or intermediate checkpoint."""
        if self.weights is None:
            return "untrained"
        if self.steps is None:
            return "unknown"
        at = f" (weights of step {self.step:,})" if self.step not in (None, self.steps) else ""
        return f"{self.steps:,} steps{at}"


def is_run_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / RUN_CONFIG).is_file()


def _steps(value: object) -> int | None:
    try:
        steps = int(str(value))
    except ValueError:
        return None
    return steps if steps >= 0 else None


def training_steps(weights: Path, run: Path | None = None) -> tuple[int | None, int | None]:
    """(budget, step of these weights). The budget is the steps a finished run's train.json
    records, else the ``steps`` of the weights file's header (the planned budget of a run
    still going); the step comes from the header's ``step``."""
    header = read_metadata(weights)
    step = _steps(header.get("step", ""))
    log = run / RUN_LOG if run is not None else None
    if log is not None and log.is_file():
        try:
            recorded = json.loads(log.read_text())
        except (OSError, ValueError):
            recorded = None  # a damaged summary: fall back on the header
        if isinstance(recorded, dict) and _steps(recorded.get("steps", "")) is not None:
            return _steps(recorded["steps"]), step
    return _steps(header.get("steps", "")), step


def from_run(folder: str | Path) -> Trained:
    """``RUN/``: its config.yaml with best.safetensors (last.safetensors when there is no best)."""
    run = Path(folder)
    if not is_run_folder(run):
        raise ConfigError("run", f"must be a training run folder holding {RUN_CONFIG}", str(folder))
    try:
        config = load_config(run / RUN_CONFIG)
    except RecursionError:  # YAML/JSON nested thousands deep: the parser's stack, not a config
        raise ConfigError("run", f"{RUN_CONFIG} is nested too deep to be a config",
                          str(folder)) from None
    weights = next((run / n for n in RUN_WEIGHTS if (run / n).is_file()), None)
    if weights is None:
        raise ConfigError("run", f"holds no weights ({' or '.join(RUN_WEIGHTS)})", str(folder))
    return Trained(run.resolve().name, config, weights, *training_steps(weights, run))


def from_weights_file(path: str | Path) -> Trained:
    """A ``.safetensors`` file that records its config in its header (srnas writes one)."""
    file = Path(path)
    config = weights_config(file)
    if config is None:
        raise ConfigError("weights", "record no config in their header: give the config (or "
                          "preset) with the weights file as --weights", str(path))
    return Trained(file.stem, config, file, *training_steps(file))


def is_weights_file(path: str | Path) -> bool:
    return Path(path).suffix == WEIGHTS_SUFFIX


def load_network(trained: Trained) -> SRNet:
    """The network ready for inference: built, its weights loaded (strictly: a mismatching
    tensor is named), the D4 average of the shared kernel baked in (as shipped), eval mode.
    Without weights: seeded random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        model = build_model(trained.config)
    if trained.weights is not None:
        load_weights(model, trained.weights, trained.config)
    return model.deploy().eval()


__all__ = ["RUN_CONFIG", "RUN_LOG", "RUN_WEIGHTS", "Trained", "from_run", "from_weights_file",
           "is_run_folder", "is_weights_file", "load_network", "training_steps"]
