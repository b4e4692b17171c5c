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
        text = " ".join(": ".join(parts).split("\n"))  # always one line
        return text.translate(_CONTROL)  # and no terminal control characters from a file's text


# C0 and C1 control characters (but the tab) written as escapes: a file's text cannot move the cursor
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)] if c != 0x09}


def did_you_mean(word: str, choices) -> str:
    """Return ' (did you mean X?)' for the closest choice, or ''."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
