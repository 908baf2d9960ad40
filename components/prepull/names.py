"""Kubernetes naming rules (apimachinery validation), checked before anything is sent."""

import re
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_UP, Context, Decimal, InvalidOperation, localcontext
from typing import Optional

from .errors import PrePullInputError

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Go's time.ParseDuration, which Pulumi uses for custom timeouts.
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
# resource.Quantity without a sign: a decimal number, then a decimal SI or binary suffix or a decimal exponent.
# "1E" is one exa, "1E3" a thousand: the regex tries the suffix first and backtracks to the exponent.
_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(\.[0-9]+)?|\.[0-9]+)"
    r"(?:(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]+))?$"
)

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253


def check_dns_label(value: object, field: str, max_len: int = DNS1123_LABEL_MAX) -> str:
    """A DNS-1123 label (container names, namespaces, label-valued names)."""
    if not isinstance(value, str) or not _DNS1123_LABEL.match(value):
        raise PrePullInputError(
            field, value, "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending alphanumeric"
        )
    if len(value) > max_len:
        raise PrePullInputError(field, value, f"must be at most {max_len} characters (is {len(value)})")
    return value


def check_dns_subdomain(value: object, field: str) -> str:
    """A DNS-1123 subdomain (Secret and PriorityClass names)."""
    if not isinstance(value, str) or not _DNS1123_SUBDOMAIN.match(value) or len(value) > DNS1123_SUBDOMAIN_MAX:
        raise PrePullInputError(field, value, "must be a DNS-1123 subdomain of at most 253 characters")
    return value


def check_qualified_name(value: object, field: str) -> str:
    """A label/annotation/taint key: optional DNS-subdomain prefix + '/' + name of at most 63 chars."""
    if not isinstance(value, str) or not value:
        raise PrePullInputError(field, value, "must be a non-empty string")
    prefix, sep, name = value.rpartition("/")
    if sep and (not prefix or len(prefix) > DNS1123_SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.match(prefix)):
        raise PrePullInputError(field, value, "the prefix before '/' must be a DNS-1123 subdomain")
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        raise PrePullInputError(
            field, value, "the name part must be at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        )
    return value


def check_label_value(value: object, field: str) -> str:
    """A label (or taint) value: at most 63 chars, may be empty."""
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
        raise PrePullInputError(
            field, value, "must be at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        )
    return value


def check_duration(value: object, field: str) -> str:
    """A Go duration string such as ``30m`` or ``1h30m``."""
    if not isinstance(value, str) or not _GO_DURATION.match(value):
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
    match = _QUANTITY.match(value)
    if not match:
        return None
    number, suffix = match["number"], match["suffix"] or ""
    with localcontext(_WIDE):
        try:
            if suffix in _BINARY_SI:
                amount = min(Decimal(number) * 2 ** _BINARY_SI[suffix], _MAX_BINARY)
            else:
                amount = Decimal(f"{number}e{match['exponent'] or _DECIMAL_SI[suffix]}")
        except InvalidOperation:  # an exponent beyond what a Decimal holds (about 18 digits)
            return None
        if 0 < amount < _NANO:
            return _NANO
        # From 1n up, the rounded coefficient has at most one digit more than the input: exact and cheap.
        return amount.quantize(_NANO, rounding=ROUND_UP) if amount.as_tuple().exponent < -9 else amount


def quantity_value(value: str) -> Decimal:
    """The exact amount of a quantity already checked by :func:`check_quantity` (for comparisons)."""
    amount = _parse_quantity(value)
    if amount is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return amount


def container_name(prefix: str, repository_path: str, short_hash: str) -> str:
    """``<prefix>-<last path element>-<hash8>``: readable, unique, stable, ≤ 63 chars.

    The hash (of the canonical reference) makes the name unique and stable for
    a given image; the readable part is trimmed to fit the 63-char limit.
    """
    readable = re.sub(r"[^a-z0-9-]+", "-", repository_path.rsplit("/", 1)[-1].lower()).strip("-") or "image"
    room = DNS1123_LABEL_MAX - len(prefix) - len(short_hash) - 2
    readable = readable[:room].rstrip("-") or "image"
    return f"{prefix}-{readable}-{short_hash}"
