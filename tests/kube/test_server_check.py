"""``check --server``'s pieces that need no cluster: warning headers, namespaces it may not list.

The cluster tier sends the objects to a real API server (tests/e2e/test_server_validation.py).
"""

from types import SimpleNamespace

from prepull.kube.server_check import _warning_text, existing_namespaces


def test_server_warnings_are_read_as_the_text_the_api_server_sent():
    assert _warning_text('299 - "would violate PodSecurity \\"restricted:latest\\": privileged"') == (
        'would violate PodSecurity "restricted:latest": privileged'
    )
    assert _warning_text("299 - unquoted") == "unquoted"


class _Namespaces:
    """A dynamic client's Namespace resource for a user who may not list namespaces (403), only get some."""

    def __init__(self, existing: set, readable: set):
        self.existing, self.readable = existing, readable

    def get(self, name=None):
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError

        if name is None or name not in self.readable:
            raise ForbiddenError(ApiException(status=403, reason="Forbidden"))
        if name not in self.existing:
            raise NotFoundError(ApiException(status=404, reason="Not Found"))
        return object()


def test_check_server_asks_namespaces_by_name_when_it_may_not_list_them():
    resource = _Namespaces(existing={"prepull", "hidden"}, readable={"prepull", "missing"})
    client = SimpleNamespace(resources=SimpleNamespace(get=lambda **_: resource))
    # "hidden" cannot be read either: counted as existing, so the dry run itself reports on it.
    assert existing_namespaces(client, {"prepull", "missing", "hidden"}) == {"prepull", "hidden"}
