"""brushpy's error types: the one path by which a failure reaches a user.

Every loader and option check raises a subclass of :class:`InputError` naming
the file or option and what to change; failures while running (the GPU, a
diverged run, a full disk) raise :class:`RunError`. The ``brushpy`` command
prints either as one line, ``Error: <message>``, and exits with the class's
``exit_code`` (2 for bad input, 1 for a failed run); ``brushpy --debug`` shows
the traceback instead. Anything else that escapes is a bug in brushpy: it is
reported the same way, asking for ``--debug`` and a bug report.

The existing specific errors keep their names and their builtin base classes
(:class:`InputError` is a :class:`ValueError`, :class:`RunError` a
:class:`RuntimeError`), so ``except ValueError`` code keeps working.
"""

from __future__ import annotations

__all__ = ["BrushpyError", "InputError", "OptionError", "RunError", "EXIT_INPUT", "EXIT_RUN"]

#: Exit code of a run stopped by bad input (a file or an option), as click's usage errors.
EXIT_INPUT = 2
#: Exit code of a run that failed while running.
EXIT_RUN = 1


class BrushpyError(Exception):
    """Base of brushpy's own errors; ``exit_code`` is what the command line exits with."""

    exit_code = EXIT_RUN


class InputError(BrushpyError, ValueError):
    """Bad input: a file that cannot be used or an option out of range (the message names it)."""

    exit_code = EXIT_INPUT


class OptionError(InputError):
    """An option value out of range or unreadable (the message names the flag, and ``args.txt``
    when the value came from there)."""


class RunError(BrushpyError, RuntimeError):
    """A run that cannot go on (GPU failure, divergence, a full disk); the message says what to change."""

    exit_code = EXIT_RUN
