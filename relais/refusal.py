"""One shape for "this input breaks a rule": the core raises it, the view shows the message.

``reason`` is a key into the raising module's table of messages (marked with ``N_`` and
translated where they are shown); ``variables`` fill in its placeholders. Each area subclasses
it, so a view catches exactly the refusals of the core it calls.
"""

from __future__ import annotations


class Size(int):
    """A number of bytes among a refusal's variables: shown in the units of the person's language."""


class Refused(ValueError):
    def __init__(self, reason: str, **variables):
        super().__init__(reason)
        self.reason = reason
        self.variables = variables
