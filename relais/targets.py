"""Where an upload goes: its target, which also says who may resume it and what it accepts.

An upload belongs to a target, never to the session that started it. The kinds: a staff member's
My files (``files``, id: the account's id) and a request's upload link (``request``, id: the
request's; a guest holding a link session for it), and a partner's space: ``space_in`` for what the
partner sends, ``space_out`` for what staff place for them (id: the partner's account id).
Whoever the views can speak for the same target (any session of that account, any link session
of that request) may see, resume or end the upload for its 24 hours; for anyone else it does not
exist.

A kind says, for its uploads: the account the stored file belongs to, the size limit and the
checks made before a byte is stored (name, accepted types, size, count), and where the finished
file goes, inside the transaction that completes it. Adding a kind is adding a class to KINDS:
the upload engine (:mod:`relais.uploads`) does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from relais import files, requests, spaces
from relais.db import Database


@dataclass(frozen=True)
class Target:
    kind: str  # a key of KINDS
    id: str  # the object of that kind: an account's id for "files"

    @classmethod
    def my_files(cls, user_id: int) -> Target:
        return cls("files", str(user_id))

    @classmethod
    def request(cls, request_id: str) -> Target:
        return cls("request", request_id)

    @classmethod
    def space_in(cls, partner_id: int) -> Target:
        """The partner's own uploads into their space."""
        return cls("space_in", str(partner_id))

    @classmethod
    def space_out(cls, partner_id: int, staff_id: int) -> Target:
        """A staff member's uploads into a partner's space."""
        return cls("space_out", f"{partner_id}:{staff_id}")


class Kind(Protocol):
    def owner_id(self, database: Database, target: Target) -> int:
        """The account the stored file belongs to (``files.owner_id``)."""

    def max_size(self, database: Database, target: Target) -> int:
        """The largest file this target takes, in bytes (tus ``Tus-Max-Size``)."""

    def check_new(self, database: Database, target: Target, raw_name: str, length: int | None) -> tuple[str, str]:
        """(name, media type) of a file this target accepts; raises files.FileRefused otherwise.
        ``length`` is None for a plain-form upload, whose size is known only once it has arrived
        (it is held to max_size as it streams in)."""

    def deliver(self, db, target: Target, file_id: str) -> None:
        """Put the finished file where it goes; runs inside the transaction that completes it."""


class MyFiles:
    """A staff member's own files: the limits and types of the settings, and the file stays theirs."""

    def owner_id(self, database: Database, target: Target) -> int:
        return int(target.id)

    def max_size(self, database: Database, target: Target) -> int:
        return files.limits(database)[0]

    def check_new(self, database: Database, target: Target, raw_name: str, length: int | None) -> tuple[str, str]:
        return files.check_new(database, int(target.id), raw_name, length)

    def deliver(self, db, target: Target, file_id: str) -> None:
        pass  # a complete file of its owner is in their My files already


class RequestFiles:
    """A request's upload link (id: the request's): its own types, sizes and count, and the file
    waits for the guest's Transmit (:mod:`relais.requests`). Every check is made again when the
    upload completes: the link may have closed meanwhile."""

    def _request(self, database: Database, target: Target):
        found = requests.get(database, target.id)
        if found is None:
            raise files.FileRefused("request_closed")
        return found

    def owner_id(self, database: Database, target: Target) -> int:
        return self._request(database, target).owner_id

    def max_size(self, database: Database, target: Target) -> int:
        return self._request(database, target).max_file_size

    def check_new(self, database: Database, target: Target, raw_name: str, length: int | None) -> tuple[str, str]:
        return requests.check_new(database, self._request(database, target), raw_name, length)

    def deliver(self, db, target: Target, file_id: str) -> None:
        requests.deliver(db, target.id, file_id)


class SpaceFiles:
    """One way into a partner's space: the limits and types of the settings, counted over the
    partner's account, and the file joins the space with its date. The id is the partner's account
    id for ``space_in`` (the partner sends); for ``space_out`` it is "<partner id>:<staff id>": a
    staff member's upload into a space is theirs to resume, as their My files uploads are, and the
    space records who placed the file."""

    def __init__(self, direction: str):
        self.direction = direction

    @staticmethod
    def _ids(target: Target) -> tuple[int, int]:
        """(the partner's id, who places the file)."""
        partner, _, placer = target.id.partition(":")
        return int(partner), int(placer or partner)

    def owner_id(self, database: Database, target: Target) -> int:
        return self._ids(target)[0]

    def max_size(self, database: Database, target: Target) -> int:
        return files.limits(database)[0]

    def check_new(self, database: Database, target: Target, raw_name: str, length: int | None) -> tuple[str, str]:
        return files.check_new(database, self._ids(target)[0], raw_name, length)

    def deliver(self, db, target: Target, file_id: str) -> None:
        partner_id, placed_by = self._ids(target)
        spaces.deliver(db, partner_id, self.direction, placed_by, file_id)


KINDS: dict[str, Kind] = {"files": MyFiles(), "request": RequestFiles(),
                          "space_in": SpaceFiles(spaces.FROM_PARTNER), "space_out": SpaceFiles(spaces.TO_PARTNER)}


def kind(target: Target) -> Kind:
    return KINDS[target.kind]
