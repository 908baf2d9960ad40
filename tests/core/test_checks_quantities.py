"""Resource quantities are parsed and compared exactly, as the API server does (apimachinery resource.Quantity).

Expected amounts are written out here as exact decimals from the Kubernetes definitions
(m = 10^-3, Ki = 2^10, 1e3 = 10^3, amounts rounded up to a whole nano, binary amounts capped at
2^63-1), never computed by the parser under test.
"""

from decimal import Decimal

import pytest

import prepull
from prepull import PrePullInputError
from prepull.core.checks import check_quantity, quantity_value

IMAGES = ["nginx:1.27"]


@pytest.mark.parametrize(
    "quantity, amount",
    [
        ("9m", "0.009"),
        ("0.009", "0.009"),
        (".5", "0.5"),
        ("1k", "1000"),
        ("1E", "1000000000000000000"),  # exa, not an exponent
        ("1e3", "1000"),
        ("1E3", "1000"),
        ("1e+3", "1000"),
        ("2.5e-3", "0.0025"),
        ("1E-3", "0.001"),
        ("1.5Ki", "1536"),
        ("8Mi", "8388608"),
        ("0", "0"),
        ("0.0000000011", "0.000000002"),  # rounded up to a whole nano, the finest the API server keeps
        ("1e-30", "0.000000001"),  # anything above zero is at least 1n
        ("9Ei", "9223372036854775807"),  # binary amounts are capped at 2^63-1
    ],
)
def test_amounts_are_exact(quantity, amount):
    assert quantity_value(quantity) == Decimal(amount)


def test_sums_are_exact_where_floats_are_not():
    assert 0.1 + 0.2 != 0.3  # the float trap the parser must not fall into
    assert quantity_value("100m") + quantity_value("0.2") == quantity_value("300m")
    assert quantity_value("0.1") * 3 == quantity_value("3e-1")


@pytest.mark.parametrize("bad", ["5.", "+1", "-1m", "1e", "1e3.5", "1K", "1ki", "1 Mi", "1MiB", "", "e3", "1e" + "9" * 30])
def test_other_spellings_are_not_quantities_and_name_field_and_value(bad):
    with pytest.raises(PrePullInputError) as exc:
        check_quantity(bad, "resources.cpu_limit")
    assert (exc.value.field, exc.value.value) == ("resources.cpu_limit", bad)
    assert str(exc.value) == f"resources.cpu_limit: must be a Kubernetes quantity such as '10m', '0.5' or '16Mi' (got {bad!r})"


def resources_of(args: dict) -> list:
    """The resources of every container of every DaemonSet the args render to."""
    specs = [o["spec"]["template"]["spec"] for o in prepull.manifests(args, "pp") if o["kind"] == "DaemonSet"]
    return [c["resources"] for spec in specs for key in ("initContainers", "containers") for c in spec.get(key) or []]


@pytest.mark.parametrize(
    "resource, requested, limit",
    [
        ("cpu", "9m", "0.009"),  # unequal as floats (9 * 0.001 > 0.009)
        ("cpu", "700m", "0.7"),  # likewise
        ("cpu", "1e-3", "1m"),
        ("cpu", "0.0000000011", "0.000000002"),  # both 2n for the API server
        ("memory", "1.5Gi", "1536Mi"),
        ("memory", "1e6", "1M"),
        ("ephemeral_storage", "256Mi", "268435456"),
    ],
)
def test_a_request_equal_to_its_limit_is_accepted_and_kept_as_written(resource, requested, limit):
    args = {"images": IMAGES, "resources": {f"{resource}_request": requested, f"{resource}_limit": limit}}
    key = resource.replace("_", "-")  # ephemeral_storage is the ephemeral-storage resource
    pairs = [(r["requests"][key], r["limits"][key]) for r in resources_of(args)]
    assert pairs and set(pairs) == {(requested, limit)}


@pytest.mark.parametrize(
    "resource, requested, limit",
    [
        ("cpu", "0.100000001", "100m"),  # one nano above
        ("memory", "9007199254740993", "8Pi"),  # 2^53 + 1 bytes over 2^53: equal as floats
        ("cpu", "100000000000000001m", "1e14"),  # 1m above 10^14: equal as floats
        ("ephemeral_storage", "257Mi", "256Mi"),
    ],
)
def test_a_request_above_its_limit_by_a_tiny_exact_amount_is_rejected(resource, requested, limit):
    args = {"images": IMAGES, "resources": {f"{resource}_request": requested, f"{resource}_limit": limit}}
    with pytest.raises(PrePullInputError) as exc:
        prepull.manifests(args, "pp")
    assert str(exc.value) == f"resources.{resource}_request: must not exceed resources.{resource}_limit ({limit}) (got {requested!r})"
