"""Bad input as the Pulumi CLI shows it: our one-line message, not a Python traceback.

The CLI's Python language host (``pulumi-language-python-exec``) prints only ``str(e)`` for a
``pulumi.RunError`` that escapes the program; any other exception becomes "Program failed with an
unhandled exception" and a traceback. A module of its own because it imports the Pulumi SDK, which
the pure core (``errors.py``, ``plan.py``...) and the offline renderer must not.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import pulumi

from prepull.errors import PrePullInputError


class PrePullRunError(PrePullInputError, pulumi.RunError):
    """A :class:`PrePullInputError` the language host reports as its bare message.

    Still a PrePullInputError (same ``field``, ``value``, ``reason`` and message), so callers that
    catch that, and the component provider that converts it, see no difference.
    """


def run_error(err: PrePullInputError) -> PrePullRunError:
    """``err`` as a PrePullRunError (itself if it already is one)."""
    if isinstance(err, PrePullRunError):
        return err
    return PrePullRunError(err.field, err.value, err.reason)


@contextmanager
def reported_plainly() -> Iterator[None]:
    """Re-raise a PrePullInputError from the block as a PrePullRunError.

    ``from None``: the original is the same message, so a chained traceback would only repeat it.
    """
    try:
        yield
    except PrePullInputError as err:
        raise run_error(err) from None


__all__ = ["PrePullRunError", "reported_plainly", "run_error"]
