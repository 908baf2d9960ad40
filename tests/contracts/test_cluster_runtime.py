"""The local cluster's two runtimes (tests/cluster/cluster.py ``--runtime``), checked offline.

What ``up`` writes and how it starts containerd, for Debian's containerd 1.6 (the default, its
configuration as it always was) and for containerd 2 (image volumes). Nothing is started here:
tests/cluster/ci runs both modes for real.
"""

import os
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import cluster  # noqa: E402


@pytest.fixture
def containerd2_bin(tmp_path) -> Path:
    """A stand-in for the build's containerd2 folder: the three executables, empty."""
    bin_dir = tmp_path / "containerd2" / "bin"
    bin_dir.mkdir(parents=True)
    for name in cluster.CONTAINERD2_BINARIES:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def cluster_dir(tmp_path) -> Path:
    d = tmp_path / "cluster"
    d.mkdir()
    return d


def test_a_dir_without_a_record_is_containerd_1_6_as_before(tmp_path):
    d = cluster_dir(tmp_path)
    assert cluster.runtime(d) == cluster.DEFAULT_RUNTIME == "containerd1.6"
    config = cluster.containerd_config(d)
    doc = tomllib.loads(config.read_text())
    assert doc["version"] == 2
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"
    assert cri["registry"]["config_path"] == str(d / "containerd" / "certs.d")
    argv, env = cluster.containerd_command(d, config)
    assert argv[0] == "containerd" and env is None  # Debian's, from PATH, in our environment
    assert cluster.ctr(d) == "ctr"


def test_up_records_the_default_runtime(tmp_path):
    d = cluster_dir(tmp_path)
    assert cluster.choose_runtime(d, None, None) == "containerd1.6"
    assert cluster.runtime(d) == "containerd1.6"


def test_containerd2_gets_a_version_3_configuration_with_the_same_paths_mirrors_and_ports(tmp_path, containerd2_bin):
    d = cluster_dir(tmp_path)
    assert cluster.choose_runtime(d, "containerd2", str(containerd2_bin)) == "containerd2"
    c = d / "containerd"
    doc = tomllib.loads(cluster.containerd_config(d).read_text())
    assert doc["version"] == 3
    assert (doc["root"], doc["state"]) == (str(c / "root"), str(c / "state"))
    assert doc["grpc"]["address"] == str(cluster.containerd_socket(d))
    assert doc["ttrpc"]["address"] == str(c / "containerd.sock.ttrpc")
    images = doc["plugins"]["io.containerd.cri.v1.images"]
    assert images["snapshotter"] == "overlayfs"
    assert images["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.10.1"
    assert images["registry"]["config_path"] == str(c / "certs.d")
    runtime = doc["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runtime["containerd"]["default_runtime_name"] == "runc"
    assert runc["runtime_type"] == "io.containerd.runc.v2" and runc["options"]["SystemdCgroup"] is False
    assert runtime["cni"] == {"bin_dirs": ["/usr/lib/cni"], "conf_dir": str(d / "cni" / "net.d")}
    stream = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert stream == {"stream_server_address": cluster.HOST, "stream_server_port": str(cluster.PORTS["cri-stream"])}
    # The same mirrors as 1.6: every stand-in's registry host, and the test registry, to the loopback registry.
    assert (c / "certs.d" / "registry.k8s.io" / "hosts.toml").read_text().startswith(f'server = "http://{cluster.registry()}"')


def test_containerd2_is_started_by_its_path_with_its_folder_first_on_path(tmp_path, containerd2_bin, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    d = cluster_dir(tmp_path)
    cluster.choose_runtime(d, "containerd2", str(containerd2_bin))
    argv, env = cluster.containerd_command(d, Path("/config.toml"))
    assert argv == [containerd2_bin / "containerd", "--config", Path("/config.toml"), "--log-level", "warn"]
    # containerd finds its shim on PATH: containerd 2's must come before Debian's /usr/bin one.
    assert env["PATH"] == f"{containerd2_bin}:/usr/bin:/bin"
    assert cluster.ctr(d) == str(containerd2_bin / "ctr")


def test_a_dir_keeps_its_runtime(tmp_path, containerd2_bin):
    d = cluster_dir(tmp_path)
    cluster.choose_runtime(d, "containerd2", str(containerd2_bin))
    # `up DIR` again without --runtime: the recorded one.
    assert cluster.choose_runtime(d, None, str(containerd2_bin)) == "containerd2"
    with pytest.raises(cluster.StartError, match="was started with --runtime containerd2"):
        cluster.choose_runtime(d, "containerd1.6", None)
    assert cluster.runtime(d) == "containerd2"


def test_a_dir_started_before_runtimes_were_recorded_is_1_6(tmp_path, containerd2_bin):
    d = cluster_dir(tmp_path)
    (d / "containerd" / "root").mkdir(parents=True)
    with pytest.raises(cluster.StartError, match="was started with --runtime containerd1.6"):
        cluster.choose_runtime(d, "containerd2", str(containerd2_bin))
    assert cluster.choose_runtime(d, None, None) == "containerd1.6"


def test_without_containerd2s_ctr_down_uses_debians(tmp_path, containerd2_bin):
    d = cluster_dir(tmp_path)
    cluster.choose_runtime(d, "containerd2", str(containerd2_bin))
    (containerd2_bin / "ctr").unlink()
    assert cluster.ctr(d) == "ctr"


def test_containerd2_must_be_built(tmp_path, containerd2_bin):
    d = cluster_dir(tmp_path)
    (containerd2_bin / "containerd-shim-runc-v2").unlink()
    with pytest.raises(cluster.StartError, match=r"containerd-shim-runc-v2 missing in .* \(run tests/cluster/build containerd2\)"):
        cluster.choose_runtime(d, "containerd2", str(containerd2_bin))
    with pytest.raises(cluster.StartError, match="PREPULL_CONTAINERD2_BIN is not set"):
        cluster.choose_runtime(d, "containerd2", None)
    assert not cluster.runtime_file(d).exists()


def test_the_env_file_names_the_runtime_and_puts_containerd2s_ctr_first(tmp_path, containerd2_bin, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    cluster.choose_runtime(one, None, None)
    cluster.choose_runtime(two, "containerd2", str(containerd2_bin))
    cluster.write_env(one)
    cluster.write_env(two)
    assert "export PREPULL_TEST_RUNTIME='containerd1.6'\n" in (one / "env").read_text()
    assert "export PATH='/usr/bin:/bin'\n" in (one / "env").read_text()
    assert "export PREPULL_TEST_RUNTIME='containerd2'\n" in (two / "env").read_text()
    assert f"export PATH='{containerd2_bin}:/usr/bin:/bin'\n" in (two / "env").read_text()


def test_the_runtimes_are_the_ones_up_offers():
    assert cluster.RUNTIMES == ("containerd1.6", "containerd2")
    assert os.access(ROOT / "tests" / "cluster" / "up", os.X_OK)
    assert "--runtime containerd2" in (ROOT / "tests" / "cluster" / "up").read_text()
