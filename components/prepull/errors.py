"""The one error type every bad input raises, and its camelCase spelling."""

import re
from collections.abc import Collection

# A snake_case word in a reason: respelled when it names an input.
_SNAKE_WORD = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
# The parts of a field path outside map keys (``labels['a_b']`` keeps its key as written).
_KEY = re.compile(r"(\[[^\]]*\])")


def camel_case(name: str) -> str:
    """``max_unavailable`` -> ``maxUnavailable``.

    Pulumi's own rule (``pulumi.provider.experimental.util.camel_case``), by which the component
    provider's schema names the inputs; the stack files use the same names.
    """
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


class PrePullInputError(Exception):
    """A bad input, raised before any resource is registered.

    ``field`` is the input's path as the user wrote it (``images[2]``,
    ``tolerations[0].effect``) and ``value`` the offending value, so the
    message points at exactly what to fix.

    Not a ValueError: Pulumi re-wraps a ValueError raised while an Output input resolves
    ("While processing input ..."), which would hide this type and its field from callers.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {reason} (got {value!r})")

    def in_camel_case(self, inputs: Collection[str], prefix: str = "") -> "PrePullInputError":
        """The same error for a caller who spells inputs in camelCase (stack files, other languages).

        The field path is respelled outside its map keys, and so is every word of the reason that is
        one of ``inputs`` (``conflicts with max_surge`` -> ``conflicts with maxSurge``).
        """
        parts = _KEY.split(self.field)
        field = "".join(p if p.startswith("[") else ".".join(map(camel_case, p.split("."))) for p in parts)
        reason = _SNAKE_WORD.sub(lambda m: camel_case(m.group(0)) if m.group(0) in inputs else m.group(0), self.reason)
        return PrePullInputError(prefix + field, self.value, reason)
