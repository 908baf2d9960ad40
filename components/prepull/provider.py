"""The component provider other languages use: the inferred schema, and our errors in its spelling.

``components/__main__.py`` serves :class:`PrePullProvider`. Pulumi's stock component host would
report a bad input as an unexpected exception with a Python traceback, naming the field the
Python way (``max_unavailable``); a TypeScript or YAML caller wrote ``maxUnavailable``.
"""

import sys
from typing import Any, Awaitable, Mapping, Optional

from pulumi import Input, Output, ResourceOptions
from pulumi.errors import InputPropertyError
from pulumi.provider import ConstructResult, main
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.server import ComponentInitError

from prepull.component import ImagePrePuller
from prepull.core.checks import INPUT_NAMES
from prepull.errors import PrePullInputError
from prepull.version import __version__

PACKAGE = "prepull"


class PrePullProvider(ComponentProvider):
    """Serves ImagePrePuller; a bad input fails as Pulumi's structured input error, field in camelCase."""

    def __init__(self) -> None:
        super().__init__([ImagePrePuller], PACKAGE, version=__version__)

    def construct(
        self, name: str, resource_type: str, inputs: Mapping[str, Input[Any]], options: Optional[ResourceOptions] = None
    ) -> ConstructResult:
        try:
            result = super().construct(name, resource_type, inputs, options)
        except ComponentInitError as err:
            if not isinstance(err.inner, PrePullInputError):
                raise
            raise property_error(err.inner) from None
        # An Output input is checked when it resolves: its error reaches the engine through the state.
        return ConstructResult(result.urn, {key: _respelled(value) for key, value in result.state.items()})


def property_error(error: PrePullInputError) -> InputPropertyError:
    """Pulumi's structured input error, with the field as other languages spell it."""
    bad = error.in_camel_case(INPUT_NAMES)
    return InputPropertyError(bad.field, f"{bad.reason} (got {bad.value!r})")


async def _converted(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except PrePullInputError as err:
        raise property_error(err) from None


def _respelled(value: Any) -> Any:
    """``value``, or for an Output the same Output whose PrePullInputError becomes a structured one."""
    if not isinstance(value, Output):
        return value
    return Output(
        _converted(value.resources()),
        _converted(value.future(with_unknowns=True)),
        _converted(value.is_known()),
        _converted(value.is_secret()),
    )


def serve(args: Optional[list[str]] = None) -> None:
    """Run the plugin: the engine address and flags are the arguments the CLI starts it with."""
    main(PrePullProvider(), sys.argv[1:] if args is None else args)
