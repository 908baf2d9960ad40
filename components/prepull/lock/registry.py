"""Resolving image references over the OCI distribution API (the network side of ``lock``).

Hand-written on ``requests`` (docs/lock.md says why no registry library was
used). What it does:

- ``HEAD`` a tag for its digest (free on Docker Hub's rate limit): an unchanged
  tag reuses its lock entry without downloading anything;
- ``GET`` the manifest or index with an ``Accept`` of the OCI and Docker types,
  verify its digest, and for an index ``GET`` each platform's manifest by digest
  (its size is the sum of its layers); a single manifest's platform comes from
  its config blob;
- authentication when a registry answers 401: ``Basic`` with the user's
  credentials (prepull.lock.credentials), or ``Bearer`` tokens from the realm the
  challenge names (with those credentials, or anonymous);
- plain HTTP only for loopback registries and hosts given with ``--plain-http``;
  HTTPS with certificate verification otherwise;
- every request bounded by ``timeout`` (connect, each read, and the whole body),
  and bodies by size, so a slow or hostile registry ends in an error, never a hang.

Every failure is a :class:`RegistryError` naming the image, with a ``kind``
(unreachable, timeout, not-found, denied, malformed, error) and a reason.
"""

import base64
import ipaddress
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Collection, Mapping, Optional, Protocol

import requests

from prepull.core.images import ImageRef
from prepull.lock.credentials import Credential, CredentialError, DockerCredentials
from prepull.lock.file import LockedPlatform, LockEntry
from prepull.lock.oci import ACCEPT, MalformedManifest, Manifest, config_platform, digest_of, parse_manifest

DEFAULT_TIMEOUT = 30.0
MAX_MANIFEST_BYTES = 4 * 2**20  # the distribution registry refuses larger manifests
MAX_CONFIG_BYTES = 16 * 2**20
DOCKER_HUB_API = "registry-1.docker.io"  # docker.io's API host
USER_AGENT = "prepull-lock"
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
_PARAM = re.compile(r'([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


class RegistryError(Exception):
    """An image that could not be resolved: ``kind`` says which fault, ``reason`` what happened."""

    def __init__(self, image: str, kind: str, reason: str) -> None:
        self.image, self.kind, self.reason = image, kind, reason
        super().__init__(f"{image}: {reason}")


def host_of(domain: str) -> str:
    """The host name of a registry domain, without port or IPv6 brackets."""
    if domain.startswith("["):
        return domain[1:].split("]", 1)[0]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_loopback(domain: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``, with any port."""
    host = host_of(domain)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scheme_for(domain: str, plain_http: Collection[str]) -> str:
    """``http`` only for loopback or a domain named with --plain-http (``host`` or ``host:port``)."""
    return "http" if is_loopback(domain) or domain in plain_http or host_of(domain) in plain_http else "https"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` -> ``("bearer", {realm, service, scope})``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}
    return scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()}


def basic_auth(cred: Credential) -> str:
    """The ``Basic`` Authorization header value of a username and password."""
    return "Basic " + base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()


def registry_message(body: bytes) -> str:
    """The distribution API's ``{"errors": [{code, message}]}`` as ``CODE: message``; other bodies as text."""
    try:
        errors = json.loads(body).get("errors")
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    except (ValueError, AttributeError, TypeError):
        return body.decode(errors="replace").strip()[:200]


def why(err: Exception) -> str:
    """A short reason from a requests exception (``Connection refused``), not its whole repr."""
    text = str(err)
    match = _ERRNO.search(text)
    if match:
        return match.group(1).strip()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was closed without a response"
    return text[:300]


@dataclass(frozen=True)
class Target:
    """One repository on its registry, and the image as written (for messages)."""

    image: str
    domain: str
    path: str
    base: str
    """``scheme://host/v2/<path>``"""


class CredentialSource(Protocol):
    """Where a client finds credentials: :class:`DockerCredentials`, or a test's stand-in."""

    def get(self, domain: str, path: str) -> Optional[Credential]:
        """The credential for a repository, or None (anonymous)."""
        ...


class RegistryClient:
    """A distribution API client for many registries, with authentication cached per repository."""

    def __init__(
        self,
        credentials: Optional[CredentialSource] = None,
        plain_http: Collection[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        session: Optional[requests.Session] = None,
    ) -> None:
        """``credentials`` default to :class:`DockerCredentials` from the environment; ``timeout`` in seconds (default 30)."""
        self.credentials = credentials if credentials is not None else DockerCredentials()
        self.plain_http = frozenset(plain_http)
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._auth: dict[tuple[str, str], str] = {}  # (domain, path) -> Authorization header value

    def target(self, ref: ImageRef) -> Target:
        api = DOCKER_HUB_API if ref.domain == "docker.io" else ref.domain
        return Target(ref.original, ref.domain, ref.path, f"{scheme_for(ref.domain, self.plain_http)}://{api}/v2/{ref.path}")

    # ------------------------------------------------------------ requests

    def _call(
        self,
        t: Target,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: Optional[Mapping[str, Any]] = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> requests.Response:
        """One request, its transport failures as RegistryErrors (a body is read later, by _read)."""
        host = urllib.parse.urlsplit(url).netloc
        try:
            return self.session.request(
                method, url, headers=headers, timeout=(self.timeout, self.timeout), stream=True, data=data, params=params
            )
        except requests.exceptions.SSLError as err:
            raise RegistryError(
                t.image, "error", f"TLS failed with {host}: {why(err)} (a plain-HTTP registry must be named with --plain-http)"
            ) from None
        except requests.exceptions.Timeout:
            raise RegistryError(t.image, "timeout", f"{host} did not answer within {self.timeout:g} s (--timeout)") from None
        except requests.exceptions.ConnectionError as err:
            if "timed out" in str(err).lower():
                raise RegistryError(t.image, "timeout", f"{host} did not answer within {self.timeout:g} s (--timeout)") from None
            raise RegistryError(t.image, "unreachable", f"cannot reach the registry {host}: {why(err)}") from None

    def _read(self, t: Target, response: requests.Response, limit: int, what: str) -> bytes:
        """The body, at most ``limit`` bytes and within ``timeout`` overall (a trickling registry is a slow one)."""
        deadline, total = time.monotonic() + self.timeout, 0
        chunks: list[bytes] = []
        try:
            for chunk in response.iter_content(64 * 1024):
                total += len(chunk)
                if total > limit:
                    raise RegistryError(t.image, "malformed", f"the {what} is larger than {limit} bytes")
                if time.monotonic() > deadline:
                    raise RegistryError(t.image, "timeout", f"the {what} took longer than {self.timeout:g} s to arrive (--timeout)")
                chunks.append(chunk)
        except requests.exceptions.RequestException as err:
            kind = "timeout" if "timed out" in str(err).lower() else "unreachable"
            raise RegistryError(t.image, kind, f"reading the {what} failed: {why(err)}") from None
        finally:
            response.close()
        return b"".join(chunks)

    def _send(self, t: Target, method: str, url: str, headers: Mapping[str, str]) -> requests.Response:
        """A request with the repository's cached authorization; on a 401, authenticate once and retry."""
        key = (t.domain, t.path)
        auth = {"Authorization": self._auth[key]} if key in self._auth else {}
        response = self._call(t, method, url, {**headers, **auth})
        if response.status_code == 401:  # no authorization yet, or an expired token: once more, with a fresh one
            response.close()
            self._auth[key] = self._authorize(t, response)
            response = self._call(t, method, url, {**headers, "Authorization": self._auth[key]})
        if response.status_code in (401, 403):
            response.close()
            raise RegistryError(
                t.image, "denied", f"{urllib.parse.urlsplit(url).netloc} denied access (HTTP {response.status_code}): {self._who(t)}"
            )
        return response

    def _who(self, t: Target) -> str:
        cred = self._credential(t)
        return (
            f"the credentials from {cred.source} were refused"
            if cred
            else "no credentials were found for it (docker login, or a credential helper)"
        )

    # ------------------------------------------------------------ authentication

    def _credential(self, t: Target) -> Optional[Credential]:
        try:
            return self.credentials.get(t.domain, t.path)
        except CredentialError as err:
            raise RegistryError(t.image, "denied", f"registry credentials: {err}") from None

    def _authorize(self, t: Target, response: requests.Response) -> str:
        """The Authorization header a 401's WWW-Authenticate challenge asks for."""
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        cred = self._credential(t)
        if scheme == "bearer" and params.get("realm"):
            return "Bearer " + self._token(t, params, cred)
        if scheme == "basic" and cred and cred.username:
            return basic_auth(cred)
        raise RegistryError(t.image, "denied", f"{t.domain} requires authentication ({scheme or 'no challenge'}): {self._who(t)}")

    def _token(self, t: Target, params: Mapping[str, str], cred: Optional[Credential]) -> str:
        """A bearer token from the challenge's realm: with the user's credentials, or anonymous."""
        realm = params["realm"]
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme != "https" and scheme_for(parts.netloc, self.plain_http) != "http":
            raise RegistryError(
                t.image, "denied", f"the token realm {realm} is not HTTPS: refusing to send credentials there (see --plain-http)"
            )
        query: dict[str, Any] = {
            "service": params.get("service", ""),
            "scope": (params.get("scope") or f"repository:{t.path}:pull").split(" "),
        }
        if cred and cred.identity_token:  # an OAuth2 refresh token, as docker sends it
            data = {**query, "grant_type": "refresh_token", "refresh_token": cred.identity_token, "client_id": USER_AGENT}
            response = self._call(t, "POST", realm, {}, data=data)
        else:
            basic = {"Authorization": basic_auth(cred)} if cred and cred.username else {}
            response = self._call(t, "GET", realm, basic, params=query)
        if response.status_code in (401, 403):
            response.close()
            raise RegistryError(
                t.image, "denied", f"the token service {parts.netloc} refused a token (HTTP {response.status_code}): {self._who(t)}"
            )
        doc = self._json(t, response, "token response")
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(t.image, "denied", f"the token service {parts.netloc} answered without a token")
        return token

    def _json(self, t: Target, response: requests.Response, what: str) -> dict[str, Any]:
        self._check(t, response, what)
        body = self._read(t, response, MAX_MANIFEST_BYTES, what)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise RegistryError(t.image, "malformed", f"the {what} is not a JSON object")
        return doc

    def _check(self, t: Target, response: requests.Response, what: str) -> None:
        """2xx passes; 404 is not-found; anything else an error with the registry's own message."""
        if 200 <= response.status_code < 300:
            return
        message = registry_message(self._read(t, response, 64 * 1024, what))
        host = urllib.parse.urlsplit(response.url).netloc
        if response.status_code == 404:
            raise RegistryError(t.image, "not-found", f"{host} has no {what} (HTTP 404: {message or 'not found'})")
        raise RegistryError(t.image, "error", f"{host} answered HTTP {response.status_code} for the {what}: {message}")

    # ------------------------------------------------------------ the distribution API

    def head_digest(self, t: Target, reference: str) -> Optional[str]:
        """The digest a tag or digest points to, from ``HEAD`` (None when the registry does not say)."""
        response = self._send(t, "HEAD", f"{t.base}/manifests/{reference}", {"Accept": ACCEPT})
        response.close()
        if response.status_code == 404:
            raise RegistryError(
                t.image, "not-found", f"{t.domain} has no manifest {t.path}:{reference} (HTTP 404): the tag or digest does not exist"
            )
        return response.headers.get("Docker-Content-Digest") if response.ok else None

    def manifest(self, t: Target, reference: str) -> tuple[Manifest, str]:
        """The manifest or index for a tag or digest, and its digest (checked against the registry's and the reference's)."""
        response = self._send(t, "GET", f"{t.base}/manifests/{reference}", {"Accept": ACCEPT})
        self._check(t, response, f"manifest {t.path}:{reference}")
        body = self._read(t, response, MAX_MANIFEST_BYTES, "manifest")
        claimed = response.headers.get("Docker-Content-Digest")
        expected = reference if reference.startswith(("sha256:", "sha512:")) else claimed
        try:
            digest = digest_of(body, (expected or "sha256").split(":")[0])
            if expected and digest != expected:
                raise MalformedManifest(f"its content has digest {digest}, not {expected} as the registry or reference says")
            return parse_manifest(body, response.headers.get("Content-Type")), digest
        except MalformedManifest as err:
            raise RegistryError(t.image, "malformed", f"malformed manifest {t.path}:{reference}: {err}") from None

    def platform(self, t: Target, config_digest: str) -> str:
        """The ``os/arch[/variant]`` a single-platform image's config blob declares."""
        response = self._send(t, "GET", f"{t.base}/blobs/{config_digest}", {})
        self._check(t, response, f"config blob {config_digest}")
        body = self._read(t, response, MAX_CONFIG_BYTES, "image config")
        try:
            if digest_of(body, config_digest.split(":")[0]) != config_digest:
                raise MalformedManifest(f"the config blob's content does not have its digest {config_digest}")
            return config_platform(body)
        except MalformedManifest as err:
            raise RegistryError(t.image, "malformed", f"malformed image {t.path}: {err}") from None


def resolve(client: RegistryClient, ref: ImageRef, previous: Optional[LockEntry] = None) -> LockEntry:
    """What ``ref`` points to now; ``previous`` (its lock entry) is reused when ``HEAD`` says the digest has not moved."""
    t = client.target(ref)
    reference = ref.pull_reference
    if previous is not None and client.head_digest(t, reference) == previous.digest:
        return previous
    manifest, digest = client.manifest(t, reference)
    if not manifest.is_index:
        if manifest.config_digest is None:  # parse_manifest sets it on every image manifest
            raise RegistryError(t.image, "malformed", f"malformed manifest {t.path}:{reference}: no config descriptor")
        return LockEntry(digest, manifest.media_type, {client.platform(t, manifest.config_digest): LockedPlatform(digest, manifest.size)})
    platforms: dict[str, LockedPlatform] = {}
    for name, child_digest in manifest.children:
        child, _ = client.manifest(t, child_digest)
        if child.is_index:
            raise RegistryError(t.image, "malformed", f"malformed index {t.path}:{reference}: its {name} entry is another index")
        platforms[name] = LockedPlatform(child_digest, child.size)
    return LockEntry(digest, manifest.media_type, platforms)


__all__ = [
    "DEFAULT_TIMEOUT",
    "CredentialSource",
    "RegistryClient",
    "RegistryError",
    "is_loopback",
    "parse_challenge",
    "resolve",
    "scheme_for",
]
