"""A slow registry for fault tests: a loopback proxy in front of the local cluster's registry.

On loopback a pull takes a fraction of a second, too short to restart containerd, the kubelet or
the API server in the middle of it. The proxy sends image layers at a set rate, so a pull of a few
tens of MiB lasts long enough, and it counts what it served, so a test can act once a pull has
started. Images pushed for it carry fresh random data: containerd has none of their layers yet,
so every byte goes through the proxy (a new tag of an image it already holds would not).

containerd finds the proxy through a ``hosts.toml`` of its own in the cluster's ``certs.d``
(plain HTTP, like the registry's): containerd reads that directory at each pull.
"""

import http.client
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import images  # tests/cluster/images.py: the OCI layouts the cluster's own images are built with

CHUNK = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class SlowRegistry:
    """Serves ``upstream`` (host:port) on a free loopback port; blobs at ``rate`` bytes a second."""

    def __init__(self, cluster_dir: Path, upstream: str, rate: int) -> None:
        self.upstream, self.rate, self.served = upstream, rate, 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.hosts_dir = cluster_dir / "containerd" / "certs.d" / self.host
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "SlowRegistry":
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        (self.hosts_dir / "hosts.toml").write_text(
            f'server = "http://{self.host}"\n\n[host."http://{self.host}"]\n  capabilities = ["pull", "resolve"]\n'
        )
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.hosts_dir, ignore_errors=True)

    def served_bytes(self) -> int:
        with self.lock:
            return self.served

    def _count(self, n: int) -> None:
        with self.lock:
            self.served += n

    def _handler(self) -> type:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: pytest shows stderr of failures
                pass

            def do_HEAD(self) -> None:
                self._forward(body=False)

            def do_GET(self) -> None:
                self._forward(body=True)

            def _forward(self, body: bool) -> None:
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
                try:
                    upstream.request(self.command, self.path, headers=headers)
                    response = upstream.getresponse()
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_BY_HOP:
                            self.send_header(key, value)
                    self.end_headers()
                    if body:
                        self._copy(response, slow="/blobs/" in urllib.parse.urlsplit(self.path).path)
                except OSError:
                    self.close_connection = True  # the client went away (containerd restarted): nothing to answer
                finally:
                    upstream.close()

            def _copy(self, response: http.client.HTTPResponse, slow: bool) -> None:
                while chunk := response.read(CHUNK):
                    self.wfile.write(chunk)
                    proxy._count(len(chunk))
                    if slow:
                        time.sleep(len(chunk) / proxy.rate)

        return Handler


def push_unique_image(registry: str, mib: int) -> str:
    """``registry``/prepull-test/slow:<random> (a path under it): one layer of ``mib`` MiB of fresh random bytes."""
    path = f"prepull-test/slow:{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as tmp:
        layout = images.Layout(Path(tmp) / "layout")
        data = images.layer([("data/blob", os.urandom(mib * 1024 * 1024), 0o644, "")])
        layout.tag("image", layout.image([data], {}, path))
        skopeo_copy(f"oci:{layout.root}:image", f"docker://{registry}/{path}", "--quiet", "--dest-tls-verify=false", timeout=300)
    return path


def skopeo_copy(source: str, dest: str, *options: str, timeout: float) -> None:
    """``skopeo copy [options] source dest``, its output captured: a failure's CalledProcessError carries it, a success prints nothing."""
    subprocess.run(["skopeo", "copy", *options, source, dest], check=True, capture_output=True, timeout=timeout)
