"""The project's one error type for user mistakes, and how scripts report it.

Bad input (a missing file, a malformed feature set, an unknown flag value) raises
:class:`InputError`; ``run_main`` turns it into one line on stderr and exit
status 2. Anything else is a bug and keeps its traceback.
"""

import argparse
import stat
import sys
from pathlib import Path


class InputError(ValueError):
    """A user-facing problem with a file, a flag or a value.

    The message says what was expected, what was got, and what to do.
    """


def file_kind(path):
    """What ``path`` is, for messages: "a folder", "a FIFO (named pipe)", ...; None for a
    regular file (symlinks followed) and "missing" for nothing there.

    A FIFO or a device opened as a file can block for ever or never end, so callers
    read regular files only and say what they got instead.
    """
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as error:  # a loop of symlinks, a path through a file, no permission
        return f"unreadable ({error.strerror or error})"
    return describe_mode(mode)


def describe_mode(mode):
    """None for a regular file's ``st_mode``, else what it is ("a folder", "a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return None
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


EXIT_INPUT_ERROR = 2
EXIT_SYSTEM_ERROR = 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is an InputError: one line, not usage + error."""

    def error(self, message):
        raise InputError(f"{message} (see --help)")

    def parse_given(self, argv: list[str] | None) -> dict:
        """{dest: value} of the flags on the command line only, without the parser's defaults.

        A flag's default is not a setting the user chose, so it must not win over a preset,
        a recipe or a saved config: only what is given here is laid on top of those.
        """
        unset = object()
        namespace = argparse.Namespace(**{dest: unset for dest in vars(self.parse_args([]))})
        return {dest: value for dest, value in vars(self.parse_args(argv, namespace)).items() if value is not unset}


def run_main(main, argv=None):
    """Call ``main(argv)`` and exit with its status; one line for InputError.

    A failing file system (disk full, no permission) also gets one line, naming
    the file, and exit status 1. ``--debug`` anywhere in argv keeps the traceback.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        status = main(args)
    except InputError as error:
        if debug:
            raise
        prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "serattn"
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)
    except OSError as error:
        if debug:
            raise
        prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "serattn"
        where = f"'{error.filename}': " if error.filename else ""
        print(f"{prog}: error: cannot read or write {where}{error.strerror or error}", file=sys.stderr)
        sys.exit(EXIT_SYSTEM_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
