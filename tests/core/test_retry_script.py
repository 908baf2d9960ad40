"""The pull-retry watchdog's shell script, run against a fake kubectl (as tests/core/test_gate.py runs the untaint script).

The script is taken from the rendered DaemonSet, so what runs here is what the pod runs. The pod
runs it with busybox sh; most runs here use /bin/sh (dash: the script is POSIX sh), which, unlike
busybox, finds `sleep` on PATH: a fake that records each pause instead of taking it and, after a
set number of pauses, sends the shell SIGTERM, as the kubelet does when the pod is deleted. The
script must then exit 0 at once. One run uses busybox sh itself, with its own (real) sleep.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest
from gate_helpers import busybox_shell

import prepull
from prepull.core import retry

SH = "/bin/sh"
POD, NS = "gpu-x7k2p", "warmup"
SECONDS = 10
# What kubectl prints for the script's jsonpath: the Initialized condition's status, then each init
# container's waiting reason (the helper copy has terminated and the watchdog runs: neither has one).
BACK_OFF = "False ImagePullBackOff PodInitializing"
ERR_PULL = "False ErrImagePull PodInitializing"
PULLING = "False PodInitializing PodInitializing"
DONE = "True "
DOWN = "The connection to the server 10.96.0.1:443 was refused - did you specify the right host or port?"

# Records each call's arguments (one a line, then "--end--"); `get` fails for the first FAKE_GET_FAILS calls
# when FAKE_GET_ERR is set (all of them by default), then prints FAKE_GET_OUT.
FAKE_KUBECTL = r"""#!/bin/sh
for a in "$@"; do printf '%s\n' "$a"; done >> "$FAKE_LOG"; echo --end-- >> "$FAKE_LOG"
case "$1" in
get) n=$(grep -c '^get$' "$FAKE_LOG")
  [ -n "$FAKE_GET_ERR" ] && [ "$n" -le "${FAKE_GET_FAILS:-999}" ] && { echo "$FAKE_GET_ERR" >&2; exit 1; }
  printf '%s' "$FAKE_GET_OUT"; exit 0;;
delete) echo "pod \"$3\" deleted"; exit 0;;
esac
echo "fake kubectl: unexpected call: $*" >&2; exit 99
"""
# Records the pause; the FAKE_SLEEPS-th one sends the script SIGTERM (its parent: `sleep &` is the shell's child).
FAKE_SLEEP = r"""#!/bin/sh
printf 'sleep\n%s\n--end--\n' "$1" >> "$FAKE_LOG"
[ "$(grep -c '^sleep$' "$FAKE_LOG")" -ge "$FAKE_SLEEPS" ] && kill -TERM "$PPID"
exit 0
"""


def watchdog_script(seconds=SECONDS):
    objs = prepull.manifests({"images": ["nginx:1.27"], "namespace": NS, "pull_retry_seconds": seconds}, "gpu")
    ds = next(o for o in objs if o["kind"] == "DaemonSet")
    (watchdog,) = [c for c in ds["spec"]["template"]["spec"]["initContainers"] if c.get("restartPolicy") == "Always"]
    assert watchdog["command"][1:3] == ["sh", "-c"]
    return watchdog["command"][3]


def fake_bin(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("kubectl", FAKE_KUBECTL), ("sleep", FAKE_SLEEP)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    for tool in ("grep", "timeout"):
        (bindir / tool).symlink_to(shutil.which(tool))
    return bindir


def env_for(tmp_path, bindir, get_out="", get_err="", get_fails=None, sleeps=3):
    return {
        "PATH": str(bindir),
        "POD_NAME": POD,
        "POD_NAMESPACE": NS,
        "HOME": str(tmp_path),
        "FAKE_LOG": str(tmp_path / "calls"),
        "FAKE_GET_OUT": get_out,
        "FAKE_GET_ERR": get_err,
        "FAKE_SLEEPS": str(sleeps),
        **({"FAKE_GET_FAILS": str(get_fails)} if get_fails is not None else {}),
    }


def calls_of(tmp_path):
    log = tmp_path / "calls"
    return [c.split("\n")[:-1] for c in log.read_text().split("--end--\n")[:-1]] if log.exists() else []


def run_script(tmp_path, **fake):
    if not os.access(SH, os.X_OK):
        pytest.fail(f"{SH} is required to run the watchdog script under test, and is missing")
    env = env_for(tmp_path, fake_bin(tmp_path), **fake)
    proc = subprocess.run([SH, "-c", watchdog_script()], env=env, capture_output=True, text=True, timeout=30)
    return proc, calls_of(tmp_path)


def kinds(calls):
    return [c[0] for c in calls]


GET = ["get", "pod", POD, "-n", NS]
DELETE = ["delete", "pod", POD, "-n", NS, "--wait=false"]
PAUSE = ["sleep", str(SECONDS)]


def check_get(call):
    """A `get` of the pod itself, printing its Initialized status, then its init containers' waiting reasons."""
    assert call[:5] == GET and call[5] == "-o", call
    template = call[6].removeprefix("jsonpath=")
    initialized, reasons = template.split(" ")
    assert initialized == '{.status.conditions[?(@.type=="Initialized")].status}', template
    assert reasons == "{.status.initContainerStatuses[*].state.waiting.reason}", template


@pytest.mark.parametrize("state", [BACK_OFF, ERR_PULL, " ImagePullBackOff"], ids=["back-off", "err-image-pull", "no-condition-yet"])
def test_a_pull_backing_off_deletes_its_own_pod(tmp_path, state):
    proc, calls = run_script(tmp_path, get_out=state, sleeps=2)
    assert proc.returncode == 0, proc.stderr  # ended by the SIGTERM the pod's deletion brings
    assert kinds(calls) == ["sleep", "get", "delete", "sleep"]
    assert calls[0] == PAUSE  # the first look comes one period after the start, when a pull has had its chance
    check_get(calls[1])
    assert calls[2] == DELETE
    reason = state.split()[1] if state.startswith("False") else state.strip()
    (line,) = proc.stdout.splitlines()[:1]
    assert POD in line and reason in line and "deleting" in line


@pytest.mark.parametrize("state", [PULLING, "False CrashLoopBackOff PodInitializing", "False InvalidImageName", "False "])
def test_without_a_pull_back_off_nothing_is_deleted(tmp_path, state):
    # A pull under way, a failing container, a reference no retry can mend: none is the kubelet's pull back-off.
    proc, calls = run_script(tmp_path, get_out=state, sleeps=4)
    assert proc.returncode == 0, proc.stderr
    assert calls == [PAUSE, calls[1], PAUSE, calls[3], PAUSE, calls[5], PAUSE]
    for get in calls[1::2]:
        check_get(get)
    assert proc.stdout == ""


def test_once_initialized_it_stops_calling_the_api_server_and_idles(tmp_path):
    proc, calls = run_script(tmp_path, get_out=DONE, sleeps=4)
    assert proc.returncode == 0, proc.stderr
    idle = ["sleep", str(retry.IDLE_SECONDS)]
    assert calls[:2] == [PAUSE, calls[1]] and calls[2:] == [idle, idle, idle]
    assert "every pull is done" in proc.stdout


def test_while_the_api_server_is_down_it_keeps_looping_and_deletes_nothing(tmp_path):
    proc, calls = run_script(tmp_path, get_out=BACK_OFF, get_err=DOWN, sleeps=5)
    assert proc.returncode == 0, proc.stderr
    assert kinds(calls) == ["sleep", "get"] * 4 + ["sleep"]
    assert DOWN in proc.stderr


def test_once_the_api_server_is_back_a_back_off_is_acted_on(tmp_path):
    proc, calls = run_script(tmp_path, get_out=BACK_OFF, get_err=DOWN, get_fails=2, sleeps=4)
    assert proc.returncode == 0, proc.stderr
    assert kinds(calls) == ["sleep", "get", "sleep", "get", "sleep", "get", "delete", "sleep"]
    assert calls[6] == DELETE


def test_every_api_call_is_bounded_by_timeout_not_by_request_timeout(tmp_path):
    # kubectl's --request-timeout makes it ignore the in-cluster configuration (docs/reliability.md).
    script = watchdog_script()
    assert script.count("timeout 30 kubectl ") == 2 and script.count("kubectl ") == 2
    _, calls = run_script(tmp_path, get_out=BACK_OFF, sleeps=2)
    assert not any("--request-timeout" in arg for call in calls for arg in call)


def test_the_period_is_pull_retry_seconds():
    assert watchdog_script(45).startswith("trap 'exit 0' TERM; while :; do sleep 45 & wait $!; ")


@pytest.fixture
def busybox_sh(tmp_path):
    return busybox_shell(tmp_path)


def wait_for(tmp_path, what, timeout=15):
    deadline = time.monotonic() + timeout
    while what not in kinds(calls_of(tmp_path)):
        assert time.monotonic() < deadline, f"no {what} call within {timeout} s: {calls_of(tmp_path)}"
        time.sleep(0.1)


@pytest.mark.parametrize("state, last", [(BACK_OFF, "delete"), (DONE, "get")], ids=["back-off", "initialized"])
def test_under_busybox_sh_as_in_the_pod_it_acts_and_exits_at_once_on_sigterm(tmp_path, busybox_sh, state, last):
    # busybox sh runs its own, real `sleep`: a two-second period keeps the run short, and longer than
    # the 0.9 s within which SIGTERM must end it.
    env = env_for(tmp_path, fake_bin(tmp_path), get_out=state)
    script = retry.retry_script(2)
    proc = subprocess.Popen([busybox_sh, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(tmp_path, last)
        time.sleep(0.3)  # back in its `sleep & wait`: a two-second pause, or the day-long idle one
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        assert time.monotonic() - sent < 0.9, "SIGTERM waited for the pause to end"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned `sleep`, if any
        proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
    calls = calls_of(tmp_path)
    check_get(calls[0])
    assert calls[1:] == ([DELETE] if last == "delete" else [])
