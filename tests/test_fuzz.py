"""Hostile input, fuzzed: whatever a user feeds the config loader, the space loader or the
search flags, the answer is exit 0 or exit 2 with one line on stderr, never a traceback.

In-process through ``srnas.search.cli.main``: anything but an ``SrnasError`` propagates out of
``main`` and fails the test with hypothesis's smallest example.
"""

from __future__ import annotations

import io
import string
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srnas.search.cli import main
from tests.cli import assert_one_line

FIELDS = ["scale", "dim", "split_ratio", "kernel_size", "block_type", "dict_size", "gate",
          "shared_kernel", "n_blocks", "conv_layers", "window_attn", "window_size", "heads",
          "ffn_ratio", "first_ffn_ratio", "layer_norm", "lr", "batch_size", "patch_size",
          "schema_version", "bogus"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.text(string.printable, max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["low", "high", "log", "x"]),
                                                 inner, max_size=3)), max_leaves=6)
mappings = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)
documents = st.one_of(
    mappings.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),  # files that are not text at all
)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _one_line_or_ok(code: int, err: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith("srnas "), err
        assert_one_line(err)
    assert "Traceback" not in err


@pytest.mark.slow
@FUZZ
@given(content=documents, suffix=st.sampled_from([".yaml", ".json", ".yml"]))
def test_config_files(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"arch{suffix}"
    path.write_bytes(content)
    _one_line_or_ok(*_run(["arch", "validate", str(path)]))


@pytest.mark.slow
@FUZZ
@given(content=documents)
def test_space_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "space.yaml"
    path.write_bytes(content)
    _one_line_or_ok(*_run(["search", "--space", str(path), "--dry-run", "--trials", "1",
                           "--steps", "9"]))


# Not --trials: a dry run samples and builds that many networks by design.
FLAGS = ["--steps", "--eta", "--min-steps", "--seed", "--concurrency",
         "--max-latency-ms", "--max-params", "--input", "--scale", "--objectives", "--sampler",
         "--scheduler", "--time-budget", "--cpus-per-trial", "--train-seconds", "--val-every"]
flag_values = st.one_of(st.integers(-5, 10**12).map(str), st.floats().map(str),
                        st.text(string.printable, max_size=10),
                        st.sampled_from(["0", "-1", "1e400", "nan", "inf", "3x", "x4", "1x0",
                                         "psnr,,psnr", "", " "]))


@pytest.mark.slow
@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(FLAGS), flag_values), min_size=1, max_size=3))
def test_search_flag_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            pairs: list[tuple[str, str]]) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["search", "--dry-run", "--trials", "1"]
    for flag, value in pairs:
        argv += [f"{flag}={value}"]
    _one_line_or_ok(*_run(argv))
    assert not (tmp_path / "srnas.db").exists()  # a dry run writes nothing
