"""What a share's recipient downloads, on top of the link core: the download limit, what counts
as a download, the owner's receipt and "delete after download".

A download counts when the bytes one link session received since its previous download cover
the whole file, in one response or in several ranged ones (a resumed download, a download
manager's parallel segments); a zip counts as a download of each file it contained once it was
sent whole (a zip cut off closes its members' responses, counting nothing). A partial response,
such as a 28-byte Range probe, never counts as a download.
"""

from __future__ import annotations

import enum
from datetime import timedelta

from relais import audit, clock, emails, shares
from relais.db import Database
from relais.links import core

KIND = shares.KIND
# How long a download cut off keeps its place in the limit, so its browser can resume it.
RESUME_GRACE = timedelta(minutes=15)


class Admission(enum.Enum):
    ADMITTED = "admitted"
    LIMIT = "limit"  # the limit's downloads are all used up
    BUSY = "busy"  # the places left are held by downloads in progress in other browsers


def _last_download(db, share_id: str, file_id: str, session: str) -> int:
    """The id of this session's last complete download of the file (0: none)."""
    rows = list(db.query(
        "SELECT max(id) AS id FROM link_events WHERE kind = ? AND object_id = ? AND file_id = ? AND session = ?"
        " AND event = 'download'", [KIND.name, share_id, file_id, session]))
    return rows[0]["id"] or 0


def _completed(db, share_id: str, file_id: str) -> int:
    rows = list(db.query(
        "SELECT count(*) AS n FROM link_events WHERE kind = ? AND object_id = ? AND file_id = ? AND event = 'download'",
        [KIND.name, share_id, file_id]))
    return rows[0]["n"]


def _holders(db, share_id: str, file_id: str) -> set[str]:
    """The link sessions holding a place in the file's limit: they began a download of it
    (download_start) that has not completed since (download), their link session has not ended,
    and one of their responses is still being sent (a download_response without its
    download_part) or the last one ended less than RESUME_GRACE ago. A response cut by a crash
    never writes its part: its place lasts until the link session ends (2 hours)."""
    live = {row["token_hash"] for row in db.query(
        "SELECT token_hash FROM link_sessions WHERE kind = ? AND object_id = ? AND expires_at > ?",
        [KIND.name, share_id, clock.now_iso()])}
    places: dict[str, dict] = {}
    for row in db.query(
            "SELECT session, event, at FROM link_events WHERE kind = ? AND object_id = ? AND file_id = ?"
            " AND event IN ('download_start', 'download_response', 'download_part', 'download') ORDER BY id",
            [KIND.name, share_id, file_id]):
        place = places.setdefault(row["session"], {"held": False, "sending": 0, "last": ""})
        if row["event"] == "download_start":
            place["held"] = True
        elif row["event"] == "download":
            place["held"] = False
        elif row["event"] == "download_response":
            place["sending"] += 1
        else:
            place["sending"] = max(0, place["sending"] - 1)
        place["last"] = row["at"]
    recent = clock.iso(clock.now() - RESUME_GRACE)
    return {session for session, place in places.items()
            if place["held"] and session in live and (place["sending"] or place["last"] > recent)}


def files_left(database: Database, share: shares.Share, listed) -> dict[str, bool]:
    """For the page: which files can still be downloaded? (``start_download`` decides.)"""
    return {f.id: share.download_limit is None or _completed(database, share.id, f.id) < share.download_limit
            for f in listed}


def start_download(database: Database, who: audit.Who, share: shares.Share, stored, session: str) -> Admission:
    """Before the first byte of a response: may this browser have (this part of) this file now?

    The limit counts complete downloads, not responses: a Range probe uses up nothing. But
    counting only at the end would let parallel requests all start while one download is left
    and all complete. So a browser that begins a download takes one of the limit's places, and
    keeps it while it downloads (its further responses: ranges, a resumption, parallel segments
    take no other place) and for RESUME_GRACE after a response is cut, until the download
    completes. A new download needs a free place: completed downloads plus places held by other
    browsers below the limit. Admission runs in the single writer's transaction, one request at
    a time, so two requests can never both take the last free place. A probe that is not
    followed by the download costs a place for RESUME_GRACE at most.
    """

    def admit(db):
        holders = _holders(db, share.id, stored.id)
        if session not in holders and share.download_limit is not None:
            completed = _completed(db, share.id, stored.id)
            if completed >= share.download_limit:
                return Admission.LIMIT
            if completed + len(holders) >= share.download_limit:
                return Admission.BUSY
        if session not in holders:
            core.event(db, who, KIND, share.id, "download_start", stored.id, session=session, detail=stored.name,
                       name=stored.name)
        # Only a link event (no audit row, not in the activity): marks a response being sent.
        core.event(db, who, KIND, share.id, "download_response", stored.id, session=session, detail=stored.name)
        return Admission.ADMITTED

    return database.write(admit)


def record_download(database: Database, who: audit.Who, share: shares.Share, sent: list[tuple], session: str,
                    config) -> None:
    """After a response ended (finished or cut off): note what was sent to whom, as (file, first
    byte, bytes sent). A file counts as downloaded when the bytes this link session received since
    its previous download cover all of it; then the owner's receipt, and "delete after download"."""

    def record(db):
        for stored, start, count in sent:
            core.event(db, who, KIND, share.id, "download_part", stored.id, session=session, detail=stored.name,
                       start=start, count=count)
            since = _last_download(db, share.id, stored.id, session)
            if core.parts_cover(db, KIND, share.id, stored.id, session, since, stored.size):
                core.event(db, who, KIND, share.id, "download", stored.id, session=session, detail=stored.name,
                           name=stored.name)
            else:
                audit.record(db, who, "share.download_partial", share.id, file=stored.id, start=start, bytes=count)
        missing = db.execute(
            "SELECT count(*) FROM share_files WHERE share_id = ? AND file_id NOT IN"
            " (SELECT file_id FROM link_events WHERE kind = ? AND object_id = ? AND event = 'download')",
            [share.id, KIND.name, share.id],
        ).fetchone()[0]
        if missing:
            return False
        if db.execute("UPDATE shares SET downloaded_at = ? WHERE id = ? AND downloaded_at IS NULL",
                      [clock.now_iso(), share.id]).rowcount == 1:
            _receipt(db, share, who, config.base_url)
        return True

    everything = database.write(record)
    if everything and share.delete_after_download and core.still_open(database, KIND, share.id):
        shares.delete(database, config, audit.SYSTEM, share, action="share.delete_after_download")


def record_cut_off(database: Database, who: audit.Who, share: shares.Share, zipped: list, session: str) -> None:
    """After a zip that was not sent whole: close each member's response (a part of 0 bytes, as
    nothing of a zip counts before it is whole), so its place in the limit lasts RESUME_GRACE, as
    a cut single download's does, not until the link session ends."""

    def record(db):
        for stored in zipped:
            core.event(db, who, KIND, share.id, "download_part", stored.id, session=session, detail=stored.name)
            audit.record(db, who, "share.download_partial", share.id, file=stored.id, start=0, bytes=0)

    database.write(record)


def _receipt(db, share: shares.Share, who: audit.Who, base_url: str) -> None:
    from relais import mail

    owner = db.execute("SELECT email, language FROM users WHERE id = ?", [share.owner_id]).fetchone()
    recipients = ", ".join(KIND.recipients(db, share.id))
    names = [r[0] for r in db.execute(
        "SELECT name FROM files JOIN share_files ON file_id = id WHERE share_id = ? ORDER BY name", [share.id])]
    subject, text, html = emails.render("receipt", owner[1], recipients=recipients, at=clock.now_iso(), ip=who.ip,
                                        files=names, link=f"{base_url}/shares/{share.id}")
    mail.queue(db, audit.SYSTEM, to=owner[0], subject=subject, text=text, html=html, kind="receipt",
               object=share.id, language=owner[1])
