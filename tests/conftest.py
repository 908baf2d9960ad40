"""Shared fixtures: Pulumi mocks through the SDK's real registration path."""

import asyncio
import copy
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests run against the source tree whether or not the package is installed.
sys.path.insert(0, str(ROOT / "components"))

import pulumi  # noqa: E402
from mock_helpers import RecordingMocks, RecordingMonitor, Run  # noqa: E402
from pulumi.runtime import settings  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_event_loop():
    """A new event loop per test, as Pulumi's own SDK tests do (pulumi/pulumi#24338)."""
    saved = copy.deepcopy(settings.SETTINGS)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)
    settings.configure(saved)


@pytest.fixture(autouse=True)
def no_kubeconfig_of_the_machine(request, monkeypatch):
    """Outside the cluster tier, no test reads this machine's kubeconfig (the stack program checks its context there)."""
    if request.node.get_closest_marker("e2e") is None:
        monkeypatch.setenv("KUBECONFIG", os.devnull)


@pytest.fixture
def run_program():
    """Run ``fn`` as a Pulumi program under fresh mocks and return a :class:`Run`.

    ``config`` (``{"prepull:images": "[...]"}``) is set before the program runs.
    """

    def run(fn, config=None, preview=False, stack="dev") -> Run:
        mocks = RecordingMocks()
        monitor = RecordingMonitor(mocks)
        pulumi.runtime.set_mocks(mocks, project="prepull", stack=stack, preview=preview, monitor=monitor)
        pulumi.runtime.set_all_config(config or {})
        pulumi.runtime.test(fn)()
        return Run(monitor, mocks)

    return run


@pytest.fixture
def down_kubeconfig(tmp_path) -> Path:
    """A kubeconfig whose context ``down`` points at a port nothing listens on (for the "cannot reach" paths)."""
    import yaml

    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "down",
                "clusters": [{"name": "down", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}],
            }
        )
    )
    return path


def pytest_report_header(config):
    return f"checkov: {os.environ.get('PREPULL_CHECKOV', 'not configured')}"


# Figures the cluster tier's fault tests measure (recovery times): printed at the end of the run,
# so CI's log carries them beside the verdicts (docs/reliability.md quotes them).
_MEASURED: list = []


@pytest.fixture
def measured(request):
    """``measured(what, seconds)`` records a figure of this test for the session's summary."""

    def record(what: str, seconds: float) -> None:
        _MEASURED.append((request.node.nodeid, what, seconds))

    return record


def pytest_terminal_summary(terminalreporter):
    if _MEASURED:
        terminalreporter.section("measured")
        for nodeid, what, seconds in _MEASURED:
            terminalreporter.write_line(f"{seconds:7.1f} s  {what}  ({nodeid})")
