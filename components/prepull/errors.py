"""The one error type every bad input raises."""


class PrePullInputError(ValueError):
    """A bad input, raised before any resource is registered.

    ``field`` is the input's path as the user wrote it (``images[2]``,
    ``tolerations[0].effect``) and ``value`` the offending value, so the
    message points at exactly what to fix.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {reason} (got {value!r})")
