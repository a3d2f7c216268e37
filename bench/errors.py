"""User-facing errors: one line that names the file or option and the problem."""


class RtrbenchError(Exception):
    """An error caused by input or configuration; the CLI prints it as one line, no traceback."""


class DataError(RtrbenchError):
    """Missing, corrupt or inconsistent data on disk."""


class ConfigError(RtrbenchError):
    """An unknown or invalid option, preset or method."""


class NonFiniteLossError(RtrbenchError):
    """A loss term became NaN or infinite during training."""
