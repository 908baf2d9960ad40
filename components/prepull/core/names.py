"""Kubernetes naming rules (apimachinery validation), checked before anything is sent."""

import re

from prepull.errors import PrePullInputError

# Matched with fullmatch: a `$` anchor would also accept a trailing newline, which the API server rejects.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253


def check_dns_label(value: object, field: str, max_len: int = DNS1123_LABEL_MAX) -> str:
    """A DNS-1123 label (container names, namespaces, label-valued names)."""
    if not isinstance(value, str) or not _DNS1123_LABEL.fullmatch(value):
        raise PrePullInputError(
            field, value, "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending alphanumeric"
        )
    if len(value) > max_len:
        raise PrePullInputError(field, value, f"must be at most {max_len} characters (is {len(value)})")
    return value


def check_dns_subdomain(value: object, field: str) -> str:
    """A DNS-1123 subdomain (Secret and PriorityClass names)."""
    if not isinstance(value, str) or not _DNS1123_SUBDOMAIN.fullmatch(value) or len(value) > DNS1123_SUBDOMAIN_MAX:
        raise PrePullInputError(field, value, "must be a DNS-1123 subdomain of at most 253 characters")
    return value


def check_qualified_name(value: object, field: str) -> str:
    """A label/annotation/taint key: optional DNS-subdomain prefix + '/' + name of at most 63 chars."""
    if not isinstance(value, str) or not value:
        raise PrePullInputError(field, value, "must be a non-empty string")
    prefix, sep, name = value.rpartition("/")
    if sep and (not prefix or len(prefix) > DNS1123_SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        raise PrePullInputError(field, value, "the prefix before '/' must be a DNS-1123 subdomain")
    if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        raise PrePullInputError(
            field, value, "the name part must be at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        )
    return value


def check_label_value(value: object, field: str) -> str:
    """A label (or taint) value: at most 63 chars, may be empty."""
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise PrePullInputError(
            field, value, "must be at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
        )
    return value


def container_name(prefix: str, repository_path: str, short_hash: str) -> str:
    """``<prefix>-<last path element>-<hash8>``: readable, unique, stable, ≤ 63 chars.

    The hash (of the canonical reference) makes the name unique and stable for
    a given image; the readable part is trimmed to fit the 63-char limit.
    """
    readable = re.sub(r"[^a-z0-9-]+", "-", repository_path.rsplit("/", 1)[-1].lower()).strip("-") or "image"
    room = DNS1123_LABEL_MAX - len(prefix) - len(short_hash) - 2
    readable = readable[:room].rstrip("-") or "image"
    return f"{prefix}-{readable}-{short_hash}"
