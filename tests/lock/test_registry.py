"""``python -m prepull lock`` against a real registry on loopback (tests/registry_helpers.py).

Images are tiny OCI layouts pushed with skopeo; every test starts its own registry and stops it.
Faults (registry down, stopped mid-run, slow, missing tag, denied credentials, malformed manifest)
must exit non-zero with a clear message and leave the existing lock file byte for byte as it was.
"""

import base64
import hashlib
import http.server
import json
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
import registry_helpers
from registry_helpers import LocalRegistry, SilentServer, blob, build_layout, descriptor, layers_size, require_tools

import prepull.cli.lock as lock_command
from prepull.cli.main import main

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def test_missing_tools_skip_or_fail_when_required(monkeypatch):
    monkeypatch.setattr(registry_helpers.shutil, "which", lambda tool: None if tool == "skopeo" else "/usr/bin/" + tool)
    monkeypatch.delenv("PREPULL_E2E_REQUIRED", raising=False)
    with pytest.raises(pytest.skip.Exception, match="the registry tests need skopeo on PATH"):
        require_tools()
    monkeypatch.setenv("PREPULL_E2E_REQUIRED", "1")
    with pytest.raises(pytest.fail.Exception, match="PREPULL_E2E_REQUIRED=1 but the registry tests need skopeo"):
        require_tools()


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    require_tools()
    return build_layout(tmp_path_factory.mktemp("layout") / "oci")


@pytest.fixture(autouse=True)
def no_user_credentials(tmp_path, monkeypatch):
    """The tests never read this machine's Docker or Podman credentials."""
    (tmp_path / "docker").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)


@pytest.fixture
def registry(tmp_path, layout):
    reg = LocalRegistry(tmp_path / "registry").start()
    yield reg
    reg.stop()


def stack(tmp_path, *images, pool_extra: str = "") -> str:
    """A stacks dir with Pulumi.dev.yaml: one existing pool pulling ``images``."""
    stacks = tmp_path / "stacks"
    stacks.mkdir(exist_ok=True)
    (stacks / "Pulumi.dev.yaml").write_text(
        textwrap.dedent(f"""\
        config:
          prepull:nodePools:
            - name: general
              provider: existing
              labels: {{pool: general}}
              images: {json.dumps(list(images))}
        """)
        + pool_extra
    )
    return str(stacks)


def lock(stacks: str, *extra: str) -> int:
    return main(["lock", "--stack", "dev", "--stacks-dir", stacks, *extra])


def lock_text(stacks: str) -> str:
    return (Path(stacks) / "prepull.dev.lock.yaml").read_text()


def entries(stacks: str) -> dict:
    return yaml.safe_load(lock_text(stacks))["images"]


def test_tags_and_a_multi_architecture_index_are_locked(tmp_path, registry, layout, capsys):
    registry.push(layout, "multi", "t/multi:1")
    registry.push(layout, "amd64", "t/amd:1")
    stacks = stack(tmp_path, f"{registry.host}/t/multi:1", f"{registry.host}/t/amd:1")
    assert lock(stacks) == 0
    index = descriptor(layout, "multi")
    children = json.loads(blob(layout, index["digest"]))["manifests"]
    want = {f"linux/{c['platform']['architecture']}": {"digest": c["digest"], "size": layers_size(layout, c["digest"])} for c in children}
    amd = descriptor(layout, "amd64")
    assert entries(stacks) == {
        f"{registry.host}/t/multi:1": {"digest": index["digest"], "mediaType": OCI_INDEX, "platforms": want},
        f"{registry.host}/t/amd:1": {
            "digest": amd["digest"],
            "mediaType": amd["mediaType"],
            "platforms": {"linux/amd64": {"digest": amd["digest"], "size": layers_size(layout, amd["digest"])}},
        },
    }
    assert set(want) == {"linux/amd64", "linux/arm64"}
    assert main(["render", "--stack", "dev", "--stacks-dir", stacks]) == 0
    assert f"image: {registry.host}/t/multi:1@{index['digest']}" in capsys.readouterr().out


def test_a_moved_tag_changes_only_its_entry_and_check_sees_it(tmp_path, registry, layout, capsys):
    registry.push(layout, "multi", "t/multi:1")
    registry.push(layout, "amd64", "t/amd:1")
    stacks = stack(tmp_path, f"{registry.host}/t/multi:1", f"{registry.host}/t/amd:1")
    assert lock(stacks) == 0
    before = lock_text(stacks)
    assert lock(stacks, "--check") == 0
    registry.push(layout, "amd64-v2", "t/amd:1")
    capsys.readouterr()
    assert lock(stacks, "--check") == 1
    out = capsys.readouterr().out
    assert (
        "stale" in out
        and f"changed  {registry.host}/t/amd:1: {descriptor(layout, 'amd64')['digest']} -> {descriptor(layout, 'amd64-v2')['digest']}"
        in out
    )
    assert lock_text(stacks) == before  # --check writes nothing
    assert lock(stacks) == 0
    after = lock_text(stacks)
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(before.splitlines()) == len(after.splitlines())
    assert changed and all(descriptor(layout, "amd64")["digest"] in a or "size:" in a for a, _ in changed)
    assert entries(stacks)[f"{registry.host}/t/multi:1"] == yaml.safe_load(before)["images"][f"{registry.host}/t/multi:1"]


def test_check_without_a_lock_file_is_stale_and_writes_nothing(tmp_path, registry, layout, capsys):
    registry.push(layout, "amd64", "t/amd:1")
    stacks = stack(tmp_path, f"{registry.host}/t/amd:1")
    assert lock(stacks, "--check") == 1
    out = capsys.readouterr().out
    assert "prepull.dev.lock.yaml: stale (missing)" in out and f"added    {registry.host}/t/amd:1 -> " in out
    assert not (Path(stacks) / "prepull.dev.lock.yaml").exists()


def test_an_image_deleted_between_two_locks(tmp_path, registry, layout, capsys):
    registry.push(layout, "amd64", "t/amd:1")
    stacks = stack(tmp_path, f"{registry.host}/t/amd:1")
    assert lock(stacks) == 0
    before = lock_text(stacks)
    registry.request("DELETE", f"t/amd/manifests/{descriptor(layout, 'amd64')['digest']}")
    capsys.readouterr()
    assert lock(stacks) == 3
    err = capsys.readouterr().err
    assert f"{registry.host}/t/amd:1: " in err and "HTTP 404" in err and "does not exist" in err
    assert "was left unchanged" in err and lock_text(stacks) == before
    assert main(["render", "--stack", "dev", "--stacks-dir", stacks]) == 0  # the lock itself still renders offline


def test_a_missing_tag_names_the_image(tmp_path, registry, capsys):
    stacks = stack(tmp_path, f"{registry.host}/t/none:1")
    assert lock(stacks) == 3
    assert f"prepull: error: {registry.host}/t/none:1: " in capsys.readouterr().err
    assert not (tmp_path / "stacks" / "prepull.dev.lock.yaml").exists()


def test_localhost_is_plain_http_too(tmp_path, registry, layout):
    registry.push(layout, "amd64", "t/amd:1")
    stacks = stack(tmp_path, f"localhost:{registry.port}/t/amd:1")
    assert lock(stacks) == 0


# ---------------------------------------------------------------- htpasswd


@pytest.fixture
def private(tmp_path, layout):
    reg = LocalRegistry(tmp_path / "private", auth=("ci", "s3cret")).start()
    reg.push(layout, "multi", "t/multi:1")
    yield reg
    reg.stop()


def docker_login(tmp_path, host: str, user: str, password: str) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def test_htpasswd_with_the_docker_config_credentials(tmp_path, private):
    docker_login(tmp_path, private.host, "ci", "s3cret")
    stacks = stack(tmp_path, f"{private.host}/t/multi:1")
    assert lock(stacks) == 0
    assert set(entries(stacks)[f"{private.host}/t/multi:1"]["platforms"]) == {"linux/amd64", "linux/arm64"}


def test_htpasswd_with_a_credential_helper(tmp_path, private, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-prepulltest"
    helper.write_text('#!/bin/sh\nread server\necho "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"ci\\",\\"Secret\\":\\"s3cret\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"credHelpers": {private.host: "prepulltest"}}))
    assert lock(stack(tmp_path, f"{private.host}/t/multi:1")) == 0


def test_htpasswd_denied_keeps_the_lock(tmp_path, private, capsys):
    docker_login(tmp_path, private.host, "ci", "s3cret")
    stacks = stack(tmp_path, f"{private.host}/t/multi:1")
    assert lock(stacks) == 0
    before = lock_text(stacks)
    docker_login(tmp_path, private.host, "ci", "wrong")
    capsys.readouterr()
    assert lock(stacks) == 3
    err = capsys.readouterr().err
    assert f"{private.host} denied access (HTTP 401): the credentials from" in err and "were refused" in err
    assert lock_text(stacks) == before


def test_htpasswd_without_credentials_says_none_were_found(tmp_path, private, capsys):
    assert lock(stack(tmp_path, f"{private.host}/t/multi:1")) == 3
    assert "requires authentication (basic): no credentials were found" in capsys.readouterr().err


# ---------------------------------------------------------------- faults


def test_registry_down(tmp_path, capsys):
    silent_port = LocalRegistry(tmp_path / "never-started").port
    stacks = stack(tmp_path, f"127.0.0.1:{silent_port}/t/a:1", f"127.0.0.1:{silent_port}/t/b:1")
    assert lock(stacks) == 3
    err = capsys.readouterr().err
    assert f"cannot reach the registry 127.0.0.1:{silent_port}: Connection refused" in err
    assert f"127.0.0.1:{silent_port}/t/b:1: not tried: cannot reach" in err  # one registry, one wait


def test_registry_stopped_in_the_middle_of_a_run(tmp_path, registry, layout, capsys, monkeypatch):
    for tag in ("a", "b", "c"):
        registry.push(layout, "multi", f"t/{tag}:1")
    stacks = stack(tmp_path, *(f"{registry.host}/t/{tag}:1" for tag in ("a", "b", "c")))
    assert lock(stacks) == 0
    before = lock_text(stacks)
    registry.push(layout, "amd64", "t/c:1")  # so a full run would change the file
    report = lock_command.report

    def stop_after_first(line: str) -> None:
        report(line)
        registry.stop()

    monkeypatch.setattr(lock_command, "report", stop_after_first)
    capsys.readouterr()
    assert lock(stacks) == 3
    err = capsys.readouterr().err
    assert f"unchanged {registry.host}/t/a:1" in err and f"{registry.host}/t/b:1: cannot reach the registry {registry.host}" in err
    assert lock_text(stacks) == before


def test_a_slow_registry_times_out(tmp_path, capsys):
    silent = SilentServer()
    try:
        stacks = stack(tmp_path, f"{silent.host}/t/a:1", f"{silent.host}/t/b:1")
        start = time.monotonic()
        assert lock(stacks, "--timeout", "0.5") == 3
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    err = capsys.readouterr().err
    assert f"{silent.host}/t/a:1: {silent.host} did not answer within 0.5 s (--timeout)" in err
    assert f"{silent.host}/t/b:1: not tried" in err and elapsed < 5


def test_a_malformed_manifest_in_a_real_registry(tmp_path, registry, capsys):
    empty = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    registry.request("PUT", "t/empty/manifests/1", empty, {"Content-Type": OCI_INDEX})
    stacks = stack(tmp_path, f"{registry.host}/t/empty:1")
    (tmp_path / "stacks" / "prepull.dev.lock.yaml").write_text("# an older lock\n")
    assert lock(stacks) == 3
    assert "malformed manifest t/empty:1: the index lists no image manifest for any platform" in capsys.readouterr().err
    assert lock_text(stacks) == "# an older lock\n"


# ---------------------------------------------------------------- a stub registry: bodies a real one refuses to store, and Bearer tokens


class Stub(http.server.BaseHTTPRequestHandler):
    """Serves ``routes`` {path: (status, headers, body)}; with ``token``, /v2/ wants that Bearer token from /token (user ci:s3cret)."""

    routes: dict = {}
    token: str = ""

    def log_message(self, *args):
        pass

    def _answer(self, send_body: bool) -> None:
        if self.token and self.path.startswith("/v2/") and self.headers.get("Authorization") != f"Bearer {self.token}":
            realm = f"http://{self.headers['Host']}/token"
            return self._send(
                401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="stub",scope="repository:t/app:pull"'}, b"", send_body
            )
        if self.path.startswith("/token"):
            good = "Basic " + base64.b64encode(b"ci:s3cret").decode()
            ok = self.headers.get("Authorization") == good and "scope=repository%3At%2Fapp%3Apull" in self.path
            return self._send(200 if ok else 401, {}, json.dumps({"token": self.token}).encode() if ok else b"", send_body)
        status, headers, body = self.routes.get(
            self.path, (404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
        )
        self._send(status, headers, body, send_body)

    def _send(self, status, headers, body, send_body) -> None:
        self.send_response(status)
        for k, v in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)


@pytest.fixture
def stub():
    handler = type("Handler", (Stub,), {"routes": {}, "token": ""})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.handler, server.host = handler, f"127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def serve_image(stub, layout, tag: str) -> str:
    """Routes serving the layout's single-platform ``tag`` as t/app:1; returns its digest."""
    desc = descriptor(layout, tag)
    manifest = blob(layout, desc["digest"])
    config = json.loads(manifest)["config"]["digest"]
    headers = {"Content-Type": desc["mediaType"], "Docker-Content-Digest": desc["digest"]}
    stub.handler.routes.update(
        {"/v2/t/app/manifests/1": (200, headers, manifest), f"/v2/t/app/blobs/{config}": (200, {}, blob(layout, config))}
    )
    return desc["digest"]


@pytest.mark.parametrize(
    "body, headers, reason",
    [
        (b"<html>sorry</html>", {"Content-Type": "text/html"}, "the manifest is not JSON"),
        (
            b"{}",
            {"Docker-Content-Digest": "sha256:" + "0" * 64},
            f"its content has digest sha256:{hashlib.sha256(b'{}').hexdigest()}, not sha256:",
        ),
    ],
)
def test_malformed_bodies_are_refused(tmp_path, stub, body, headers, reason, capsys):
    stub.handler.routes["/v2/t/app/manifests/1"] = (200, headers, body)
    assert lock(stack(tmp_path, f"{stub.host}/t/app:1")) == 3
    err = capsys.readouterr().err
    assert f"{stub.host}/t/app:1: malformed manifest t/app:1: " in err and reason in err


def test_bearer_token_auth(tmp_path, stub, layout):
    stub.handler.token = "tok-123"
    digest = serve_image(stub, layout, "arm64")
    docker_login(tmp_path, stub.host, "ci", "s3cret")
    stacks = stack(tmp_path, f"{stub.host}/t/app:1")
    assert lock(stacks) == 0
    assert entries(stacks)[f"{stub.host}/t/app:1"]["platforms"] == {"linux/arm64": {"digest": digest, "size": layers_size(layout, digest)}}


def test_bearer_token_denied(tmp_path, stub, layout, capsys):
    stub.handler.token = "tok-123"
    serve_image(stub, layout, "arm64")
    docker_login(tmp_path, stub.host, "ci", "nope")
    assert lock(stack(tmp_path, f"{stub.host}/t/app:1")) == 3
    assert f"the token service {stub.host} refused a token (HTTP 401): the credentials from" in capsys.readouterr().err


def test_lock_warns_about_a_platform_the_pool_lacks_and_check_refuses_it(tmp_path, registry, layout, capsys):
    registry.push(layout, "arm64", "t/arm:1")
    stacks = stack(tmp_path, f"{registry.host}/t/arm:1", pool_extra="      platforms: [linux/amd64]\n")
    assert lock(stacks) == 0
    assert "warning: prepull:nodePools.general.images: has no linux/amd64 image (locked platforms: linux/arm64)" in capsys.readouterr().err
    assert main(["render", "--stack", "dev", "--stacks-dir", stacks]) == 2
    assert "has no linux/amd64 image (locked platforms: linux/arm64), but the pool's nodes are amd64 (platforms)" in capsys.readouterr().err
