"""User-facing errors: one line, exit status 2, no traceback (the CLI catches them)."""

from __future__ import annotations

__all__ = ["OverloadError", "ParamError", "UserError"]


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line with exit status 2."""

    exit_status = 2


class ParamError(UserError):
    """A bad parameter, located by file, line, column and dotted key path when known."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.source = source
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"


class OverloadError(UserError):
    """A CPU's sections would overlap (ρ + Σρ_b ≥ 1, or a re-entry probability ≥ 1): the model does not apply."""
