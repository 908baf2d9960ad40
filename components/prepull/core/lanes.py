"""Which images each lane (DaemonSet) pulls. Pure.

Without sizes, lanes take the images round-robin in order (image i goes to lane
i mod lanes), as they always have. With a size for every image (compressed
bytes, from the lock file), the assignment is the "largest first" greedy
(LPT): images from the largest down, each to the lane with the fewest bytes so
far. It is within 4/3 of the best possible largest lane, and a lane's pull
time is roughly its bytes, so no lane is left holding all the big images.
"""

from typing import Optional, Sequence


def round_robin(count: int, lanes: int) -> tuple[tuple[int, ...], ...]:
    """Image indices per lane, round-robin: lane ``l`` gets ``l, l + lanes, ...``."""
    return tuple(tuple(range(lane, count, lanes)) for lane in range(lanes))


def by_size(sizes: Sequence[int], lanes: int) -> tuple[tuple[int, ...], ...]:
    """Image indices per lane, largest image first to the lane with the fewest bytes.

    Ties are broken deterministically: equal sizes in image order; equal lane
    bytes by the fewer images, then the lower lane (so no lane stays empty while
    another has two images, even with zero-byte sizes). Each lane lists its
    images in image order: the order the user gave stays the pull order.
    """
    loads = [0] * lanes
    chosen: list[list[int]] = [[] for _ in range(lanes)]
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        lane = min(range(lanes), key=lambda lane_: (loads[lane_], len(chosen[lane_]), lane_))
        loads[lane] += sizes[index]
        chosen[lane].append(index)
    return tuple(tuple(sorted(c)) for c in chosen)


def assign(sizes: Sequence[Optional[int]], lanes: int) -> tuple[tuple[int, ...], ...]:
    """Image indices per lane: :func:`by_size` when every size is known, else :func:`round_robin`."""
    if sizes and all(s is not None for s in sizes):
        return by_size(sizes, lanes)  # type: ignore[arg-type]
    return round_robin(len(sizes), lanes)


def largest_lane(sizes: Sequence[int], assignment: Sequence[Sequence[int]]) -> int:
    """Bytes of the lane with the most bytes."""
    return max((sum(sizes[i] for i in lane) for lane in assignment), default=0)


def lower_bound(sizes: Sequence[int], lanes: int) -> float:
    """No assignment's largest lane can be below this: the even share, or the largest image."""
    return max(sum(sizes) / lanes, max(sizes, default=0))


__all__ = ["assign", "by_size", "largest_lane", "lower_bound", "round_robin"]
