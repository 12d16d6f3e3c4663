"""The run folder: :class:`~serattn.runs.folder.RunFolder` writes it (file names, format
version, life cycle), :func:`~serattn.runs.reading.open_run` reads it back checked."""

from serattn.runs.folder import RunFolder  # noqa: F401
from serattn.runs.reading import open_run  # noqa: F401
