"""Registry credentials, found the way ``docker`` and ``crane`` find them.

The config file: ``$DOCKER_CONFIG/config.json`` when ``DOCKER_CONFIG`` is set,
else ``~/.docker/config.json``; when neither exists, Podman's
``$REGISTRY_AUTH_FILE``, then ``$XDG_RUNTIME_DIR/containers/auth.json`` (as
go-containerregistry's default keychain does). For a registry it asks, in
Docker's order: ``credHelpers[host]`` (the ``docker-credential-<name>`` helper),
else ``credsStore`` (the one helper for every host; ``auths`` is then not read,
as in Docker), else ``auths[host]`` (``auth`` = base64 ``user:password``, or
``username``/``password``, or an ``identitytoken``). Within each, the
repository (``host/path``, as crane tries it) comes before the host, so a
per-repository entry wins. Docker Hub's key is ``https://index.docker.io/v1/``.

Credentials are looked up only when a registry asks for them (a 401), so
public images never run a helper, and a helper that is configured but missing
is an error only when it is needed.
"""

import base64
import binascii
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = ("index.docker.io", "docker.io", "registry-1.docker.io")  # what docker, podman and others write
HELPER_TIMEOUT = 30.0  # seconds; a helper may unlock a keychain


class CredentialError(Exception):
    """The config or a helper could not be used (unreadable file, failing or missing helper)."""


@dataclass(frozen=True)
class Credential:
    """A username and password, or an identity (refresh) token for the token endpoint."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    source: str = ""
    """Where it came from, for messages (never the secret)."""


def config_path(env: Mapping[str, str]) -> Optional[Path]:
    """The credentials file in use, or None when there is none."""
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path(env.get("HOME") or Path.home()) / ".docker"
    candidates = [docker_dir / "config.json"]
    if env.get("REGISTRY_AUTH_FILE"):
        candidates.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    return next((p for p in candidates if p.is_file()), None)


def _hostname(key: str) -> str:
    """Docker's normalisation of an ``auths`` key: ``https://host/v1/`` -> ``host``."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key.split("/", 1)[0]


def _from_auths(auths: Mapping[str, Any], key: str, hosts: tuple[str, ...], source: str) -> Optional[Credential]:
    """The ``auths`` entry for ``key``, else (for a registry) one whose key names one of ``hosts`` (keys may be URLs)."""
    entry = auths.get(key)
    if entry is None and hosts:
        entry = next((v for k, v in auths.items() if _hostname(k) in hosts), None)
    if not isinstance(entry, Mapping):
        return None
    user, password = entry.get("username") or "", entry.get("password") or ""
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialError(f"{source}: auths[{key!r}].auth is not base64 of 'user:password'") from None
    token = entry.get("identitytoken") or ""
    return Credential(user, password, token, f"{source} auths[{key!r}]") if (user or token) else None


def run_helper(helper: str, server: str, timeout: float = HELPER_TIMEOUT, env: Optional[Mapping[str, str]] = None) -> Optional[Credential]:
    """``docker-credential-<helper> get`` for ``server`` (found on ``env``'s PATH); None when it has no credentials for it."""
    binary = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([binary, "get"], input=server.encode(), capture_output=True, timeout=timeout, check=False, env=env)
    except FileNotFoundError:
        raise CredentialError(f"the credential helper {binary} is configured but not on PATH") from None
    except subprocess.TimeoutExpired:
        raise CredentialError(f"the credential helper {binary} did not answer within {timeout:g} s") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if "credentials not found" in (out + proc.stderr.decode(errors="replace")).lower():
            return None  # the helpers' protocol for "nothing stored for this server"
        raise CredentialError(
            f"the credential helper {binary} failed (exit {proc.returncode}): {out or proc.stderr.decode(errors='replace').strip()}"
        )
    try:
        doc = json.loads(out)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"the credential helper {binary} printed no JSON {{Username, Secret}}") from None
    if user == "<token>":  # the protocol's marker for an identity token
        return Credential(identity_token=secret, source=binary)
    return Credential(user, secret, source=binary)


class DockerCredentials:
    """Looks credentials up in the Docker (or Podman) config for a registry, on demand."""

    def __init__(self, env: Optional[Mapping[str, str]] = None, helper_timeout: float = HELPER_TIMEOUT) -> None:
        """``env`` defaults to ``os.environ``; ``helper_timeout`` bounds each helper run (default 30 s)."""
        self.env = dict(os.environ if env is None else env)
        self.path = config_path(self.env)
        self.helper_timeout = helper_timeout
        self._config: Optional[dict[str, Any]] = None  # the parsed config.json

    def _load(self) -> dict[str, Any]:
        if self._config is None:
            try:
                self._config = json.loads(self.path.read_text(encoding="utf-8")) if self.path else {}
            except (OSError, ValueError) as err:
                raise CredentialError(f"cannot read the registry credentials in {self.path}: {err}") from None
            if not isinstance(self._config, dict):
                raise CredentialError(f"{self.path}: not a JSON object")
        return self._config

    def _helper(self, name: str, key: str) -> Optional[Credential]:
        return run_helper(name, key, self.helper_timeout, self.env)

    def get(self, domain: str, path: str) -> Optional[Credential]:
        """Credentials for ``domain/path``; None: anonymous.

        Docker's order (credHelpers, else credsStore, else auths), each tried for the
        repository key before the registry's, so a host's own helper wins over the store.
        """
        config = self._load()
        hub = domain == "docker.io"
        host_key, hosts = (DOCKER_HUB_KEY, DOCKER_HUB_HOSTS) if hub else (domain, (domain,))
        keys = ((f"{domain}/{path}", ()), (host_key, hosts))
        helpers = config.get("credHelpers") or {}
        for key, _ in keys:
            if helpers.get(key):
                return self._helper(helpers[key], key)
        if config.get("credsStore"):  # docker reads no auths entry when a store is set
            return next((c for key, _ in keys if (c := self._helper(config["credsStore"], key))), None)
        auths = config.get("auths") or {}
        return next((c for key, names in keys if (c := _from_auths(auths, key, names, str(self.path)))), None)


__all__ = ["Credential", "CredentialError", "DOCKER_HUB_KEY", "DockerCredentials", "config_path", "run_helper"]
