"""Inputs given as Pulumi Outputs: which objects exist is known now, their values when the Outputs resolve.

A value input (an image, a selector, a secret name...) may be an Output, unknown during preview.
The inputs that decide how many objects exist stay plain, so the component can register every
child at construction: :func:`shape_args` replaces each Output by a stand-in that yields the same
objects (kinds and names), and the real plan is built from the resolved inputs, with the same
validation and messages as plain inputs. Nothing here needs the Pulumi engine (only its Output type).
"""

from collections.abc import Mapping
from inspect import isawaitable
from typing import Any

from pulumi import Output

from prepull.core.checks import check_image, is_list
from prepull.core.images import ImageRef
from prepull.errors import PrePullInputError

# Inputs that only set values inside the objects (ImagePrePullerArgs' "Accepts an Output" fields).
VALUE_INPUTS = (
    "images",
    "node_selector",
    "tolerations",
    "image_pull_secrets",
    "labels",
    "annotations",
    "priority_class_name",
    "namespace",
    "resources",
    "pause_image",
    "helper_image",
    "untaint_image",
    "docker_cli_image",
)
# An image given as an Output stands in as one of these while the objects' shape is worked out.
_STAND_IN = "prepull.invalid/output-{}:pending"


class OutputValue:
    """How an Output appears in an error message (its value is not known when the check runs)."""

    def __repr__(self) -> str:
        return "an Output"


def is_output(value: object) -> bool:
    """An Output, or any awaitable (``pulumi.Input`` allows both)."""
    return isinstance(value, Output) or isawaitable(value)


def has_outputs(value: object) -> bool:
    """Whether an Output hides anywhere in ``value`` (through mappings and lists)."""
    if is_output(value):
        return True
    if isinstance(value, Mapping):
        return any(has_outputs(v) for v in value.values())
    if is_list(value):
        return any(has_outputs(v) for v in value)
    return False


def plain_containers(value: Any) -> Any:
    """``value`` with every mapping a dict and every list a list, so ``Output.from_input`` unwraps all of it."""
    if isinstance(value, Mapping):
        return {k: plain_containers(v) for k, v in value.items()}
    if is_list(value):
        return [plain_containers(v) for v in value]
    return value


def check_plain(args: Mapping[str, Any]) -> None:
    """Inputs that decide which objects exist must be plain values: an Output there is an error now."""
    for key, value in args.items():
        if key in VALUE_INPUTS or not has_outputs(value):
            continue
        raise PrePullInputError(key, OutputValue(), "must be a plain value, not an Output: it decides which objects the component creates")
    images = args.get("images")
    if is_list(images):
        for i, entry in enumerate(images):
            if isinstance(entry, Mapping) and has_outputs(entry.get("platforms")):
                raise PrePullInputError(
                    f"images[{i}].platforms",
                    OutputValue(),
                    "must be a plain value, not an Output: the platforms decide which DaemonSets exist",
                )


def shape_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` with every Output replaced so that ``build_plan`` gives the objects the resolved inputs will.

    Images become distinct stand-ins (their number sets the lanes' sizes); other values are left out
    (they never change which objects exist); ``image_sizes`` too, as sizes only move images between lanes.
    """
    if not isinstance(args, Mapping):
        raise PrePullInputError("args", OutputValue(), "must be a mapping of inputs (each value input may be an Output), not an Output")
    check_plain(args)
    shape = {k: v for k, v in args.items() if k != "image_sizes"}
    for key in VALUE_INPUTS:
        if key == "images" or key not in shape:
            continue
        shape[key] = _without_outputs(shape[key])
        if shape[key] is None:
            del shape[key]
    if "images" in args:
        shape["images"] = _shape_images(args)
    return shape


def _without_outputs(value: Any) -> Any:
    """A mapping without its Output values, a list without its entries that hold one; None for an Output."""
    if is_output(value):
        return None
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if not has_outputs(v)}
    if is_list(value):
        return [v for v in value if not has_outputs(v)]
    return value


def _shape_images(args: Mapping[str, Any]) -> Any:
    images = args["images"]
    if is_output(images):
        if args.get("image_platforms") is not None:
            raise PrePullInputError(
                "image_platforms",
                dict(args["image_platforms"]),
                "cannot be used when images is a single Output: platforms decide which DaemonSets exist "
                "(list the images, each may be an Output)",
            )
        # The list's length is unknown: one image per lane keeps every lane's DaemonSet.
        lanes = args.get("lanes")
        return [_STAND_IN.format(i) for i in range(lanes if isinstance(lanes, int) and lanes > 1 else 1)]
    if not is_list(images):
        return images  # build_plan reports it
    shaped = [_shape_entry(entry, i) for i, entry in enumerate(images)]
    _check_platform_keys(args, shaped)
    return shaped


def _shape_entry(entry: Any, index: int) -> Any:
    if is_output(entry):
        return _STAND_IN.format(index)
    if isinstance(entry, Mapping) and is_output(entry.get("image")):
        return {**entry, "image": _STAND_IN.format(index)}
    return entry


def with_parsed_images(resolved: Mapping[str, Any], args: Mapping[str, Any], parsed: tuple[ImageRef, ...]) -> Mapping[str, Any]:
    """``resolved`` with each image given as a plain value replaced by its ImageRef in ``parsed``.

    ``parsed`` is the shape plan's images, in the order of ``args["images"]`` (shape_args keeps
    order and plain values): a plain image was parsed there, and is not parsed again.
    """
    images, values = args.get("images"), resolved.get("images")
    if not is_list(images) or not is_list(values) or len(values) != len(parsed):
        return resolved
    out = list(values)
    for i, entry in enumerate(images):
        if isinstance(entry, str):
            out[i] = parsed[i]
        elif isinstance(entry, Mapping) and isinstance(entry.get("image"), str) and isinstance(out[i], Mapping):
            out[i] = {**out[i], "image": parsed[i]}
    return {**resolved, "images": out}


def _check_platform_keys(args: Mapping[str, Any], shaped: list[Any]) -> None:
    """``image_platforms`` may name only images given as plain values (an Output's image is not known yet)."""
    extra = args.get("image_platforms")
    if not isinstance(extra, Mapping) or shaped == list(args["images"]):
        return
    known: set[str] = set()
    for i, entry in enumerate(shaped):
        image = entry.get("image") if isinstance(entry, Mapping) else entry
        if isinstance(image, str) and image != _STAND_IN.format(i):
            known.add(check_image(image, f"images[{i}]").canonical)
    for key in extra:
        if isinstance(key, str) and check_image(key, f"image_platforms[{key!r}]").canonical not in known:
            raise PrePullInputError(
                f"image_platforms[{key!r}]",
                key,
                "names an image that is not among the plain images: for an image given as an Output, "
                "put its platforms in its entry ({image, platforms})",
            )


__all__ = ["VALUE_INPUTS", "OutputValue", "check_plain", "has_outputs", "is_output", "plain_containers", "shape_args", "with_parsed_images"]
