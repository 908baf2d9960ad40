"""``python -m prepull``: render a stack's Kubernetes objects offline, check them, lock its images, print the schema, show the pulls.

``render`` and ``check`` use the same pure core as the component
(``load_stack`` + ``stack_manifests``), so what is reviewed or applied by a
GitOps tool is exactly what ``pulumi up`` would register. Neither needs the
Pulumi CLI, the Pulumi SDK or a cluster: the Pulumi SDK is imported only by
``schema``, and kubernetes-validate (the ``check`` extra) only by ``check``.

When the stack has a lock file (``stacks/prepull.<stack>.lock.yaml``, written
by ``lock``: prepull.lock_command), ``render`` and ``check`` use its digests.

Exit codes: 0 clean, 1 problems found by ``check`` (or a stale lock for
``lock --check``), 2 bad arguments (unknown stack, unreadable file, unsupported
version, invalid stack configuration, a lock file that is stale or does not fit
the pools, kubernetes-validate not installed for ``check``), 3 unreachable
(``check --server``'s cluster; a registry fault for ``lock``).
``status`` reads the cluster and has its own exit codes
(:mod:`prepull.status_cli`, docs/status.md).
"""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

from . import __version__
from .errors import PrePullInputError
from .kobject import KubeView
from .manifests import object_id

if TYPE_CHECKING:
    from kubernetes_validate import ValidationError

    from .pools import StackSpec

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

CONFIG_NAMESPACE = "prepull:"
# Keys the stack program reads with Config.get_object: a string value is JSON, as Pulumi decodes it.
JSON_KEYS = ("images", "nodePools")
# Only the provider connection reads these; rendering does not need them, so an encrypted value is no obstacle.
CONNECTION_KEYS = ("kubeconfig", "kubeContext")
# Oldest Kubernetes minor the objects are meant for (the README's support floor).
OLDEST_SUPPORTED = (1, 29)
# The new-node gate's ValidatingAdmissionPolicy checks the node-name claim of service-account tokens
# (authentication.kubernetes.io/node-name, KEP-4193), GA from this minor on.
NODE_NAME_CLAIM_GA = (1, 32)
CHECK_EXTRA_HINT = "check needs kubernetes-validate: pip install 'prepull[check]'"
# render --out owns files named like this in its directory (and only those).
OUT_FILE = re.compile(r"^\d{3}-[a-z0-9]+-[a-z0-9.-]+\.yaml$")


class UsageError(Exception):
    """A bad argument: reported on stderr as one message, exit code 2, no traceback."""


# ---------------------------------------------------------------- stacks


def default_stacks_dir() -> Path:
    """``./stacks`` when run from a project checkout, else the ``stacks/`` next to this package's checkout."""
    here = Path.cwd() / "stacks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "stacks"


def available_stacks(stacks_dir: Path) -> List[str]:
    """Stack names with a ``Pulumi.<name>.yaml`` file in ``stacks_dir``, sorted."""
    if not stacks_dir.is_dir():
        return []
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


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


def stack_config(path: Path, encrypted: Optional[List[str]] = None) -> dict[str, Any]:
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
        if not isinstance(key, str) or not key.startswith(CONFIG_NAMESPACE):
            continue
        name = key[len(CONFIG_NAMESPACE):]
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            if name in CONNECTION_KEYS:
                if encrypted is not None:
                    encrypted.append(key)
                continue
            raise UsageError(f"{path}: {key} is encrypted (secure:); it cannot be rendered offline")
        if name in JSON_KEYS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as err:
                raise UsageError(f"{path}: {key} is a string but not valid JSON: {err}") from None
        out[name] = value
    return out


def load_spec(stacks_dir: Optional[str], stack: str, locked: bool = True) -> Tuple[Path, "StackSpec"]:
    """(stack file, validated StackSpec), with the stack's lock file applied if it has one (and ``locked``); or a UsageError."""
    from .lockfile import LockError, lock_stack
    from .pools import validate_stack, with_prepullers

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


def load_objects(stacks_dir: Optional[str], stack: str) -> Tuple[Path, List[KubeView]]:
    """(stack file, every Kubernetes object the stack declares, locked images included), or a UsageError."""
    from .pools import stack_manifests

    path, spec = load_spec(stacks_dir, stack)
    return path, list(stack_manifests(spec))


def prefixed(err: PrePullInputError) -> str:
    """The error with its field written as the stack key (``prepull:nodePools.batch.taints[0].effect``)."""
    field = err.field if err.field.startswith(CONFIG_NAMESPACE) else CONFIG_NAMESPACE + err.field
    return f"{field}: {err.reason} (got {err.value!r})"


# ---------------------------------------------------------------- render


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


# ---------------------------------------------------------------- check


def _as_tuple(version: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2])


def _require_kubernetes_validate() -> None:
    """A UsageError (exit 2, one line) instead of a traceback when the ``check`` extra is not installed."""
    try:
        import kubernetes_validate  # noqa: F401
        import kubernetes_validate.utils  # noqa: F401
    except ImportError:
        raise UsageError(CHECK_EXTRA_HINT) from None


def supported_versions() -> List[str]:
    """Kubernetes minors (``1.29`` ...) whose schemas the installed kubernetes-validate ships, oldest first."""
    import kubernetes_validate.utils as kv

    minors = {".".join(v.split(".")[:2]) for v in kv.all_versions()}
    return sorted((m for m in minors if _as_tuple(m) >= OLDEST_SUPPORTED), key=_as_tuple)


def resolve_version(requested: Optional[str]) -> str:
    """``X.Y`` for the requested version (``1.33``, ``v1.33``, ``1.33.2``); default: the newest supported."""
    versions = supported_versions()
    if requested is None:
        return versions[-1]
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.\d+)?$", requested.strip())
    supported = ", ".join(versions)
    if not match:
        raise UsageError(f"invalid Kubernetes version {requested!r}: expected X.Y (supported: {supported})")
    minor = f"{int(match.group(1))}.{int(match.group(2))}"
    if minor not in versions:
        why = "is older than the oldest supported" if _as_tuple(minor) < OLDEST_SUPPORTED else "has no schemas in the installed kubernetes-validate"
        raise UsageError(f"unsupported Kubernetes version {requested!r}: {minor} {why} (supported: {supported})")
    return minor


def _builtin_kinds() -> set[str]:
    """Kinds with an upstream schema in any version kubernetes-validate ships (built-in APIs, not CRDs)."""
    from importlib.resources import files

    kinds: set[str] = set()
    for folder in files("kubernetes_validate").joinpath("kubernetes-json-schema").iterdir():
        if folder.name.endswith("-strict"):
            kinds.update(f.name.split("-", 1)[0] for f in folder.iterdir() if f.name.endswith(".json"))
    return kinds


def field_path(path: Sequence[str | int]) -> str:
    """``spec.template.spec.containers[0].image`` from a jsonschema path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(err: "ValidationError") -> Tuple[str, str]:
    path: List[str | int] = list(err.absolute_path)
    message = err.message
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        # Strict schemas reject unknown fields at the parent: name the unknown field itself.
        known = set(err.schema.get("properties") or {}) if isinstance(err.schema, dict) else set()
        extra = sorted(k for k in err.instance if k not in known)
        if len(extra) == 1:
            path.append(extra[0])
            message = "unknown field (strict schema)"
    return field_path(path) or "(object)", message


def check_objects(
    objects: Sequence[KubeView], version: str
) -> Tuple[List[str], List[Tuple[str, str]], List[Tuple[str, str, str]]]:
    """Validate each object strictly against the upstream schemas of ``version`` (``X.Y``).

    Returns ``(valid, skipped, problems)``: ids of valid objects; ``(id, reason)``
    for objects with no upstream schema at all (CRDs such as Karpenter's
    NodePool: not validated); ``(id, field path, message)`` for problems. A
    built-in kind whose apiVersion that Kubernetes version does not serve is a
    problem, not a skip; so is the new-node gate's ValidatingAdmissionPolicy
    below Kubernetes 1.32 (it relies on the node-name claim of service-account
    tokens, which schemas cannot express).
    """
    import kubernetes_validate

    builtin = _builtin_kinds()
    valid: List[str] = []
    skipped: List[Tuple[str, str]] = []
    problems: List[Tuple[str, str, str]] = []
    for obj in objects:
        oid = object_id(obj)
        try:
            kubernetes_validate.validate(dict(obj), version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if str(obj.get("kind", "")).lower() in builtin:
                problems.append((oid, "apiVersion", f"{obj.get('apiVersion')} {obj.get('kind')} is not served by Kubernetes {version}"))
            else:
                skipped.append((oid, f"{obj.get('apiVersion')} has no upstream Kubernetes schema (custom resource)"))
        except kubernetes_validate.ValidationError as err:
            problems.append((oid, *_problem(err)))
        else:
            valid.append(oid)
        problems.extend(_gate_version_problems(obj, oid, version))
    valid = [oid for oid in valid if oid not in {p[0] for p in problems}]
    return valid, skipped, problems


def _gate_version_problems(obj: KubeView, oid: str, version: str) -> List[Tuple[str, str, str]]:
    """The gate's policy on a Kubernetes minor whose service-account tokens may lack the node-name claim.

    The schemas cannot see this: the policy is a valid object on 1.30 and 1.31,
    but its first validation requires ``authentication.kubernetes.io/node-name``
    in the requester's ``userInfo.extra``, which service-account tokens carry by
    default only from 1.32 (KEP-4193 GA). Without it every untaint request is
    denied and gated nodes keep their startup taint forever.
    """
    from .gate import NODE_NAME_EXTRA

    if obj.get("kind") != "ValidatingAdmissionPolicy" or _as_tuple(version) >= NODE_NAME_CLAIM_GA:
        return []
    spec = obj.get("spec") or {}
    for i, rule in enumerate(spec.get("validations") or []):
        if NODE_NAME_EXTRA in str(rule.get("expression", "")):
            ga = ".".join(map(str, NODE_NAME_CLAIM_GA))
            return [(
                oid,
                f"spec.validations[{i}].expression",
                f"the new-node gate needs Kubernetes >= {ga}: this policy admits the untaint step only with the "
                f"node-name claim of service-account tokens ({NODE_NAME_EXTRA}, KEP-4193, GA in {ga}); on {version} "
                "it may be missing, the untaint step is then denied and gated nodes keep their startup taint",
            )]
    return []


def check_command(args: argparse.Namespace) -> int:
    """Validate the stack's objects; exit 1 if any problem."""
    if args.server:
        return server_check_command(args)
    for option in ("context", "kubeconfig"):
        if getattr(args, option):
            raise UsageError(f"--{option} {getattr(args, option)}: only used with --server (the offline check reads no cluster)")
    _require_kubernetes_validate()
    version = resolve_version(args.kubernetes_version)
    path, objects = load_objects(args.stacks_dir, args.stack)
    valid, skipped, problems = check_objects(objects, version)
    for oid in valid:
        print(f"ok       {oid}")
    for oid, reason in skipped:
        print(f"SKIPPED  {oid}: not validated: {reason}")
    for oid, field, message in problems:
        print(f"PROBLEM  {oid}: {field}: {message}")
    from kubernetes_validate import __version__ as kv_version

    print(
        f"{path.name}: {len(valid)} valid, {len(skipped)} skipped (not validated), {len(problems)} problem(s) "
        f"against Kubernetes {version} strict schemas (kubernetes-validate {kv_version})"
    )
    return EXIT_PROBLEMS if problems else EXIT_OK


def server_check_command(args: argparse.Namespace) -> int:
    """Dry-run the stack's objects on the cluster; exit 1 on any rejection, 3 if it cannot be reached."""
    from .server_check import Unreachable, check_on_server, connect

    path, objects = load_objects(args.stacks_dir, args.stack)
    try:
        client = connect(args.kubeconfig, args.context)
        report = check_on_server(objects, client)
    except Unreachable as err:
        print(f"prepull: error: {err}", file=sys.stderr)
        return EXIT_UNREACHABLE
    for oid in report.accepted:
        print(f"ok           {oid}")
    for oid, text in report.warnings:
        print(f"WARNING      {oid}: {text}")
    for oid, reason in report.not_checked:
        print(f"NOT CHECKED  {oid}: {reason}")
    for oid, message in report.problems:
        print(f"REJECTED     {oid}: {message}")
    print(
        f"{path.name}: {len(report.accepted)} accepted ({len(report.warnings)} warning(s)), {len(report.not_checked)} not checked, "
        f"{len(report.problems)} rejected "
        f"by the API server at {client.configuration.host} (server-side dry run, strict field validation)"
    )
    return EXIT_PROBLEMS if report.problems else EXIT_OK


# ---------------------------------------------------------------- schema


def provider_schema() -> dict[str, Any]:
    """The package schema the Pulumi analyzer infers for the component provider (what other languages see)."""
    from .provider import PrePullProvider

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
    c.add_argument("--server", action="store_true",
                   help="instead: send every object to the cluster's API server as a dry run (nothing is persisted)")
    c.add_argument("--context", help="with --server: kubeconfig context (default: the current one)")
    c.add_argument("--kubeconfig", help="with --server: kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    c.set_defaults(func=check_command)

    from .lock_command import add_parser as add_lock_parser

    add_lock_parser(sub)

    s = sub.add_parser("schema", help="print the Pulumi package schema inferred for the component provider")
    s.set_defaults(func=schema_command)

    from .status_cli import add_parser as add_status_parser

    add_status_parser(sub)
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


__all__ = ["check_objects", "main", "provider_schema", "resolve_version", "schema_text", "stack_config", "supported_versions", "to_yaml"]
