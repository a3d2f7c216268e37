"""User-facing errors: one line that names the file or option and the problem."""

from pydantic import ValidationError


class RtrbenchError(Exception):
    """An error caused by input or configuration; the CLI prints it as one line, no traceback."""


class DataError(RtrbenchError):
    """Missing, corrupt or inconsistent data on disk."""


class ConfigError(RtrbenchError):
    """An unknown or invalid option, preset or method."""


class NonFiniteLossError(RtrbenchError):
    """A loss term became NaN or infinite during training."""


def one_line(exc: BaseException | str, limit: int | None = None) -> str:
    """An error's text on one line: whitespace collapsed, pydantic's validation errors as
    `field: message; ...`, cut to `limit` characters when given."""
    if isinstance(exc, ValidationError):
        text = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors())
    else:
        text = " ".join(str(exc).split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
