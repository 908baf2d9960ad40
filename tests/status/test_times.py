"""``status``'s pull times: Go durations, the kubelet's Pulled messages, events against derived times, the summary.

No cluster: the objects are built in the shape the API returns (tests/status_objects.py), and the
reader talks to a fake client that records each call.
"""

import pytest
import status_objects as so
from status_objects import by_image, one_node, only_node, report


from prepull.status.times import CACHED, DERIVED, EVENT, go_duration_seconds, parse_pulled


# ---------------------------------------------------------------- times


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("1.234s", 1.234),
        ("850ms", 0.85),
        ("1m2.5s", 62.5),
        ("1h0m0s", 3600.0),
        ("0s", 0.0),
        ("250µs", 0.00025),
        ("1.5", None),
        ("s", None),
        ("", None),
        ("2x", None),
    ],
)
def test_go_durations(text, seconds):
    assert go_duration_seconds(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_pulled_messages_of_each_kubelet_generation():
    new = parse_pulled(f'Successfully pulled image "{so.UV}" in 1.234s (2.5s including waiting). Image size: 48213611 bytes.')
    assert (new.image, new.seconds, new.waiting_seconds, new.size_bytes, new.cached) == (so.UV, 1.234, 2.5, 48213611, False)
    older = parse_pulled(f'Successfully pulled image "{so.UV}" in 850ms (850ms including waiting)')
    assert (older.seconds, older.size_bytes) == (0.85, None)
    oldest = parse_pulled(f'Successfully pulled image "{so.UV}" in 1m2.5s')
    assert oldest.seconds == 62.5
    cached = parse_pulled(f'Container image "{so.UV}" already present on machine')
    assert cached.cached and cached.seconds is None
    assert parse_pulled(f'Pulling image "{so.UV}"') is None


def test_event_times_win_and_derived_times_are_marked():
    ds = so.daemon_set()
    helper, python, uv = so.init_names(ds)
    # helper 2..3, python 4..5, uv 9..10: uv's image took until 9, four seconds after python finished.
    states = [so.terminated(2, 3), so.terminated(4, 5), so.terminated(9, 10)]
    rep, _ = one_node(ds, states, events_for=lambda p: [so.pulled(p, python, so.PYTHON, "1.5s", size=48213611)])
    images = by_image(only_node(rep))
    assert (images[so.PYTHON].seconds, images[so.PYTHON].time_source, images[so.PYTHON].size_bytes) == (1.5, EVENT, 48213611)
    assert (images[so.UV].seconds, images[so.UV].time_source, images[so.UV].size_bytes) == (4.0, DERIVED, None)
    helper_status = only_node(rep).images[0]
    assert (helper_status.seconds, helper_status.time_source) == (1.0, DERIVED)  # from the pod's start (1) to its own (2)


def test_the_latest_event_counts_and_other_pods_events_do_not():
    ds = so.daemon_set()
    python = so.init_names(ds)[1]
    other = so.pod(ds, "n2")

    def events(p):
        return [
            so.pulled(p, python, so.PYTHON, "9s", at=5),
            so.pulled(p, python, so.PYTHON, "3s", at=50),
            so.pulled(other, python, so.PYTHON, "7s", at=90),
        ]

    rep, _ = one_node(ds, events_for=events)
    assert by_image(only_node(rep))[so.PYTHON].seconds == 3.0


def test_an_image_already_on_the_node_is_cached_with_no_time():
    ds = so.daemon_set()
    python = so.init_names(ds)[1]
    rep, _ = one_node(ds, events_for=lambda p: [so.event(p, python, "Pulled", f'Container image "{so.PYTHON}" already present on machine')])
    image = by_image(only_node(rep))[so.PYTHON]
    assert (image.time_source, image.seconds) == (CACHED, None)


def test_summary_gives_the_median_and_the_slowest_node():
    ds = so.daemon_set()
    python = so.init_names(ds)[1]
    pods = [so.pod(ds, f"n{i}") for i in range(1, 5)]
    took = {"n1": "1s", "n2": "5s", "n3": "3s"}
    events = [so.pulled(p, python, so.PYTHON, took[p["spec"]["nodeName"]]) for p in pods[:3]]
    pods[3] = so.pod(ds, "n4", [so.terminated(2, 3), so.waiting("PodInitializing"), so.waiting()])
    rep = report([ds], pods, [so.node(f"n{i}") for i in range(1, 5)], events)
    python_summary = next(s for s in rep.images if s.image == so.PYTHON)
    assert (python_summary.pulls, python_summary.present, python_summary.timed) == (4, 3, 3)
    assert (python_summary.median_seconds, python_summary.slowest_node, python_summary.slowest_seconds) == (3.0, "n2", 5.0)
    uv = next(s for s in rep.images if s.image == so.UV)
    assert (uv.present, uv.timed, uv.median_seconds) == (3, 3, 1.0)  # derived: 1 s each in so.all_done
