"""Opening the study storage a command reads (``--storage``, else ``$SRNAS_STORAGE``, else
./srnas.db), shared by the commands that read studies."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage


def open_study_storage(args: argparse.Namespace) -> tuple[str, RDBStorage]:
    """(the URL, the storage) of ``args.storage``; never creates a database."""
    import optuna

    from srnas.studies.storage import open_storage, resolve_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # keep stdout to what was asked for
    url = resolve_url(args.storage)
    return url, open_storage(url)


def open_study(args: argparse.Namespace) -> tuple[str, optuna.Study]:
    """(the URL, the study ``args.study``)."""
    from srnas.studies.front import load_study

    url, store = open_study_storage(args)
    return url, load_study(args.study, store)


def require_out(args: argparse.Namespace, kinds: str) -> str:
    from srnas.space.errors import ConfigError

    if not args.out:
        raise ConfigError("out", f"is required, a {kinds} file")
    return str(args.out)


__all__ = ["open_study", "open_study_storage", "require_out"]
