"""``srnas data prepare`` and ``srnas data info``: the prepared training store
(:mod:`evaluators.store`) made ahead of a search, and what one holds.

Trials prepare their node's store themselves on first use; ``prepare`` is for doing it once,
ahead: into the cache a search's trials will look in (no ``--out``: ``$SRNAS_CACHE``, else the
platform's cache folder), or into ``--out STORE`` on shared storage, which ``--train STORE``
then reads as it is."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srnas.search.commands.args import (
    Args,
    Subcommands,
    add_format,
    command,
    positive_int,
)

if TYPE_CHECKING:  # numpy and PIL load only when the command runs
    from srnas.evaluators.store import TrainStore

def register(sub: Subcommands, name: str) -> list[Args]:
    data = command(sub, name, help="prepare a training store ahead of a search (decoded once, "
                   "memory-mapped by every trial of a node) or show what one holds")
    actions = data.subcommands("SUBCOMMAND", dest="data_command")
    prepare = command(
        actions, "prepare", path=(name,), help="decode training folders into a store",
        description="Decode every image of DIR... (sub-folders included, in a stable order) "
        "into a training store: one flat uint8 file plus a verified index, which every trial "
        "and srnas train on a node memory-maps and shares. Without --out it goes where a "
        "search's trials on this machine look for it ($SRNAS_CACHE, else the platform's cache "
        "folder); an up-to-date store is left as it is, a changed folder's is rebuilt.")
    prepare.add("dirs", nargs="+", metavar="DIR", fields=("train",),
                help="training folders (the same, in the same order, as the search's --train)")
    prepare.add("--out", metavar="STORE", help="write the store here (e.g. on the shared "
                "filesystem; then pass --train STORE) instead of the cache")
    prepare.add("--workers", type=positive_int, help="decoding processes (default: the CPUs, at "
                "most 8)")
    prepare.run(_prepare)
    info = command(actions, "info", path=(name,), help="what a store holds",
                   description="Folders, images, pixels, bytes, scales, manifest key, when "
                   "and by which srnas a store was made. PATH is a store, or the training "
                   "folders whose store in the cache to show.")
    info.add("paths", nargs="+", metavar="PATH", fields=("store",),
             help="a store (srnas data prepare --out), or training folders")
    info.add("--verify", action="store_true", help="also read every byte and check the "
             "pixels against the index (reads the whole store)")
    add_format(info)
    info.run(_info)
    return [prepare, info]


def _prepare(args: argparse.Namespace) -> int:
    from srnas.evaluators.store import (
        CACHE_ENV,
        folder_manifest,
        prepare_store,
        store_path_for,
    )
    from srnas.evaluators.train_folders import check_train_folders

    folders = check_train_folders(_existing(args.dirs, "train"))
    out = Path(args.out) if args.out is not None else store_path_for(folders)
    up_to_date = _current(out, folder_manifest(folders))
    started = time.perf_counter()
    store = prepare_store(folders, out, workers=args.workers,
                          field="out" if args.out is not None else CACHE_ENV)
    seconds = time.perf_counter() - started
    if up_to_date:
        print(f"srnas data prepare: {out} is up to date")
    else:
        print(f"srnas data prepare: prepared {out} in {seconds:.1f} s")
    print(_summary(store))
    if args.out is not None:
        print(f"  train from it with --train {out}")
    return 0


def _existing(paths: list[str], field: str) -> list[Path]:
    # Checked here, not by the argument's type: argparse would check a positional before it
    # reports an unknown flag.
    from srnas.space.errors import DataError

    for path in paths:
        if not Path(path).is_dir():
            raise DataError(field, "must be an existing folder", path)
    return [Path(p) for p in paths]


def _current(out: Path, manifest: str) -> bool:
    from srnas.evaluators.store import open_store
    from srnas.space.errors import DataError

    try:
        return open_store(out).manifest_digest == manifest
    except DataError:
        return False


def _summary(store: TrainStore) -> str:
    mp = store.pixels / 1e6
    return (f"  {len(store)} images, {mp:,.2f} megapixels, {store.total_bytes / 1e6:,.1f} MB "
            f"({store.total_bytes / mp / 1e6:.3f} MB per megapixel)")


def _info(args: argparse.Namespace) -> int:
    from srnas.evaluators.store import open_store, store_path_for
    from srnas.evaluators.store_format import is_store
    from srnas.space.errors import DataError

    paths = _existing(args.paths, "store")
    if len(paths) == 1 and is_store(paths[0]):
        store = open_store(paths[0])
    else:
        where = store_path_for(paths)
        if not is_store(where):
            raise DataError("store", "no store of these folders in the cache (run srnas data "
                            f"prepare {' '.join(map(str, paths))})", str(where))
        store = open_store(where)
    if args.verify:
        store.verify_data()
    report = _report(store, verified=args.verify)
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    rows = [
        ("store", report["path"]),
        ("folders", ", ".join(report["folders"])),
        ("images", f"{report['images']:,} (smallest {report['smallest']}, largest "
         f"{report['largest']})"),
        ("pixels", f"{report['megapixels']:,.2f} megapixels"),
        ("bytes", f"{report['bytes']:,} ({report['bytes_per_megapixel'] / 1e6:.3f} MB per "
         "megapixel; RGB uint8, stored whole)"),
        ("scales", "any: images are stored whole and cropped to the scale when sampled"),
        ("manifest", f"{report['manifest_digest']} (names, sizes, modification times of the "
         "folders' files)"),
        ("created", f"{report['created']} by srnas {report['srnas']} (format "
         f"{report['format_version']})"),
        ("pixels checked", "yes, they match the index" if args.verify else "no (--verify)"),
    ]
    if args.format == "table":
        print("\n".join(f"{key:15s}{value}" for key, value in rows))
    elif args.format == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([("field", "value"), *rows])
        sys.stdout.write(out.getvalue())
    else:  # markdown
        bar = "\\|"  # a | inside a Markdown cell
        print("\n".join(["| field | value |", "|---|---|",
                         *(f"| {k} | {v.replace('|', bar)} |" for k, v in rows)]))
    return 0


def _report(store: TrainStore, *, verified: bool) -> dict[str, Any]:
    info = store.info()
    hw = store.shapes[:, :2]
    areas = hw[:, 0] * hw[:, 1]
    small, large = hw[int(areas.argmin())], hw[int(areas.argmax())]
    return {**info, "bytes_per_megapixel": store.total_bytes / (store.pixels / 1e6),
            "smallest": f"{small[1]}x{small[0]}", "largest": f"{large[1]}x{large[0]}",
            "scales": "any", "verified": verified}
