"""One way to run trials on Ray Tune, shared by ``srnas search`` and ``srnas fidelity``: join
or start Ray and size the trials (:func:`start_cluster`), then build the Tuner, run it and
remove its experiment folder (:func:`run_tuner`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from srnas.search.cluster import (
    check_cpus_per_trial,
    default_concurrency,
    gpus_per_trial,
    quiet_tune_errors,
    start_ray,
)


@dataclass(frozen=True)
class TrialResources:
    """What each trial asks Ray for, and how many run at once."""

    cpus: float
    gpus: float
    concurrency: int

    @property
    def device_kind(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"


def start_cluster(address: str | None, verbose: bool, *, cpus_per_trial: float,
                  gpus_per_trial_requested: float | None,
                  concurrency: int | None) -> TrialResources:
    """Join ``address`` (or start a local Ray), then check the per-trial request against the
    cluster: an impossible one is a one-line error here, not a trial waiting forever."""
    start_ray(address, verbose)
    gpus = gpus_per_trial(gpus_per_trial_requested)
    check_cpus_per_trial(cpus_per_trial)
    return TrialResources(cpus_per_trial, gpus,
                          concurrency or default_concurrency(cpus_per_trial, gpus))


def run_tuner(trainable: Callable[[dict[str, Any]], None], resources: TrialResources, *,
              name: str, folder_prefix: str, verbose: bool, callbacks: Sequence[Any],
              search_alg: Any = None, scheduler: Any = None, num_samples: int = 1,
              param_space: dict[str, Any] | None = None) -> None:
    """Run ``trainable`` as Tune trials until they are done (or Tune is interrupted).

    Tune's experiment state is a by-product (the results go to the study through the
    callbacks and the searcher): it lives in a temporary folder that is gone afterwards.
    Tune's ``time_budget_s`` is never set: it stops running trials and throws their compute
    away (a search's deadline stops proposing instead)."""
    from ray import tune

    experiment = tempfile.mkdtemp(prefix=folder_prefix)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": resources.cpus, "gpu": resources.gpus}),
            param_space=param_space,
            tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler,
                                        num_samples=num_samples,
                                        max_concurrent_trials=resources.concurrency,
                                        reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=experiment,
                                      verbose=1 if verbose else 0, callbacks=list(callbacks),
                                      log_to_file=True),
        )
        quiet_tune_errors(verbose)
        tuner.fit()
    finally:
        shutil.rmtree(experiment, ignore_errors=True)


__all__ = ["TrialResources", "run_tuner", "start_cluster"]
