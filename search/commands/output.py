"""Data a command prints, as csv, json or markdown, for the commands whose library has no
renderer of its own for that format."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def frame_markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' ``to_markdown``, through tabulate: a dependency of srnas)."""
    return frame.to_markdown(index=False) + "\n"


def records_text(records: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """Flat records (nested fields dotted: ``arch.dim``) as csv, json or markdown."""
    if fmt == "json":
        return json.dumps(list(records) if len(records) != 1 else records[0]) + "\n"
    import pandas as pd

    frame = pd.json_normalize([dict(r) for r in records])
    if fmt == "csv":
        return frame.to_csv(index=False)
    return frame_markdown(frame)


__all__ = ["frame_markdown", "records_text"]
