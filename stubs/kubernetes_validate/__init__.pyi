# Type stubs for kubernetes-validate 1.37 (no types of its own): only what components/prepull/cli.py uses.
from typing import Any

from kubernetes_validate.utils import SchemaNotFoundError as SchemaNotFoundError
from kubernetes_validate.utils import ValidationError as ValidationError

__version__: str

def validate(data: dict[str, Any], desired_version: str, strict: bool = False) -> str: ...
