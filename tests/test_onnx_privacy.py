"""An exported ONNX file carries srnas's config and nothing of the exporting machine."""

from __future__ import annotations

from pathlib import Path

import onnx

from srnas.evaluators.deploy import export_checked, read_onnx_metadata
from srnas.space import build_model, get_preset

REPO = Path(__file__).resolve().parents[1]


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g)
            for sub in attr.graphs:
                yield from _nodes(sub)


def test_export_has_no_node_metadata_and_no_path_of_this_machine(tmp_path: Path) -> None:
    model = build_model(get_preset("tiny", 2)).eval()
    path = tmp_path / "tiny.onnx"
    export_checked(model, path)
    proto = onnx.load(str(path))
    nodes = list(_nodes(proto.graph)) + [n for f in proto.functions for n in f.node]
    assert nodes, "the export has no nodes"
    assert [n.name for n in nodes if n.metadata_props or n.doc_string] == []
    data = path.read_bytes()
    # torch's exporter writes each node's stack trace: "File \"/work/main/space/network.py\"".
    for leak in (str(REPO).encode(), str(Path.home()).encode(), b"stack_trace", b".py\", line"):
        assert leak not in data, leak
    # srnas's own metadata stays: the file rebuilds its config.
    assert read_onnx_metadata(path)["srnas.arch_id"] == model.config.arch_id
