"""The project's one error type for user mistakes, and how scripts report it.

Bad input (a missing file, a malformed feature set, an unknown flag value) raises
:class:`InputError`; ``run_main`` turns it into one line on stderr and exit
status 2. Anything else is a bug and keeps its traceback.
"""

import argparse
import sys


class InputError(ValueError):
    """A user-facing problem with a file, a flag or a value.

    The message says what was expected, what was got, and what to do.
    """


EXIT_INPUT_ERROR = 2
EXIT_SYSTEM_ERROR = 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is an InputError: one line, not usage + error."""

    def error(self, message):
        raise InputError(f"{message} (see --help)")


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
