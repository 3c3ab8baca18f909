"""``studies list`` and ``pareto`` against a real PostgreSQL server (the cluster setup)."""

from __future__ import annotations

import json

import optuna
import pytest
import sqlalchemy

from srnas.search.cli import main
from tests.fabricate import make_known_study
from tests.pg import postgres_url  # noqa: F401  (the fixture, used by name below)

pytestmark = pytest.mark.postgres
optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_list_and_pareto_on_postgres(capsys, postgres_url: str) -> None:  # noqa: F811
    # A read command on an empty database says so and creates no Optuna tables in it.
    assert main(["studies", "list", "--storage", postgres_url]) == 2
    assert "empty storage" in capsys.readouterr().err
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as connection:
        assert sqlalchemy.inspect(connection).get_table_names() == []
    engine.dispose()
    make_known_study(postgres_url, "known-pg")
    assert main(["studies", "list", "--storage", postgres_url, "--format", "json"]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["name"] == "known-pg" and summary["trials"]["complete"] == 6
    assert main(["pareto", "known-pg", "--storage", postgres_url, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert sorted(t["number"] for t in document["trials"]) == [0, 1, 2, 4, 8]
    assert document["storage"] == postgres_url  # no password to mask: trust authentication
