"""Kubernetes naming rules (apimachinery validation), checked before anything is sent."""

import re

from .errors import PrePullInputError

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Go's time.ParseDuration, which Pulumi uses for custom timeouts.
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
# resource.Quantity (decimal SI and binary suffixes; no exponent forms).
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")

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
    """A Kubernetes resource quantity such as ``10m`` or ``16Mi``."""
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise PrePullInputError(field, value, "must be a Kubernetes quantity such as '10m', '0.5' or '16Mi'")
    return value


_SUFFIX = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity_value(value: str) -> float:
    """The numeric value of a quantity already checked by :func:`check_quantity` (for comparisons)."""
    number, suffix = _QUANTITY.match(value).group(1), value[len(_QUANTITY.match(value).group(1)):]
    return float(number) * _SUFFIX[suffix]


def container_name(prefix: str, repository_path: str, short_hash: str) -> str:
    """``<prefix>-<last path element>-<hash8>``: readable, unique, stable, ≤ 63 chars.

    The hash (of the canonical reference) makes the name unique and stable for
    a given image; the readable part is trimmed to fit the 63-char limit.
    """
    readable = re.sub(r"[^a-z0-9-]+", "-", repository_path.rsplit("/", 1)[-1].lower()).strip("-") or "image"
    room = DNS1123_LABEL_MAX - len(prefix) - len(short_hash) - 2
    readable = readable[:room].rstrip("-") or "image"
    return f"{prefix}-{readable}-{short_hash}"
