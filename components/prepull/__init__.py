"""prepull: pre-pull container images onto Kubernetes node pools, as a Pulumi component.

``manifests()`` and the validation behind it are pure (no Pulumi engine);
``ImagePrePuller`` registers exactly those objects. The component is imported
lazily so the pure core works without the Pulumi SDKs loaded.
"""

from typing import TYPE_CHECKING

from prepull.args import (
    ContainerResources,
    CustomTimeouts,
    ImageEntry,
    ImagePrePullerArgs,
    Method,
    PullPolicy,
    StartupTaint,
    TaintEffect,
    Toleration,
    TolerationOperator,
)
from prepull.core.manifests import manifests
from prepull.errors import PrePullInputError
from prepull.version import __version__ as __version__  # explicit re-export

if TYPE_CHECKING:
    # Type checkers see the real names (a module __getattr__ would make them, and every misspelt name, Any).
    from prepull.component import ImagePrePuller
    from prepull.workload_images import images_from
else:

    def __getattr__(attr: str) -> object:
        if attr == "ImagePrePuller":
            from prepull.component import ImagePrePuller

            return ImagePrePuller
        if attr == "images_from":
            from prepull.workload_images import images_from

            return images_from
        raise AttributeError(attr)


__all__ = [
    "ContainerResources",
    "CustomTimeouts",
    "ImageEntry",
    "ImagePrePuller",
    "ImagePrePullerArgs",
    "Method",
    "PrePullInputError",
    "PullPolicy",
    "StartupTaint",
    "TaintEffect",
    "Toleration",
    "TolerationOperator",
    "images_from",
    "manifests",
]
