"""Showing a ``status`` report: the stable JSON document (docs/status.md), and the terminal table (rich).

rich is imported only by :func:`table`, so the JSON output and the component itself never need it.
"""

from typing import TYPE_CHECKING, Any, Optional

from prepull.status.report import FAILED, NOT_SCHEDULED, PRESENT, PULLING, DaemonSetStatus, ImageStatus, ImageSummary, NodeStatus, Report
from prepull.status.times import CACHED, DERIVED

if TYPE_CHECKING:
    from rich.console import Group, RenderableType
    from rich.table import Table

API_VERSION = "prepull.dev/v1alpha1"
KIND = "PrePullStatus"
STYLES = {PRESENT: "green", PULLING: "yellow", FAILED: "bold red", NOT_SCHEDULED: "magenta"}
BAR_WIDTH = 20


# ---------------------------------------------------------------- JSON


def _seconds(value: Optional[float]) -> Optional[float]:
    # Milliseconds are the kubelet's own precision; more digits would only be noise.
    return None if value is None else round(value, 3)


def _image_json(image: ImageStatus) -> dict[str, Any]:
    return {
        "image": image.image,
        "container": image.container,
        "role": image.role,
        "state": image.state,
        "reason": image.reason,
        "message": image.message,
        "seconds": _seconds(image.seconds),
        "timeSource": image.time_source,
        "sizeBytes": image.size_bytes,
    }


def _node_json(node: NodeStatus) -> dict[str, Any]:
    return {
        "name": node.name,
        "state": node.state,
        "pod": node.pod,
        "reason": node.reason,
        "message": node.message,
        "targeted": node.targeted,
        "gate": {"taint": node.gate.taint, "taintPresent": node.gate.present} if node.gate else None,
        "pullsDone": node.pulls_done,
        "pullsTotal": len(node.pulls),
        "images": [_image_json(i) for i in node.images],
    }


def _daemon_set_json(ds: DaemonSetStatus) -> dict[str, Any]:
    return {
        "name": ds.name,
        "images": list(ds.images),
        "gateTaint": ds.gate_taint,
        "nodesSelected": len(ds.nodes),
        "nodesTargeted": len(ds.targeted),
        "nodesPresent": ds.done,
        "nodes": [_node_json(n) for n in ds.nodes],
    }


def _summary_json(summary: ImageSummary) -> dict[str, Any]:
    slowest = {"node": summary.slowest_node, "seconds": _seconds(summary.slowest_seconds)} if summary.slowest_node else None
    return {
        "image": summary.image,
        "pulls": summary.pulls,
        "present": summary.present,
        "timed": summary.timed,
        "medianSeconds": _seconds(summary.median_seconds),
        "slowest": slowest,
    }


def report_json(report: Report) -> dict[str, Any]:
    """The documented JSON document (docs/status.md): keys in a fixed order, lists sorted by name."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "namespace": report.namespace,
        "state": report.state,
        "daemonSets": [_daemon_set_json(ds) for ds in report.daemon_sets],
        "images": [_summary_json(s) for s in report.images],
    }


# ---------------------------------------------------------------- terminal


def duration(seconds: Optional[float]) -> str:
    """``0.84s``, ``12.3s``, ``6m05s``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def size(size_bytes: Optional[int]) -> str:
    """``48.2 MB`` (decimal units, as registries and the kubelet count)."""
    if size_bytes is None:
        return ""
    value, unit = float(size_bytes), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def short_image(image: str) -> str:
    """The last path element with its tag (``uv:0.5.11``): enough to tell a pool's images apart in a cell."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0]


def image_time(image: ImageStatus) -> str:
    """The time of one image as a cell shows it: ``1.20s 48.2 MB`` (size when the kubelet gave it), ``1.20s*`` (derived), ``cached``."""
    if image.time_source == CACHED:
        return "cached"
    text = duration(image.seconds) + ("*" if image.time_source == DERIVED else "")
    return f"{text} {size(image.size_bytes)}" if image.size_bytes is not None else text


def node_detail(node: NodeStatus) -> str:
    """What a person needs to know about a node in one line: why not, what failed, what is pulling, or the times."""
    if node.state == NOT_SCHEDULED:
        return f"{node.reason}: {node.message}"
    trouble = next((i for i in node.images if i.state == node.state), None) if node.state != PRESENT else None
    if trouble is not None:
        text = f"{short_image(trouble.image)} ({trouble.role}): {trouble.reason}"
        return f"{text}: {trouble.message}" if trouble.message else text
    return ", ".join(f"{short_image(i.image)} {image_time(i)}" for i in node.pulls)


def _gate_cell(node: NodeStatus) -> str:
    if node.gate is None:
        return ""
    return "tainted" if node.gate.present else "lifted"


def _daemon_set_table(ds: DaemonSetStatus) -> tuple["Table", "Table"]:
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    targeted = len(ds.targeted)
    title = f"{ds.name}: {ds.done}/{targeted} nodes" + (f", gate {ds.gate_taint}" if ds.gate_taint else "")
    header = Table.grid(padding=(0, 1))
    header.add_row(ProgressBar(total=max(targeted, 1), completed=ds.done if targeted else 1, width=BAR_WIDTH), f"[bold]{title}")
    table = Table(show_edge=False, pad_edge=False, expand=False)
    for column in ("node", "images", "", "state", *(("gate",) if ds.gate_taint else ()), "detail"):
        table.add_column(column, no_wrap=column != "detail", overflow="fold" if column == "detail" else "ellipsis")
    for node in ds.nodes:
        total = len(node.pulls)
        bar = ProgressBar(total=max(total, 1), completed=node.pulls_done if total else 1, width=BAR_WIDTH // 2)
        gate = (_gate_cell(node),) if ds.gate_taint else ()
        table.add_row(node.name, bar, f"{node.pulls_done}/{total}", f"[{STYLES[node.state]}]{node.state}", *gate, node_detail(node))
    return header, table


def _summary_table(report: Report) -> "Table":
    from rich.table import Table

    table = Table(title="Pull times per image", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("image", "present", "median", "slowest", "on node"):
        table.add_column(column, justify="right" if column in ("present", "median", "slowest") else "left")
    for s in report.images:
        table.add_row(s.image, f"{s.present}/{s.pulls}", duration(s.median_seconds), duration(s.slowest_seconds), s.slowest_node or "")
    return table


def table(report: Report) -> "Group":
    """The terminal view of a report, as one rich renderable."""
    from rich.console import Group

    parts: list[RenderableType] = [f"namespace [bold]{report.namespace}[/]: [{STYLES[report.state]}]{report.state}[/]", ""]
    for ds in report.daemon_sets:
        parts.extend([*_daemon_set_table(ds), ""])
    parts.append(_summary_table(report))
    parts.append("[dim]* derived from init-container timestamps (no kubelet event left); cached: the image was already on the node")
    return Group(*parts)
