"""``status``'s output: the documented JSON and the table.

No cluster: the objects are built in the shape the API returns (tests/status_objects.py), and the
reader talks to a fake client that records each call.
"""

import io
import json
import re
from pathlib import Path

import status_objects as so
from status_objects import report


from prepull.status.report import FAILED, NOT_SCHEDULED, PRESENT, PULLING
from prepull.status.view import duration, report_json, size, table

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- JSON and the table


def mixed_report():
    """Two DaemonSets, four nodes, given in reverse order: present, failed, pulling, not scheduled, gated."""
    general, gated = so.daemon_set(), so.gated_daemon_set()
    python = so.init_names(general)[1]
    nodes = [
        so.node("n4", taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]),
        so.node("n3"),
        so.node("n2"),
        so.node("n1", taints=[dict(so.GATE_TAINT)]),
    ]
    pods = [
        so.pod(general, "n3", [so.terminated(2, 3), so.waiting(), so.waiting()]),
        so.pod(general, "n2", [so.terminated(2, 3), so.terminated(4, 5), so.waiting("ErrImagePull", so.NOT_FOUND)]),
        so.pod(general, "n1"),
        so.pod(gated, "n1"),
        so.pod(gated, "n2"),
        so.pod(gated, "n3"),
    ]
    events = [so.pulled(pods[2], python, so.PYTHON, "1.234s", size=1000)]
    return report([gated, general], pods, nodes, events)


def test_json_is_the_documented_structure_sorted_and_stable():
    doc = report_json(mixed_report())
    assert (doc["apiVersion"], doc["kind"], doc["namespace"], doc["state"]) == ("prepull.dev/v1alpha1", "PrePullStatus", "prepull", FAILED)
    assert [d["name"] for d in doc["daemonSets"]] == ["gated", "general"]
    general = doc["daemonSets"][1]
    assert [n["name"] for n in general["nodes"]] == ["n1", "n2", "n3", "n4"]
    assert (general["nodesSelected"], general["nodesTargeted"], general["nodesPresent"]) == (4, 3, 1)
    assert [n["state"] for n in general["nodes"]] == [PRESENT, FAILED, PULLING, NOT_SCHEDULED]
    n1 = general["nodes"][0]
    assert n1["images"][1] == {
        "image": so.PYTHON,
        "container": so.init_names(so.daemon_set())[1],
        "role": "pull",
        "state": PRESENT,
        "reason": None,
        "message": None,
        "seconds": 1.234,
        "timeSource": "event",
        "sizeBytes": 1000,
    }
    assert doc["daemonSets"][0]["nodes"][0]["gate"] == {"taint": "prepull.dev/not-ready:NoSchedule", "taintPresent": True}
    assert json.dumps(doc) == json.dumps(report_json(mixed_report()))


def test_the_documented_example_has_exactly_the_keys_we_print():
    """docs/status.md's example must not drift from the real structure."""
    text = (ROOT / "docs" / "status.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(.*?)\n```", text, re.S).group(1))

    def merge(a, b):
        """Both shapes in one: an object beats a null (an ungated node's gate), lists merge item-wise."""
        if isinstance(a, dict) and isinstance(b, dict):
            return {k: merge(a.get(k), b.get(k)) for k in {**a, **b}}
        if isinstance(a, list) and isinstance(b, list):
            return [merge(a[0], b[0])]
        return a if b is None else b

    def shape(value):
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            merged = None
            for item in value:
                merged = merge(merged, shape(item))
            return [merged]
        return None

    def keys(tree, prefix=""):
        if isinstance(tree, dict):
            return {k2 for k, v in tree.items() for k2 in {prefix + k} | keys(v, prefix + k + ".")}
        if isinstance(tree, list):
            return keys(tree[0], prefix) if tree else set()
        return set()

    assert keys(shape(example)) == keys(shape(report_json(mixed_report())))


def render(rep, width=200) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table(rep))
    return console.file.getvalue()


def test_the_table_names_each_node_its_state_and_why():
    out = render(mixed_report())
    assert "general: 1/3 nodes" in out and "gated: 3/3 nodes, gate prepull.dev/not-ready:NoSchedule" in out
    line = next(x for x in out.splitlines() if x.lstrip().startswith("n2") and "failed" in x)
    assert "uv:0.5.11 (pull): ErrImagePull" in line and "2/2" not in line and "1/2" in line
    assert "python:3.13-slim 1.23s 1.0 kB" in out  # the event's time and size
    assert "UntoleratedTaint" in out and "tainted" in out and "lifted" in out
    assert "Pull times per image" in out and "* derived from init-container timestamps" in out


def test_durations_and_sizes_read_well():
    assert [duration(s) for s in (None, 0.842, 12.34, 365)] == ["-", "0.84s", "12.3s", "6m05s"]
    assert [size(b) for b in (None, 999, 48213611, 9_500_000_000)] == ["", "999 B", "48.2 MB", "9.5 GB"]
