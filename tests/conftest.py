"""Shared fixtures: Pulumi mocks through the SDK's real registration path."""

import asyncio
import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests run against the source tree whether or not the package is installed.
sys.path.insert(0, str(ROOT / "components"))

import pulumi  # noqa: E402
from pulumi.runtime import settings  # noqa: E402
from pulumi.runtime.mocks import MockMonitor  # noqa: E402


@dataclass
class Registered:
    """One resource as the mock monitor registered it."""

    urn: str
    type: str
    name: str
    inputs: dict
    parent: str


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as state, and record every registration in order with its parent and dependencies."""

    def __init__(self) -> None:
        self.order: list = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.order.append((args.typ, args.name))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps each registration request (parent, dependencies, options)."""

    def __init__(self, mocks) -> None:
        super().__init__(mocks)
        self.requests: list = []

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        self.requests.append(request)
        return super().RegisterResource(request)


class Run:
    """The outcome of one mocked program run."""

    def __init__(self, monitor: RecordingMonitor, mocks: RecordingMocks) -> None:
        self.monitor = monitor
        self.mocks = mocks

    @property
    def requests(self) -> list:
        return self.monitor.requests

    def of_type(self, typ: str) -> list:
        return [r for r in self.requests if r.type == typ]

    def by_name(self, name: str):
        matches = [r for r in self.requests if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name!r}, got {[r.name for r in self.requests]}"
        return matches[0]

    def state(self, request) -> dict:
        """The registered inputs of a request, deserialised to plain Python."""
        from pulumi.runtime import rpc

        return rpc.deserialize_properties(request.object)


def output(value, known=True, secret=False):
    """An Output as another resource would give it: known or not (preview), secret or not."""
    loop = asyncio.get_event_loop()
    futures = [loop.create_future() for _ in range(3)]
    for fut, result in zip(futures, (value if known else None, known, secret)):
        fut.set_result(result)
    return pulumi.Output(set(), *futures)


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
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "down",
        "clusters": [{"name": "down", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}],
    }))
    return path


def pytest_report_header(config):
    return f"checkov: {os.environ.get('PREPULL_CHECKOV', 'not configured')}"
