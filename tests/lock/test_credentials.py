"""Registry credentials found as docker and crane find them (prepull.lock.credentials).

Also the pure HTTP helpers of prepull.lock.registry.
"""

import base64
import json
import os
import stat

import pytest

from prepull.lock.credentials import CredentialError, DockerCredentials, config_path
from prepull.lock.registry import is_loopback, parse_challenge, registry_message, scheme_for, why


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def docker_config(tmp_path, doc) -> dict:
    (tmp_path / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(tmp_path), "PATH": os.environ["PATH"]}


def helper(tmp_path, name: str, script: str) -> None:
    """A docker-credential-<name> on a PATH of its own (the helper protocol: server on stdin, JSON on stdout)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_config_file_order(tmp_path):
    (tmp_path / "home" / ".docker").mkdir(parents=True)
    (tmp_path / "podman").mkdir()
    (tmp_path / "podman" / "auth.json").write_text("{}")
    env = {"HOME": str(tmp_path / "home"), "REGISTRY_AUTH_FILE": str(tmp_path / "podman" / "auth.json")}
    assert config_path(env) == tmp_path / "podman" / "auth.json"  # no Docker config: Podman's
    (tmp_path / "home" / ".docker" / "config.json").write_text("{}")
    assert config_path(env) == tmp_path / "home" / ".docker" / "config.json"
    assert config_path({"DOCKER_CONFIG": str(tmp_path / "none")}) is None


def test_auths_base64_and_docker_hub_key(tmp_path):
    env = docker_config(
        tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")}, "https://reg.example:5000": {"auth": b64("u:p:w")}}}
    )
    creds = DockerCredentials(env)
    hub, reg = creds.get("docker.io", "library/nginx"), creds.get("reg.example:5000", "team/app")
    assert (hub.username, hub.password) == ("hub", "pw")
    assert (reg.username, reg.password) == ("u", "p:w")  # only the first colon separates
    assert creds.get("other.example", "x") is None


def test_a_repository_entry_wins_over_the_registry(tmp_path):
    env = docker_config(tmp_path, {"auths": {"reg.example": {"auth": b64("host:1")}, "reg.example/team/app": {"auth": b64("repo:2")}}})
    assert DockerCredentials(env).get("reg.example", "team/app").username == "repo"
    assert DockerCredentials(env).get("reg.example", "team/other").username == "host"


def test_cred_helpers_then_creds_store(tmp_path):
    helper(tmp_path, "per-host", 'read s; echo "{\\"ServerURL\\":\\"$s\\",\\"Username\\":\\"from-$s\\",\\"Secret\\":\\"pw\\"}"')
    helper(tmp_path, "store", 'read s; echo "{\\"Username\\":\\"<token>\\",\\"Secret\\":\\"refresh\\"}"')
    env = docker_config(tmp_path, {"credHelpers": {"reg.example": "per-host"}, "credsStore": "store"})
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    creds = DockerCredentials(env)
    assert creds.get("reg.example", "a").username == "from-reg.example"
    other = creds.get("other.example", "a")
    assert (other.identity_token, other.username, other.source) == ("refresh", "", "docker-credential-store")


def test_a_helper_without_credentials_means_anonymous(tmp_path):
    helper(tmp_path, "empty", 'echo "credentials not found in native keychain"; exit 1')
    env = docker_config(tmp_path, {"credsStore": "empty"})
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    assert DockerCredentials(env).get("reg.example", "a") is None


@pytest.mark.parametrize(
    "script, reason",
    [
        (None, "docker-credential-gone is configured but not on PATH"),
        ('echo "keychain locked" >&2; exit 3', "failed (exit 3): keychain locked"),
        ("echo not-json", "printed no JSON"),
    ],
)
def test_a_broken_helper_is_an_error_saying_which(tmp_path, script, reason):
    if script:
        helper(tmp_path, "gone", script)
    env = docker_config(tmp_path, {"credsStore": "gone"})
    env["PATH"] = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    with pytest.raises(CredentialError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        DockerCredentials(env).get("reg.example", "a")


def test_an_unreadable_config_is_an_error(tmp_path):
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(CredentialError, match="cannot read the registry credentials"):
        DockerCredentials({"DOCKER_CONFIG": str(tmp_path)}).get("reg.example", "a")


# ---------------------------------------------------------------- prepull.lock.registry's pure helpers


@pytest.mark.parametrize(
    "domain, loopback",
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("reg.localhost", True),
        ("10.0.0.1:5000", False),
        ("registry.example", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback(domain, loopback):
    assert is_loopback(domain) is loopback


def test_plain_http_only_for_loopback_and_named_hosts():
    assert scheme_for("127.0.0.1:5000", ()) == "http"
    assert scheme_for("registry.internal:5000", ()) == "https"
    assert scheme_for("registry.internal:5000", ("registry.internal:5000",)) == "http"
    assert scheme_for("registry.internal:5000", ("registry.internal",)) == "http"  # a host name covers its ports
    assert scheme_for("registry.internal:5000", ("other.internal",)) == "https"


def test_challenges_are_parsed_with_quoted_commas():
    header = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    assert parse_challenge(header) == (
        "bearer",
        {"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"},
    )
    assert parse_challenge('Basic realm="prepull-test"') == ("basic", {"realm": "prepull-test"})
    assert parse_challenge("") == ("", {})


def test_registry_messages_and_reasons_are_short():
    assert (
        registry_message(b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}') == "MANIFEST_UNKNOWN: manifest unknown"
    )
    assert registry_message(b"404 page not found\n") == "404 page not found"
    long = (
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded "
        "(Caused by NewConnectionError('...: [Errno 111] Connection refused'))"
    )
    assert why(Exception(long)) == "Connection refused"
