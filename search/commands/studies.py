"""``srnas studies list``: every study of a storage."""

from __future__ import annotations

import argparse
import sys

from srnas.search.commands.args import Args, Subcommands, add_format, add_storage, command


def register(sub: Subcommands, name: str) -> list[Args]:
    studies = command(sub, name, help="list the studies of a storage")
    actions = studies.subcommands("SUBCOMMAND", dest="studies_command")
    listing = command(actions, "list", path=(name,), help="name, objectives, trials by state, "
                      "best PSNR, devices, last update of every study")
    add_storage(listing)
    add_format(listing)
    listing.add("--fix-stale", action="store_true",
                help="first fail the RUNNING trials whose driver died (no heartbeat for 4 "
                "heartbeat intervals, 120 s by default; a live driver's trials are never "
                "touched)")
    listing.run(_list)
    return [listing]


def _list(args: argparse.Namespace) -> int:
    from srnas.search.commands.reading import open_study_storage
    from srnas.studies import render
    from srnas.studies.listing import list_studies

    _, store = open_study_storage(args)
    if args.fix_stale:
        import optuna

        from srnas.studies.stale import fail_stale_trials
        from srnas.studies.storage import open_storage

        beating = open_storage(args.storage, heartbeat=True)
        for name in optuna.get_all_study_names(beating):
            lost = fail_stale_trials(name, beating)
            if lost:
                print(f"{name}: failed {len(lost)} trial(s) whose driver died (lost "
                      f"heartbeat): {', '.join(map(str, lost))}", file=sys.stderr)
    summaries = list_studies(store)
    renderers = {"table": render.list_table, "csv": render.list_csv,
                 "json": render.list_json, "markdown": render.list_markdown}
    text = renderers[args.format](summaries)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
