"""``srnas export``: the exported file rebuilds the recorded network (round trip through
space/), carries masked provenance, and every bad input is one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from srnas.search.cli import main
from srnas.space import get_preset, load_config
from srnas.space.config import from_dict
from srnas.space.errors import ConfigError, StudyError
from srnas.studies.export import export_document, export_trial, find_trial
from tests.fabricate import fake_trial, make_known_study, make_mixed_study, make_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
INPUT_HW = (16, 16)  # small, so counting FLOPs stays fast


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('export') / 'srnas.db'}"
    make_known_study(url, "known")
    return url


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory) -> str:
    """Trials whose params/FLOPs were really measured (as the search records them)."""
    from srnas.space.complexity import complexity

    url = f"sqlite:///{tmp_path_factory.mktemp('tiny') / 'srnas.db'}"
    study = make_study(url, "tiny")
    tiny = get_preset("tiny")
    for psnr, latency, config in [(27.0, 2.0, tiny),
                                  (27.5, 3.0, tiny.replace(kernel_size=9, n_blocks=2))]:
        figures = complexity(config, INPUT_HW)
        fake_trial(study, psnr=psnr, latency_ms=latency, memory_mb=10.0, arch=config,
                   params=figures["params"], flops=figures["flops"],
                   extra={"input_hw": list(INPUT_HW)})
    return url


def test_round_trip_rebuilds_the_recorded_network(capsys, tiny_db, tmp_path) -> None:
    out = tmp_path / "best.yaml"
    code, stdout, _ = run(capsys, "export", "tiny", "--pick", "max-psnr", "--storage", tiny_db,
                          "--out", str(out))
    assert code == 0 and "trial 1" in stdout
    trial = find_trial(optuna.load_study(study_name="tiny", storage=tiny_db), 1)
    config = load_config(out)
    assert config.arch_id == trial.user_attrs["arch_id"]
    assert config == from_dict(trial.user_attrs["arch"])
    # `srnas arch show FILE` reports what the study recorded.
    # No --input: an export's recorded measurement input is the default.
    code, stdout, _ = run(capsys, "arch", "show", str(out), "--json")
    shown = json.loads(stdout)
    assert shown["input_hw"] == list(INPUT_HW)
    assert code == 0 and shown["arch_id"] == config.arch_id
    assert (shown["params"], shown["flops"]) == (trial.user_attrs["params"],
                                                 trial.user_attrs["flops"])


def test_json_export_with_provenance(capsys, db, tmp_path) -> None:
    out = tmp_path / "knee.json"
    code, _, _ = run(capsys, "export", "known", "--pick", "knee", "--max-latency-ms", "15",
                     "--storage", db, "--out", str(out))
    assert code == 0
    document = json.loads(out.read_text())
    provenance = document["provenance"]
    assert provenance["trial"] == 2 and provenance["study"] == "known"
    assert provenance["storage"] == db
    assert provenance["measured"]["psnr"] == 29.0
    assert provenance["measured"]["latency_ms"] == 5.0
    assert provenance["device"] == "cpu: test" and provenance["feasible"] is True
    assert provenance["selection"] == {"pick": "knee", "budgets": {"latency_ms": 15.0},
                                       "device": None, "input_hw": None, "front_size": 2}
    assert provenance["searched_params"]["dim"] == 32
    assert {"srnas", "optuna", "python"} <= set(provenance["exported_with"])
    assert provenance["arch_id"] == from_dict(document["arch"]).arch_id
    assert load_config(out).arch_id == provenance["arch_id"]
    assert [p.name for p in tmp_path.iterdir()] == ["knee.json"]  # no temporary left behind


def test_baseline_and_masked_password(db) -> None:
    study = optuna.load_study(study_name="known", storage=db)
    document = export_document(study, find_trial(study, 8),
                               storage_url="postgresql+psycopg2://srnas:s3cret@db:5432/nas")
    provenance = document["provenance"]
    assert provenance["storage"] == "postgresql+psycopg2://srnas:***@db:5432/nas"
    assert provenance["baseline"] == "esc-light"
    assert "s3cret" not in yaml.safe_dump(document)


def test_export_overwrites_atomically(capsys, db, tmp_path) -> None:
    out = tmp_path / "arch.yml"
    out.write_text("old")
    assert run(capsys, "export", "known", "--trial", "0", "--storage", db, "--out",
               str(out))[0] == 0
    assert out.read_text().startswith("# srnas architecture export")
    assert yaml.safe_load(out.read_text())["provenance"]["trial"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["arch.yml"]


@pytest.mark.parametrize(("argv", "needle"), [
    (["--trial", "6"], "--trial: trial 6 failed: non-finite loss"),
    (["--trial", "7"], "--trial: trial 7 is still running"),
    (["--trial", "9"], "--trial: trial 9 was pruned"),
    (["--trial", "99"], "--trial: study 'known' has no trial of that number (trials: 0..9)"),
    (["--trial", "x"], "--trial: must be a trial number"),
    (["--trial", "1", "--pick", "knee"], "--trial/--pick: give exactly one of them, not both"),
    ([], "--trial/--pick: give exactly one of them"),
    (["--pick", "cheapest"], "--pick: must be one of knee, max-psnr, min-latency, min-memory"),
    (["--pick", "knee", "--max-latency-ms", "1"], "smallest value that admits one is 5"),
    (["--trial", "1", "--max-latency-ms", "15"], "--max-latency-ms: trial 1 has latency_ms 20"),
    (["--trial", "1", "--device", "tpu"], "--device: trial 1 was measured on 'cpu: test'"),
    (["--trial", "1", "--input", "90x160"], "--input: trial 1 was measured at input 180x320 "
                                            "(got '90x160')"),
    (["--trial", "1", "--input", "90"], "--input: must be HxW"),
    (["--pick", "knee", "--input", "90x160"], "--input: no feasible complete trial was "
                                              "measured at it; inputs: 180x320"),
])
def test_bad_selection_is_one_line(capsys, db, tmp_path, argv, needle) -> None:
    out = tmp_path / "x.yaml"
    code, stdout, err = run(capsys, "export", "known", *argv, "--storage", db, "--out",
                            str(out))
    assert code == 2 and stdout == "" and err.count("\n") == 1, err
    assert err.startswith("srnas export: error: ") and needle in err
    assert not out.exists()


@pytest.mark.parametrize(("out", "needle"), [
    ("missing-folder/x.yaml", "--out: its folder does not exist"),
    ("x.txt", "--out: must end in .yaml or .yml or .json"),
    (".", "--out: must end in"),
    ("/proc/srnas-export.yaml", "--out: cannot be written"),  # not writable, even for root
])
def test_bad_out_is_one_line(capsys, db, tmp_path, monkeypatch, out, needle) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "export", "known", "--trial", "0", "--storage", db, "--out", out)
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert list(Path(tmp_path).iterdir()) == []


def test_out_that_is_a_folder(capsys, db, tmp_path) -> None:
    folder = tmp_path / "a.yaml"
    folder.mkdir()
    code, _, err = run(capsys, "export", "known", "--trial", "0", "--storage", db, "--out",
                       str(folder))
    assert code == 2 and "--out: is a folder" in err


@pytest.fixture(scope="module")
def mixed_db(tmp_path_factory) -> str:
    """One study measured on two devices and, on the H100, at two inputs."""
    url = f"sqlite:///{tmp_path_factory.mktemp('mixed') / 'srnas.db'}"
    make_mixed_study(url)
    return url


def test_pick_on_a_mixed_study_is_refused_until_narrowed(capsys, mixed_db, tmp_path) -> None:
    out = tmp_path / "pick.json"
    code, stdout, err = run(capsys, "export", "mixed", "--pick", "min-latency", "--storage",
                            mixed_db, "--out", str(out))
    assert code == 2 and stdout == "" and err.count("\n") == 1, err
    assert err.startswith("srnas export: error: STUDY: the feasible complete trials of mixed "
                          "were measured on 2 devices (cpu: AMD EPYC; cuda: NVIDIA H100) and 2 "
                          "latency inputs (90x160, 180x320)")
    assert "--device NAME" in err and "--input HxW" in err
    assert not out.exists()
    code, stdout, err = run(capsys, "export", "mixed", "--pick", "min-latency", "--device",
                            "H100", "--input", "180x320", "--storage", mixed_db, "--out",
                            str(out))
    assert code == 0, err
    provenance = json.loads(out.read_text())["provenance"]
    assert provenance["trial"] == 1 and provenance["device"] == "cuda: NVIDIA H100"
    assert provenance["selection"]["input_hw"] == "180x320"
    assert provenance["selection"]["device"] == "H100"
    # A trial number ranks nothing: no narrowing needed.
    assert run(capsys, "export", "mixed", "--trial", "2", "--storage", mixed_db, "--out",
               str(out))[0] == 0


def test_library_errors_name_arguments(mixed_db, db, tmp_path) -> None:
    study = optuna.load_study(study_name="mixed", storage=mixed_db)
    with pytest.raises(StudyError, match=r"^study: the feasible complete trials of mixed"):
        export_trial(study, "knee", tmp_path / "x.yaml")
    document = export_trial(study, "knee", tmp_path / "x.yaml", device="cpu")
    assert document["provenance"]["trial"] == 0
    with pytest.raises(StudyError, match=r"^input_hw: trial 0 was measured at input 180x320"):
        export_trial(study, 0, tmp_path / "x.yaml", input_hw=(90, 160))
    with pytest.raises(ConfigError, match=r"^pick: must be one of"):
        export_trial(study, "best", tmp_path / "x.yaml")
    with pytest.raises(ConfigError, match=r"^out: must end in \.yaml or \.yml or \.json"):
        export_trial(study, 0, tmp_path / "x.txt")
    known = optuna.load_study(study_name="known", storage=db)
    with pytest.raises(StudyError, match=r"^trial: trial 6 failed"):
        find_trial(known, 6)
    with pytest.raises(StudyError, match=r"^max_latency_ms: trial 1 has latency_ms 20"):
        export_trial(known, 1, tmp_path / "x.yaml", budgets={"latency_ms": 15})
