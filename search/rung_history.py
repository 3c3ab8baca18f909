"""A study's rung results as MO-ASHA ranks them, shared by every launch and every driver.

Each rung decision is written to the deciding trial (user attr ``rung_results``: {steps:
{objective: value}}) while it runs, and every trial that ended records ``rung_psnr`` beside its
cheap figures, so the study holds every rung result ever decided on. :class:`RungHistory` reads
them back: all at once when a launch starts (its seed), then incrementally and at most every
``refresh_s`` seconds: a finished trial never changes, so only new trials and the ones still
running are read again. A relaunched study, or k drivers on one PostgreSQL study, then halve
against one history, as one long run would. Storage errors never stop a search: the history
keeps what it had and says so in the log. No Ray here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import optuna

from srnas.space.contract import ATTR_RUNG_PSNR, ATTR_RUNG_RESULTS

log = logging.getLogger(__name__)

# The default refresh interval: a decision never waits on more than one read per interval.
REFRESH_S = 5.0

Vectors = dict[int, list[float]]  # rung (steps) -> the vector ranked there


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def rung_vectors(attrs: Mapping[str, Any], objectives: Sequence[str],
                 rungs: Sequence[int]) -> Vectors:
    """The vectors a trial was (or would have been) ranked by at each of ``rungs`` it reached:
    its ``rung_results`` where the scheduler wrote them, else its ``rung_psnr`` with its cheap
    figures (a study from before ``rung_results``; objectives not measured at a rung, such as
    ssim, are NaN there, as in the scheduler's own results)."""
    written = attrs.get(ATTR_RUNG_RESULTS)
    written = written if isinstance(written, Mapping) else {}
    psnrs = attrs.get(ATTR_RUNG_PSNR)
    psnrs = psnrs if isinstance(psnrs, Mapping) else {}
    out: Vectors = {}
    for rung in rungs:
        values = written.get(str(rung))
        if isinstance(values, Mapping):
            out[rung] = [_number(values.get(name)) for name in objectives]
        elif str(rung) in psnrs:
            out[rung] = [_number(psnrs[str(rung)]) if name == "psnr" else
                         (math.nan if name == "ssim" else _number(attrs.get(name)))
                         for name in objectives]
    return out


class RungHistory:
    """The rung results of one study in one storage (see the module's docstring)."""

    def __init__(self, storage: optuna.storages.BaseStorage, study_name: str,
                 objectives: Sequence[str], rungs: Sequence[int], *,
                 refresh_s: float = REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study_name)
        self.objectives, self.rungs = list(objectives), tuple(rungs)
        self.refresh_s, self.clock = refresh_s, clock
        self._finished: dict[int, Vectors] = {}  # trial number -> vectors (final)
        self._open: dict[int, Vectors] = {}  # running or waiting trials, read again
        self._seen = 0  # trial numbers below this were read at least once
        self._read_at = -math.inf
        self.reads = 0  # storage reads (for tests and the debug string)
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Read what changed, unless the last read is younger than ``refresh_s``."""
        now = self.clock()
        if not force and now - self._read_at < self.refresh_s:
            return
        self._read_at = now
        try:
            if self.reads == 0:
                trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
            else:
                trials = self._changed()
        except Exception as exc:  # a storage hiccup: decide on what is known
            log.warning("could not read the study's rung results (%s); deciding on the %d "
                        "trials read before", exc, len(self._finished) + len(self._open))
            return
        self.reads += 1
        for trial in trials:
            vectors = rung_vectors(trial.user_attrs, self.objectives, self.rungs)
            self._open.pop(trial.number, None)
            (self._finished if trial.state.is_finished() else self._open)[trial.number] = vectors
            self._seen = max(self._seen, trial.number + 1)

    def _changed(self) -> list[optuna.trial.FrozenTrial]:
        """Trials that may have changed since the last read, in a few cheap queries (a whole
        read of 1,000 trials takes ~120 ms on SQLite; ``get_n_trials`` costs as much): the
        running ones in one query, the ones that were open and ended since, one by one, and
        new numbers probed upwards until one is not there."""
        open_states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
        running = {t.number: t for t in self.storage.get_all_trials(
            self.study_id, deepcopy=False, states=open_states)}
        numbers = set(self._open) - set(running)
        number = self._seen
        while True:
            if number not in running:
                try:
                    self._trial_id(number)
                except KeyError:
                    break
                numbers.add(number)
            number += 1
        ended = [self.storage.get_trial(self._trial_id(n)) for n in sorted(numbers)]
        return [*running.values(), *ended]

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def at(self, rung: int, exclude: Collection[int] = ()) -> dict[int, list[float]]:
        """{trial number: vector} recorded at ``rung``, in trial order, but ``exclude``."""
        self.refresh()
        merged = {**self._finished, **self._open}
        return {n: merged[n][rung] for n in sorted(merged)
                if n not in exclude and rung in merged[n]}

    def publish(self, storage_trial_id: int, vectors: Mapping[int, Sequence[float]]) -> None:
        """Write a running trial's rung vectors so far (``rung_results``), for the others."""
        value = {str(rung): {name: (None if math.isnan(v) else v)
                             for name, v in zip(self.objectives, vector, strict=True)}
                 for rung, vector in vectors.items()}
        try:
            self.storage.set_trial_user_attr(storage_trial_id, ATTR_RUNG_RESULTS, value)
        except Exception as exc:  # the trial may have ended meanwhile; never fatal
            log.warning("could not record the rung results of trial %s: %s", storage_trial_id,
                        exc)

    def sizes(self) -> dict[int, int]:
        merged = {**self._finished, **self._open}
        return {r: sum(r in v for v in merged.values()) for r in self.rungs}


__all__ = ["REFRESH_S", "RungHistory", "rung_vectors"]
