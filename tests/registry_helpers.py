"""A real registry on loopback for the lock tests: Debian's docker-registry (the CNCF distribution registry).

Each :class:`LocalRegistry` runs its own ``docker-registry serve`` on a free ephemeral port of
127.0.0.1 with its storage in a temporary directory, optionally behind htpasswd (bcrypt)
authentication, and is stopped by the fixture that started it. Images are pushed with
``skopeo copy`` from OCI layouts built by tests/cluster/images.py.

Without ``docker-registry`` or ``skopeo`` on PATH the tests are skipped with the reason, or fail
when ``PREPULL_E2E_REQUIRED=1`` (as in CI, which installs both).
"""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import images  # noqa: E402  (tests/cluster/images.py: the OCI layout builder)

TOOLS = ("docker-registry", "skopeo")
# Ports another engineer's local cluster uses on this machine: never ours.
RESERVED_PORTS = range(20248, 26444)


def require_tools() -> None:
    """Skip (or, with PREPULL_E2E_REQUIRED=1, fail) when a tool the registry tests need is missing."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"the registry tests need {' and '.join(missing)} on PATH (Debian: apt-get install docker-registry skopeo)"
    if os.environ.get("PREPULL_E2E_REQUIRED") == "1":
        pytest.fail(f"PREPULL_E2E_REQUIRED=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A free ephemeral port on 127.0.0.1, outside the reserved range."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def htpasswd(path: Path, user: str, password: str) -> Path:
    """An htpasswd file with one bcrypt entry (the only hash the distribution registry accepts)."""
    import bcrypt

    path.write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    return path


class LocalRegistry:
    """One ``docker-registry serve`` on 127.0.0.1:<free port>, storage under ``root``."""

    def __init__(self, root: Path, auth: Optional[tuple] = None) -> None:
        """``auth``: (user, password) to require htpasswd authentication; default anonymous."""
        self.root, self.auth = root, auth
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None
        root.mkdir(parents=True, exist_ok=True)

    def _config(self) -> Path:
        lines = [
            "version: 0.1",
            "log: {level: error, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}, delete: {{enabled: true}}}}",
            f"http: {{addr: {self.host}}}",
        ]
        if self.auth:
            lines.append(f"auth: {{htpasswd: {{realm: prepull-test, path: {htpasswd(self.root / 'htpasswd', *self.auth)}}}}}")
        path = self.root / "config.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> "LocalRegistry":
        log = open(self.root / "registry.log", "ab")
        self.process = subprocess.Popen(["docker-registry", "serve", str(self._config())], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited {self.process.returncode}: {(self.root / 'registry.log').read_text()[-500:]}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.host} within 15 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def push(self, layout: "images.Layout", tag: str, dest: str) -> None:
        """``skopeo copy --all`` of the layout's ``tag`` to ``<host>/<dest>`` (plain HTTP)."""
        creds = ["--dest-creds", ":".join(self.auth)] if self.auth else []
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--all",
                "--dest-tls-verify=false",
                *creds,
                f"oci:{layout.root}:{tag}",
                f"docker://{self.host}/{dest}",
            ],
            check=True,
            timeout=60,
        )

    def request(self, method: str, path: str, data: Optional[bytes] = None, headers: Optional[dict] = None):
        """A raw API request (``DELETE`` a manifest, ``PUT`` a hand-made one); returns the response."""
        req = urllib.request.Request(f"http://{self.host}/v2/{path}", data=data, method=method, headers=headers or {})
        return urllib.request.urlopen(req, timeout=10)


class SilentServer:
    """A loopback socket that accepts connections and never answers: the slowest registry there is."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", free_port()))
        self.sock.listen(16)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)  # kept open, never read or written

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def build_layout(root: Path) -> "images.Layout":
    """Tiny images, each under its own layout tag: single-arch amd64 and arm64, a two-platform index, and a "v2"."""
    layout = images.Layout(root)
    layout.tag("amd64", images.shellless_image(layout, "amd64-only"))
    layout.tag("amd64-v2", images.shellless_image(layout, "amd64-only, second build"))
    layout.tag("arm64", layout.image([images.layer([("arm.txt", b"arm64\n", 0o644, "")])], {}, "arm64-only", "arm64"))
    layout.tag("multi", images.multiarch_index(layout, "multi"))
    return layout


def descriptor(layout: "images.Layout", tag: str) -> dict:
    """The descriptor a layout tag points to (manifest or index)."""
    return next(r for r in layout.refs if r["annotations"]["org.opencontainers.image.ref.name"] == tag)


def blob(layout: "images.Layout", digest: str) -> bytes:
    return (layout.root / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def layers_size(layout: "images.Layout", digest: str) -> int:
    """The sum of an image manifest's layer sizes, read from the layout (what lock must report)."""
    import json

    return sum(layer["size"] for layer in json.loads(blob(layout, digest))["layers"])
