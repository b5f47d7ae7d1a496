"""Settings an admin changes at run time: one table of name, default and help (as Datasette).

The code asks ``get(db, name)``; a missing row means the default. Environment-level settings
(paths, ports, SMTP) are in :mod:`relais.config` instead. Every setting here is shown on the
Settings page, so each must be read by the code that it governs (tests/test_settings_documented.py):
one that nothing enforces yet is not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from relais import audit, clock
from relais.i18n import N_


@dataclass(frozen=True)
class Setting:
    name: str
    default: int
    help: str
    minimum: int = 0
    maximum: int = 10**9


SETTINGS = {
    s.name: s
    for s in [
        Setting("session_idle_minutes", 30, N_("Minutes of inactivity after which a session ends."), 1, 24 * 60),
        Setting("session_absolute_hours", 12, N_("Hours after login after which a session ends, active or not."), 1, 7 * 24),
        Setting("login_failures_before_lock", 5, N_("Failed logins for one account before it is locked for a while."), 1, 100),
        Setting("login_lock_minutes", 15, N_("Longest time an account or a client stays locked after failed logins."), 1, 24 * 60),
        Setting("client_failures_before_lock", 20, N_("Failed logins from one address before that address is locked."), 1, 1000),
        Setting("login_link_hours", 72, N_("Hours a one-time login or password-reset link stays valid."), 1, 30 * 24),
        Setting("share_default_days", 30, N_("Days a new share's link is valid unless staff choose otherwise."), 1, 30),
        Setting("share_max_days", 30, N_("Most days a share's link can be valid, counted from its creation."), 1, 365),
        Setting("request_default_days", 14, N_("Days a new request's upload link is valid unless staff choose otherwise."), 1, 30),
        Setting("request_max_days", 30, N_("Most days a request's upload link can be valid, counted from its creation."), 1, 365),
        Setting("request_retrieval_days", 14, N_("Days staff have to retrieve files sent through a request; then they are deleted."), 1, 90),
        Setting("request_reminder_days", 2, N_("Days before that deadline when staff are reminded of files not yet retrieved (0: no reminder)."), 0, 90),
        Setting("request_delete_when_retrieved", 0, N_("1: delete a request's files as soon as staff have downloaded all of them; 0: keep them until the deadline."), 0, 1),
        Setting("two_factor_admins", 1, N_("1: admins must log in with a second factor (a code from an authenticator app); 0: they may choose."), 0, 1),
        Setting("two_factor_staff", 0, N_("1: staff must log in with a second factor (a code from an authenticator app); 0: they may choose."), 0, 1),
        Setting("partner_password_days", 14, N_("Days a partner's password stays valid from when they chose it; then they need a new activation link from staff."), 1, 365),
        Setting("partner_reminder_days", 3, N_("Days before a partner's password runs out when they are reminded by e-mail (0: no reminder)."), 0, 60),
        Setting("space_retention_days", 30, N_("Days a file stays in a partner's space, whichever side placed it; then it is deleted."), 1, 365),
        Setting("space_delete_when_retrieved", 0, N_("1: delete a file in a partner's space once the other side has downloaded it whole; 0: keep it until its date."), 0, 1),
        Setting("link_failures_before_wait", 3, N_("Wrong passwords on a link before each further try must wait."), 1, 100),
        Setting("link_failures_before_lock", 10, N_("Wrong passwords on a link before it is locked for good and its owner told."), 1, 100),
        Setting("max_file_size_mib", 50 * 1024, N_("Largest file that can be uploaded, in MiB."), 1, 1024 * 1024),
        Setting("max_files_per_account", 500, N_("Most files one account can hold, uploads in progress included."), 1, 100_000),
        Setting("storage_warning_free_percent", 10, N_("Free space, in percent of the data folder's disk, below which every admin is e-mailed (once, until it has risen above it again)."), 1, 90),
    ]
}


def get(conn, name: str) -> int:
    setting = SETTINGS[name]
    row = conn.execute("SELECT value FROM settings WHERE name = ?", [name]).fetchone()
    return int(row[0]) if row else setting.default


def all_values(conn) -> dict[str, int]:
    stored = {r["name"]: int(r["value"]) for r in conn.query("SELECT name, value FROM settings")}
    return {name: stored.get(name, s.default) for name, s in SETTINGS.items()}


def set_value(db, who: audit.Who, user_id: int | None, name: str, value: int) -> None:
    """Store a value (inside a write). Raises ValueError when out of the setting's range."""
    setting = SETTINGS[name]
    if not setting.minimum <= value <= setting.maximum:
        raise ValueError(name)
    db.execute(
        "INSERT INTO settings (name, value, updated_at, updated_by) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,"
        " updated_by = excluded.updated_by",
        [name, str(value), clock.now_iso(), user_id],
    )
    audit.record(db, who, "setting.change", name, value=value)
