"""Logging without secrets: link tokens live in URL paths, and paths reach the logs.

A scanner that follows the share e-mail and the password e-mail would otherwise leave both
tokens in the access log, and whoever reads the log could open the files.
"""

from __future__ import annotations

import logging
import re

# /s/<token>..., /p/<token>, /login/link/<token>, /tus/<upload id>
_TOKEN_PATHS = re.compile(r"(/(?:s|p|login/link|tus)/)[^/?#\s]+")


def redact(path: str) -> str:
    return _TOKEN_PATHS.sub(r"\1…", path)


class RedactTokens(logging.Filter):
    """For uvicorn's access log, whose record args are (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True
