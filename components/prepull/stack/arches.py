"""The CPU architectures of a pool's nodes, where the stack says them unambiguously. Pure.

Used to reject, before deploy, an image whose locked platforms miss one of them
(it would loop in ErrImagePull there). Conservative on purpose: a rule gives an
answer only when the setting leaves no doubt, and otherwise the architectures
are unknown and nothing is checked. In order of precedence:

1. the pool's ``platforms`` (``[linux/arm64]``): what the user declares;
2. a ``kubernetes.io/arch`` entry in the pool's ``labels`` (its nodes are selected by it);
3. Karpenter ``requirements`` on ``kubernetes.io/arch`` with operator ``In``
   (minus ``NotIn`` values; Karpenter ANDs requirements);
4. EKS ``amiType``: every EKS AMI type names its architecture (``AL2023_x86_64_*``,
   ``*_ARM_64*``); instance types are not used (the family letters are not a rule);
5. GKE ``machineType``: the series before the first ``-``, for the series listed below;
6. AKS ``vmSize``: Azure's size names mark Arm64 sizes with a ``p`` among the feature
   letters after the vCPU count (``Standard_D4ps_v5``); every other size is x64.
"""

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from prepull.core.labels import ARCH_LABEL

# GKE machine series by architecture. Only series whose architecture is documented and
# single; a series missing here (a new one) leaves the pool's architectures unknown.
GKE_SERIES = {
    **{s: "amd64" for s in ("e2", "n1", "n2", "n2d", "c2", "c2d", "c3", "c3d", "t2d", "m1", "m2", "m3", "a2", "a3", "g2")},
    **{s: "arm64" for s in ("t2a", "c4a")},
}
# Standard_<family letters><vCPUs><feature letters>_..., e.g. Standard_D4ps_v5 -> features "ps".
AKS_SIZE = re.compile(r"^Standard_[A-Z]+\d+(?:-\d+)?([a-z]*)(?:_|$)")


@dataclass(frozen=True)
class KnownArches:
    """A pool's node architectures and the setting they come from (for messages)."""

    arches: tuple[str, ...]
    """Sorted GOARCH names (``amd64``, ``arm64``)."""
    source: str
    """The stack field that says so, e.g. ``karpenter.requirements[1]``."""


# A pool's provider block, as the stack file gives it (any YAML values).
Settings = Mapping[str, Any]


def _karpenter_arches(settings: Settings) -> Optional[KnownArches]:
    allowed: Optional[set[str]] = None
    excluded: set[str] = set()
    sources = []
    for i, req in enumerate(settings.get("requirements") or []):
        if req.get("key") != ARCH_LABEL:
            continue
        sources.append(f"karpenter.requirements[{i}]")
        if req.get("operator") == "In":
            values = set(req.get("values") or [])
            allowed = values if allowed is None else allowed & values
        elif req.get("operator") == "NotIn":
            excluded |= set(req.get("values") or [])
    if allowed is None:
        return None  # Exists, NotIn alone or no requirement: any architecture the node class offers
    return KnownArches(tuple(sorted(allowed - excluded)), ", ".join(sources))


def _eks_arches(settings: Settings) -> Optional[KnownArches]:
    ami = settings.get("amiType")
    if not isinstance(ami, str):
        return None
    if "_x86_64" in ami:
        return KnownArches(("amd64",), "eks.amiType")
    if "_ARM_64" in ami:
        return KnownArches(("arm64",), "eks.amiType")
    return None  # CUSTOM, Windows: not ours to guess


def _gke_arches(settings: Settings) -> Optional[KnownArches]:
    machine = settings.get("machineType")
    arch = GKE_SERIES.get(machine.split("-", 1)[0]) if isinstance(machine, str) else None
    return KnownArches((arch,), "gke.machineType") if arch else None


def _aks_arches(settings: Settings) -> Optional[KnownArches]:
    size = settings.get("vmSize")
    match = AKS_SIZE.match(size) if isinstance(size, str) else None
    if not match:
        return None
    return KnownArches(("arm64",) if "p" in match.group(1) else ("amd64",), "aks.vmSize")


_BY_PROVIDER = {"karpenter": _karpenter_arches, "eks": _eks_arches, "gke": _gke_arches, "aks": _aks_arches}


def implied_arches(provider: str, settings: Settings, labels: Mapping[str, str]) -> Optional[KnownArches]:
    """The architectures the pool's labels or provider settings imply, or None when they do not say."""
    if isinstance(labels.get(ARCH_LABEL), str):
        return KnownArches((labels[ARCH_LABEL],), f"labels[{ARCH_LABEL!r}]")
    rule = _BY_PROVIDER.get(provider)
    return rule(settings) if rule else None


__all__ = ["KnownArches", "implied_arches"]
