"""A throwaway PostgreSQL server for tests: ``postgres_server()`` and the session fixture
``postgres_url``.

Use it from a test module with ``from tests.pg import postgres_url`` (or once for the whole
suite, in tests/conftest.py). The server runs from ``initdb`` / ``pg_ctl`` on PATH in a fresh
temporary folder, listens on a free loopback port with trust authentication, and is stopped and
deleted afterwards. initdb refuses to run as root, so as root it runs as the ``postgres`` user.
Without initdb (or without a ``postgres`` user when root) the tests that need it are skipped,
except in CI (``CI=true``), where they fail with a one-line reason instead: the storage tests
must not vanish silently there. A server that cannot start fails the tests in CI with a one-line
reason too (outside CI the error propagates as it is).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

DATABASE = "srnas_test"
START_TIMEOUT_S = 30


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def unavailable(reason: str) -> NoReturn:
    """Skip a PostgreSQL test that cannot run here; in CI, fail it instead."""
    if in_ci():
        pytest.fail(f"PostgreSQL test cannot run in CI (CI=true): {_one_line(reason)}",
                    pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runner() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs server tools as a non-root user, and that user."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        unavailable("running as root and there is no 'postgres' user for initdb")
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--"], user
    su = shutil.which("su")
    if not su:
        unavailable("running as root with neither runuser nor su to drop to 'postgres'")
    # Options first and "--" before the user: su parses options anywhere on its command line,
    # so the tool's own options (initdb -D ...) must come after the end of su's options.
    return [su, "-s", "/bin/sh", "-c", 'exec "$0" "$@"', "--", "postgres"], user


def _run(prefix: list[str], command: list[str]) -> None:
    done = subprocess.run([*prefix, *command], capture_output=True, text=True,
                          timeout=START_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed "
                           f"({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")


@contextmanager
def postgres_server(database: str = DATABASE) -> Iterator[str]:
    """Start a server, create ``database``, yield its SQLAlchemy URL, stop it."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        unavailable("initdb/pg_ctl not on PATH (PostgreSQL server not installed)")
    prefix, user = _runner()
    # Directly under the system temp folder: pytest's tmp dirs are 0700 root, which the
    # postgres user could not enter.
    root = Path(tempfile.mkdtemp(prefix="srnas-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, log = root / "data", root / "server.log"
    started = False
    try:
        try:
            _run(prefix, [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
                  "UTF8", "--no-sync"])
            for _attempt in range(3):  # the free port can be taken between probe and start
                port = _free_port()
                options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                           f"-c full_page_writes=off")
                try:
                    _run(prefix, [pg_ctl, "-D", str(data), "-l", str(log), "-o", options,
                          "-w", "-t", str(START_TIMEOUT_S), "start"])
                    started = True
                    break
                except RuntimeError:
                    continue
            if not started:
                tail = log.read_text()[-800:] if log.exists() else ""
                raise RuntimeError(f"PostgreSQL did not start: {tail}")
            _create_database(port, database)
        except Exception as exc:  # the server is missing a piece or cannot start
            if in_ci():
                unavailable(f"{type(exc).__name__}: {exc}")
            raise
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=START_TIMEOUT_S, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _create_database(port: int, database: str) -> None:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres",
                                  dbname="postgres")
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database}"')
    finally:
        connection.close()


def fresh_database(url: str, database: str) -> str:
    """A new, empty database on the server of ``url`` (for tests that need Optuna's schema not
    to exist yet); returns its URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    _create_database(int(parsed.port or 5432), database)
    return parsed.set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of an empty database on a throwaway PostgreSQL server."""
    with postgres_server() as url:
        yield url
