"""The checkpoint's digest covers its header too (issue 23, item 4): an edited step, lr, info or
generator state is refused in one line, never resumed as a different run. Checkpoints of the
previous format (``srnas-checkpoint/1``: digest of the tensors only) are still accepted, by
their format, with their tensors verified as before.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from srnas.evaluators import checkpoint as ckpt
from srnas.evaluators.checkpoint import load_checkpoint, save_checkpoint
from srnas.evaluators.fit import fit
from srnas.evaluators.recipe import Recipe
from srnas.evaluators.runs import Every
from srnas.search.cli import main
from srnas.space import get_preset
from srnas.space.errors import ConfigError
from tests.cli import assert_one_line


def _rewrite_header(path: Path, edit: Callable[[dict[str, str]], None]) -> None:
    """Edit a safetensors file's string header in place (tensor bytes untouched): what a
    user with a text editor, or a script, can do."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    meta = header["__metadata__"]
    edit(meta)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + size:])


def _small(tmp_path: Path) -> Path:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return save_checkpoint(tmp_path / "c.safetensors", step=7, info={"best_psnr": 30.0},
                           groups={"model": model.state_dict()}, optimizer=optimizer)


def _set(key: str, change: Callable[[str], str]) -> Callable[[dict[str, str]], None]:
    def edit(meta: dict[str, str]) -> None:
        meta[key] = change(meta[key])
    return edit


def _times_ten_lr(text: str) -> str:
    state = json.loads(text)
    for group in state["param_groups"]:
        group["lr"] *= 10
    return json.dumps(state)


EDITS = {
    "step": _set("step", lambda v: str(int(v) + 1)),
    "info": _set("info", lambda v: json.dumps({**json.loads(v), "best_psnr": 99.0})),
    "lr": _set("optimizer", lambda v: _times_ten_lr(v)),
    "rng": _set("rng", lambda v: v.replace("[", "[ ", 1)),  # same JSON value, other text
    "extra field": lambda meta: meta.update(note="x"),
    "digest dropped": lambda meta: meta.pop("digest"),
    "as the old format": lambda meta: meta.update(format="srnas-checkpoint/1"),
}


def test_an_intact_checkpoint_loads(tmp_path: Path) -> None:
    loaded = load_checkpoint(_small(tmp_path))
    assert loaded.step == 7 and loaded.info == {"best_psnr": 30.0}
    assert loaded.optimizer["param_groups"][0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_header_is_refused(tmp_path: Path, name: str) -> None:
    path = _small(tmp_path)
    _rewrite_header(path, EDITS[name])
    with pytest.raises(ConfigError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith("checkpoint: is damaged") and "\n" not in message, message


def test_a_checkpoint_of_the_previous_format_is_accepted_with_its_tensors_verified(
        tmp_path: Path) -> None:
    path = _small(tmp_path)

    def as_v1(meta: dict[str, str]) -> None:
        from safetensors.torch import load_file

        meta.pop("digest")
        meta["format"] = "srnas-checkpoint/1"
        meta["sha256"] = ckpt.tensor_digest(load_file(str(path)))

    _rewrite_header(path, as_v1)
    assert load_checkpoint(path).step == 7
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # a tensor byte
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="do not match the digest"):
        load_checkpoint(path)


class _Stop(Exception):
    pass


def test_train_resume_refuses_an_edited_header_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    recipe = Recipe(steps=8, batch_size=2, patch_size=16, ema=0.9)

    def stop(progress: object) -> None:
        if getattr(progress, "step", 0) >= 6:
            raise _Stop  # a kill after the checkpoint of step 4

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread is many times faster here
    try:
        with pytest.raises(_Stop):
            fit(get_preset("tiny", 2), recipe, out, every=Every(checkpoint=4, validate=4, log=2),
                progress=stop)
    finally:
        torch.set_num_threads(threads)
    path = out / "checkpoint.safetensors"
    _rewrite_header(path, EDITS["lr"])
    edited = path.read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume"]) == 2
    line = assert_one_line(capsys.readouterr().err, "srnas train: error: checkpoint: ",
                           "is damaged")
    assert str(path) in line
    assert path.read_bytes() == edited
