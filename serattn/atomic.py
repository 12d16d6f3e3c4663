"""Files appear whole or not at all: write to a temporary sibling, then rename.

Every writer of the package (feature sets, run folders, figures, tables, the
extraction cache) goes through :func:`write_atomically`, so an interrupted command
never leaves a half-written file under the name a reader looks for.
"""

import os
import shutil
import tempfile
from pathlib import Path


def atomic_path(path):
    """A temporary sibling of ``path``; rename it onto ``path`` when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    # mkstemp makes the file private (0600); give it the permissions of any new file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def write_atomically(path, write):
    """Call ``write(temporary_path)``, then move the result onto ``path``.

    The temporary file is removed if ``write`` fails, so nothing is left behind.
    """
    temporary = atomic_path(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically_named(path, write):
    """:func:`write_atomically` for writers that insist on the file's own name or extension (Keras' ``.keras``).

    ``write`` gets ``path``'s name inside a temporary sibling folder (``.NAME.*.tmp``, the
    pattern of every atomic write's leftovers); the file is moved onto ``path`` when
    complete, and the folder is removed either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        temporary = folder / path.name
        write(temporary)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
