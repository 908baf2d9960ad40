"""Start and stop the local cluster: `tests/cluster/up DIR` and `tests/cluster/down DIR` run this.

Everything lives under DIR and listens on 127.0.0.1 only: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, a registry, containerd, one real kubelet
node, and kwok with simulated nodes. Each started process's PID is recorded in
DIR/pids/, and `down` stops exactly those. Pods reach the API server through one
DNAT rule (the `kubernetes` Service IP -> 127.0.0.1), which is all of kube-proxy's
job that the pre-puller's untaint step needs.

The real node's runtime is Debian's containerd 1.6 by default, or containerd 2 (built by
tests/cluster/build, piece ``containerd2``) with ``up DIR --runtime containerd2``, for image volumes.
The choice is kept in DIR/runtime.json, so that ``down`` and every restart of containerd (the fault
and garbage-collection tests call start_containerd) use the same runtime.

Standard library only: it runs before any virtualenv exists. Binaries come from
PATH, which `up` sets from tests/cluster/build's cache; containerd 2's are not on it (up passes
their folder in PREPULL_CONTAINERD2_BIN), so that Debian's containerd and ctr stay the default.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import images  # noqa: E402

HOST = "127.0.0.1"
PORTS = {
    "etcd": 23790,
    "etcd-peer": 23800,
    "apiserver": 26443,
    "registry": 25000,
    "kubelet": 20250,
    "kubelet-healthz": 20248,
    "cri-stream": 20010,
}
POD_SUBNET, POD_GATEWAY, BRIDGE = "10.217.0.0/24", "10.217.0.1", "prepull0"
SERVICE_RANGE, API_SERVICE_IP = "10.218.0.0/24", "10.218.0.1"
CONTEXT = "prepull-local"
REAL_NODE = "prepull-real-0"
# The real node is the dev stack's `gated` pool, registered with its startup taint (as in
# examples/kind-dev.yaml); kwok nodes get the other pools' labels in this order, the rest are spare.
REAL_NODE_LABELS = {"prepull.dev/pool": "gated"}
STARTUP_TAINT = {"key": "startup-taint.cluster-autoscaler.kubernetes.io/prepull", "effect": "NoSchedule"}
KWOK_ROLES = [
    ({"prepull.dev/pool": "general"}, []),
    ({"prepull.dev/pool": "batch"}, [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]),
]
SPARE_LABELS = {"prepull.dev/spare": "true"}
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
# Every kwok node says what it is: simulated, never pulls an image.
SIMULATED_LABEL = "prepull.dev/simulated"
# The real node's runtimes: Debian's containerd (the default, and the cluster tier's first run) and
# containerd 2 from tests/cluster/build (image volumes, `method: image-volume`; the tier's second run).
RUNTIMES = ("containerd1.6", "containerd2")
DEFAULT_RUNTIME = "containerd1.6"
CONTAINERD2_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr")
ORDER = ["etcd", "registry", "containerd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kwok"]


class StartError(Exception):
    """A component did not start: its name and the end of its log."""


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def run(*argv, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------- processes


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that died while `up` still runs is a zombie until `up` exits.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and ") Z " not in stat.read_text()


def recorded_pid(d: Path, name: str):
    path = d / "pids" / f"{name}.pid"
    if not path.exists():
        return None
    pid, exe = path.read_text().split(maxsplit=1)
    try:  # a reused PID is not ours: compare the executable's name
        same = Path(f"/proc/{pid}/exe").resolve().name == Path(exe.strip()).name
    except OSError:
        same = False
    return int(pid) if same and pid_alive(int(pid)) else None


def start(d: Path, name: str, argv: list, env=None) -> None:
    """Start ``argv`` in its own session, logging to DIR/logs/NAME.log; a no-op if it runs already.

    ``env``: the whole environment of the process (default: ours).
    """
    if recorded_pid(d, name):
        log(f"{name} is already running")
        return
    exe = shutil.which(argv[0])
    if not exe:
        raise StartError(f"{name}: {argv[0]} is not on PATH (run tests/cluster/build)")
    logfile = open(d / "logs" / f"{name}.log", "ab")
    proc = subprocess.Popen(
        [str(a) for a in argv], stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
    )
    (d / "pids" / f"{name}.pid").write_text(f"{proc.pid} {exe}\n")
    log(f"started {name} (pid {proc.pid})")


def log_tail(d: Path, name: str, lines: int = 30) -> str:
    path = d / "logs" / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def wait_until(d: Path, name: str, ready, timeout: float = 90) -> None:
    """Poll ``ready()`` until true; fail naming the component, with its log's tail, if it died or timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - not up yet; the timeout reports it
            pass
        if name in ORDER and not recorded_pid(d, name):
            raise StartError(f"{name} exited while starting; the end of DIR/logs/{name}.log:\n{log_tail(d, name)}")
        time.sleep(0.5)
    raise StartError(f"{name} was not ready after {timeout:.0f}s; the end of DIR/logs/{name}.log:\n{log_tail(d, name)}")


def http_ok(url: str, context=None) -> bool:
    with urllib.request.urlopen(url, timeout=3, context=context) as response:
        return response.status == 200


# ---------------------------------------------------------------- certificates


def openssl(*args) -> None:
    run("openssl", *args)


def certificate(pki: Path, name: str, subject: str, sans: str = "", server=False) -> None:
    """A key and a certificate signed by the cluster CA (for 1 year)."""
    if (pki / f"{name}.crt").exists():
        return
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", pki / f"{name}.key", "-out", pki / f"{name}.csr", "-subj", subject)
    ext = pki / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    ext.write_text(
        f"extendedKeyUsage={usage}\nkeyUsage=critical,digitalSignature,keyEncipherment\n" + (f"subjectAltName={sans}\n" if sans else "")
    )
    openssl(
        "x509",
        "-req",
        "-in",
        pki / f"{name}.csr",
        "-CA",
        pki / "ca.crt",
        "-CAkey",
        pki / "ca.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-out",
        pki / f"{name}.crt",
        "-extfile",
        ext,
    )


def make_pki(d: Path) -> Path:
    pki = d / "pki"
    pki.mkdir(exist_ok=True)
    if not (pki / "ca.crt").exists():
        openssl(
            "req",
            "-x509",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            pki / "ca.key",
            "-out",
            pki / "ca.crt",
            "-days",
            "365",
            "-subj",
            "/CN=prepull-local-ca",
        )
    sans = f"IP:{HOST},IP:{API_SERVICE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
    certificate(pki, "apiserver", "/CN=kube-apiserver", sans, server=True)
    certificate(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
    certificate(pki, "admin", "/O=system:masters/CN=prepull-admin")
    certificate(pki, "kube-controller-manager", "/CN=system:kube-controller-manager")
    certificate(pki, "kube-scheduler", "/CN=system:kube-scheduler")
    certificate(pki, "kubelet", f"/O=system:nodes/CN=system:node:{REAL_NODE}")
    certificate(pki, "kwok", "/O=system:masters/CN=kwok-controller")
    if not (pki / "sa.key").exists():
        openssl("genrsa", "-out", pki / "sa.key", "2048")
        openssl("rsa", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub")
    return pki


def kubeconfig(d: Path, user: str) -> Path:
    pki, path = d / "pki", d / f"{user}.kubeconfig"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": f"https://{HOST}:{PORTS['apiserver']}", "certificate-authority": str(pki / "ca.crt")}}
        ],
        "users": [{"name": user, "user": {"client-certificate": str(pki / f"{user}.crt"), "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
    }
    path.write_text(json.dumps(doc, indent=1))
    return path


# ---------------------------------------------------------------- components


def start_etcd(d: Path) -> None:
    url, peer = f"http://{HOST}:{PORTS['etcd']}", f"http://{HOST}:{PORTS['etcd-peer']}"
    start(
        d,
        "etcd",
        [
            "etcd",
            "--name",
            "prepull",
            "--data-dir",
            d / "etcd",
            "--listen-client-urls",
            url,
            "--advertise-client-urls",
            url,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"prepull={peer}",
            "--unsafe-no-fsync",
            "--listen-metrics-urls",
            "",
        ],
    )
    wait_until(d, "etcd", lambda: http_ok(f"{url}/health"))


def start_registry(d: Path) -> None:
    config = d / "registry" / "config.yml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(d / "registry" / "data")}, "delete": {"enabled": True}},
                "http": {"addr": f"{HOST}:{PORTS['registry']}"},
            }
        )
    )
    start(d, "registry", ["docker-registry", "serve", config])
    wait_until(d, "registry", lambda: http_ok(f"http://{HOST}:{PORTS['registry']}/v2/"))


def push_images(d: Path, sized_mib: int) -> None:
    marker = d / "images" / f"pushed-{sized_mib}mib"
    if marker.exists():
        return
    (d / "images").mkdir(exist_ok=True)
    layout = images.build(d / "images", Path(shutil.which("kubectl")), Path("/bin/busybox"), sized_mib)
    images.push(layout, registry(), sized_mib)
    marker.touch()
    log(f"pushed {len(images.destinations(sized_mib))} images to {registry()}")


def registry() -> str:
    return f"{HOST}:{PORTS['registry']}"


def containerd_socket(d: Path) -> Path:
    return d / "containerd" / "containerd.sock"


# ---------------------------------------------------------------- the runtime


def runtime_file(d: Path) -> Path:
    return d / "runtime.json"


def runtime(d: Path) -> str:
    """The real node's runtime, as ``up`` chose it: one of RUNTIMES (a DIR without the record: the default)."""
    path = runtime_file(d)
    return json.loads(path.read_text())["runtime"] if path.exists() else DEFAULT_RUNTIME


def containerd2_bin(d: Path) -> Path:
    """The folder of containerd 2's binaries (containerd, its runc shim, ctr), as ``up`` recorded it."""
    return Path(json.loads(runtime_file(d).read_text())["containerd2_bin"])


def choose_runtime(d: Path, wanted, containerd2_dir) -> str:
    """Record the runtime of DIR (``wanted``, or the one recorded, or the default) in DIR/runtime.json.

    A DIR keeps the runtime it first started with: containerd's root under DIR/containerd belongs
    to that runtime. containerd 2 must be built (tests/cluster/build containerd2).
    """
    path = runtime_file(d)
    recorded = runtime(d) if path.exists() else None
    if recorded is None and (d / "containerd" / "root").exists():
        recorded = DEFAULT_RUNTIME  # a DIR started before runtimes were recorded: 1.6's
    chosen = wanted or recorded or DEFAULT_RUNTIME
    if recorded and chosen != recorded:
        raise StartError(f"{d} was started with --runtime {recorded}: stop it (tests/cluster/down {d}) and use another DIR for {chosen}")
    doc = {"runtime": chosen}
    if chosen == "containerd2":
        if not containerd2_dir:
            raise StartError("--runtime containerd2: PREPULL_CONTAINERD2_BIN is not set (tests/cluster/up sets it)")
        bin_dir = Path(containerd2_dir).resolve()
        missing = [b for b in CONTAINERD2_BINARIES if not os.access(bin_dir / b, os.X_OK)]
        if missing:
            raise StartError(f"--runtime containerd2: {', '.join(missing)} missing in {bin_dir} (run tests/cluster/build containerd2)")
        doc["containerd2_bin"] = str(bin_dir)
    path.write_text(json.dumps(doc) + "\n")
    return chosen


def ctr(d: Path) -> str:
    """The ctr client matching DIR's containerd: containerd 2's own, or Debian's (on PATH).

    Debian's ctr 1.6 also works against containerd 2 (version, images and tasks were checked): it
    is the fallback when containerd 2's build is gone, so that ``down`` still removes the containers.
    """
    if runtime(d) == "containerd2" and os.access(containerd2_bin(d) / "ctr", os.X_OK):
        return str(containerd2_bin(d) / "ctr")
    return "ctr"


def containerd_config(d: Path) -> Path:
    """DIR/containerd/config.toml for DIR's runtime: version 2 for containerd 1.6, version 3 for containerd 2."""
    c = d / "containerd"
    certs = c / "certs.d"
    for host in [*images.mirrored_hosts(), registry()]:
        (certs / host).mkdir(parents=True, exist_ok=True)
        # Pulls of this host go to the loopback registry, over plain HTTP, and nowhere else.
        (certs / host / "hosts.toml").write_text(
            f'server = "http://{registry()}"\n\n[host."http://{registry()}"]\n  capabilities = ["pull", "resolve"]\n'
        )
    if runtime(d) == "containerd2":
        (c / "config.toml").write_text(containerd2_config_text(d))
        return c / "config.toml"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    disabled = (
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.internal.v1.opt",
        "io.containerd.tracing.processor.v1.otlp",
    )
    (c / "config.toml").write_text(f"""{containerd_preamble(d, 2, disabled)}[{cri}]
  sandbox_image = "registry.k8s.io/pause:3.10.1"
  # These machines lack CAP_SYS_RESOURCE: runc cannot lower a container's oom_score_adj (the
  # kubelet asks -998 for sandboxes), so clamp it to containerd's own, as rootless setups do.
  restrict_oom_score_adj = true
  stream_server_address = "{HOST}"
  stream_server_port = "{PORTS["cri-stream"]}"
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{d / "cni" / "net.d"}"
[{cri}.registry]
  config_path = "{certs}"
""")
    return c / "config.toml"


def containerd_preamble(d: Path, version: int, disabled: tuple[str, ...]) -> str:
    """How both configuration versions begin: the version, DIR's root and state, the plugins left out, the sockets."""
    c = d / "containerd"
    return f"""version = {version}
root = "{c / "root"}"
state = "{c / "state"}"
disabled_plugins = [{", ".join(f'"{plugin}"' for plugin in disabled)}]
[grpc]
  address = "{containerd_socket(d)}"
[ttrpc]
  address = "{c / "containerd.sock.ttrpc"}"
"""


def containerd2_config_text(d: Path) -> str:
    """containerd 2's configuration (``version = 3``): the same paths, mirrors, stream port and CNI as 1.6's.

    Version 3 splits the CRI plugin: images (snapshotter, sandbox image, registry mirrors) and
    runtime (runc, CNI, the OOM score clamp) are plugins of their own; only the streaming server
    stays in ``io.containerd.grpc.v1.cri``. The snapshotters not built (btrfs, zfs: see build) need no entry.
    """
    c = d / "containerd"
    images_plugin, runtime_plugin = "plugins.'io.containerd.cri.v1.images'", "plugins.'io.containerd.cri.v1.runtime'"
    disabled = (
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.internal.v1.opt",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.nri.v1.nri",
    )
    return f"""{containerd_preamble(d, 3, disabled)}[{images_plugin}]
  snapshotter = "overlayfs"
  [{images_plugin}.pinned_images]
    sandbox = "registry.k8s.io/pause:3.10.1"
  [{images_plugin}.registry]
    config_path = "{c / "certs.d"}"
[{runtime_plugin}]
  # As for 1.6: no CAP_SYS_RESOURCE here, so the sandboxes' oom_score_adj is clamped to containerd's own.
  restrict_oom_score_adj = true
  [{runtime_plugin}.containerd]
    default_runtime_name = "runc"
    [{runtime_plugin}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{runtime_plugin}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{runtime_plugin}.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{d / "cni" / "net.d"}"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "{HOST}"
  stream_server_port = "{PORTS["cri-stream"]}"
"""


def cni_config(d: Path) -> None:
    net = d / "cni" / "net.d"
    net.mkdir(parents=True, exist_ok=True)
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(d / "cni" / "ipam"),
    }
    bridge = {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True, "ipam": ipam}
    (net / "10-prepull.conflist").write_text(json.dumps({"cniVersion": "0.4.0", "name": "prepull", "plugins": [bridge]}, indent=1))


def containerd_command(d: Path, config: Path) -> tuple:
    """(argv, env) starting DIR's runtime: Debian's containerd from PATH, or containerd 2 by its path.

    containerd 2 gets a PATH with its own folder first: containerd looks its runc shim
    (containerd-shim-runc-v2) up on PATH, where Debian's 1.6 shim would otherwise come first.
    """
    argv = ["containerd", "--config", config, "--log-level", "warn"]
    if runtime(d) != "containerd2":
        return argv, None
    bin_dir = containerd2_bin(d)
    return [bin_dir / "containerd", *argv[1:]], {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def start_containerd(d: Path) -> None:
    """Start DIR's containerd (the runtime recorded in DIR/runtime.json) and wait until it answers."""
    cni_config(d)
    config = containerd_config(d)
    argv, env = containerd_command(d, config)
    start(d, "containerd", argv, env)
    sock = containerd_socket(d)
    wait_until(d, "containerd", lambda: run(ctr(d), "--address", sock, "version", check=False).returncode == 0)


def pod_network(d: Path) -> None:
    """The pods' bridge, and the `kubernetes` Service IP's port 443 sent to the API server on loopback."""
    if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{POD_GATEWAY}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    # DNAT to 127.0.0.1 from another interface needs route_localnet on it (as kube-proxy sets it).
    Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet").write_text("1")
    rule = dnat_rule()
    if run("iptables", "-t", "nat", "-C", *rule, check=False).returncode != 0:
        run("iptables", "-t", "nat", "-A", *rule)


def dnat_rule() -> list:
    return [
        "PREROUTING",
        "-i",
        BRIDGE,
        "-d",
        API_SERVICE_IP,
        "-p",
        "tcp",
        "--dport",
        "443",
        "-j",
        "DNAT",
        "--to-destination",
        f"{HOST}:{PORTS['apiserver']}",
        "-m",
        "comment",
        "--comment",
        "prepull-local-cluster",
    ]


def start_apiserver(d: Path, pki: Path) -> None:
    start(
        d,
        "kube-apiserver",
        [
            "kube-apiserver",
            f"--etcd-servers=http://{HOST}:{PORTS['etcd']}",
            f"--bind-address={HOST}",
            f"--secure-port={PORTS['apiserver']}",
            f"--advertise-address={HOST}",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--kubelet-preferred-address-types=InternalIP",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--profiling=false",
        ],
    )
    wait_until(d, "kube-apiserver", lambda: kubectl(d, "get", "--raw", "/readyz", check=False).returncode == 0, timeout=120)


def start_controllers(d: Path, pki: Path) -> None:
    start(
        d,
        "kube-controller-manager",
        [
            "kube-controller-manager",
            f"--kubeconfig={kubeconfig(d, 'kube-controller-manager')}",
            "--leader-elect=false",
            f"--bind-address={HOST}",
            "--secure-port=0",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
        ],
    )
    start(
        d,
        "kube-scheduler",
        [
            "kube-scheduler",
            f"--kubeconfig={kubeconfig(d, 'kube-scheduler')}",
            "--leader-elect=false",
            f"--bind-address={HOST}",
            "--secure-port=0",
        ],
    )


def kubelet_config(d: Path, pki: Path, patch: dict) -> Path:
    """The kubelet's configuration file, with ``patch``'s fields set over the defaults here."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # The kubelet rejects a loopback node IP: it serves on the host-only pod bridge's address.
        "address": POD_GATEWAY,
        "port": PORTS["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": HOST,
        "healthzPort": PORTS["kubelet-healthz"],
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}, "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{containerd_socket(d)}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "registerWithTaints": [STARTUP_TAINT],
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "resolvConf": "/etc/resolv.conf",
        "staticPodPath": "",
        "podLogsDir": str(d / "kubelet" / "pod-logs"),  # not the machine's /var/log/pods
    }
    path = d / "kubelet" / "config.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({**config, **patch}, indent=1))
    return path


def start_kubelet(d: Path, pki: Path, patch: dict = None) -> None:
    labels = ",".join(f"{k}={v}" for k, v in REAL_NODE_LABELS.items())
    config = kubelet_config(d, pki, patch or {})
    start(
        d,
        "kubelet",
        [
            "kubelet",
            f"--config={config}",
            f"--kubeconfig={kubeconfig(d, 'kubelet')}",
            f"--root-dir={d / 'kubelet' / 'root'}",
            f"--cert-dir={d / 'kubelet' / 'pki'}",
            f"--hostname-override={REAL_NODE}",
            f"--node-ip={POD_GATEWAY}",
            f"--node-labels={labels}",
            "--v=1",
        ],
    )
    wait_until(d, "kubelet", lambda: kubectl(d, "get", "node", REAL_NODE, check=False).returncode == 0, timeout=120)


def restart_kubelet(d: Path, patch: dict) -> float:
    """Restart the real node's kubelet with ``patch`` over its configuration; its pods keep running.

    Returns the time.time() just before the new kubelet started: its garbage collection
    periods count from there. Tests use it to try other kubelet settings on the same node.
    """
    stop_pid(d, "kubelet")
    started = time.time()
    start_kubelet(d, d / "pki", patch)
    wait_until(d, "kubelet", lambda: http_ok(f"http://{HOST}:{PORTS['kubelet-healthz']}/healthz"))
    wait_until(d, "kubelet", lambda: REAL_NODE not in nodes_not_ready(d), timeout=120)
    return started


def start_kwok(d: Path, nodes: int) -> None:
    stages = Path(shutil.which("kwok")).resolve().parent.parent / "stages"
    # Lease heartbeats, as kwok advises at scale: with status heartbeats every 20-45 s, hundreds of
    # simulated nodes on 2 cores missed the node controller's 50 s grace period, which then marked
    # them NotReady and their pods not Ready for good (kwok does not make a pod Ready again).
    configs = [
        stages / p
        for p in (
            "node/fast/node-initialize.yaml",
            "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
            "pod/fast/pod-ready.yaml",
            "pod/fast/pod-complete.yaml",
            "pod/fast/pod-delete.yaml",
        )
    ]
    # Ours: a simulated pod that fails its pull (stages/pod-image-pull-backoff.yaml).
    configs += sorted((Path(__file__).parent / "stages").glob("*.yaml"))
    argv = [
        "kwok",
        f"--kubeconfig={kubeconfig(d, 'kwok')}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
        "--cidr=10.219.0.0/16",
        f"--node-ip={HOST}",
        "--server-address=",
        "--node-lease-duration-seconds=40",
        *[f"--config={c}" for c in configs],
    ]
    start(d, "kwok", argv)
    for i in range(nodes):
        labels, taints = KWOK_ROLES[i] if i < len(KWOK_ROLES) else (SPARE_LABELS, [])
        kubectl(d, "apply", "-f", "-", input=json.dumps(kwok_node(f"prepull-kwok-{i}", labels, taints)))


# What each simulated node offers: kwok's defaults, plus local storage as every real node reports it.
KWOK_RESOURCES = {"cpu": "1k", "memory": "1Ti", "pods": "1M", "ephemeral-storage": "1Ti"}


def kwok_node(name: str, labels: dict, taints=()) -> dict:
    """A Node for kwok to manage (its annotation): simulated, and labelled so (SIMULATED_LABEL), Linux on amd64.

    Also used by tests and benchmarks/cluster_bench.py for nodes of their own.
    """
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake"},
            "labels": {
                **labels,
                SIMULATED_LABEL: "true",
                "type": "kwok",
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
            },
        },
        "spec": {"taints": list(taints)},
        # kwok keeps a status it is given; its default has no ephemeral-storage, and the scheduler
        # puts no pod that requests some (ours all do) on a node without it.
        "status": {"allocatable": dict(KWOK_RESOURCES), "capacity": dict(KWOK_RESOURCES)},
    }


def kubectl(d: Path, *args, check=True, input=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={d / 'admin.kubeconfig'}", *map(str, args)],
        check=check,
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
    )


def node_ready(node: dict) -> bool:
    """Whether a Node object's Ready condition is True."""
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions") or [])


def nodes_not_ready(d: Path) -> list:
    items = json.loads(kubectl(d, "get", "nodes", "-o", "json").stdout)["items"]
    ready = {n["metadata"]["name"] for n in items if node_ready(n)}
    return sorted({n["metadata"]["name"] for n in items} - ready)


def write_env(d: Path) -> None:
    home = d / "pulumi-home"
    home.mkdir(exist_ok=True)
    (d / "pulumi-state").mkdir(exist_ok=True)
    path = os.environ["PATH"]
    if runtime(d) == "containerd2":
        # ctr on PATH (the tests' cluster_env.containerd_images) is then containerd 2's own client.
        path = f"{containerd2_bin(d)}:{path}"
    env = {
        "KUBECONFIG": d / "admin.kubeconfig",
        "PATH": path,
        "PULUMI_HOME": home,
        "PULUMI_BACKEND_URL": (d / "pulumi-state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "prepull-local",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PREPULL_TEST_REGISTRY": registry(),
        "PREPULL_TEST_CONTAINERD": containerd_socket(d),
        "PREPULL_TEST_RUNTIME": runtime(d),
        "PREPULL_TEST_CLUSTER": d,
        "PREPULL_TEST_REAL_NODE": REAL_NODE,
        "PREPULL_E2E_CONTEXT": CONTEXT,
    }
    (d / "env").write_text("".join(f"export {k}='{v}'\n" for k, v in env.items()))


def up(d: Path, kwok_nodes: int, sized_mib: int, wanted_runtime=None, containerd2_dir=None) -> None:
    for sub in ("logs", "pids"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    log(f"runtime of the real node: {choose_runtime(d, wanted_runtime, containerd2_dir)}")
    pki = make_pki(d)
    kubeconfig(d, "admin")
    start_etcd(d)
    start_registry(d)
    push_images(d, sized_mib)
    start_containerd(d)
    pod_network(d)
    start_apiserver(d, pki)
    start_controllers(d, pki)
    start_kubelet(d, pki)
    start_kwok(d, kwok_nodes)
    wait_until(d, "nodes", lambda: not nodes_not_ready(d), timeout=180)
    # Pods can be created once the controller manager made the default ServiceAccount.
    wait_until(d, "kube-controller-manager", lambda: kubectl(d, "get", "serviceaccount", "default", check=False).returncode == 0)
    write_env(d)
    log(f"ready: . {d / 'env'}; kubectl get nodes -o wide")


# ---------------------------------------------------------------- down


def stop_pid(d: Path, name: str) -> None:
    pid = recorded_pid(d, name)
    if pid:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            if not pid_alive(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
        log(f"stopped {name} (pid {pid})")
    (d / "pids" / f"{name}.pid").unlink(missing_ok=True)


def remove_containers(d: Path) -> None:
    """The pods' containers outlive the kubelet (their shims are not its children): remove them through containerd."""
    sock = containerd_socket(d)
    if not recorded_pid(d, "containerd"):
        return
    client = [ctr(d), "--address", sock, "-n", "k8s.io"]
    tasks = run(*client, "tasks", "ls", "-q", check=False).stdout.split()
    for task in tasks:
        run(*client, "tasks", "kill", "-s", "SIGKILL", task, check=False)
    for task in tasks:
        for _ in range(50):
            if run(*client, "tasks", "delete", task, check=False).returncode == 0:
                break
            time.sleep(0.1)
    for container in run(*client, "containers", "ls", "-q", check=False).stdout.split():
        run(*client, "containers", "delete", container, check=False)


def unmount_under(d: Path) -> None:
    targets = [line for line in Path("/proc/self/mounts").read_text().splitlines()]
    paths = sorted({t.split()[1] for t in targets if t.split()[1].startswith(str(d) + "/")}, key=len, reverse=True)
    for path in paths:
        run("umount", "-l", path, check=False)


def down(d: Path) -> None:
    if not (d / "pids").is_dir():
        log(f"nothing to stop in {d}")
        return
    stop_pid(d, "kwok")
    stop_pid(d, "kubelet")
    remove_containers(d)
    for name in reversed(ORDER):
        stop_pid(d, name)
    unmount_under(d)
    run("iptables", "-t", "nat", "-D", *dnat_rule(), check=False)
    run("ip", "link", "delete", BRIDGE, check=False)
    log("stopped")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tests/cluster/up|down")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--kwok-nodes", type=int, default=3, help="simulated kwok nodes (default 3)")
    parser.add_argument("--sized-mib", type=int, default=64, help="size of the prepull-test/sized image in MiB (default 64)")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help=f"the real node's runtime (default: the one DIR was started with, else {DEFAULT_RUNTIME}); containerd2 has image volumes",
    )
    args = parser.parse_args(argv)
    d = args.dir.resolve()
    try:
        if args.action == "up":
            d.mkdir(parents=True, exist_ok=True)
            up(d, args.kwok_nodes, args.sized_mib, args.runtime, os.environ.get("PREPULL_CONTAINERD2_BIN"))
        else:
            down(d)
    except StartError as err:
        log(f"FAILED: {err}")
        return 1
    except subprocess.CalledProcessError as err:
        log(f"FAILED: {' '.join(map(str, err.cmd))} exited {err.returncode}:\n{err.stdout}{err.stderr}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
