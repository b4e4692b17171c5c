"""The one exception type for errors a user can cause and fix."""

from __future__ import annotations


class MedtuneError(Exception):
    """A user-facing error; the CLI prints it on one line and exits with `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        """Format as `path:line: field: message` (the parts that are known)."""
        parts = []
        if self.path is not None:
            parts.append(f"{self.path}:{self.line}" if self.line is not None else str(self.path))
        if self.field is not None:
            parts.append(self.field)
        parts.append(self.message)
        text = ": ".join(parts)
        return " ".join(text.split("\n"))  # always one line


def did_you_mean(word: str, choices) -> str:
    """Return ' (did you mean X?)' for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
