"""Links a guest opens without an account: one core for every kind of link.

A kind of link ('share' now, 'request' next) is a :class:`Kind`: its name and the table of its
objects. Everything else is the same for every kind and lives here, keyed by (kind, object id):
finding an open link by its token, unlocking it with the password (throttled per link and per
address; the link locks after repeated failures and its owner is told), accepting the terms,
link sessions, the events staff see, and one-time password links. What a kind does once unlocked
sits on top: :mod:`relais.links.downloads` for a share's downloads.
"""

from relais.links.core import (
    LINK_SESSION, LINK_SESSION_LONGEST, Kind, Unlock, UnlockResult, covered, current_terms, ended, event, events,
    extended_expiry, find_open, find_open_async, forget, keep_alive, load, parts_cover, session_after_close,
    session_object, still_open, unlock,
)
from relais.links.password_links import create_password_link, password_link_valid, reveal_password

__all__ = [
    "LINK_SESSION", "LINK_SESSION_LONGEST", "Kind", "Unlock", "UnlockResult", "covered", "create_password_link",
    "current_terms", "ended", "event", "events", "extended_expiry", "find_open", "find_open_async", "forget", "keep_alive",
    "load", "parts_cover", "password_link_valid", "reveal_password", "session_after_close", "session_object",
    "still_open", "unlock",
]
