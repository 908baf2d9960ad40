"""Path-aware input checks: one function, and one wording, per kind of value.

Each check takes the value and its field path as the caller spelled it (``tolerations[0].key``,
``nodePools.gpu.taints[0].effect``), returns the value (normalised where the docstring says so)
and raises :class:`PrePullInputError` naming the path, the reason and the value. Paths are built
by :class:`Path` only, so a field, a list item and a map entry read the same in every message.

Also here: the one mapping between the inputs' Python names and their schema (camelCase) names.
Kubernetes naming rules (DNS labels, qualified names, label values) are in :mod:`prepull.core.names`.
"""

import enum
import re
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_UP, Context, Decimal, InvalidOperation, localcontext
from typing import Any, Callable, Mapping, Optional, Sequence, TypeGuard, TypeVar, Union

from prepull.args import ContainerResources, CustomTimeouts, ImagePrePullerArgs, StartupTaint, TaintEffect, Toleration
from prepull.core.images import ImageRef, parse_image
from prepull.core.names import check_label_value, check_qualified_name
from prepull.errors import PrePullInputError, camel_case

E = TypeVar("E", bound=enum.Enum)
IntOrPercent = Union[int, str]
"""A whole number or a percentage string such as ``'10%'`` (Kubernetes' IntOrString)."""

# Kubernetes' IntOrString holds a 32-bit integer.
INT32_MAX = 2**31 - 1
TAINT_KEYS = ("key", "value", "effect")


class Path(str):
    """A field path, as errors name it: ``Path("tolerations").at(0).child("key")`` is ``tolerations[0].key``.

    ``Path()`` is the root (its child ``lanes`` is ``lanes``); a root ending in ``:`` is a Pulumi
    config namespace, whose children follow it directly (``prepull:kubeContext``).
    """

    __slots__ = ()

    def child(self, name: str) -> "Path":
        """A named field: ``resources`` -> ``resources.cpu_limit``."""
        return Path(f"{self}.{name}" if self and not self.endswith(":") else f"{self}{name}")

    def at(self, index: int) -> "Path":
        """An item of a list: ``images`` -> ``images[2]``."""
        return Path(f"{self}[{index}]")

    def entry(self, key: object) -> "Path":
        """The value under a key the user chose: ``labels`` -> ``labels['team']``."""
        return Path(f"{self}[{key!r}]")

    def map_key(self) -> "Path":
        """Any key of a map (the key itself is the offending value): ``labels`` -> ``labels key``."""
        return Path(f"{self} key")


# --- scalars ------------------------------------------------------------------------------------------------


def _int_value(value: object) -> Optional[int]:
    """``value`` as an int, or None if it is not a whole number.

    Callers in other languages send every number as a JSON number (a float here); a bool is an
    int to Python but never meant as a number.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bounds(minimum: Optional[int], maximum: Optional[int]) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f", at least {minimum}"
    return f", at most {maximum}" if maximum is not None else ""


def check_int(value: object, field: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """A whole number within ``minimum`` and ``maximum`` (each optional, default unbounded); an integral float counts."""
    number = _int_value(value)
    if number is None or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise PrePullInputError(field, value if number is None else number, "must be a whole number" + _bounds(minimum, maximum))
    return number


# apimachinery's IsValidPercent is [0-9]+%; beyond three digits (after leading zeros) it is over 100% anyway.
_PERCENT = re.compile(r"0*(?P<number>[0-9]{1,3})%")


def _percent(value: str) -> Optional[int]:
    match = _PERCENT.fullmatch(value)
    return int(match["number"]) if match else None


def check_int_or_percent(value: object, field: str, minimum: int = 0) -> IntOrPercent:
    """A whole number, or a percentage string such as ``'10%'``, as a DaemonSet's rollingUpdate takes them.

    Kubernetes' rule (ValidatePositiveIntOrPercent, IsNotMoreThan100Percent): a non-negative
    32-bit int, or digits followed by ``%`` and at most 100%. ``minimum`` (default 0) bounds both
    forms from below. A percentage is returned as written, a number as an int.
    """
    reason = f"must be a whole number, at least {minimum}, or a percentage from {minimum}% to 100% such as '10%'"
    if isinstance(value, str):
        percent = _percent(value)
        if percent is None or not minimum <= percent <= 100:
            raise PrePullInputError(field, value, reason)
        return value
    number = _int_value(value)
    if number is None:
        raise PrePullInputError(field, value, reason)
    # Reported as a whole number: other languages send every number as a float (-3 arrives as -3.0).
    if number < minimum:
        raise PrePullInputError(field, number, reason)
    if number > INT32_MAX:
        raise PrePullInputError(field, number, f"must be at most {INT32_MAX} (Kubernetes' IntOrString is 32-bit)")
    return number


def amount(value: IntOrPercent) -> int:
    """The number of a checked int-or-percent (``'10%'`` -> 10), to tell zero from non-zero as Kubernetes does."""
    return (_percent(value) or 0) if isinstance(value, str) else value


def check_bool(value: object, field: str) -> bool:
    """True or false (nothing else counts)."""
    if not isinstance(value, bool):
        raise PrePullInputError(field, value, "must be true or false")
    return value


def check_str(value: object, field: str, empty: bool = False) -> str:
    """A string; unless ``empty`` (default False), one with something besides whitespace."""
    if not isinstance(value, str):
        raise PrePullInputError(field, value, "must be a string" if empty else "must be a non-empty string")
    if not empty and not value.strip():
        raise PrePullInputError(field, value, "must be a non-empty string")
    return value


def _one_of(choices: Sequence[object]) -> str:
    return "must be one of " + ", ".join(repr(c) for c in choices)


def check_choice(value: object, choices: Sequence[str], field: str) -> str:
    """One of ``choices`` (strings), exactly as written."""
    if not isinstance(value, str) or value not in choices:
        raise PrePullInputError(field, value, _one_of(choices))
    return value


def check_enum(enum_type: type[E], value: object, field: str) -> E:
    """A member of ``enum_type``, given as the member or its value."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        raise PrePullInputError(field, value, _one_of([m.value for m in enum_type])) from None


# --- collections --------------------------------------------------------------------------------------------


def _described(kind: str, what: str) -> str:
    return f"{kind} of {what}" if what else kind


def is_list(value: object) -> TypeGuard[Sequence[Any]]:
    """Whether ``value`` counts as a list: any sequence but a string or a mapping."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, Mapping))


def check_list(value: object, field: str, what: str = "", non_empty: bool = False) -> list[Any]:
    """A list (any sequence but a string or a mapping); ``what`` (default none) says of what, for the message."""
    kind = _described("a non-empty list" if non_empty else "a list", what)
    if not is_list(value) or (non_empty and not value):
        raise PrePullInputError(field, value, f"must be {kind}")
    return list(value)


def check_mapping(value: object, field: str, what: str = "") -> Mapping[Any, Any]:
    """A mapping; ``what`` (default none) says of what, for the message."""
    if not isinstance(value, Mapping):
        raise PrePullInputError(field, value, f"must be {_described('a mapping', what)}")
    return value


def check_keys(value: Mapping[Any, Any], known: Sequence[str], field: str) -> None:
    """Every key of ``value`` is one of ``known``; an unknown one is named as a field of ``field``."""
    for key in value:
        if key not in known:
            raise PrePullInputError(Path(field).child(str(key)), value[key], f"unknown field; known: {', '.join(known)}")


def check_required(value: Mapping[Any, Any], keys: Sequence[str], field: str, why: str = "") -> None:
    """Each of ``keys`` is set (not None) in ``value``; ``why`` (default none) is added to the message."""
    for key in keys:
        if value.get(key) is None:
            raise PrePullInputError(Path(field).child(key), None, f"is required{why}")


def check_string_map(value: object, field: str, check_value: Optional[Callable[[str, str], str]] = None) -> tuple[tuple[str, str], ...]:
    """Qualified-name keys to strings, each also checked by ``check_value`` (default: any string); sorted pairs."""
    path = Path(field)
    pairs = []
    for key, val in check_mapping(value, path).items():
        check_qualified_name(key, path.map_key())
        if not isinstance(val, str):
            raise PrePullInputError(path.entry(key), val, "must be a string")
        pairs.append((key, check_value(val, path.entry(key)) if check_value else val))
    return tuple(sorted(pairs))


def check_taint(value: object, field: str, default_effect: Optional[TaintEffect] = None) -> dict[str, str]:
    """A Kubernetes taint ``{key, value?, effect}``: key required, an empty value left out.

    ``effect`` is required unless ``default_effect`` (default None) is given.
    """
    path = Path(field)
    taint = check_mapping(value, path, "{key, value, effect}")
    check_keys(taint, TAINT_KEYS, path)
    if not taint.get("key"):
        raise PrePullInputError(path.child("key"), taint.get("key"), "is required")
    out = {"key": check_qualified_name(taint["key"], path.child("key"))}
    if taint.get("value"):
        out["value"] = check_label_value(taint["value"], path.child("value"))
    out["effect"] = check_enum(TaintEffect, taint.get("effect", default_effect), path.child("effect")).value
    return out


# --- images -------------------------------------------------------------------------------------------------


def check_image(value: object, field: str) -> ImageRef:
    """An image reference: parsed by :func:`prepull.core.images.parse_image`, or one parsed already.

    Each reference is parsed once, where it is read; the stack config and the lock file hand on
    their ImageRefs (``images``, ``image_platforms`` and ``image_sizes`` keys), which pass through.
    """
    return value if isinstance(value, ImageRef) else parse_image(value, field)


def image_text(value: object) -> object:
    """What the user wrote for an image (an ImageRef's original text, else ``value`` itself), for messages."""
    return value.original if isinstance(value, ImageRef) else value


# --- durations and quantities -------------------------------------------------------------------------------

# Go's time.ParseDuration, which Pulumi uses for custom timeouts.
_GO_DURATION = re.compile(r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+")
# resource.Quantity without a sign: a decimal number, then a decimal SI or binary suffix or a decimal exponent.
# "1E" is one exa, "1E3" a thousand: the regex tries the suffix first and backtracks to the exponent.
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(\.[0-9]+)?|\.[0-9]+)"
    r"(?:(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]+))?"
)


def check_duration(value: object, field: str) -> str:
    """A Go duration string such as ``30m`` or ``1h30m``."""
    if not isinstance(value, str) or not _GO_DURATION.fullmatch(value):
        raise PrePullInputError(field, value, "must be a duration such as '30m', '1h' or '1h30m'")
    return value


def check_quantity(value: object, field: str) -> str:
    """A Kubernetes resource quantity such as ``10m``, ``16Mi`` or ``1e3``."""
    if not isinstance(value, str) or _parse_quantity(value) is None:
        raise PrePullInputError(field, value, "must be a Kubernetes quantity such as '10m', '0.5' or '16Mi'")
    return value


# Powers of ten of the decimal SI suffixes, powers of two of the binary ones.
_DECIMAL_SI = {"m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_NANO = Decimal("1e-9")
_MAX_BINARY = Decimal(2**63 - 1)
# Wide enough that nothing below rounds unless asked to, and independent of the caller's decimal context.
_WIDE = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation])


def _parse_quantity(value: str) -> Optional[Decimal]:
    """The exact amount of a quantity as the API server parses it, or None if it is not one.

    Decimal, not float: ``9m`` and ``0.009`` must be equal. Like apimachinery's
    ``ParseQuantity``, a non-zero amount is rounded up to a whole nano (1e-9, the
    finest Kubernetes keeps) and a binary-suffixed one is capped at 2^63-1, so
    that request and limit compare as the API server's validation compares them.
    """
    match = _QUANTITY.fullmatch(value)
    if not match:
        return None
    number, suffix = match["number"], match["suffix"] or ""
    result: Decimal
    with localcontext(_WIDE):
        try:
            if suffix in _BINARY_SI:
                result = min(Decimal(number) * 2 ** _BINARY_SI[suffix], _MAX_BINARY)
            else:
                result = Decimal(f"{number}e{match['exponent'] or _DECIMAL_SI[suffix]}")
        except InvalidOperation:  # an exponent beyond what a Decimal holds (about 18 digits)
            return None
        if 0 < result < _NANO:
            return _NANO
        # From 1n up, the rounded coefficient has at most one digit more than the input: exact and cheap.
        exponent = result.as_tuple().exponent
        return result.quantize(_NANO, rounding=ROUND_UP) if isinstance(exponent, int) and exponent < -9 else result


def quantity_value(value: str) -> Decimal:
    """The exact amount of a quantity already checked by :func:`check_quantity` (for comparisons)."""
    result = _parse_quantity(value)
    if result is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return result


# --- input names --------------------------------------------------------------------------------------------

# Every input name at any depth (ImagePrePullerArgs and the TypedDicts in it), as Python spells it. The schema,
# the stack files and other languages spell each one by errors.camel_case (Pulumi's rule, which its schema
# analyzer applies at every depth); PYTHON_NAMES is the exact inverse. Errors are respelled with INPUT_NAMES
# (PrePullInputError.in_camel_case), so a reason's `resources.cpu_limit` reads `resources.cpuLimit` too.
INPUT_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(
        name for typ in (ImagePrePullerArgs, Toleration, StartupTaint, CustomTimeouts, ContainerResources) for name in typ.__annotations__
    )
)
PYTHON_NAMES: Mapping[str, str] = {camel_case(name): name for name in INPUT_NAMES}
