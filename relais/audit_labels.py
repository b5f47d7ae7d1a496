"""The audit trail as people read it: a label for every action, actors by name, details as
"key: value".

The trail itself stores codes (``mail.sent``, ``{"reason": "wrong_password"}``) so that queries
and exports do not depend on the language; the admin's page shows them through these tables, in
the admin's language. Every action the code records must have a label here (a test scans the
code for them); an unknown one (from an older version) shows as its code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from relais import i18n, paging
from relais.db import Database
from relais.i18n import N_

ACTIONS = {
    "login.success": N_("Logged in"),
    "login.failure": N_("Login failed"),
    "login.refused": N_("Login refused"),
    "login.lockout": N_("Logins locked after failures"),
    "login.link": N_("Logged in with a one-time link"),
    "login.code_asked": N_("Password right, second-factor code asked"),
    "logout": N_("Logged out"),
    "session.expired": N_("Session ended"),
    "user.create": N_("Account created"),
    "user.activate": N_("Account activated"),
    "user.deactivate": N_("Account deactivated"),
    "user.password_change": N_("Password changed"),
    "user.other_sessions_ended": N_("Other sessions ended by the password change"),
    "user.language": N_("Language changed"),
    "user.login_link": N_("One-time login link made"),
    "user.login_link_used": N_("One-time login link used"),
    "user.login_link_refused": N_("Unknown or used one-time login link"),
    "user.role_change": N_("Role changed"),
    "two_factor.enrol": N_("Two-factor login being set up (key shown)"),
    "two_factor.confirm": N_("Two-factor login turned on"),
    "two_factor.code_accepted": N_("Second-factor code accepted"),
    "two_factor.code_refused": N_("Second-factor code refused"),
    "two_factor.replay_refused": N_("Second-factor code refused: already used"),
    "two_factor.recovery_used": N_("Recovery code used"),
    "two_factor.recovery_codes": N_("New recovery codes made"),
    "two_factor.reset": N_("Second factor reset by an admin"),
    "two_factor.disable": N_("Two-factor login turned off"),
    "setting.change": N_("Setting changed"),
    "terms.publish": N_("Terms of use published"),
    "audit.export": N_("Audit trail exported"),
    "audit.seal": N_("Audit rows from before the key accepted"),
    "upload.start": N_("Upload started"),
    "upload.terminate": N_("Upload cancelled"),
    "upload.expire": N_("Unfinished upload expired"),
    "upload.refused": N_("Upload refused, nothing kept"),
    "file.upload": N_("File uploaded"),
    "file.download": N_("File downloaded"),
    "file.download_zip": N_("Files downloaded as a zip"),
    "file.delete": N_("File deleted"),
    "mail.queued": N_("E-mail queued"),
    "mail.sent": N_("E-mail sent"),
    "mail.deferred": N_("E-mail delayed, will be retried"),
    "mail.retry": N_("E-mail retried now by an admin"),
    "mail.retry_all": N_("Every failed e-mail retried now by an admin"),
    "share.create": N_("Share created"),
    "share.password_shown": N_("Share password shown to its owner"),
    "share.password_link_create": N_("One-time password link made for a share"),
    "share.password_link_opened": N_("Share password shown through the one-time link"),
    "share.password_link_refused": N_("Unknown or used password link"),
    "share.access": N_("Opened with the password"),
    "share.access_refused": N_("Wrong password"),
    "share.locked": N_("Locked after wrong passwords"),
    "share.download_start": N_("Download started"),
    "share.download": N_("Downloaded completely"),
    "share.download_partial": N_("Part of a file downloaded"),
    "share.extend": N_("Link extended"),
    "share.revoke": N_("Link revoked"),
    "share.delete": N_("Share's files deleted"),
    "share.delete_after_download": N_("Files deleted after the download"),
    "share.purge": N_("Share's files deleted (expired, revoked or locked)"),
    "request.create": N_("Request created"),
    "request.password_shown": N_("Request password shown to its owner"),
    "request.password_link_create": N_("One-time password link made for a request"),
    "request.password_link_opened": N_("Request password shown through the one-time link"),
    "request.access": N_("Upload link opened with the password"),
    "request.access_refused": N_("Wrong password on an upload link"),
    "request.locked": N_("Upload link locked after wrong passwords"),
    "request.file_remove": N_("File removed by the sender before transmitting"),
    "request.transmit": N_("Files transmitted"),
    "request.download": N_("Received file downloaded"),
    "request.retrieved": N_("Every file of a submission retrieved"),
    "request.reminder": N_("Reminder sent before the retrieval deadline"),
    "request.revoke": N_("Upload link revoked"),
    "request.extend": N_("Upload link extended"),
    "request.delete": N_("Request and its files deleted"),
    "request.purge": N_("Request's files deleted by retention"),
    "institution.create": N_("Institution added"),
    "institution.rename": N_("Institution renamed"),
    "partner.create": N_("Partner account created"),
    "partner.update": N_("Partner's details changed"),
    "partner.link": N_("Partner's activation link made"),
    "partner.access_renewed": N_("Partner's access renewed by a new password"),
    "partner.reminder": N_("Partner reminded before their access ends"),
    "partner.sessions_ended": N_("Every session of the partner ended"),
    "partner.refused": N_("Partner refused a staff page"),
    "password.forgot": N_("Forgotten password: link asked for"),
    "key_epoch.rekey": N_("File keys re-wrapped by today's key"),
    "key_epoch.destroy": N_("Day key destroyed: its deleted files are gone from the backups too"),
    "file.restore_left_out": N_("File left out by a restore"),
    "space.placed": N_("File placed in a partner's space"),
    "space.sent": N_("File sent by a partner to their space"),
    "space.retrieved": N_("File in a partner's space retrieved by the other side"),
    "space.delete": N_("File deleted from a partner's space"),
    "space.purge": N_("File in a partner's space deleted by retention"),
    "space.refused": N_("Partner refused another space's file"),
    "storage.low": N_("Free space below the warning threshold: admins warned"),
    "storage.recovered": N_("Free space back above the warning threshold"),
    "storage.unmailed": N_("Free-space warning not e-mailed to this admin: their address cannot be used"),
}

# Detail keys, as recorded by audit.record(..., **detail).
KEYS = {
    "admins": N_("Admins e-mailed"),
    "beyond_limit": N_("Beyond the usual limit"),
    "by": N_("Placed by (account number)"),
    "direction": N_("Way"),
    "bytes": N_("Bytes"),
    "contact": N_("Contact person"),
    "delivery": N_("Delivered"),
    "fields": N_("Changed"),
    "institution": N_("Institution"),
    "method": N_("Method"),
    "outcome": N_("Outcome"),
    "count": N_("Number of files"),
    "codes": N_("Recovery codes"),
    "delete_after_download": N_("Delete after download"),
    "during": N_("During"),
    "download_limit": N_("Download limit per file"),
    "due": N_("Due"),
    "end": N_("To byte"),
    "error": N_("Error"),
    "expires_at": N_("Valid until"),
    "expires_days": N_("Valid for (days)"),
    "failures": N_("Wrong passwords"),
    "free": N_("Free space"),
    "file": N_("File"),
    "first": N_("First complete download"),
    "from_role": N_("Role before"),
    "files": N_("Files"),
    "filters": N_("Search"),
    "hash": N_("Hash"),
    "kind": N_("E-mail"),
    "mails": N_("E-mails"),
    "language": N_("Language"),
    "left": N_("Recovery codes left"),
    "languages": N_("Languages"),
    "length": N_("Size"),
    "longest_life_days": N_("Longest life of a file (days)"),
    "name": N_("Name"),
    "max_file_size": N_("Largest file"),
    "max_files": N_("Most files"),
    "outbox_id": N_("E-mail number"),
    "password": N_("Password"),
    "previous_name": N_("Previous name"),
    "purpose": N_("Purpose"),
    "reason": N_("Reason"),
    "recipient": N_("Recipient"),
    "recipients": N_("Recipients"),
    "reference": N_("Reference"),
    "retrieve_by": N_("Retrieve by"),
    "role": N_("Role"),
    "rows": N_("Rows"),
    "scope": N_("Locked"),
    "sender": N_("Sender"),
    "sessions": N_("Sessions"),
    "several": N_("Several submissions"),
    "sha256": N_("SHA-256"),
    "since": N_("Since"),
    "size": N_("Size"),
    "start": N_("From byte"),
    "terms_version": N_("Terms version"),
    "threshold": N_("Warning threshold (percent free)"),
    "through": N_("Up to row"),
    "total": N_("Disk size"),
    "submission": N_("Submission"),
    "to": N_("To"),
    "types": N_("Accepted types"),
    "unreadable": N_("Files whose key no longer unwrapped"),
    "value": N_("Value"),
    "warning": N_("Free-space warning"),
}

# Coded values of some keys.
VALUES = {
    "reason": {
        "unknown_account": N_("unknown account"), "wrong_password": N_("wrong password"),
        "inactive": N_("account deactivated"), "locked": N_("locked after failures"),
        "password_too_long": N_("password too long"), "idle": N_("idle too long"),
        "absolute": N_("longest session reached"), "password": N_("wrong password"),
        "wait": N_("too soon after wrong passwords"),
        # why an upload was refused (relais.file_rules.REASONS, and the form's own)
        "content": N_("content not what its type says"), "empty_file": N_("empty file"),
        "too_large": N_("over the size limit"), "incomplete": N_("did not arrive whole"),
        "session_ended": N_("the session ended meanwhile"), "disk_full": N_("disk full"), "error": N_("server error"),
        "request_closed": N_("the link no longer accepts files"), "request_too_many": N_("too many files"),
        "extension": N_("type not accepted"),
        # why a request's files were deleted (relais.request_retention)
        "deadline": N_("retrieval deadline reached"), "retrieved": N_("retrieved by staff"),
        "not_transmitted": N_("never transmitted before the link ended"),
        # why a file in a partner's space was deleted (relais.spaces)
        "space_deadline": N_("its date in the space was reached"), "space_retrieved": N_("downloaded by the other side"),
        # second-factor codes (relais.two_factor)
        "wrong_code": N_("wrong code"), "wrong_recovery_code": N_("wrong recovery code"),
        "code_step_ended": N_("too late for the code, or too many wrong codes"),
        # a partner whose password's validity ended (relais.partners)
        "access_expired": N_("partner's access ended"),
        # why a restore left a file out (relais.backup)
        "key_gone": N_("its day key was destroyed"), "data_missing": N_("its data was deleted during the backup"),
        "unfinished": N_("unfinished upload"),
    },
    "direction": {"to_partner": N_("from the registry to the partner"), "from_partner": N_("from the partner to the registry")},
    "scope": {"account": N_("the account"), "client": N_("the address")},
    "kind": {"share": N_("link to a recipient"), "receipt": N_("receipt to the owner"),
             "share_locked": N_("lock warning to the owner"), "request": N_("upload invitation"),
             "request_receipt": N_("receipt to the sender"), "request_received": N_("files arrived, to the owner"),
             "request_reminder": N_("retrieval reminder to the owner"),
             "request_locked": N_("lock warning to the owner"),
             "partner_activation": N_("activation link to a partner"), "partner_reminder": N_("reminder to a partner before their access ends"),
             "partner_expired": N_("contact person to a partner whose access ended"),
             "password_reset": N_("link to choose a new password"),
             "space_placed": N_("files placed, to a partner"), "space_received": N_("files a partner sent, to their contact person"),
             "storage_low": N_("free space running low, to the admins")},
    "purpose": {"login": N_("first login"), "reset": N_("password reset"), "setup": N_("first admin, from the console"),
                "activate": N_("partner's activation"), "renew": N_("partner's renewal"), "forgot": N_("forgotten password")},
    "delivery": {"mail": N_("by e-mail"), "shown": N_("shown once to staff")},
    "outcome": {"sent": N_("link sent"), "expired": N_("access ended: contact person sent instead"),
                "unknown": N_("no such account: nothing sent"), "inactive": N_("account deactivated: nothing sent"),
                "admin": N_("admin account: nothing sent"), "throttled": N_("too many requests: nothing sent")},
    "during": {"login": N_("login"), "enrol": N_("setting up"), "disable": N_("turning off")},
    "password": {"typed": N_("typed by the owner"), "generated": N_("made by Relais")},
    "role": {"admin": N_("Admin"), "staff": N_("Staff"), "partner": N_("Partner")},
}
VALUES["from_role"] = VALUES["role"]
SIZES = {"size", "length", "max_file_size", "bytes", "free", "total"}
TIMES = {"expires_at", "retrieve_by", "due", "since"}
CODES = {"file", "files", "sha256", "error", "hash", "submission", "fields", "unreadable"}

SYSTEM = N_("Relais (automatic)")
ANONYMOUS = N_("Not logged in")


@dataclass(frozen=True)
class Detail:
    """One "key: value" line. ``kind`` says how the page shows ``value``: text as it is, a label
    to translate, a size, a time, yes/no, or code (ids, hashes)."""

    key: str
    label: str  # a msgid from KEYS, or the key itself when it has none
    value: object
    kind: str = "text"
    translated_label: bool = True


@dataclass(frozen=True)
class Entry:
    id: int
    at: str
    action: str
    label: str  # a msgid from ACTIONS, or "" for an action this version does not know
    actor: str  # as stored: an e-mail address, "system" or "anonymous"
    actor_name: str  # the account's name, or a msgid (SYSTEM, ANONYMOUS), or ""
    actor_is_label: bool
    object: str
    ip: str
    details: list[Detail] = field(default_factory=list)


def details(raw: str) -> list[Detail]:
    """The recorded JSON detail as lines to show; whatever cannot be read shows as it is."""
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return [Detail("", "", raw, "code", False)]
    if not isinstance(data, dict):
        return [Detail("", "", raw, "code", False)]
    lines = []
    for key, value in data.items():
        if value in ("", None, []):
            continue  # "file": "" on an event about no file in particular says nothing
        label, has_label = (KEYS[key], True) if key in KEYS else (key.replace("_", " "), False)
        if isinstance(value, bool):
            kind = "bool"
        elif key in VALUES and value in VALUES[key]:
            value, kind = VALUES[key][value], "label"
        elif key in ("language", "languages"):
            codes = value if isinstance(value, list) else [value]
            value, kind = ", ".join(i18n.NAMES.get(str(c), str(c)) for c in codes), "text"
        elif key in SIZES and isinstance(value, int):
            kind = "size"
        elif key in TIMES and isinstance(value, str):
            kind = "time"
        elif isinstance(value, dict):
            value, kind = ", ".join(f"{k}: {v}" for k, v in value.items()), "text"
        elif isinstance(value, list):
            value, kind = ", ".join(str(v) for v in value), "code" if key in CODES else "text"
        elif key in CODES:
            kind = "code"
        else:
            kind = "number" if isinstance(value, int) else "text"
        lines.append(Detail(key, label, value, kind, has_label))
    return lines


def entries(database: Database, rows: list[dict]) -> list[Entry]:
    """Audit rows, ready to show: labels, names, details."""
    emails = sorted({row["actor"] for row in rows if "@" in row["actor"]})
    names = {}
    if emails:
        marks = ", ".join("?" for _ in emails)
        names = {r["email"]: r["name"] for r in database.query(
            f"SELECT email, name FROM users WHERE email IN ({marks})", emails)}
    shown = []
    for row in rows:
        actor = row["actor"]
        if actor == "system":
            name, is_label = SYSTEM, True
        elif actor == "anonymous":
            name, is_label = ANONYMOUS, True
        else:
            name, is_label = names.get(actor, ""), False
        shown.append(Entry(
            id=row["id"], at=row["at"], action=row["action"], label=ACTIONS.get(row["action"], ""), actor=actor,
            actor_name=name, actor_is_label=is_label, object=row["object"], ip=row["ip"],
            details=details(row["detail"]),
        ))
    return shown


def found(database: Database, filters, language: str, older_than: int | None = None,
          newer_than: int | None = None) -> paging.Cursor:
    """One page of the events matching ``filters`` (:mod:`relais.audit_search`), ready to show."""
    from relais import audit_search

    rows = database.read_sync(audit_search.page, filters, language, older_than, newer_than)
    return paging.Cursor(entries(database, rows), rows.newer, rows.older, rows.count, rows.capped)
