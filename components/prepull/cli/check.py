"""``python -m prepull check``: the rendered objects against upstream schemas (kubernetes-validate), or a server's dry run.

Offline, kubernetes-validate (the ``check`` extra) validates strictly for a Kubernetes version;
``--server`` asks a real API server instead (:mod:`prepull.kube.server_check`).
"""

import argparse
import re
import sys
from importlib.resources import files
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

from prepull.cli.common import EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE, UsageError, load_objects
from prepull.core.gate import NODE_NAME_EXTRA
from prepull.core.kobject import KubeView
from prepull.core.manifests import object_id
from prepull.kube.client import Unreachable
from prepull.kube.server_check import check_on_server, connect

if TYPE_CHECKING:
    from kubernetes_validate import ValidationError

# Oldest Kubernetes minor the objects are meant for (the README's support floor).
OLDEST_SUPPORTED = (1, 29)
# The new-node gate's ValidatingAdmissionPolicy checks the node-name claim of service-account tokens
# (authentication.kubernetes.io/node-name, KEP-4193), GA from this minor on.
NODE_NAME_CLAIM_GA = (1, 32)
CHECK_EXTRA_HINT = "check needs kubernetes-validate: pip install 'prepull[check]'"


def _as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2])


def _require_kubernetes_validate() -> None:
    """A UsageError (exit 2, one line) instead of a traceback when the ``check`` extra is not installed."""
    try:
        import kubernetes_validate  # noqa: F401
        import kubernetes_validate.utils  # noqa: F401
    except ImportError:
        raise UsageError(CHECK_EXTRA_HINT) from None


def supported_versions() -> list[str]:
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
        why = (
            "is older than the oldest supported"
            if _as_tuple(minor) < OLDEST_SUPPORTED
            else "has no schemas in the installed kubernetes-validate"
        )
        raise UsageError(f"unsupported Kubernetes version {requested!r}: {minor} {why} (supported: {supported})")
    return minor


def _builtin_kinds() -> set[str]:
    """Kinds with an upstream schema in any version kubernetes-validate ships (built-in APIs, not CRDs)."""
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


def _problem(err: "ValidationError") -> tuple[str, str]:
    path: list[str | int] = list(err.absolute_path)
    message = err.message
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        # Strict schemas reject unknown fields at the parent: name the unknown field itself.
        known = set(err.schema.get("properties") or {}) if isinstance(err.schema, dict) else set()
        extra = sorted(k for k in err.instance if k not in known)
        if len(extra) == 1:
            path.append(extra[0])
            message = "unknown field (strict schema)"
    return field_path(path) or "(object)", message


def check_objects(objects: Sequence[KubeView], version: str) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str, str]]]:
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
    valid: list[str] = []
    skipped: list[tuple[str, str]] = []
    problems: list[tuple[str, str, str]] = []
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


def _gate_version_problems(obj: KubeView, oid: str, version: str) -> list[tuple[str, str, str]]:
    """The gate's policy on a Kubernetes minor whose service-account tokens may lack the node-name claim.

    The schemas cannot see this: the policy is a valid object on 1.30 and 1.31,
    but its first validation requires ``authentication.kubernetes.io/node-name``
    in the requester's ``userInfo.extra``, which service-account tokens carry by
    default only from 1.32 (KEP-4193 GA). Without it every untaint request is
    denied and gated nodes keep their startup taint forever.
    """
    if obj.get("kind") != "ValidatingAdmissionPolicy" or _as_tuple(version) >= NODE_NAME_CLAIM_GA:
        return []
    spec = obj.get("spec") or {}
    for i, rule in enumerate(spec.get("validations") or []):
        if NODE_NAME_EXTRA in str(rule.get("expression", "")):
            ga = ".".join(map(str, NODE_NAME_CLAIM_GA))
            return [
                (
                    oid,
                    f"spec.validations[{i}].expression",
                    f"the new-node gate needs Kubernetes >= {ga}: this policy admits the untaint step only with the "
                    f"node-name claim of service-account tokens ({NODE_NAME_EXTRA}, KEP-4193, GA in {ga}); on {version} "
                    "it may be missing, the untaint step is then denied and gated nodes keep their startup taint",
                )
            ]
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
