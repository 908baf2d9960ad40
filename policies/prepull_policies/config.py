"""The pack's configuration: policy names, defaults, schemas, validated settings.

Everything a policy knows about its settings before it looks at a resource
lives here, so the schemas the CLI receives and the checks the code applies
are made from one table (:data:`DEFAULTS` and ``_PROPERTIES``) and cannot
drift apart.

Every policy reads its settings through :func:`load_config`, which applies
:data:`DEFAULTS` (the Pulumi CLI fills schema defaults, the SDK and direct
calls do not) and rejects unknown keys and malformed values.

The ``pack-config`` policy reports every policy's config errors once per
stack; the noting that makes that possible (:func:`note_config`) is here too,
because it is about configs, not about resources.
"""

import copy
import posixpath
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationArgs

from .patterns import Mirror, PatternError, parse_mirror, parse_pattern, shown

IMAGE_ALLOWLIST = "image-allowlist"
FORBID_LATEST = "forbid-latest"
REQUIRE_DIGEST = "require-digest"
NO_RUNTIME_SOCKET = "no-runtime-socket"
PACK_CONFIG = "pack-config"

# The one place defaults live: the schemas below publish them to the CLI and
# load_config() applies them in code.
DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    IMAGE_ALLOWLIST: {"allowedImages": [], "mirrorRegistry": None},
    FORBID_LATEST: {},
    REQUIRE_DIGEST: {},
    NO_RUNTIME_SOCKET: {"allowedHostPaths": []},
    PACK_CONFIG: {},
}

ENFORCEMENT_DEFAULTS: Mapping[str, EnforcementLevel] = {
    IMAGE_ALLOWLIST: EnforcementLevel.MANDATORY,
    FORBID_LATEST: EnforcementLevel.MANDATORY,
    REQUIRE_DIGEST: EnforcementLevel.DISABLED,
    NO_RUNTIME_SOCKET: EnforcementLevel.MANDATORY,
    PACK_CONFIG: EnforcementLevel.MANDATORY,
}

_PROPERTIES: Mapping[str, Mapping[str, dict]] = {
    IMAGE_ALLOWLIST: {
        "allowedImages": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "Image patterns (see docs/policies.md, 'Pattern grammar'): registry/path[:tag][@digest], "
            "'*' within a path segment, '**' across segments. An image must match one. Default: [] (nothing is allowed).",
        },
        "mirrorRegistry": {
            "type": ["string", "null"],
            "description": "host[:port][/prefix] every allowed image must be pulled through, as <mirror>/<registry>/<path>; "
            "enforcementLevel 'remediate' rewrites images to it. Default: null (no mirror).",
        },
    },
    FORBID_LATEST: {},
    REQUIRE_DIGEST: {},
    NO_RUNTIME_SOCKET: {
        "allowedHostPaths": {
            "type": "array",
            "items": {"type": "string", "pattern": "^/"},
            "description": "hostPath paths that may be mounted although they expose a container runtime socket, "
            "e.g. ['/var/run/docker.sock'] for a docker-socket pre-puller. Default: [].",
        },
    },
    PACK_CONFIG: {},
}

LEVELS = tuple(level.value for level in EnforcementLevel)


# --- schemas -------------------------------------------------------------------


def config_schema(policy: str) -> dict:
    """The complete JSON schema of one policy's settings (``additionalProperties: false``).

    The policy protocol carries only ``properties`` and ``required`` to the
    CLI, which wraps them in an object schema of its own without
    ``additionalProperties``; :func:`load_config` therefore rejects unknown
    keys itself.
    """
    props = {key: {**schema, "default": copy.deepcopy(DEFAULTS[policy][key])} for key, schema in _PROPERTIES[policy].items()}
    return {"type": "object", "properties": props, "additionalProperties": False}


def pack_config_schema() -> dict:
    """JSON schema of a whole ``--policy-pack-config`` file (used to check the example files)."""
    level = {"type": "string", "enum": list(LEVELS)}
    entries = {"all": {"oneOf": [level, {"type": "object", "properties": {"enforcementLevel": level}, "additionalProperties": False}]}}
    for policy in DEFAULTS:
        schema = config_schema(policy)
        schema["properties"] = {"enforcementLevel": level, **schema["properties"]}
        entries[policy] = {"oneOf": [level, schema]}
    return {"type": "object", "properties": entries, "additionalProperties": False}


def policy_schema(policy: str) -> Optional[PolicyConfigSchema]:
    """What a policy publishes to the CLI: its properties with defaults, or None when it has no settings."""
    props = config_schema(policy)["properties"]
    return PolicyConfigSchema(properties=props) if props else None


# --- validated settings ------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A policy's validated settings."""

    allowed_images: tuple = ()
    """Parsed :class:`ImagePattern` objects, in configured order."""
    mirror: Optional[Mirror] = None
    allowed_host_paths: tuple = ()
    """Normalised absolute paths."""


def normalise_host_path(path: str) -> str:
    """``//var/run/./docker.sock/`` -> ``/var/run/docker.sock`` (POSIX normpath keeps a leading ``//``).

    Here because ``allowedHostPaths`` are stored in this form; the
    no-runtime-socket policy brings a workload's paths to it before comparing.
    """
    return posixpath.normpath("/" + path.lstrip("/"))


# Each setting reader takes the value (the default when the setting is absent or
# null) and returns ``(parsed, errors)``; it keeps what parsed, so an error in one
# entry does not hide the errors of the others.


def _read_allowed_images(value: Any) -> tuple:
    if not isinstance(value, (list, tuple)):
        return (), [f"allowedImages must be a list of patterns, got {shown(value)}"]
    patterns, errors = [], []
    for i, text in enumerate(value):
        try:
            patterns.append(parse_pattern(text))
        except PatternError as exc:
            errors.append(f"allowedImages[{i}]: {exc}")
    return tuple(patterns), errors


def _read_mirror_registry(value: Any) -> tuple:
    if value is None:
        return None, []
    try:
        return parse_mirror(value), []
    except PatternError as exc:
        return None, [str(exc)]


def _read_allowed_host_paths(value: Any) -> tuple:
    if not isinstance(value, (list, tuple)):
        return (), [f"allowedHostPaths must be a list of absolute paths, got {shown(value)}"]
    paths, errors = [], []
    for i, path in enumerate(value):
        if not isinstance(path, str) or not path.startswith("/"):
            errors.append(f"allowedHostPaths[{i}] must be an absolute path, got {shown(path)}")
        else:
            paths.append(normalise_host_path(path))
    return tuple(paths), errors


# Setting name -> (the Config field it fills, its reader). Every key of every
# DEFAULTS entry has a row.
_SETTINGS: Mapping[str, tuple] = {
    "allowedImages": ("allowed_images", _read_allowed_images),
    "mirrorRegistry": ("mirror", _read_mirror_registry),
    "allowedHostPaths": ("allowed_host_paths", _read_allowed_host_paths),
}


def _unknown_setting(key: Any, known: Mapping) -> str:
    listed = f"; known settings: {', '.join(sorted(known))}" if known else "; this policy has no settings"
    return f"unknown setting {shown(key)}{listed}"


def load_config(policy: str, raw: Optional[Mapping]) -> tuple:
    """Apply :data:`DEFAULTS` to ``raw`` and validate it: returns ``(Config, errors)``.

    ``errors`` lists every problem (unknown keys, wrong types, malformed
    patterns) as a sentence; a policy with errors checks nothing else.
    """
    raw = dict(raw or {})
    # Reserved by the engine; the CLI strips it, but a hand-written config may carry it.
    raw.pop("enforcementLevel", None)
    known = DEFAULTS[policy]
    errors = [_unknown_setting(key, known) for key in sorted(raw) if key not in known]
    fields = {}
    for key, default in known.items():
        value = raw.get(key)
        field_name, read = _SETTINGS[key]
        fields[field_name], found = read(copy.deepcopy(default) if value is None else value)
        errors.extend(found)
    return Config(**fields), errors


def config_error(policy: str, error: str) -> str:
    """How every config error is reported, by the policy itself and by pack-config."""
    return f"invalid configuration of policy {policy!r}: {error}"


def config_or_report(policy: str, args: ResourceValidationArgs, report: Callable) -> Optional[Config]:
    """The policy's settings, or None after reporting each of their errors."""
    config, errors = load_config(policy, args.get_config())
    for error in errors:
        report(config_error(policy, error))
    return None if errors else config


# --- noting configs for pack-config ----------------------------------------------------
#
# A stack policy receives only its own config (pulumi-policy passes
# ``_get_policy_config(policy.name)`` to every policy), so it cannot read the
# other policies' settings. The resource policies therefore note the config
# they are called with (for every resource, workload or not) and pack-config
# checks those at the end of the run: the engine analyzes each registered
# resource, the root ``pulumi:pulumi:Stack`` included, before it analyzes the
# stack, in the same policy-pack process (read from the engine source, not run
# here). A policy that never ran (disabled, or no resource analyzed at all) has
# no config to check.

_seen_lock = threading.Lock()
_seen_configs: dict = {}


def note_config(policy: str, raw: Optional[Mapping]) -> None:
    """Record the config ``policy`` was called with, for the pack-config policy."""
    value = copy.deepcopy(dict(raw)) if isinstance(raw, Mapping) else raw
    with _seen_lock:
        _seen_configs[policy] = value


def take_noted_configs() -> list:
    """``(policy, config)`` of every policy noted since the last call, in :data:`DEFAULTS` order; forgets them."""
    with _seen_lock:
        seen = dict(_seen_configs)
        _seen_configs.clear()
    return [(policy, seen[policy]) for policy in DEFAULTS if policy in seen]


def noting(policy: str, validate: Callable) -> Callable:
    """``validate``, noting its config first; it keeps ``validate``'s name and docstring."""

    def noting_validate(args: ResourceValidationArgs, report: Callable) -> None:
        note_config(policy, args.get_config())
        return validate(args, report)

    noting_validate.__name__ = noting_validate.__qualname__ = validate.__name__
    noting_validate.__doc__ = validate.__doc__
    return noting_validate
