"""The live view of a running search: one line per finished trial, plus the final table."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import optuna
from ray.tune import Callback

from srnas.space.contract import STATUS_FAILED, STATUS_INFEASIBLE, STATUS_RUNG


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """Counts by state, front size and best feasible PSNR, read from the study itself."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    infeasible = [t for t in done if t.user_attrs.get("status") == STATUS_INFEASIBLE
                  or any(v > 0 for v in t.constraints.values())]
    front = study.best_trials if done else []
    psnrs = [t.user_attrs["psnr"] for t in front
             if isinstance(t.user_attrs.get("psnr"), int | float)
             and t.user_attrs.get("status") != STATUS_INFEASIBLE]
    return {"complete": len(done), "failed": len(failed), "running": len(running),
            "stopped": len(stopped),
            "infeasible": len(infeasible), "front": len(front),
            "best_psnr": max(psnrs) if psnrs else None}


class LiveView(Callback):
    """Prints a status line each time a trial ends (plain lines: readable in logs and CI)."""

    def __init__(self, study: optuna.Study, total: int, out: TextIO | None = None) -> None:
        self.study, self.total, self.out = study, total, out
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
        self._line(trial, trial.last_result, error=True)
