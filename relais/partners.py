"""Partner accounts: people outside the registry who exchange files often (the sFTP way).

Staff or admins create them with the details the terms of use list (full name, role or function,
institution, professional e-mail, which is the login, phone, language for e-mails, staff contact
person). Nobody ever sees a partner's password: staff issue a one-time activation link (mailed in
the partner's language, or shown once to read out by phone) and the partner chooses the password.

Access is time-boxed. A password is valid ``partner_password_days`` from when the partner chose
it (``partners.access_until``); ``partner_reminder_days`` before that they get one reminder per
period. After it, login is refused with a page naming their contact person, and any session
still open ends at that moment (:func:`relais.auth.resolve_session` asks :func:`session_refusal`).
Choosing a new password while access lasts starts a new period (the reminder says so); once it
has ended only staff renew it, with a new activation link: a forgotten-password request then
mails the partner their contact person instead of a link (:func:`forgot_password`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from relais import audit, clock, emails, i18n, institutions, mail, paging, settings, throttle, users
from relais.db import Database
from relais.refusal import Refused

# Requests for a forgotten-password link: a few an hour per address typed, and some more per client
# address (an office behind one address), each counted apart from failed logins.
FORGOT_PER_ACCOUNT = 3
FORGOT_PER_CLIENT = 10
FORGOT_WINDOW_MINUTES = 60
FIELD_LIMIT = 200


class PartnerError(Refused):
    """A partner's details break a rule; ``reason`` names it for the message shown."""


@dataclass(frozen=True)
class Partner:
    id: int  # the account's id (users.id)
    email: str
    name: str
    active: bool
    language: str
    has_password: bool
    function: str
    phone: str
    institution_id: int
    institution: str
    contact_id: int
    contact_name: str
    contact_email: str
    access_until: str | None
    reminded_at: str | None
    created_at: str
    created_by: str

    @property
    def access_valid(self) -> bool:
        return self.access_until is not None and clock.parse(self.access_until) > clock.now()


_SELECT = (
    "SELECT users.id, users.email, users.name, users.active, users.language, users.created_at,"
    " users.password_hash IS NOT NULL AS has_password, partners.function, partners.phone,"
    " partners.institution_id, institutions.name AS institution, partners.contact_id,"
    " contacts.name AS contact_name, contacts.email AS contact_email, partners.access_until,"
    " partners.reminded_at, coalesce(creators.email, '') AS created_by"
    " FROM partners JOIN users ON users.id = partners.user_id"
    " JOIN institutions ON institutions.id = partners.institution_id"
    " JOIN users AS contacts ON contacts.id = partners.contact_id"
    " LEFT JOIN users AS creators ON creators.id = users.created_by"
)


def _partner(row) -> Partner:
    row = dict(row)
    return Partner(**{**row, "active": bool(row["active"]), "has_password": bool(row["has_password"])})


def _one(conn, user_id: int) -> Partner | None:
    row = next(iter(conn.query(_SELECT + " WHERE partners.user_id = ?", [user_id])), None)
    return _partner(row) if row else None


def get(database: Database, user_id: int) -> Partner | None:
    """The partner with this account id, or None (also for a staff account's id)."""
    return database.read_sync(_one, user_id)


def grouped(database: Database, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of the partners, by institution (by name), each institution's by full name: the
    page's rows are (institution, its partners on this page); ``total`` counts partners. An
    institution cut by the page's end goes on at the top of the next page, under its name again."""
    rows, page, total = database.read_sync(
        paging.fetch, "SELECT count(*) FROM partners",
        _SELECT + " ORDER BY institutions.name_key, users.name, users.email, users.id", [], page, per_page)
    groups: dict[int, tuple[str, list[Partner]]] = {}
    for row in rows:
        partner = _partner(row)
        groups.setdefault(partner.institution_id, (partner.institution, []))[1].append(partner)
    return paging.Page(list(groups.values()), page, per_page, total)


def among(database: Database, user_ids: list[int]) -> dict[int, Partner]:
    """The partners among these accounts, by id (for the accounts page: their institution and access)."""
    if not user_ids:
        return {}
    marks = ", ".join("?" for _ in user_ids)
    rows = database.query(_SELECT + f" WHERE partners.user_id IN ({marks})", list(user_ids))
    return {partner.id: partner for partner in map(_partner, rows)}


def of_institution(database: Database, institution_id: int, page: int = 1,
                   per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of an institution's partners, by full name."""
    rows, page, total = database.read_sync(
        paging.fetch, "SELECT count(*) FROM partners WHERE institution_id = ?",
        _SELECT + " WHERE partners.institution_id = ? ORDER BY users.name, users.email, users.id", [institution_id],
        page, per_page)
    return paging.Page([_partner(r) for r in rows], page, per_page, total)


def contacts(database: Database) -> list[users.User]:
    """The accounts a partner can have as contact person: active staff and admins."""
    rows = database.query("SELECT * FROM users WHERE role IN ('staff', 'admin') AND active = 1 ORDER BY name, email")
    return [users.User.from_row(r) for r in rows]


def _clean(value: str, limit: int = FIELD_LIMIT) -> str:
    return " ".join(value.split())[:limit]


@dataclass
class Details:
    """What staff type about a partner."""

    email: str = ""
    name: str = ""
    function: str = ""
    phone: str = ""
    institution: str = ""
    language: str = "en"
    contact_id: int = 0


def _checked(db, details: Details) -> Details:
    email = users.normalize_email(details.email)  # UserError("invalid_email")
    name, institution = _clean(details.name), _clean(details.institution)
    if not name:
        raise PartnerError("name_required")
    if not institution:
        raise PartnerError("institution_required")
    if details.language not in i18n.LANGUAGES:
        raise PartnerError("invalid_language")
    if not db.execute("SELECT 1 FROM users WHERE id = ? AND role IN ('staff', 'admin') AND active = 1",
                      [details.contact_id]).fetchone():
        raise PartnerError("invalid_contact")
    return Details(email=email, name=name, function=_clean(details.function), phone=_clean(details.phone, 50),
                   institution=institution, language=details.language, contact_id=details.contact_id)


def create(database: Database, who: audit.Who, details: Details, created_by: int) -> Partner:
    """A partner account without a password (their activation link comes next), in one
    transaction with its institution (made if new) and the audit rows."""

    def insert(db) -> int:
        checked = _checked(db, details)
        if db.execute("SELECT 1 FROM users WHERE email = ?", [checked.email]).fetchone():
            raise users.UserError("email_taken")
        now = clock.now_iso()
        institution_id = institutions.find_or_create(db, who, checked.institution, created_by)
        user_id = db.execute(
            "INSERT INTO users (email, name, role, password_hash, password_changed_at, must_change_password,"
            " language, created_at, created_by) VALUES (?, ?, 'partner', NULL, NULL, 0, ?, ?, ?)",
            [checked.email, checked.name, checked.language, now, created_by],
        ).lastrowid
        db.execute(
            "INSERT INTO partners (user_id, institution_id, function, phone, contact_id, updated_at, updated_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [user_id, institution_id, checked.function, checked.phone, checked.contact_id, now, created_by],
        )
        audit.record(db, who, "user.create", checked.email, role="partner")
        audit.record(db, who, "partner.create", checked.email, institution=checked.institution,
                     contact=_email_of(db, checked.contact_id))
        return user_id

    return get(database, database.write(insert))


def update(database: Database, who: audit.Who, user_id: int, details: Details, updated_by: int) -> Partner:
    """Change a partner's details; the audit row names the fields that changed."""

    def change(db) -> None:
        current = _one(db, user_id)
        if current is None:
            raise users.UserError("not_found")
        checked = _checked(db, details)
        if checked.email != current.email and db.execute("SELECT 1 FROM users WHERE email = ?", [checked.email]).fetchone():
            raise users.UserError("email_taken")
        institution_id = institutions.find_or_create(db, who, checked.institution, updated_by)
        before = {"email": current.email, "name": current.name, "function": current.function, "phone": current.phone,
                  "institution": current.institution_id, "language": current.language, "contact": current.contact_id}
        after = {"email": checked.email, "name": checked.name, "function": checked.function, "phone": checked.phone,
                 "institution": institution_id, "language": checked.language, "contact": checked.contact_id}
        changed = sorted(k for k in before if before[k] != after[k])
        if not changed:
            return
        db.execute("UPDATE users SET email = ?, name = ?, language = ? WHERE id = ?",
                   [checked.email, checked.name, checked.language, user_id])
        db.execute("UPDATE partners SET institution_id = ?, function = ?, phone = ?, contact_id = ?, updated_at = ?,"
                   " updated_by = ? WHERE user_id = ?",
                   [institution_id, checked.function, checked.phone, checked.contact_id, clock.now_iso(), updated_by,
                    user_id])
        audit.record(db, who, "partner.update", checked.email, fields=changed)

    database.write(change)
    return get(database, user_id)


def _email_of(db, user_id: int) -> str:
    row = db.execute("SELECT email FROM users WHERE id = ?", [user_id]).fetchone()
    return row[0] if row else ""


def link_url(base_url: str, token: str) -> str:
    return f"{base_url}/login/link/{token}"


def issue_link(database: Database, who: audit.Who, user_id: int, base_url: str, by_mail: bool) -> str:
    """A one-time activation link (``activate`` the first time, ``renew`` after), mailed to the
    partner in their language or returned to be shown once. Earlier unused links stop working;
    the current password works until the link is used."""

    def issue(db) -> str:
        partner = _one(db, user_id)
        if partner is None or not partner.active:
            raise users.UserError("not_found")
        purpose = "activate" if partner.access_until is None and not partner.has_password else "renew"
        token = users.issue_login_link(database, who, user_id, purpose=purpose)  # the same transaction
        if by_mail:
            _queue_link_mail(db, who, partner, purpose, token, base_url)
        audit.record(db, who, "partner.link", partner.email, purpose=purpose, delivery="mail" if by_mail else "shown")
        return token

    return database.write(issue)


def _queue_link_mail(db, who: audit.Who, partner: Partner, purpose: str, token: str, base_url: str) -> None:
    hours = settings.get(db, "login_link_hours")
    subject, text, html = emails.render(
        "partner_activation", partner.language, person=partner.name, purpose=purpose, link=link_url(base_url, token),
        expires_at=clock.in_(timedelta(hours=hours)), contact_name=partner.contact_name,
        contact_email=partner.contact_email, days=settings.get(db, "partner_password_days"))
    mail.queue(db, who, to=partner.email, to_name=partner.name, subject=subject, text=text, html=html,
               kind="partner_activation", object=partner.email, language=partner.language)


# -- time-boxed access -------------------------------------------------------------------------

def login_refusal(conn, row: dict) -> str | None:
    """Why an account (a ``users`` row) may not log in or stay logged in as a partner now:
    ``access_expired`` past its ``access_until`` (or with none yet), else None. A partner who just
    used a one-time link (``must_change_password``) may choose their password: that is how
    access is renewed."""
    if row["role"] != "partner" or row["must_change_password"]:
        return None
    found = conn.execute("SELECT access_until FROM partners WHERE user_id = ?", [row["id"]]).fetchone()
    if found is None or found[0] is None or clock.parse(found[0]) <= clock.now():
        return "access_expired"
    return None


def session_refusal(database: Database, row: dict) -> str | None:
    """:func:`login_refusal` for a session being resolved (off the event loop)."""
    return database.read_sync(login_refusal, row) if row["role"] == "partner" else None


def password_chosen(db, who: audit.Who, user: users.User) -> None:
    """Inside the write that stores a partner's new password: a new period of access begins."""
    if user.role != "partner":
        return
    until = clock.in_(timedelta(days=settings.get(db, "partner_password_days")))
    db.execute("UPDATE partners SET access_until = ?, reminded_at = NULL WHERE user_id = ?", [until, user.id])
    audit.record(db, who, "partner.access_renewed", user.email, expires_at=until)


def remind(database: Database, base_url: str) -> int:
    """One reminder per period of access, ``partner_reminder_days`` before it ends. Returns how
    many were queued (the retention janitor runs this)."""
    days = database.read_sync(settings.get, "partner_reminder_days")
    if not days:
        return 0
    now = clock.now()
    due = database.query(
        "SELECT partners.user_id FROM partners JOIN users ON users.id = partners.user_id WHERE users.active = 1"
        " AND partners.reminded_at IS NULL AND partners.access_until > ? AND partners.access_until <= ?",
        [clock.iso(now), clock.iso(now + timedelta(days=days))])

    def queue(db, user_id: int) -> int:
        partner = _one(db, user_id)
        if partner is None or partner.reminded_at is not None or not partner.access_valid:
            return 0
        subject, text, html = emails.render(
            "partner_reminder", partner.language, person=partner.name, access_until=partner.access_until,
            link=f"{base_url}/account/password", contact_name=partner.contact_name,
            contact_email=partner.contact_email)
        mail.queue(db, audit.SYSTEM, to=partner.email, to_name=partner.name, subject=subject, text=text, html=html,
                   kind="partner_reminder", object=partner.email, language=partner.language)
        db.execute("UPDATE partners SET reminded_at = ? WHERE user_id = ?", [clock.now_iso(), user_id])
        audit.record(db, audit.SYSTEM, "partner.reminder", partner.email, expires_at=partner.access_until)
        return 1

    return sum(database.write(queue, row["user_id"]) for row in due)


def end_sessions(database: Database, who: audit.Who, user_id: int) -> int:
    """End every session of the partner at once; returns how many ended."""

    def delete(db) -> int:
        email = _email_of(db, user_id)
        ended = db.execute("DELETE FROM sessions WHERE user_id = ?", [user_id]).rowcount
        audit.record(db, who, "partner.sessions_ended", email, sessions=ended)
        return ended

    return database.write(delete)


# -- forgotten passwords -----------------------------------------------------------------------

def forgot_password(database: Database, who: audit.Who, email: str, base_url: str, registry_contact: str = "") -> str:
    """Someone asked for a link on the login page. The answer they see never says whether the
    address has an account; what happened goes into the trail (``outcome``, returned too):
    ``sent`` (a one-time link to choose a password, to a partner whose access lasts or to staff),
    ``expired`` (a partner whose access ended gets their contact person instead: only staff renew
    access), ``unknown``, ``inactive``, ``admin`` (admins reset through another admin), ``throttled``."""
    try:
        address = users.normalize_email(email)
    except users.UserError:
        address = ""
    typed = address or email.strip()[:254]
    who = audit.Who(actor="anonymous", ip=who.ip, user_agent=who.user_agent)

    def handle(db) -> str:
        keys = [f"forgot:{address}", f"forgot-ip:{who.ip}"]
        if throttle.locked_for(db, keys):
            outcome = "throttled"
        else:
            throttle.count_failure(db, keys[0], FORGOT_PER_ACCOUNT, FORGOT_WINDOW_MINUTES)
            throttle.count_failure(db, keys[1], FORGOT_PER_CLIENT, FORGOT_WINDOW_MINUTES)
            outcome = _forgot(database, db, who, address, base_url, registry_contact)
        audit.record(db, who, "password.forgot", typed, outcome=outcome)
        return outcome

    return database.write(handle)


def _forgot(database: Database, db, who: audit.Who, address: str, base_url: str, registry_contact: str) -> str:
    """Inside the write of :func:`forgot_password` (``database``: for the nested link write, which
    runs in the same transaction)."""
    row = next(iter(db.query("SELECT * FROM users WHERE email = ?", [address])), None) if address else None
    if row is None:
        return "unknown"
    if not row["active"]:
        return "inactive"
    if row["role"] == "admin":
        return "admin"
    user = users.User.from_row(row)
    if row["role"] == "staff":
        token = users.issue_login_link(database, who, user.id, purpose="forgot")
        subject, text, html = emails.render("password_reset", user.language, person=user.name,
                                            link=link_url(base_url, token),
                                            expires_at=clock.in_(timedelta(hours=settings.get(db, "login_link_hours"))))
        mail.queue(db, who, to=user.email, to_name=user.name, subject=subject, text=text, html=html,
                   kind="password_reset", object=user.email, language=user.language)
        return "sent"
    partner = _one(db, user.id)
    if partner is None:
        return "unknown"
    if not partner.access_valid:
        subject, text, html = emails.render(
            "partner_expired", partner.language, person=partner.name, contact_name=partner.contact_name,
            contact_email=partner.contact_email, registry=registry_contact)
        mail.queue(db, who, to=partner.email, to_name=partner.name, subject=subject, text=text, html=html,
                   kind="partner_expired", object=partner.email, language=partner.language)
        return "expired"
    token = users.issue_login_link(database, who, user.id, purpose="forgot")
    _queue_link_mail(db, who, partner, "forgot", token, base_url)
    return "sent"
