"""User-facing errors: anything raised as one of these is printed by the CLI as one
line (no traceback), because it describes a mistake the user can fix."""


class RnnbenchError(Exception):
    """Base class for errors that carry a complete, actionable message."""


class SpecError(RnnbenchError, ValueError):
    """A spec field, preset or override is invalid."""


class DataError(RnnbenchError):
    """A data file is missing, corrupt or unreadable."""


class BackendUnavailable(RnnbenchError):
    """A backend's framework is not installed or cannot be imported."""


class DeviceUnavailable(RnnbenchError):
    """The requested device does not exist on this machine."""


class ResultsUnwritable(RnnbenchError):
    """The results folder or file cannot be created or written (checked before training)."""


class RunInterrupted(RnnbenchError):
    """Ctrl-C or SIGTERM before training started, so there was nothing to record.
    `exit_code` is the shell's code for an interrupted command (128 + SIGINT)."""

    exit_code = 130
