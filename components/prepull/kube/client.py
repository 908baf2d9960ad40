"""The official kubernetes client, as every command that reads a cluster opens it.

The client is the optional ``check`` / ``status`` extra: it is imported when a client is made, and
its absence is reported as :class:`Unreachable` naming the extra. Reads the kubeconfig the way
kubectl does (a path, else ``KUBECONFIG``, else ``~/.kube/config``; a context).
"""

import json
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.client.exceptions import ApiException

# A kubeconfig as the commands take it: a path, the parsed document, or None for kubectl's default.
Kubeconfig = Union[None, str, Mapping[str, Any]]


class Unreachable(Exception):
    """The cluster could not be reached or its kubeconfig not loaded: says which, and why."""


def api_client(kubeconfig: Kubeconfig, context: Optional[str], needed_by: str = "`check --server`", extra: str = "check") -> "ApiClient":
    """A kubernetes ApiClient for ``context`` of ``kubeconfig`` (a path, or the parsed file; default as kubectl), or Unreachable.

    ``needed_by`` and ``extra`` name the command and the pip extra in the message shown when the client is not installed.
    """
    try:
        from kubernetes import config
    except ImportError:
        raise Unreachable(f"{needed_by} needs the kubernetes client: pip install 'prepull[{extra}]'") from None
    try:
        client: ApiClient
        if isinstance(kubeconfig, Mapping):
            client = config.new_client_from_config_dict(dict(kubeconfig), context=context)
        else:
            client = config.new_client_from_config(config_file=kubeconfig, context=context)
        return client
    except Exception as err:  # noqa: BLE001 - a missing file, a bad context or bad credentials all mean "cannot reach"
        raise cannot_reach(context, err) from None


def cannot_reach(context: Optional[str], err: Exception) -> Unreachable:
    """The one message for a cluster that cannot be reached: which context, and the client's own reason."""
    where = f"context {context!r}" if context else "the current context"
    return Unreachable(f"cannot reach the cluster of {where}: {type(err).__name__}: {_short(err)}")


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


def api_message(err: "ApiException") -> str:
    """The API server's own message in an ApiException (its Status body), else the HTTP status."""
    try:
        message = json.loads(err.body or "").get("message")  # no body: ValueError, as for one that is not JSON
        return message if isinstance(message, str) and message else f"HTTP {err.status}"
    except (TypeError, ValueError):
        return f"HTTP {err.status}: {err.reason}"
