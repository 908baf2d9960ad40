# Type stubs for kubernetes-validate 1.37: only what components/prepull/cli.py uses.
from collections import deque
from typing import Any

class SchemaNotFoundError(Exception): ...

class ValidationError(Exception):
    """A jsonschema.ValidationError (the attributes the check command reads)."""

    message: str
    validator: str
    instance: object
    schema: dict[str, Any] | bool
    absolute_path: deque[str | int]

def all_versions() -> list[str]: ...
