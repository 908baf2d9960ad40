"""Lane assignment: round-robin without sizes (as before), largest-first by size with them."""

import itertools
import random

import pytest

from prepull import PrePullInputError, manifests
from prepull.core.lanes import assign, by_size, largest_lane, lower_bound, round_robin

GB = 10**9
MB = 10**6


def test_round_robin_is_the_old_split():
    assert round_robin(5, 2) == ((0, 2, 4), (1, 3))
    assert round_robin(2, 3) == ((0,), (1,), ())


def test_without_every_size_the_split_stays_round_robin():
    assert assign([None, None, None], 2) == ((0, 2), (1,))
    assert assign([9 * GB, None, 1], 2) == ((0, 2), (1,))


def test_the_big_images_are_spread_not_stacked():
    # Round-robin puts both big images (indices 0 and 2) on lane 1.
    sizes = [9 * GB, 100 * MB, 8 * GB, 100 * MB]
    assert round_robin(4, 2) == ((0, 2), (1, 3))
    assert by_size(sizes, 2) == ((0,), (1, 2, 3))
    assert largest_lane(sizes, by_size(sizes, 2)) == 9 * GB == lower_bound(sizes, 2)


def test_each_lane_keeps_the_users_order():
    lanes = by_size([1, 5, 2, 4, 3], 2)
    assert all(list(lane) == sorted(lane) for lane in lanes)


def test_ties_go_to_the_earlier_image_and_the_lower_lane():
    assert by_size([3, 3, 3, 3], 2) == ((0, 2), (1, 3))
    assert by_size([0, 0, 0], 3) == ((0,), (1,), (2,))  # zero bytes still fill every lane


def test_every_image_is_assigned_exactly_once():
    rng = random.Random(7)
    for count, lanes in itertools.product(range(1, 12), range(1, 5)):
        sizes = [rng.randrange(0, 10 * GB) for _ in range(count)]
        got = sorted(i for lane in by_size(sizes, lanes) for i in lane)
        assert got == list(range(count))


def test_no_lane_is_empty_while_there_are_images_for_it():
    for sizes in ([5, 0, 0], [0, 0, 7, 0], [1, 1]):
        lanes = min(3, len(sizes))
        assert all(by_size(sizes, lanes))


def test_largest_first_is_within_four_thirds_of_the_bound_on_random_mixes():
    rng = random.Random(13)
    for _ in range(200):
        lanes = rng.randrange(2, 6)
        sizes = [int(rng.paretovariate(1.2) * 50 * MB) for _ in range(rng.randrange(lanes * 2, 30))]
        assert largest_lane(sizes, by_size(sizes, lanes)) <= 4 / 3 * lower_bound(sizes, lanes)


def test_the_bound_is_the_even_share_or_the_largest_image():
    assert lower_bound([4, 4, 4, 4], 2) == 8
    assert lower_bound([9, 1, 1], 2) == 9


def _lane_images(objects) -> list:
    return [[c["image"] for c in o["spec"]["template"]["spec"]["initContainers"][1:]] for o in objects if o["kind"] == "DaemonSet"]


def test_image_sizes_balance_the_rendered_lanes():
    images = ["a:1", "b:1", "c:1", "d:1"]
    sizes = {"a:1": 9 * GB, "b:1": 1 * MB, "c:1": 8 * GB, "d:1": 2 * MB}
    balanced = _lane_images(manifests({"images": images, "lanes": 2, "image_sizes": sizes}, "p"))
    plain = _lane_images(manifests({"images": images, "lanes": 2}, "p"))
    assert plain == [["docker.io/library/a:1", "docker.io/library/c:1"], ["docker.io/library/b:1", "docker.io/library/d:1"]]
    assert balanced == [["docker.io/library/a:1"], ["docker.io/library/b:1", "docker.io/library/c:1", "docker.io/library/d:1"]]


@pytest.mark.parametrize(
    "sizes, field, reason",
    [
        ({"a:1": 5}, "image_sizes", "has no size for images[1] ('b:1')"),
        ({"a:1": 5, "b:1": 1, "z:1": 2}, "image_sizes['z:1']", "names an image that is not in images"),
        ({"a:1": -1, "b:1": 1}, "image_sizes['a:1']", "must be a whole number, at least 0"),
        ({"a:1": "5", "b:1": 1}, "image_sizes['a:1']", "must be a whole number"),
    ],
)
def test_bad_image_sizes_name_the_field(sizes, field, reason):
    with pytest.raises(PrePullInputError) as err:
        manifests({"images": ["a:1", "b:1"], "lanes": 2, "image_sizes": sizes}, "p")
    assert err.value.field == field and reason in err.value.reason


def _bench():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("lanes_bench", Path(__file__).resolve().parents[2] / "benchmarks" / "lanes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_mixes_meet_the_target_and_never_lose_to_round_robin():
    bench = _bench()
    rows = bench.rows()
    assert len(rows) == len(bench.mixes()) * len(bench.LANES)
    for name, lanes, total, bound, rr, sa in rows:
        assert sa <= bench.TARGET * bound, (name, lanes)
        assert sa <= rr, (name, lanes)
    assert bench.rows() == rows  # fixed seeds: the same figures every run
