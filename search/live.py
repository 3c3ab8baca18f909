"""The live view of a running search: one line per finished trial, plus the final table."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import optuna
from ray.tune import Callback

from srnas.space.contract import STATUS_FAILED, STATUS_INFEASIBLE, STATUS_RUNG, STATUS_TRAINING


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """Counts by state, front size and best feasible PSNR, read from the study itself."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    infeasible = [t for t in done if t.user_attrs.get("status") == STATUS_INFEASIBLE
                  or any(v > 0 for v in t.constraints.values())]
    front_size, psnrs = _front(study) if done else (0, [])
    return {"complete": len(done), "failed": len(failed), "running": len(running),
            "stopped": len(stopped),
            "infeasible": len(infeasible), "front": front_size,
            "best_psnr": max(psnrs) if psnrs else None}


def _front(study: optuna.Study) -> tuple[int, list[float]]:
    """Size and PSNRs of the study's front as ``srnas pareto`` draws it (feasible, above
    bicubic); Optuna's own ``best_trials`` where that front cannot be drawn yet (e.g. trials
    on more than one device)."""
    from srnas.space.errors import SrnasError
    from srnas.studies.front import pareto_front

    try:
        front = pareto_front(study)
        return len(front), [float(v) for v in front["psnr"].dropna()]
    except SrnasError:
        best = study.best_trials
        return len(best), [t.user_attrs["psnr"] for t in best
                           if isinstance(t.user_attrs.get("psnr"), int | float)
                           and t.user_attrs.get("status") != STATUS_INFEASIBLE]


# Tune colours parts of a worker's traceback.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The line naming the exception a trace ends in: ``ValueError: bad thing``.
_RAISED = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Interrupt|Exit))"
                     r"(?::\s*(.*))?$")


def worker_failure(trial: Any) -> str:
    """Why a trial's Ray worker failed, in one line (its traceback stays in Ray's logs).

    Read from the text Tune writes for a failed trial on the driver, found through the public
    ``Trial.error_file``: the callback is handed no exception, and Tune's readers
    (``Trial.get_error``) look in the synced storage, where the file is not yet."""
    try:
        path = trial.error_file
        text = _read_text(path) if path and os.path.exists(path) else None
    except Exception:  # an unreadable error file: the generic reason
        text = None
    if not text:
        return "its Ray worker failed (see the Ray logs)"
    text = _ANSI.sub("", text)
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("Failure # ")]
    names = set(re.findall(r"\b(\w+Error)\b", text))
    if ("OutOfMemoryError" in names or "out of memory" in text.lower()
            or "running low on memory" in text.lower()):
        return "out of memory: Ray's memory monitor or the device ran out of memory"
    if names & {"ActorDiedError", "RayActorError", "WorkerCrashedError",
                "ActorUnavailableError"} or re.search(r"actor died|worker died|crashed", text,
                                                      re.IGNORECASE):
        signal_ = re.search(r"signal (\d+)|SIG[A-Z]+", text)
        how = f" ({signal_.group(0)})" if signal_ else ""
        return f"worker process died{how}"
    # A traceback ends in the exception it raised; else the first line says what happened.
    raised = next((m for m in map(_RAISED.match, reversed(lines)) if m), None)
    if raised:
        return f"{raised.group(1)}: {raised.group(2) or ''}".rstrip(": ")[:300]
    return (lines[0] if lines else "its Ray worker failed (see the Ray logs)")[:300]


class RetrainView(Callback):
    """The live view of ``srnas fidelity``: records each retrain (``record``) as it ends, so a
    killed run keeps every finished one, and prints one line per event."""

    def __init__(self, sibling: optuna.Study, steps: int, out: TextIO,
                 record: Callable[..., bool]) -> None:
        self.sibling, self.steps, self.out, self.record = sibling, steps, out, record
        self.completed = 0
        self.failed: list[tuple[int, str]] = []
        self.started = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state: the study's storage (and its
        # URL, which may hold a password) must not land there.
        return {k: v for k, v in self.__dict__.items() if k not in ("sibling", "out")}

    def _line(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.0f}s] {text}", file=self.out, flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if result.get("status") == STATUS_TRAINING:
            job = trial.config["job"]
            self._line(f"trial {job['source_trial']:>4} step {result['step']}/{self.steps}: "
                       f"psnr {result['psnr']:.2f} dB")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        job = trial.config["job"]
        result = trial.last_result
        if self.record(self.sibling, job, self.steps, result):
            self.completed += 1
            self._line(f"trial {job['source_trial']:>4} done: {job['brief_psnr']:.2f} dB after "
                       f"{job['brief_steps']} steps -> {result['psnr']:.2f} dB after "
                       f"{self.steps}")
        else:
            reason = (result or {}).get("failure_reason") or "no result"
            self.failed.append((job["source_trial"], reason))
            self._line(f"trial {job['source_trial']:>4} failed: {reason}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        job = trial.config["job"]
        reason = worker_failure(trial)
        self.record(self.sibling, job, self.steps, None, error=reason)
        self.failed.append((job["source_trial"], reason))
        self._line(f"trial {job['source_trial']:>4} failed: {reason}")


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


class LiveView(Callback):
    """Prints a status line each time a trial ends (plain lines: readable in logs and CI)."""

    def __init__(self, study: optuna.Study, total: int, out: TextIO | None = None,
                 searcher: Any = None) -> None:
        self.study, self.total, self.out, self.searcher = study, total, out, searcher
        self.started = time.monotonic()
        self.finished = 0

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; a stream cannot be pickled.
        return {**self.__dict__, "out": None}

    def _line(self, trial: Any, result: dict | None, error: bool) -> None:
        self.finished += 1
        s = study_summary(self.study)
        result = result or {}
        status = "error" if error else result.get("status", "?")
        what = result.get("arch_id", "?")
        if status == STATUS_RUNG:  # the scheduler stopped it at this rung
            status = f"stopped at rung {result.get('step', '?')}"
            psnr = result.get("psnr")
            detail = f"psnr {psnr:.2f} dB" if isinstance(psnr, float) else ""
        elif status == STATUS_FAILED or error:
            detail = result.get("failure_reason", "raised in its worker")
        elif status == STATUS_INFEASIBLE:
            detail = result.get("infeasible_reason", "")
        else:
            psnr = result.get("psnr")
            detail = (f"psnr {psnr:.2f} dB, {result.get('latency_ms', 0):.1f} ms, "
                      f"{result.get('memory_mb', 0):.1f} MB, {result.get('params', 0):,} params"
                      if isinstance(psnr, float) else "")
        best = f"{s['best_psnr']:.2f} dB" if s["best_psnr"] is not None else "-"
        print(f"[{time.monotonic() - self.started:6.0f}s] {self.finished}/{self.total} "
              f"{what} {status}: {detail} | done {s['complete']} stopped {s['stopped']} "
              f"running {s['running']} failed {s['failed']} front {s['front']} best psnr "
              f"{best}", file=self.out or sys.stdout, flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        # Rung decisions: Tune marks a result ``done`` when the scheduler stopped the trial
        # (that trial's line follows when it completes); a continuing trial gets a line here.
        if result.get("status") != STATUS_RUNG or result.get("done"):
            return
        psnr = result.get("psnr")
        shown = f"{psnr:.2f} dB" if isinstance(psnr, float) else "?"
        print(f"[{time.monotonic() - self.started:6.0f}s] {result.get('arch_id', trial)} rung "
              f"{result.get('step', '?')}: psnr {shown} -> continues",
              file=self.out or sys.stdout, flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, trial.last_result, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        reason = worker_failure(trial)
        if self.searcher is not None:
            self.searcher.close_errored(trial.trial_id, reason)
        self._line(trial, {**(trial.last_result or {}), "failure_reason": reason}, error=True)
