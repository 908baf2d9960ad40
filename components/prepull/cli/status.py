"""``python -m prepull status``: which cluster and namespace, the watch loop, the output, the exit code.

Exit codes: 0 every targeted node has every image; 1 something failed; 2 still pulling (at the end
of ``--watch --timeout``, or now without ``--watch``); 3 the cluster cannot be reached, or holds no
pre-pull DaemonSet in the namespace. Bad arguments exit 2 as well, like every ``python -m prepull``
command (argparse's convention), with the message on stderr and nothing on stdout. Ctrl-C exits 130.
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

import yaml

from prepull.args import DEFAULTS
from prepull.cli.common import EXIT_UNREACHABLE, UsageError, default_stacks_dir, stack_config, stack_file
from prepull.core.names import check_dns_label
from prepull.errors import PrePullInputError
from prepull.kube.client import Kubeconfig, Unreachable
from prepull.kube.reader import NotFound, connect_reader
from prepull.stack.connection import is_contents
from prepull.status.report import FAILED, PRESENT, PULLING, Report, Snapshot, classify
from prepull.status.times import go_duration_seconds
from prepull.status.view import report_json, table

if TYPE_CHECKING:
    from rich.console import Console

EXIT_CODES = {PRESENT: 0, FAILED: 1, PULLING: 2}
EXIT_INTERRUPTED = 130
DEFAULT_NAMESPACE = DEFAULTS["namespace"]  # the component's and the stack's default
DEFAULT_TIMEOUT = "10m"
RICH_HINT = "status needs rich for its table: pip install 'prepull[status]' (or use -o json)"


@dataclass(frozen=True)
class Target:
    """Where to look: the namespace, and the kubeconfig (a path, the parsed file, or None) and context."""

    namespace: str
    kubeconfig: Kubeconfig
    context: Optional[str]


class SnapshotSource(Protocol):
    """What ``status`` reads the cluster through: kube.reader.ClusterReader, or a test's recorded cluster."""

    def snapshot(self) -> Snapshot:
        """The cluster's objects now."""
        ...


def parse_duration(option: str, text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m`` or ``1h30m``; a UsageError naming ``option`` otherwise."""
    seconds = float(text) if text.replace(".", "", 1).isdigit() else go_duration_seconds(text)
    if seconds is None or seconds <= 0:
        raise UsageError(f"{option}: must be a positive duration such as 90, 90s, 10m or 1h30m (got {text!r})")
    return seconds


def kubeconfig_value(value: Optional[str]) -> Kubeconfig:
    """A stack's ``prepull:kubeconfig`` is a path or the file's contents (told apart as the stack program tells them)."""
    if not value or not is_contents(value.strip()):
        return value or None
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise UsageError(f"prepull:kubeconfig: is neither a path nor a kubeconfig document ({err.__class__.__name__})") from None
    if not isinstance(parsed, dict):
        raise UsageError(f"prepull:kubeconfig: a kubeconfig document must be a mapping (got {type(parsed).__name__})")
    return parsed


def resolve_target(args: argparse.Namespace) -> Target:
    """Options first, then the stack's config (``--stack``), then the defaults: namespace ``prepull``, kubectl's kubeconfig."""
    config: dict[str, Any] = {}
    if args.stack:
        path = stack_file(Path(args.stacks_dir) if args.stacks_dir else default_stacks_dir(), args.stack)
        encrypted: list[str] = []
        config = stack_config(path, encrypted)
        for key in encrypted:
            option = "--kubeconfig" if key.endswith("kubeconfig") else "--context"
            if not getattr(args, option[2:]):
                print(
                    f"prepull: warning: {path.name}: {key} is encrypted (secure:) and not read here; "
                    f"pass {option} (using the default instead)",
                    file=sys.stderr,
                )
    namespace = args.namespace or config.get("namespace") or DEFAULT_NAMESPACE
    try:
        check_dns_label(namespace, "--namespace" if args.namespace else "prepull:namespace")
    except PrePullInputError as err:
        raise UsageError(str(err)) from None
    kubeconfig = args.kubeconfig or kubeconfig_value(config.get("kubeconfig"))
    return Target(namespace, kubeconfig, args.context or config.get("kubeContext"))


def watch(
    take: Callable[[], Report],
    show: Callable[[Report], None],
    timeout: float,
    interval: float,
    clock: Optional[Callable[[], float]] = None,
    sleep: Optional[Callable[[float], None]] = None,
) -> Report:
    """Take and show reports until everything is present, something failed, or ``timeout`` seconds passed."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep  # looked up now, so tests can replace them
    deadline = clock() + timeout
    while True:
        report = take()
        show(report)
        if report.state != PULLING or clock() >= deadline:
            return report
        sleep(max(0.0, min(interval, deadline - clock())))


def _console() -> "Console":
    try:
        from rich.console import Console
    except ImportError:
        raise UsageError(RICH_HINT) from None
    return Console()


def _run(reader: SnapshotSource, args: argparse.Namespace) -> Report:
    """One report, or the last of ``--watch``: live in a terminal, printed once otherwise (JSON: printed by the caller)."""

    def take() -> Report:
        return classify(reader.snapshot())

    timeout = parse_duration("--timeout", args.timeout or DEFAULT_TIMEOUT)
    interval = parse_duration("--interval", args.interval)
    if args.output == "json":
        return watch(take, lambda r: None, timeout, interval) if args.watch else take()
    console = _console()
    if args.watch and console.is_terminal:
        from rich.live import Live

        with Live(console=console, auto_refresh=False) as live:
            return watch(take, lambda r: live.update(table(r), refresh=True), timeout, interval)
    report = watch(take, lambda r: None, timeout, interval) if args.watch else take()
    console.print(table(report))
    return report


def status_command(args: argparse.Namespace) -> int:
    """Read the cluster, show the report, and exit 0 / 1 / 2 / 3 (module docstring)."""
    if args.timeout and not args.watch:
        raise UsageError(f"--timeout: only used with --watch (got {args.timeout!r})")
    target = resolve_target(args)
    if args.output != "json":
        _console()  # fail on a missing rich before any request
    reader = None
    try:
        reader = connect_reader(target.kubeconfig, target.context, target.namespace)
        report = _run(reader, args)
    except (Unreachable, NotFound) as err:
        print(f"prepull: error: {err}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        # Ctrl-C ends a --watch: the shell's code for SIGINT, without a traceback.
        print("prepull: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if args.verbose and reader is not None:
            print(
                f"prepull: {reader.calls} API call(s) in {reader.snapshots} snapshot(s) of namespace {target.namespace!r}", file=sys.stderr
            )
    if args.output == "json":
        print(json.dumps(report_json(report), indent=2))
    return EXIT_CODES[report.state]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """The ``status`` subcommand's options (see docs/status.md)."""
    s = sub.add_parser("status", help="show, per node and per image, whether the pre-pulled images are there (reads the cluster)")
    s.add_argument("--stack", help="take namespace, kubeconfig and context from this stack's config (options given here win)")
    s.add_argument("--stacks-dir", help="with --stack: directory of the stack files (default: ./stacks, else the checkout's stacks/)")
    s.add_argument("--namespace", "-n", help=f"namespace of the pre-pull DaemonSets (default: {DEFAULT_NAMESPACE})")
    s.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    s.add_argument("--context", help="kubeconfig context (default: the current one)")
    s.add_argument(
        "--output", "-o", choices=("table", "json"), default="table", help="table (default; live with --watch in a terminal) or json"
    )
    s.add_argument("--watch", "-w", action="store_true", help="update until every image is present, something fails, or --timeout")
    s.add_argument("--timeout", help=f"with --watch: give up after this long (90s, 10m, 1h; default {DEFAULT_TIMEOUT}), exit 2")
    s.add_argument("--interval", default="5s", help="with --watch: time between snapshots (default 5s)")
    s.add_argument("--verbose", "-v", action="store_true", help="print the number of API calls made (on stderr)")
    s.set_defaults(func=status_command)
