"""``srnas search`` bad input: one line, exit 2, nothing written (no Ray started for these)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from srnas.search.cli import main
from tests.cli import assert_one_line, assert_usage_error


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return assert_one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--sampler", "cmaes"], "--sampler: must be one of"),
        (["--objectives", "psnr,speed"], "--objectives: each must be one of"),
        (["--objectives", ""], "--objectives: needs at least one objective"),
        (["--max-latency-ms", "0"], "--max-latency-ms: must be a positive number"),
        (["--max-params", "-5"], "--max-params: must be a positive number"),
        (["--steps", "0"], "--steps: must be a positive integer"),
        (["--scale", "5"], "--scale: must be 2, 3 or 4"),
        (["--baseline", "resnet"], "--baseline: must be one of esc, esc-light, milk-light, tiny "
                                   "(got 'resnet')"),
        (["--storage", "not-a-url"], "--storage: must be a SQLAlchemy URL"),
        (["--storage", "sqlite:////nonexistent/dir/x.db"], "does not exist"),
        (["--storage", "postgresql+psycopg2://u:secret@127.0.0.1:1/db"], "cannot be opened"),
        (["--storage", "nosuchdb://x"], "--storage"),
        (["--space", "/nonexistent.yaml"], "--space: must be an existing YAML file"),
        (["--address", "127.0.0.1:1"], "--address: no Ray cluster answers there"),
        (["--time-budget", "-1"], "--time-budget: must be a positive number"),
        (["--seed", "-1"], "--seed: must be between 0 and 2**32 - 1"),
        (["--train", "/nonexistent/images"], "--train: must be an existing folder"),
        (["--val", "/nonexistent/val"], "--val: must be an existing folder"),
        (["--storage", "postgresql://u:secret@h:notaport/db"], "not a valid SQLAlchemy URL"),
        (["--scheduler", "asha"], "--scheduler: must be one of mo-asha, fifo (got 'asha')"),
        (["--eta", "1"], "--eta: must be an integer >= 2 (got 1)"),
        (["--min-steps", "0"], "--min-steps: must be a positive integer (got 0)"),
        (["--min-steps", "200"], "--min-steps: must be below --steps (200)"),
        (["--steps", "1"], "--steps: must be >= 2 with --scheduler mo-asha"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                          fragment: str) -> None:
    monkeypatch.chdir(tmp_path)
    err = assert_usage_error(capsys, "search", "--trials", "1", *argv, needles=(fragment,))
    assert err.startswith("srnas search: error: ")
    assert "secret" not in err  # a storage password is never printed
    assert not (tmp_path / "srnas.db").exists()  # nothing written


def test_a_study_with_other_objectives_is_refused_and_left_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(["psnr", "params"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2)
    assert main(["search", "--study", "s", "--storage", url, "--trials", "1"]) == 2
    assert "already optimises [psnr maximize, params minimize]" in _err(capsys)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2


def test_a_study_of_another_scale_is_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url,
                                directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["psnr", "latency_ms", "memory_mb"])
    study.set_user_attr("scale", 2)
    assert main(["search", "--study", "s", "--storage", url, "--scale", "4"]) == 2
    assert "--scale: study 's' searches x2 networks" in _err(capsys)
    assert optuna.load_study(study_name="s", storage=url).trials == []


def test_a_bad_storage_leaves_no_file_behind(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--sampler",
                 "bogus"]) == 2
    _err(capsys)
    assert not (tmp_path / "x.db").exists()


def test_dry_run_samples_and_builds_without_writing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--dry-run", "--trials", "3", "--sampler", "random"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("params" in line for line in lines)
    assert not (tmp_path / "srnas.db").exists()


def test_an_address_that_answers_but_is_not_ray_is_refused_in_seconds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_like_ssh() -> None:
        connection, _ = server.accept()
        with connection:
            connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            connection.recv(64)

    threading.Thread(target=answer_like_ssh, daemon=True).start()
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["search", "--trials", "1", "--address",
                     f"127.0.0.1:{server.getsockname()[1]}"]) == 2
    finally:
        server.close()
    err = _err(capsys)
    assert "--address: something answers there, but not a Ray cluster" in err
    assert not (tmp_path / "srnas.db").exists()


@pytest.mark.parametrize(("content", "fragment"), [
    (b"not a database at all", "file is not a database"),
])
def test_a_sqlite_file_that_is_not_a_database_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes,
        fragment: str) -> None:
    db = tmp_path / "x.db"
    db.write_bytes(content * 100)
    assert main(["search", "--trials", "1", "--storage", f"sqlite:///{db}"]) == 2
    assert fragment in _err(capsys)
    assert db.read_bytes() == content * 100  # untouched


def test_empty_or_unreadable_data_folders_are_refused_before_ray_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.chdir(tmp_path)
    empty, junk = tmp_path / "empty", tmp_path / "junk"
    empty.mkdir()
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not an image")
    was_up = ray.is_initialized()
    for folder in (empty, junk):
        assert main(["search", "--trials", "1", "--train", str(folder)]) == 2
        err = _err(capsys)
        assert str(folder) in err
    assert ray.is_initialized() == was_up  # nothing started
    assert not (tmp_path / "srnas.db").exists()
