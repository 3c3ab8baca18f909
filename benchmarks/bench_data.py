"""Training data at DIV2K scale: the decoded-folder path against the prepared store.

.venv/bin/python benchmarks/bench_data.py [--n 200] [--scale 4] [--lr-patch 64] [--batch 16]
    [--workers 2] [--workdir DIR] [--keep]
.venv/bin/python benchmarks/bench_data.py --phases STORAGE STUDY

Makes ``--n`` SYNTHETIC DIV2K-size images (2040x1356 PNG: a smooth random field plus noise,
so PNG sizes and decode times are of the order of DIV2K's; not photographs), then reports:

- store preparation time and size (bytes per megapixel);
- per-trial data set-up, before (decode the folder + build PatchSampler, what a Ray actor's
  first trial pays; later trials of that actor pay the PatchSampler) and after (the folder's
  manifest check, open the store, build StorePatchSampler);
- first-batch latency and patches per second on one core at ESC's recipe (64-pixel x4 LR
  patches, batch 16) for both samplers;
- RSS and PSS (``/proc/PID/smaps_rollup``) of two concurrent processes holding the data,
  before (each decoded the folder) and after (each mapped the store and read all of it).

Page cache warm throughout (the store was just written; dropping caches needs root and would
disturb the machine's other work), so first-batch latency is a warm-cache figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from srnas.evaluators.data import PatchSampler, load_folder
from srnas.evaluators.store import folder_manifest, open_store, prepare_store
from srnas.evaluators.store_patches import StorePatchSampler

W, H = 2040, 1356
T = TypeVar("T")


def make_images(folder: Path, n: int) -> float:
    """``n`` synthetic DIV2K-size PNGs (kept between runs in --workdir); returns MB on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"{i + 1:04d}.png"
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        small = Image.fromarray(rng.integers(0, 256, (H // 24, W // 24, 3), dtype=np.uint8))
        smooth = np.asarray(small.resize((W, H), Image.Resampling.BICUBIC), dtype=np.int16)
        noisy = smooth + rng.normal(0, 6, smooth.shape).astype(np.int16)
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, compress_level=6)
    for extra in sorted(folder.glob("*.png"))[n:]:
        extra.unlink()
    return sum(p.stat().st_size for p in folder.glob("*.png")) / 1e6


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def rate(sampler: PatchSampler | StorePatchSampler, batches: int, rounds: int = 3) -> float:
    """Patches per second: the best of ``rounds`` rounds of ``batches`` batches (the machine
    is shared; the best round is the least disturbed one)."""
    sampler.next_batch()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(batches):
            sampler.next_batch()
        best = min(best, time.perf_counter() - start)
    return batches * sampler.batch / best


# -- two concurrent holders ------------------------------------------------------------------


def child(mode: str, path: str, scale: int, patch: int, batch: int) -> None:
    """Hold the data as a trial does, say 'ready', wait for a line on stdin."""
    if mode == "before":
        sampler = PatchSampler(load_folder(path), scale, patch, batch, 0)
    else:
        store = open_store(path)
        sampler = StorePatchSampler(store, scale, patch, batch, 0)
        # A long trial touches every image sooner or later: read every page once.
        for i in range(len(store)):
            int(store.image(i).sum(dtype=np.uint64))
    sampler.next_batch()
    print("ready", flush=True)
    sys.stdin.readline()


def rollup(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB from /proc/PID/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith(":"):
            fields[parts[0][:-1]] = int(parts[1])
    return fields["Rss"] / 1024, fields["Pss"] / 1024


def two_holders(mode: str, path: Path, args: argparse.Namespace) -> list[tuple[float, float]]:
    cmd = [sys.executable, __file__, "--child", mode, "--child-path", str(path),
           "--scale", str(args.scale), "--lr-patch", str(args.lr_patch),
           "--batch", str(args.batch)]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return [rollup(p.pid) for p in procs]
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.write("\n")
                p.stdin.close()
            p.wait(timeout=60)


# -- a real search's trials --------------------------------------------------------------------


def print_phases(storage: str, study: str) -> None:
    """Each trial's ``phase_seconds`` of a study (``srnas search --train DIR`` run apart, before
    and after): what its data set-up cost against its training and the whole evaluation."""
    import optuna

    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    print(f"study {study!r}: trial, state, phase_seconds data / train / all phases (s)")
    for t in sorted(trials, key=lambda t: t.datetime_start or t.number):
        phases = t.user_attrs.get("phase_seconds") or {}
        print(f"  {t.number:3d} {t.state.name:9s} data {phases.get('data', float('nan')):7.3f}"
              f"  train {phases.get('train', float('nan')):6.2f}"
              f"  all {sum(phases.values()):6.2f}")


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--lr-patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the images and the store")
    parser.add_argument("--phases", nargs=2, metavar=("STORAGE", "STUDY"),
                        help="print the trials' phase_seconds of a study instead")
    parser.add_argument("--child", choices=["before", "after"], help=argparse.SUPPRESS)
    parser.add_argument("--child-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    patch = args.lr_patch * args.scale
    torch.set_num_threads(1)
    if args.child:
        child(args.child, args.child_path, args.scale, patch, args.batch)
        return
    if args.phases:
        print_phases(*args.phases)
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="srnas-bench-data-"))
    folder, store_path = work / "images", work / "store"
    try:
        start = time.perf_counter()
        disk_mb = make_images(folder, args.n)
        print(f"{args.n} SYNTHETIC DIV2K-size images ({W}x{H} PNG, smooth random field plus "
              f"noise, not photographs): {disk_mb:,.0f} MB of PNG "
              f"({disk_mb / args.n:.1f} MB each), made in {time.perf_counter() - start:.0f} s")
        print(f"x{args.scale}, LR patch {args.lr_patch} (HR {patch}), batch {args.batch}, "
              f"torch threads 1, {os.cpu_count()} CPUs\n")

        shutil.rmtree(store_path, ignore_errors=True)
        store, prep_s = timed(prepare_store, [folder], store_path, progress=False,
                              workers=args.workers)
        index_bytes = (store_path / "index.json").stat().st_size
        mp = store.pixels / 1e6
        print(f"store: prepared in {prep_s:.1f} s with {args.workers} decoding processes "
              f"({prep_s / args.n * 1000:.0f} ms/image wall), {store.total_bytes / 1e6:,.0f} MB "
              f"+ {index_bytes / 1e3:.0f} kB index = "
              f"{(store.total_bytes + index_bytes) / mp / 1e6:.3f} MB per megapixel")

        print("\nper-trial data set-up (s)")
        images, decode_s = timed(load_folder, folder)
        before, sampler_s = timed(PatchSampler, images, args.scale, patch, args.batch, 0)
        _, first_before = timed(before.next_batch)
        print(f"  before: decode folder {decode_s:.2f} + PatchSampler {sampler_s:.2f} = "
              f"{decode_s + sampler_s:.2f} (an actor's first trial; its later trials "
              f"{sampler_s:.2f}); first batch {first_before * 1000:.1f} ms")
        _, manifest_s = timed(folder_manifest, [folder])
        opened, open_s = timed(open_store, store_path)
        after, construct_s = timed(StorePatchSampler, opened, args.scale, patch, args.batch, 0)
        _, first_after = timed(after.next_batch)
        print(f"  after:  manifest check {manifest_s:.3f} + open store {open_s:.3f} + "
              f"StorePatchSampler {construct_s:.4f} = "
              f"{manifest_s + open_s + construct_s:.3f}; first batch {first_after * 1000:.1f} ms")
        same = all(torch.equal(a, b) for a, b in zip(
            PatchSampler(images, args.scale, patch, args.batch, 7).next_batch(),
            StorePatchSampler(opened, args.scale, patch, args.batch, 7).next_batch(),
            strict=True))
        print(f"  same batches for one seed: {same}")
        del images, before

        in_memory = PatchSampler(load_folder(folder), args.scale, patch, args.batch, 1)
        r_before = rate(in_memory, args.batches)
        del in_memory
        r_after = rate(StorePatchSampler(opened, args.scale, patch, args.batch, 1), args.batches)
        print(f"\npatches/s on one core: before {r_before:,.0f} ({r_before / args.batch:.0f} "
              f"batches/s, LR precomputed), after {r_after:,.0f} "
              f"({r_after / args.batch:.1f} batches/s, LR per patch)")

        print("\ntwo concurrent processes holding the data (MB)")
        for mode, path in (("before", folder), ("after", store_path)):
            figures = two_holders(mode, path, args)
            shown = ", ".join(f"RSS {r:,.0f} PSS {p:,.0f}" for r, p in figures)
            print(f"  {mode:6s}: {shown}; PSS total {sum(p for _, p in figures):,.0f}")
        print(f"  (decoded data: {store.total_bytes / 1e6:,.0f} MB)")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
