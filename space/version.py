"""The installed srnas version, recorded in studies and exports and shown by ``--version``."""

from __future__ import annotations


def srnas_version() -> str:
    """'unknown' in a checkout that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("srnas")
    except PackageNotFoundError:
        return "unknown"


__all__ = ["srnas_version"]
