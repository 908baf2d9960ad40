"""What every ``python -m prepull`` command shares: exit codes, the usage error, reading a stack's files.

Exit codes: 0 clean, 1 problems found (``check``; a stale lock for ``lock --check``), 2 bad arguments
(unknown stack, unreadable file, invalid stack configuration, a lock file that does not fit), 3 unreachable
(a cluster or registry). ``status`` maps its report onto these (:mod:`prepull.cli.status`).
"""

import json
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from prepull.core.kobject import KubeView
from prepull.errors import PrePullInputError
from prepull.lock.file import LockError, lock_stack
from prepull.stack.pools import CONFIG, OBJECT_KEYS, StackSpec, stack_manifests, validate_stack, with_prepullers

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

CONFIG_PREFIX = str(CONFIG)  # `prepull:`
# Only the provider connection reads these; rendering does not need them, so an encrypted value is no obstacle.
CONNECTION_KEYS = ("kubeconfig", "kubeContext")


class UsageError(Exception):
    """A bad argument: reported on stderr as one message, exit code 2, no traceback."""


# ---------------------------------------------------------------- stacks


def default_stacks_dir() -> Path:
    """``./stacks`` when run from a project checkout, else the ``stacks/`` next to this package's checkout."""
    here = Path.cwd() / "stacks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "stacks"


def available_stacks(stacks_dir: Path) -> list[str]:
    """Stack names with a ``Pulumi.<name>.yaml`` file in ``stacks_dir``, sorted."""
    if not stacks_dir.is_dir():
        return []
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def stack_file(stacks_dir: Path, stack: str) -> Path:
    """The stack's file, or a UsageError listing the stacks that exist."""
    if not re.match(r"^[A-Za-z0-9_.-]+$", stack) or stack in (".", ".."):
        raise UsageError(f"invalid stack name {stack!r}")
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        names = available_stacks(stacks_dir)
        found = ", ".join(names) if names else "none"
        raise UsageError(f"unknown stack {stack!r}: no {path}. Available stacks in {stacks_dir}: {found}")
    return path


def stack_config(path: Path, encrypted: Optional[list[str]] = None) -> dict[str, Any]:
    """The ``prepull:*`` keys of a stack file, prefix stripped (other namespaces are ignored).

    Values are decoded as the stack program decodes them: ``images`` and
    ``nodePools`` given as a JSON string are parsed. An encrypted (``secure:``)
    kubeconfig or context cannot be read offline: it is left out, and its key is
    appended to ``encrypted`` when given, so a command that needs it can say so.
    """
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} is not valid YAML: {err}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise UsageError(f"{path}: expected a mapping with a `config:` key, got {type(doc).__name__}")
    config = doc.get("config") or {}
    if not isinstance(config, Mapping):
        raise UsageError(f"{path}: `config:` must be a mapping, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key.startswith(CONFIG_PREFIX):
            continue
        name = key[len(CONFIG_PREFIX) :]
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            if name in CONNECTION_KEYS:
                if encrypted is not None:
                    encrypted.append(key)
                continue
            raise UsageError(f"{path}: {key} is encrypted (secure:); it cannot be rendered offline")
        if name in OBJECT_KEYS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as err:
                raise UsageError(f"{path}: {key} is a string but not valid JSON: {err}") from None
        out[name] = value
    return out


def load_spec(stacks_dir: Optional[str], stack: str, locked: bool = True) -> tuple[Path, StackSpec]:
    """(stack file, validated StackSpec), with the stack's lock file applied if it has one (and ``locked``); or a UsageError."""
    directory = Path(stacks_dir) if stacks_dir else default_stacks_dir()
    path = stack_file(directory, stack)
    config = stack_config(path)
    try:
        spec = validate_stack(config)
        return path, with_prepullers(lock_stack(spec, path.parent, stack) if locked else spec)
    except LockError as err:
        raise UsageError(str(err)) from None
    except PrePullInputError as err:
        raise UsageError(f"{path}: invalid configuration: {prefixed(err)}") from None


def load_objects(stacks_dir: Optional[str], stack: str) -> tuple[Path, list[KubeView]]:
    """(stack file, every Kubernetes object the stack declares, locked images included), or a UsageError."""
    path, spec = load_spec(stacks_dir, stack)
    return path, list(stack_manifests(spec))


def prefixed(err: PrePullInputError) -> str:
    """The error with its field written as the stack key (``prepull:nodePools.batch.taints[0].effect``)."""
    field = err.field if err.field.startswith(CONFIG_PREFIX) else CONFIG_PREFIX + err.field
    return f"{field}: {err.reason} (got {err.value!r})"
