"""``python -m prepull``: render a stack's Kubernetes objects offline, check them, lock its images, print the schema, show the pulls.

``render`` and ``check`` use the same pure core as the component
(``load_stack`` + ``stack_manifests``), so what is reviewed or applied by a
GitOps tool is exactly what ``pulumi up`` would register. Neither needs the
Pulumi CLI, the Pulumi SDK or a cluster: the Pulumi SDK is imported only by
``schema``, and kubernetes-validate (the ``check`` extra) only by ``check``.

When the stack has a lock file (``stacks/prepull.<stack>.lock.yaml``, written
by ``lock``: prepull.cli.lock), ``render`` and ``check`` use its digests.

Exit codes: 0 clean, 1 problems found by ``check`` (or a stale lock for
``lock --check``), 2 bad arguments (unknown stack, unreadable file, unsupported
version, invalid stack configuration, a lock file that is stale or does not fit
the pools, kubernetes-validate not installed for ``check``), 3 unreachable
(``check --server``'s cluster; a registry fault for ``lock``).
``status`` reads the cluster and has its own exit codes
(:mod:`prepull.cli.status`, docs/status.md).
"""

import argparse
import json
import sys
from typing import Any, Optional, Sequence

from prepull.cli import lock, status
from prepull.cli.check import check_command
from prepull.cli.common import EXIT_OK, EXIT_USAGE, UsageError
from prepull.cli.render import render_command
from prepull.version import __version__

# ---------------------------------------------------------------- schema


def provider_schema() -> dict[str, Any]:
    """The package schema the Pulumi analyzer infers for the component provider (what other languages see)."""
    from prepull.provider import PrePullProvider  # the Pulumi SDK: only `schema` needs it (render and check must not)

    text = PrePullProvider().schema
    if text is None:
        raise RuntimeError("the component provider inferred no schema")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_text() -> str:
    """The golden ``components/schema.json`` text: pretty-printed, sorted keys, trailing newline."""
    return json.dumps(provider_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_command(args: argparse.Namespace) -> int:
    """Print the inferred schema (regenerate the golden file with ``> components/schema.json``)."""
    sys.stdout.write(schema_text())
    return EXIT_OK


# ---------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    """The argument parser (argparse exits 2 on malformed command lines, as the other bad arguments do)."""
    p = argparse.ArgumentParser(prog="python -m prepull", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"prepull {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{render,check,lock,schema,status}")

    def stack_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--stack", required=True, help="stack name: reads <stacks-dir>/Pulumi.<stack>.yaml")
        sp.add_argument("--stacks-dir", help="directory of the stack files (default: ./stacks, else the checkout's stacks/)")

    r = sub.add_parser("render", help="print (or write) the Kubernetes objects a stack declares, as YAML")
    stack_args(r)
    r.add_argument("--out", help="write one file per object into this directory (NNN-kind-name.yaml) instead of stdout")
    r.set_defaults(func=render_command)

    c = sub.add_parser("check", help="validate the rendered objects against upstream Kubernetes schemas (strict)")
    stack_args(c)
    c.add_argument(
        "--kubernetes-version",
        metavar="X.Y",
        help="Kubernetes version to validate against (default: the newest supported; "
        "supported: 1.29 up to the newest kubernetes-validate ships; a wrong value lists them)",
    )
    c.add_argument(
        "--server", action="store_true", help="instead: send every object to the cluster's API server as a dry run (nothing is persisted)"
    )
    c.add_argument("--context", help="with --server: kubeconfig context (default: the current one)")
    c.add_argument("--kubeconfig", help="with --server: kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    c.set_defaults(func=check_command)

    lock.add_parser(sub)

    s = sub.add_parser("schema", help="print the Pulumi package schema inferred for the component provider")
    s.set_defaults(func=schema_command)

    status.add_parser(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except UsageError as err:
        print(f"prepull: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `render | head`: the reader went away; not an error of ours.
        return EXIT_OK


__all__ = ["main", "parser", "provider_schema", "schema_text"]
