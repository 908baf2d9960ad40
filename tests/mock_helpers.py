"""Pulumi mocks through the SDK's real registration path, for the tests (conftest.py's run_program uses them).

A module of its own, not conftest.py: policies/tests has a conftest too, and ``from conftest import``
would find whichever was imported first.
"""

import asyncio
from dataclasses import dataclass

import pulumi
from pulumi.runtime.mocks import MockMonitor


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
