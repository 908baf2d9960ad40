"""The cluster reader of ``status``: a bounded number of list calls, and API errors as Unreachable.

No cluster: the objects are built in the shape the API returns (tests/status_objects.py), and the
reader talks to a fake client that records each call.
"""

import json

import pytest
import status_objects as so


from prepull.kube.client import Unreachable
from prepull.status.report import PRESENT, classify
from prepull.kube.reader import ClusterReader
from prepull.core.labels import MANAGED_BY_SELECTOR as MANAGED_BY


# ---------------------------------------------------------------- the reader: bounded calls


def test_a_thousand_nodes_take_five_calls():
    ds = so.daemon_set()
    nodes = [so.node(f"node-{i:04d}") for i in range(1000)]
    pods = [so.pod(ds, n["metadata"]["name"]) for n in nodes]
    python = so.init_names(ds)[1]
    events = [so.pulled(p, python, so.PYTHON, f"{1 + i % 7}s") for i, p in enumerate(pods)]
    api = so.FakeApi([ds], pods, nodes, events)
    reader = ClusterReader(api, api, so.NAMESPACE)
    rep = classify(reader.snapshot())
    assert reader.calls == len(api.calls) == 5
    assert [c[0] for c in api.calls] == ["daemonsets", "pods", "nodes", "events", "events"]
    assert api.calls[0][1]["label_selector"] == api.calls[1][1]["label_selector"] == MANAGED_BY == "app.kubernetes.io/managed-by=prepull"
    assert [c[1]["field_selector"] for c in api.calls[3:]] == [
        "involvedObject.kind=Pod,reason=Pulled",
        "involvedObject.kind=Pod,reason=Failed",
    ]
    assert rep.state == PRESENT and rep.daemon_sets[0].done == 1000
    assert next(s for s in rep.images if s.image == so.PYTHON).median_seconds == 4.0
    # A second snapshot costs the same again, not more.
    reader.snapshot()
    assert reader.calls == 10


def test_no_daemonset_stops_after_one_call():
    from prepull.kube.reader import NotFound

    api = so.FakeApi()
    reader = ClusterReader(api, api, "elsewhere")
    with pytest.raises(NotFound, match="no DaemonSet labelled app.kubernetes.io/managed-by=prepull in namespace 'elsewhere'"):
        reader.snapshot()
    assert reader.calls == 1


def test_api_errors_become_unreachable_with_the_servers_message():
    from kubernetes.client.exceptions import ApiException

    class Forbidden(so.FakeApi):
        def list_namespaced_daemon_set(self, namespace, **kwargs):
            err = ApiException(status=403, reason="Forbidden")
            err.body = json.dumps({"message": 'daemonsets.apps is forbidden: User "dev" cannot list resource "daemonsets"'})
            raise err

    api = Forbidden()
    with pytest.raises(Unreachable, match=r"cannot list DaemonSets in namespace 'prepull' \(HTTP 403\): daemonsets.apps is forbidden"):
        ClusterReader(api, api, "prepull").snapshot()
