"""Which brief-training setting ranks architectures most like long training?

Takes a study that ``srnas fidelity`` has retrained (the long PSNRs are the reference), trains
each retrained architecture again under several brief settings -- in-process with the
search's own ``evaluate``, same seed, same sampled lr/batch/patch unless the setting changes
them -- and reports Kendall tau (with its paired-bootstrap 95 % interval), Spearman rho and
the training seconds each setting costs per architecture, all measured in one run.

    .venv/bin/python benchmarks/bench_fidelity_settings.py --storage sqlite:///runs/default.db \
        --study default --long 2000 [--settings steps200,steps100,steps400,warmup]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

SETTINGS: dict[str, dict[str, Any]] = {
    "steps100": {"steps": 100},
    "steps200": {"steps": 200},  # the default search's budget
    "steps400": {"steps": 400},
    "warmup": {"steps": 200, "warmup": 20},  # 10 % linear warm-up, then cosine
    "patch64": {"steps": 200, "patch_size": 64},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--long", type=int, required=True, help="the retrained budget")
    parser.add_argument("--settings", default="steps100,steps200,steps400,warmup",
                        help=f"comma-separated, of: {', '.join(SETTINGS)}")
    args = parser.parse_args()
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"--settings: unknown setting {unknown[0]!r}; known: {', '.join(SETTINGS)}")
    from srnas.space.errors import SrnasError

    try:
        run(args.storage, args.study, args.long, names)
    except SrnasError as exc:  # a bad storage, study or budget: one line, exit 2
        parser.error(str(exc))


def run(storage_url: str, study_name: str, long: int, names: list[str]) -> None:
    import pandas as pd

    from srnas.evaluators.evaluate import DataSpec, evaluate
    from srnas.evaluators.recipe import Recipe
    from srnas.search.fidelity import recorded_data
    from srnas.space.config import from_dict
    from srnas.space.errors import StudyError
    from srnas.studies import fidelity as fid
    from srnas.studies.frame import load_study, trials_frame
    from srnas.studies.storage import open_storage

    storage = open_storage(storage_url)
    study = load_study(study_name, storage)
    sibling = fid.load_sibling(study_name, storage)
    trials = trials_frame(study)
    pairs = fid.pairs_frame(trials, long, sibling, study)
    if len(pairs) < fid.MIN_PAIRS:  # before any training, not after the first setting
        have = ", ".join(map(str, fid.budgets_measured(sibling))) or "none"
        raise StudyError("long", f"needs at least {fid.MIN_PAIRS} trials retrained at that "
                         f"budget; {study_name!r} has {len(pairs)} (budgets measured: {have})",
                         long)
    retrains = fid.retrains(sibling, long)
    arch = trials.set_index("number")["arch"]
    # The study's own data, as its retrains (the reference) trained on.
    data = DataSpec(*recorded_data(study))
    print(f"study {study_name!r}: {len(pairs)} architectures retrained for {long} steps; "
          "brief settings trained in-process on this CPU, one at a time")
    rows = []
    for name in names:
        change = SETTINGS[name]
        brief, seconds = [], []
        for number in pairs["number"]:
            attrs = retrains[int(number)].user_attrs
            recipe = {**attrs["train"], **{k: v for k, v in change.items() if k != "steps"}}
            budget = Recipe.brief(steps=change["steps"], seed=attrs["seed"], **recipe)
            result = evaluate(from_dict(arch[int(number)]), budget, data)
            brief.append(result.psnr)
            seconds.append(result.train_seconds)
        frame = pairs.copy()  # keeps the attrs agreement() reads
        frame["brief_psnr"] = brief
        frame["brief_steps"] = change["steps"]
        figures = fid.agreement(frame, top_k=3)
        rows.append({"setting": name, **change, "tau": figures["kendall_tau"],
                     "tau_ci": "{:+.2f}..{:+.2f}".format(*figures["kendall_ci"]),
                     "rho": figures["spearman_rho"],
                     "top3": f"{figures['top_k_overlap']}/3",
                     "train_s_per_arch": sum(seconds) / len(seconds)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{time.strftime('%Y-%m-%d')}, reference: PSNR after {long} steps")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

if __name__ == "__main__":
    main()
