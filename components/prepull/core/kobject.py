"""The type of Kubernetes objects as this package handles them: camelCase, JSON-shaped dicts.

Objects are built as nested dicts (manifests.py, gate.py) and read back from the API server or
from rendered files (status, check). Their values are any JSON value, so the value type is
``Any``: the shapes are Kubernetes' own, checked by ``check`` against the upstream schemas, and
giving each nested field its own type here would only repeat them.
"""

from typing import Any, Mapping

KubeObject = dict[str, Any]
"""An object, or a part of one (a spec, a container, a volume), as this package builds it."""

KubeView = Mapping[str, Any]
"""An object, or a part of one, as this package reads it (never modified in place)."""

__all__ = ["KubeObject", "KubeView"]
