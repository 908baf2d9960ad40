"""max_unavailable and max_surge: whole numbers or percentages, checked as Kubernetes checks a DaemonSet's
rollingUpdate (apps/validation ValidateRollingUpdateDaemonSet: each a non-negative int or ``^[0-9]+%$``, at most
100%, exactly one of the two non-zero), through the component, the stack file and the component provider."""

import pytest
from pulumi.errors import InputPropertyError

import prepull
from prepull import PrePullInputError
from prepull.stack.pools import load_stack

IMAGES = ["nginx:1.27"]
RULE = "must be a whole number, at least {0}, or a percentage from {0}% to 100% such as '10%'"


def rolling_update(**args) -> dict:
    (ds,) = [o for o in prepull.manifests({"images": IMAGES, **args}, "pp") if o["kind"] == "DaemonSet"]
    return ds["spec"]["updateStrategy"]["rollingUpdate"]


@pytest.mark.parametrize(
    "args, expected",
    [
        ({}, {"maxUnavailable": 1}),
        ({"max_unavailable": "10%"}, {"maxUnavailable": "10%"}),
        ({"max_unavailable": "100%"}, {"maxUnavailable": "100%"}),
        ({"max_unavailable": 1}, {"maxUnavailable": 1}),
        ({"max_unavailable": 2.0}, {"maxUnavailable": 2}),  # a JSON number from another language
        ({"max_surge": "10%"}, {"maxSurge": "10%", "maxUnavailable": 0}),
        ({"max_surge": "100%"}, {"maxSurge": "100%", "maxUnavailable": 0}),
        ({"max_surge": 1}, {"maxSurge": 1, "maxUnavailable": 0}),
        # A zero surge is no surge: max_unavailable (given or its default) rolls the pods.
        ({"max_surge": 0}, {"maxUnavailable": 1}),
        ({"max_surge": "0%"}, {"maxUnavailable": 1}),
        ({"max_surge": "0%", "max_unavailable": "5%"}, {"maxUnavailable": "5%"}),
        ({"max_surge": 0, "max_unavailable": 3}, {"maxUnavailable": 3}),
    ],
)
def test_accepted_values_render_as_given(args, expected):
    got = rolling_update(**args)
    assert got == expected
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}  # 2, not 2.0


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("max_unavailable", "10", RULE.format(1)),  # a string must be a percentage
        ("max_unavailable", "-1%", RULE.format(1)),
        ("max_unavailable", "101%", RULE.format(1)),
        ("max_unavailable", "abc", RULE.format(1)),
        ("max_unavailable", "10.5%", RULE.format(1)),
        ("max_unavailable", " 10%", RULE.format(1)),
        ("max_unavailable", "10%\n", RULE.format(1)),
        ("max_unavailable", 1.5, RULE.format(1)),
        ("max_unavailable", True, RULE.format(1)),
        ("max_unavailable", 0, RULE.format(1)),  # Kubernetes: maxUnavailable cannot be 0 when maxSurge is 0
        ("max_unavailable", "0%", RULE.format(1)),
        ("max_unavailable", -1, RULE.format(1)),
        ("max_unavailable", 2**31, "must be at most 2147483647 (Kubernetes' IntOrString is 32-bit)"),
        ("max_surge", "10", RULE.format(0)),
        ("max_surge", "-1%", RULE.format(0)),
        ("max_surge", "101%", RULE.format(0)),
        ("max_surge", "1000%", RULE.format(0)),
        ("max_surge", "abc", RULE.format(0)),
        ("max_surge", 1.5, RULE.format(0)),
        ("max_surge", False, RULE.format(0)),
        ("max_surge", -1, RULE.format(0)),
    ],
)
def test_rejected_values_name_the_field_and_value(field, value, reason):
    with pytest.raises(PrePullInputError) as raised:
        prepull.manifests({"images": IMAGES, field: value}, "pp")
    assert (raised.value.field, raised.value.value, raised.value.reason) == (field, value, reason)


@pytest.mark.parametrize("surge, unavailable", [("10%", "5%"), ("10%", 1), (1, "5%"), (2, 3)])
def test_a_surge_conflicts_with_an_explicit_max_unavailable(surge, unavailable):
    """Exactly one of the two may be non-zero: with a surge, max_unavailable is 0 and may not be set."""
    with pytest.raises(PrePullInputError) as raised:
        prepull.manifests({"images": IMAGES, "max_surge": surge, "max_unavailable": unavailable}, "pp")
    assert (raised.value.field, raised.value.value) == ("max_unavailable", unavailable)
    assert raised.value.reason.startswith("conflicts with max_surge")


def stack(prepuller: dict) -> dict:
    return {"images": IMAGES, "nodePools": [{"name": "a", "provider": "existing", "labels": {"pool": "a"}, "prepuller": prepuller}]}


def test_percentages_flow_through_the_stack_file():
    spec = load_stack(stack({"maxSurge": "25%"}))
    (ds,) = [o for o in spec.prepullers["a"].objects if o["kind"] == "DaemonSet"]
    assert ds["spec"]["updateStrategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}


def test_a_bad_percentage_in_the_stack_file_is_named_in_its_spelling():
    with pytest.raises(PrePullInputError) as raised:
        load_stack(stack({"maxUnavailable": "150%"}))
    assert (raised.value.field, raised.value.value) == ("nodePools.a.prepuller.maxUnavailable", "150%")
    assert raised.value.reason == RULE.format(1)


def test_the_component_provider_keeps_taking_numbers_as_floats(run_program):
    """What a TypeScript caller sends: every number a float; the schema types both inputs as integers."""
    from prepull.provider import PrePullProvider

    provider = PrePullProvider()

    def program():
        provider.construct("ts", "prepull:index:ImagePrePuller", {"images": IMAGES, "maxSurge": 2.0})

    run = run_program(program)
    (ds,) = [r for r in run.requests if r.type == "kubernetes:apps/v1:DaemonSet"]
    assert run.state(ds)["spec"]["updateStrategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 0}

    def bad():
        provider.construct("bad", "prepull:index:ImagePrePuller", {"images": IMAGES, "maxSurge": 1.5})

    with pytest.raises(InputPropertyError) as raised:
        run_program(bad)
    assert (raised.value.property_path, raised.value.reason) == ("maxSurge", RULE.format(0) + " (got 1.5)")
