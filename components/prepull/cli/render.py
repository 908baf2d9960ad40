"""``python -m prepull render``: a stack's Kubernetes objects as YAML, offline, for review or GitOps.

The objects come from the same pure core as the component (``load_stack`` + ``stack_manifests``),
so what is reviewed or applied is exactly what ``pulumi up`` would register; with a lock file
(``stacks/prepull.<stack>.lock.yaml``) its digests are used.
"""

import argparse
import re
import sys
from pathlib import Path
from typing import Iterable

import yaml

from prepull.cli.common import EXIT_OK, UsageError, load_objects
from prepull.core.kobject import KubeView
from prepull.version import __version__

# render --out owns files named like this in its directory (and only those).
OUT_FILE = re.compile(r"^\d{3}-[a-z0-9]+-[a-z0-9.-]+\.yaml$")


def file_name(index: int, obj: KubeView) -> str:
    """Deterministic file name: creation order, kind and name (``002-daemonset-general.yaml``)."""
    return f"{index:03d}-{str(obj['kind']).lower()}-{obj['metadata']['name']}.yaml"


def to_yaml(objects: Iterable[KubeView]) -> str:
    """Multi-document YAML (each document starts with ``---``), keys in the order the core builds them."""
    # A wide line limit keeps every value on one line: reviews then diff one line per change.
    return yaml.safe_dump_all(list(objects), sort_keys=False, explicit_start=True, width=10_000)


def _header(path: Path, stack: str) -> str:
    # No timestamp or absolute path: the same stack renders to the same bytes anywhere.
    return f"# Rendered by prepull {__version__} from {path.name} (python -m prepull render --stack {stack}). Do not edit.\n"


def render_command(args: argparse.Namespace) -> int:
    """Print the stack's objects, or write one file per object into ``--out``."""
    path, objects = load_objects(args.stacks_dir, args.stack)
    if args.out is None:
        sys.stdout.write(_header(path, args.stack) + to_yaml(objects))
        return EXIT_OK
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        wanted = {file_name(i, obj): obj for i, obj in enumerate(objects)}
        # Files from an earlier render that this one no longer produces (a removed pool) must go,
        # or a GitOps tool would keep applying them. Only files matching our own naming are touched.
        for old in sorted(out.iterdir()):
            if old.is_file() and OUT_FILE.match(old.name) and old.name not in wanted:
                old.unlink()
                print(f"removed {old}", file=sys.stderr)
        for name, obj in wanted.items():
            (out / name).write_text(_header(path, args.stack) + to_yaml([obj]), encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write to {out}: {err.strerror or err}") from None
    # Paths only once every file is written: `render --out DIR | head` must not leave DIR half rendered,
    # and a closed stdout (BrokenPipeError, handled by main) is not a write error of DIR.
    for name in wanted:
        print(out / name)
    return EXIT_OK
