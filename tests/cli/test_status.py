"""``python -m prepull status``: exit codes, output, ``--watch``, options, where to look.

No cluster: the objects are built in the shape the API returns (tests/status_objects.py), and the
reader talks to a fake client that records each call.
"""

import io
import json

import pytest
import status_objects as so
import yaml


from prepull.cli import status as status_cli
from prepull.cli.main import main
from prepull.kube.client import Unreachable
from prepull.status.report import FAILED, PRESENT, PULLING, classify
from prepull.kube.reader import ClusterReader


# ---------------------------------------------------------------- the command: exit codes, output, watch


def run_status(monkeypatch, capsys, api, *argv):
    """``python -m prepull status ARGV`` against the fake client; (exit code, stdout, stderr)."""
    monkeypatch.setattr(status_cli, "connect_reader", lambda kubeconfig, context, namespace: ClusterReader(api, api, namespace, context))
    code = main(["status", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def api_with(states_by_node):
    ds = so.daemon_set()
    nodes = [so.node(n) for n in states_by_node]
    return so.FakeApi([ds], [so.pod(ds, n, s) for n, s in states_by_node.items()], nodes)


PULLING_STATES = [so.terminated(2, 3), so.waiting(), so.waiting()]
FAILED_STATES = [so.terminated(2, 3), so.waiting("ErrImagePull", so.NOT_FOUND), so.waiting()]


@pytest.mark.parametrize("states, code, state", [(None, 0, PRESENT), (FAILED_STATES, 1, FAILED), (PULLING_STATES, 2, PULLING)])
def test_exit_codes_and_json_output(monkeypatch, capsys, states, code, state):
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": states}), "-o", "json")
    assert rc == code, err
    assert json.loads(out)["state"] == state


def test_exit_3_when_no_daemonset_or_no_cluster(monkeypatch, capsys):
    rc, out, err = run_status(monkeypatch, capsys, so.FakeApi(), "--namespace", "prepull-other")
    assert (rc, out) == (3, "")
    assert "prepull: error: no DaemonSet labelled app.kubernetes.io/managed-by=prepull in namespace 'prepull-other'" in err

    def unreachable(kubeconfig, context, namespace):
        raise Unreachable("cannot reach the cluster of context 'gone': MaxRetryError: connection refused")

    monkeypatch.setattr(status_cli, "connect_reader", unreachable)
    assert main(["status", "--context", "gone"]) == 3
    assert "cannot reach the cluster of context 'gone'" in capsys.readouterr().err


def test_verbose_prints_the_call_count(monkeypatch, capsys):
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": None, "n2": None}), "-o", "json", "--verbose")
    assert rc == 0 and "prepull: 5 API call(s) in 1 snapshot(s) of namespace 'prepull'" in err


def test_the_table_is_printed_once_when_stdout_is_not_a_terminal(monkeypatch, capsys):
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": FAILED_STATES}))
    assert rc == 1
    assert out.count("general: 0/1 nodes") == 1 and "ErrImagePull" in out


class Snapshots:
    """A reader whose snapshots follow a script of per-node states, repeating the last one."""

    def __init__(self, script):
        self.script, self.calls, self.snapshots = list(script), 0, 0

    def snapshot(self):
        api = api_with({"n1": self.script[min(self.snapshots, len(self.script) - 1)]})
        self.snapshots += 1
        return ClusterReader(api, api, so.NAMESPACE).snapshot()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize(
    "script, final, snapshots, slept",
    [
        ([PULLING_STATES, PULLING_STATES, None], PRESENT, 3, 10.0),  # until everything is present
        ([PULLING_STATES, FAILED_STATES], FAILED, 2, 5.0),  # or something fails
        ([PULLING_STATES], PULLING, 5, 12.0),  # or the timeout passes: 0, 5, 10, 12
    ],
)
def test_watch_stops_when_done_failed_or_timed_out(script, final, snapshots, slept):
    reader, clock, shown = Snapshots(script), Clock(), []
    rep = status_cli.watch(lambda: classify(reader.snapshot()), shown.append, timeout=12, interval=5, clock=clock, sleep=clock.sleep)
    assert (rep.state, reader.snapshots, clock.now) == (final, snapshots - (1 if final == PULLING else 0), slept)
    assert len(shown) == reader.snapshots


def test_watch_with_timeout_exits_2_while_still_pulling(monkeypatch, capsys):
    monkeypatch.setattr("time.sleep", lambda s: None)
    rc, out, err = run_status(
        monkeypatch, capsys, api_with({"n1": PULLING_STATES}), "-o", "json", "--watch", "--timeout", "0.01", "--interval", "0.001"
    )
    assert rc == 2 and json.loads(out)["state"] == PULLING


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--timeout", "5m"], "--timeout: only used with --watch (got '5m')"),
        (["--watch", "--timeout", "soon"], "--timeout: must be a positive duration such as 90, 90s, 10m or 1h30m (got 'soon')"),
        (["--watch", "--interval", "0"], "--interval: must be a positive duration"),
        (["--namespace", "Bad_NS"], "--namespace: must be a DNS-1123 label"),
    ],
)
def test_bad_options_name_the_option_and_the_value(monkeypatch, capsys, argv, message):
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": None}), "-o", "json", *argv)
    assert (rc, out) == (2, "") and message in err, err


# ---------------------------------------------------------------- where to look


def args_for(*argv):
    from prepull.cli.main import parser

    return parser().parse_args(["status", *argv])


def test_stack_config_gives_namespace_and_connection_and_options_win(tmp_path):
    config = {
        "prepull:namespace": "ml",
        "prepull:kubeContext": "prod-eu",
        "prepull:kubeconfig": "/etc/kube/prod",
        "prepull:nodePools": [],
        "other:key": 1,
    }
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}))
    target = status_cli.resolve_target(args_for("--stack", "prod", "--stacks-dir", str(tmp_path)))
    assert target == status_cli.Target("ml", "/etc/kube/prod", "prod-eu")
    target = status_cli.resolve_target(args_for("--stack", "prod", "--stacks-dir", str(tmp_path), "-n", "other", "--context", "mine"))
    assert (target.namespace, target.context) == ("other", "mine")
    assert status_cli.resolve_target(args_for()) == status_cli.Target("prepull", None, None)


def test_an_encrypted_kubeconfig_is_named_not_silently_replaced(tmp_path, capsys):
    config = {"prepull:kubeconfig": {"secure": "v1:abc"}, "prepull:kubeContext": {"secure": "v1:def"}, "prepull:nodePools": []}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}))
    target = status_cli.resolve_target(args_for("--stack", "prod", "--stacks-dir", str(tmp_path)))
    assert (target.kubeconfig, target.context) == (None, None)
    err = capsys.readouterr().err
    assert "Pulumi.prod.yaml: prepull:kubeconfig is encrypted (secure:) and not read here; pass --kubeconfig" in err
    assert "prepull:kubeContext is encrypted (secure:) and not read here; pass --context" in err
    # Given on the command line, nothing is missing: no warning.
    status_cli.resolve_target(args_for("--stack", "prod", "--stacks-dir", str(tmp_path), "--kubeconfig", "/k", "--context", "c"))
    assert capsys.readouterr().err == ""


def test_a_kubeconfig_given_as_contents_is_parsed(tmp_path):
    contents = yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": []})
    assert status_cli.kubeconfig_value(contents)["kind"] == "Config"
    assert status_cli.kubeconfig_value("/path/to/kubeconfig") == "/path/to/kubeconfig"
    assert status_cli.kubeconfig_value(None) is None
    # One line of JSON is contents too, as the stack program (stack/connection.py) tells them apart.
    assert status_cli.kubeconfig_value('{"apiVersion": "v1", "kind": "Config"}')["kind"] == "Config"


def test_an_unknown_stack_is_a_usage_error(capsys, tmp_path):
    assert main(["status", "--stack", "nope", "--stacks-dir", str(tmp_path)]) == 2
    assert "unknown stack 'nope'" in capsys.readouterr().err


def test_status_reaches_no_cluster_through_a_missing_kubeconfig(tmp_path, capsys):
    """The real client and the real message, as for `check --server`."""
    rc = main(["status", "--kubeconfig", str(tmp_path / "missing"), "-o", "json"])
    out, err = capsys.readouterr()
    assert (rc, out) == (3, "") and "cannot reach the cluster of the current context" in err and "Traceback" not in err


def test_ctrl_c_ends_a_watch_without_a_traceback(monkeypatch, capsys):
    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", interrupted)
    rc, out, err = run_status(monkeypatch, capsys, api_with({"n1": PULLING_STATES}), "-o", "json", "--watch")
    assert (rc, out) == (130, "") and "prepull: interrupted" in err


def test_in_a_terminal_watch_updates_a_live_table_until_present(monkeypatch, capsys):
    from rich.console import Console

    ds = so.daemon_set()
    script = [[so.pod(ds, "n1", PULLING_STATES)], [so.pod(ds, "n1")]]

    class Rolling(so.FakeApi):
        def list_namespaced_pod(self, namespace, **kwargs):
            self.objects["pods"] = script[min(sum(c[0] == "pods" for c in self.calls), len(script) - 1)]
            return super().list_namespaced_pod(namespace, **kwargs)

    screen = io.StringIO()
    monkeypatch.setattr(status_cli, "_console", lambda: Console(file=screen, force_terminal=True, width=160, color_system=None))
    monkeypatch.setattr("time.sleep", lambda s: None)
    rc, out, err = run_status(monkeypatch, capsys, Rolling([ds], [], [so.node("n1")]), "--watch", "--verbose")
    assert rc == 0, err
    drawn = screen.getvalue()
    # Both snapshots were drawn, in place (cursor movements), the last one complete.
    assert "general: 0/1 nodes" in drawn and "general: 1/1 nodes" in drawn and "\x1b[" in drawn
    assert "prepull: 10 API call(s) in 2 snapshot(s)" in err


def test_a_server_that_does_not_answer_exits_3_naming_the_context(down_kubeconfig, capsys):
    rc = main(["status", "--kubeconfig", str(down_kubeconfig), "--context", "down", "-o", "json", "-v"])
    out, err = capsys.readouterr()
    assert (rc, out) == (3, "") and "cannot reach the cluster of context 'down': MaxRetryError" in err and "Traceback" not in err
    assert "prepull: 1 API call(s)" in err
