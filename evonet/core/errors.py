"""Errors that evonet reports to users as one line and exit code 2."""


class EvonetError(Exception):
    """Base class of the errors evonet reports as a one-line message."""

    exit_code = 2


class ConfigError(EvonetError):
    """An experiment config, an override or a CLI argument is invalid."""


class DependencyNotInstalled(EvonetError):
    """An optional heavy dependency is missing."""


class RunFailed(EvonetError):
    """Work that was started did not finish (what did finish is kept); exit code 1."""

    exit_code = 1
