"""prepull: pre-pull container images onto Kubernetes node pools, as a Pulumi component.

``manifests()`` and the validation behind it are pure (no Pulumi engine);
``ImagePrePuller`` registers exactly those objects. The component is imported
lazily so the pure core works without the Pulumi SDKs loaded.
"""

from typing import TYPE_CHECKING

from .args import (
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
from .errors import PrePullInputError
from .manifests import manifests

__version__ = "0.1.0"

if TYPE_CHECKING:
    # Type checkers see the real names (a module __getattr__ would make them, and every misspelt name, Any).
    from .component import ImagePrePuller
    from .workload_images import images_from
else:

    def __getattr__(attr: str) -> object:
        if attr == "ImagePrePuller":
            from .component import ImagePrePuller

            return ImagePrePuller
        if attr == "images_from":
            from .workload_images import images_from

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
