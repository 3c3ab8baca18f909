"""``srnas export --onnx``: the exported graph reproduces PyTorch at sizes it was not traced at,
carries its config, and an export that does not reproduce it fails loudly and leaves nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from srnas.evaluators import deploy
from srnas.evaluators.deploy import (
    ExportCheckError,
    compare,
    config_of,
    export_checked,
    min_input_side,
    read_onnx_metadata,
    trace_hw,
)
from srnas.evaluators.weights import save_weights
from srnas.search.cli import main
from srnas.space import build_model, get_preset
from srnas.space.config import ArchConfig
from srnas.space.network import SRNet

TINY = get_preset("tiny")  # MiLK, shared kernel, window attention (8-pixel windows)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def perturbed(config: ArchConfig) -> SRNet:
    """Random weights everywhere: the zero-initialised dynamic kernels, router and gate heads
    of a fresh network would leave their paths silent and untested."""
    torch.manual_seed(0)
    net = build_model(config)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return net.deploy().eval()


def random_images(sizes: list[tuple[int, int]]) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(f"noise {h}x{w}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            for h, w in sizes]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> tuple[SRNet, Path, deploy.OnnxExport]:
    net = perturbed(TINY)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return net, path, export_checked(net, path, metadata={"srnas.model": "tiny"})


def test_export_reproduces_pytorch_at_untraced_sizes(tiny_export) -> None:
    net, path, result = tiny_export
    assert result.max_abs_diff <= 1e-4 and result.opset == 18
    traced = trace_hw(TINY)
    assert result.traced_hw == traced and all(c.input_hw != traced for c in result.checks)
    assert [c.image.split()[0] for c in result.checks] == ["chelsea", "chelsea"]
    # Window multiples (no padding), odd sizes, tall and wide, the smallest side it accepts.
    smallest = min_input_side(TINY)
    assert smallest == 5
    sizes = [(16, 24), (37, 53), (64, 40), (smallest, 9), (9, smallest)]
    checks = compare(net, path, random_images(sizes))
    assert [c.input_hw for c in checks] == sizes
    assert max(c.max_abs_diff for c in checks) <= 1e-4, checks


def test_file_is_one_deployable_graph_with_its_config(tiny_export) -> None:
    net, path, _ = tiny_export
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # weights inside, no temp
    (lr,), (sr,) = model.graph.input, model.graph.output
    dims = [d.dim_value or d.dim_param for d in lr.type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]
    assert [d.dim_value or d.dim_param for d in sr.type.tensor_type.shape.dim] == [
        1, 3, "4*height", "4*width"]
    assert config_of(path) == TINY
    meta = read_onnx_metadata(path)
    assert meta["srnas.arch_id"] == TINY.arch_id and meta["srnas.model"] == "tiny"
    assert "H and W >= 5" in meta["srnas.input"]
    # The baked kernel: no D4 averaging left in the graph (rotations would show as Transpose /
    # Slice chains on the shared kernel; the kernel is one initializer, already symmetric).
    kernel = next(i for i in model.graph.initializer if i.name == "shared_kernel")
    baked = onnx.numpy_helper.to_array(kernel)
    assert np.array_equal(baked, net.shared_kernel.detach().numpy())
    assert np.allclose(baked, np.flip(baked, -1), atol=1e-6)


def test_below_the_smallest_side_the_graph_refuses(tiny_export) -> None:
    net, path, _ = tiny_export
    with pytest.raises(Exception, match="Pad reflect"):
        compare(net, path, random_images([(4, 9)]))


def _tampered(source: Path):
    """An ``export_onnx`` that writes the good file with one bias shifted by 1e-3."""
    def fake_export(model, path, *, opset, metadata):
        model_proto = onnx.load(str(source))
        bias = next(i for i in model_proto.graph.initializer if i.name == "head.bias")
        values = onnx.numpy_helper.to_array(bias) + np.float32(1e-3)
        bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
        onnx.save(model_proto, str(path))
        return trace_hw(model.config)
    return fake_export


def test_a_differing_export_fails_loudly_and_leaves_nothing(tiny_export, tmp_path,
                                                            monkeypatch) -> None:
    net, good, _ = tiny_export
    monkeypatch.setattr(deploy, "export_onnx", _tampered(good))
    target = tmp_path / "bad.onnx"
    with pytest.raises(ExportCheckError, match=r"^onnx: onnxruntime differs from PyTorch by "
                       r"[\d.e-]+ \(tolerance 0\.0001\) on chelsea \d+x\d+; nothing written"):
        export_checked(net, target)
    assert list(tmp_path.iterdir()) == []
    # An earlier good file at the target stays as it was.
    shutil.copy(good, target)
    with pytest.raises(ExportCheckError):
        export_checked(net, target)
    assert target.read_bytes() == good.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.onnx"]


def _run_folder(folder: Path, net: SRNet) -> Path:
    folder.mkdir()
    (folder / "config.yaml").write_text(net.config.to_yaml())
    save_weights(net, folder / "best.safetensors", net.config, {"steps": "40", "step": "40"})
    return folder


def test_cli_exports_a_run_folder(capsys, tiny_export, tmp_path, monkeypatch) -> None:
    net, good, _ = tiny_export
    run_dir = _run_folder(tmp_path / "run", net)
    # The file the real exporter wrote for these weights (tested above); the check is real.

    def copy_good(model, path, **_):
        shutil.copy(good, path)
        return trace_hw(model.config)

    monkeypatch.setattr(deploy, "export_onnx", copy_good)
    out_file = tmp_path / "tiny.onnx"
    code, out, err = run(capsys, "export", str(run_dir), "--onnx", str(out_file))
    assert code == 0, err
    first, second = out.splitlines()
    assert first.startswith(f"wrote {out_file} (") and "opset 18" in first
    assert f"run, arch_id {TINY.arch_id}, x4, 40 steps" in first
    assert second.startswith("checked with onnxruntime against PyTorch: max |diff| ")
    assert "inputs need sides >= 5" in second and out_file.is_file()


def test_cli_failure_is_one_line_and_no_file(capsys, tiny_export, tmp_path,
                                             monkeypatch) -> None:
    net, good, _ = tiny_export
    monkeypatch.setattr(deploy, "export_onnx", _tampered(good))
    run_dir = _run_folder(tmp_path / "run", net)
    code, out, err = run(capsys, "export", str(run_dir), "--onnx", str(tmp_path / "m.onnx"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("srnas export: error: --onnx: onnxruntime differs from PyTorch by ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize(("argv", "needle"), [
    (["tiny", "--onnx", "m.onnx"], "--weights: model tiny has none"),
    (["tiny", "--untrained", "--onnx", "m.txt"], "--onnx: must end in .onnx"),
    (["tiny", "--untrained", "--onnx", "missing/m.onnx"], "--onnx: its folder does not exist"),
    (["tiny", "--untrained", "--onnx", "m.onnx", "--out", "a.yaml"],
     "--out: belongs to the config export (--out): run it separately"),
    (["tiny", "--untrained", "--onnx", "m.onnx", "--pick", "knee"], "--pick: belongs to"),
    (["known", "--trial", "1", "--out", "a.yaml", "--weights", "w.safetensors"],
     "--weights: belongs to the ONNX export: add --onnx FILE.onnx"),
    (["nope", "--untrained", "--onnx", "m.onnx"], "STUDY: must be a preset"),
    (["tiny", "--untrained", "--onnx", "m.onnx", "--check-image", "no.png"],
     "image file does not exist"),
])
def test_bad_export_input_is_one_line(capsys, tmp_path, monkeypatch, argv, needle) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "export", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert needle in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_convattn_without_window_attention_round_trips(tmp_path) -> None:
    """ESC's ConvAttn (shared kernel + dynamic 3x3), no window attention: any side >= 2."""
    config = TINY.replace(block_type="convattn", dict_size=None, gate=None, window_attn=False)
    net = perturbed(config)
    result = export_checked(net, tmp_path / "convattn.onnx")
    assert result.max_abs_diff <= 1e-4 and result.min_side == 2
    checks = compare(net, tmp_path / "convattn.onnx", random_images([(2, 3), (31, 17)]))
    assert max(c.max_abs_diff for c in checks) <= 1e-4, checks
