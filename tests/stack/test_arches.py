"""A pool's node architectures, from its settings where they leave no doubt (prepull.stack.arches)."""

import pytest

from prepull import PrePullInputError
from prepull.stack.arches import implied_arches
from prepull.stack.pools import load_stack

ARCH = "kubernetes.io/arch"


def req(operator, *values):
    return {"key": ARCH, "operator": operator, "values": list(values)}


@pytest.mark.parametrize(
    "provider, settings, arches",
    [
        ("karpenter", {"requirements": [req("In", "amd64", "arm64")]}, ("amd64", "arm64")),
        ("karpenter", {"requirements": [req("In", "amd64", "arm64"), req("NotIn", "arm64")]}, ("amd64",)),
        ("karpenter", {"requirements": [req("In", "amd64", "arm64"), req("In", "arm64")]}, ("arm64",)),
        ("karpenter", {"requirements": [req("NotIn", "arm64")]}, None),
        ("karpenter", {"requirements": [{"key": ARCH, "operator": "Exists"}]}, None),
        ("karpenter", {}, None),
        ("eks", {"amiType": "AL2023_x86_64_NVIDIA"}, ("amd64",)),
        ("eks", {"amiType": "AL2023_ARM_64_STANDARD"}, ("arm64",)),
        ("eks", {"amiType": "BOTTLEROCKET_ARM_64_NVIDIA"}, ("arm64",)),
        ("eks", {"amiType": "CUSTOM"}, None),
        ("eks", {"instanceTypes": ["m7g.large"]}, None),  # family letters are not a rule: unknown
        ("gke", {"machineType": "t2a-standard-4"}, ("arm64",)),
        ("gke", {"machineType": "n2-standard-8"}, ("amd64",)),
        ("gke", {"machineType": "z9-new-series"}, None),
        ("aks", {"vmSize": "Standard_D4ps_v5"}, ("arm64",)),
        ("aks", {"vmSize": "Standard_D4pls_v6"}, ("arm64",)),
        ("aks", {"vmSize": "Standard_NC24ads_A100_v4"}, ("amd64",)),
        ("aks", {"vmSize": "Standard_D4s_v5"}, ("amd64",)),
        ("aks", {"vmSize": "something-else"}, None),
        ("existing", {}, None),
    ],
)
def test_implied_arches(provider, settings, arches):
    known = implied_arches(provider, settings, {})
    assert (known.arches if known else None) == arches


def test_an_arch_label_selects_the_architecture():
    known = implied_arches("existing", {}, {ARCH: "arm64"})
    assert known.arches == ("arm64",) and known.source == "labels['kubernetes.io/arch']"


def _pool(**extra):
    pool = {"name": "p", "provider": "existing", "labels": {"pool": "p"}, "images": ["nginx:1.27"], **extra}
    return load_stack({"nodePools": [pool]}).pools[0]


def test_declared_platforms_win_and_say_so():
    known = _pool(platforms=["linux/arm64", "linux/amd64", "linux/arm64"]).node_arches()
    assert known.arches == ("amd64", "arm64") and known.source == "platforms"
    assert _pool().node_arches() is None


@pytest.mark.parametrize(
    "platforms, reason",
    [
        ([], "must be a non-empty list"),
        ("linux/amd64", "must be a non-empty list"),
        (["linux/sparc"], "unknown platform architecture"),
        (["windows/amd64"], "unsupported platform OS"),
    ],
)
def test_bad_platforms_name_the_pool_field(platforms, reason):
    with pytest.raises(PrePullInputError) as err:
        _pool(platforms=platforms)
    assert err.value.field.startswith("nodePools.p.platforms") and reason in err.value.reason


def test_declared_platforms_must_agree_with_the_settings():
    with pytest.raises(PrePullInputError) as err:
        _pool(labels={"pool": "p", ARCH: "amd64"}, platforms=["linux/arm64"])
    assert err.value.field == "nodePools.p.platforms"
    assert "lists arm64, but the pool's labels['kubernetes.io/arch'] allows only amd64" in err.value.reason
