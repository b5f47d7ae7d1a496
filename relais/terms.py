"""Terms of use: versioned texts in four languages, and who accepted which version when.

A version is one row per language in ``terms``; the newest version is in force. Accounts accept
it at each login, link guests at each Access (:func:`record_acceptance`, inside the write that
opens the session), so a new version is asked for at everyone's next login or link access. Admins
edit and publish versions (:func:`check`, :func:`changes`, :func:`publish`); the texts are plain,
paragraphs separated by blank lines.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

from relais import audit, clock, i18n, paging
from relais.refusal import Refused

# The edit form's order: English first, the text every missing language falls back to.
EDIT_LANGUAGES = (i18n.DEFAULT, *[code for code in i18n.LANGUAGES if code != i18n.DEFAULT])
MAX_TITLE = 200  # characters
MAX_BODY = 30_000  # characters: some ten pages of legal text, well inside the 2 MB form limit
# Paragraphs per language: the review page's diff is quadratic in them (4,000 took seconds).
MAX_PARAGRAPHS = 500
ALLOWED_CONTROLS = {"\n", "\t"}  # in a body; a title allows none
# Bidi overrides and isolates reorder what a reader sees: nothing in these four languages needs them.
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class TermsError(Refused):
    """Texts that cannot be published; ``variables`` name the ``language`` and ``field`` at fault
    when there is one (reasons: title_required, body_required, title_too_long, body_too_long,
    control_character, too_many_paragraphs, unchanged, changed_meanwhile)."""


class TermsChanged(Refused):
    """A login or an Access whose page showed a version no longer in force (``version`` is the
    one that is): raised inside the write, so that nothing of it is recorded."""

    def __init__(self, version: int):
        super().__init__("terms_changed", version=version)
        self.version = version


def number(raw: str | None) -> int | None:
    """A version number as a form or a query string gives it; None for anything else. ASCII
    digits only: ``"²".isdigit()`` is true, and ``int("²")`` raises."""
    raw = raw or ""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


def shown(raw: str | None) -> int | None:
    """The version a form's hidden ``terms_version`` says it showed: None when the form sent
    none (taken as the version in force), -1 for anything that is no version (never in force)."""
    if not raw:
        return None
    found = number(raw)
    return -1 if found is None else found


def current_version(conn) -> int:
    return conn.execute("SELECT max(version) FROM terms").fetchone()[0] or 0


def current(conn, language: str) -> dict | None:
    """The newest version in ``language``, falling back to English."""
    version = current_version(conn)
    for lang in (language, "en"):
        row = conn.execute(
            "SELECT version, language, title, body FROM terms WHERE version = ? AND language = ?", [version, lang]
        ).fetchone()
        if row:
            return {"version": row[0], "language": row[1], "title": row[2], "paragraphs": row[3].split("\n\n")}
    return None


def changed_since(conn, raw: str) -> int | None:
    """The version now in force when a form showed ``raw`` (its hidden ``terms_version``) and
    that is no longer it; None when it still is, or the form showed none. Only a quick answer
    before the password's check: :func:`check_shown` inside the write is the one that counts."""
    try:
        check_shown(conn, shown(raw))
    except TermsChanged as exc:
        return exc.version
    return None


def check_shown(db, version_shown: int | None) -> int:
    """The version in force, when it is the one the page showed (``None``: a form without the
    field, taken as showing it); raises :class:`TermsChanged` otherwise. Inside the write that
    records the acceptance, so that no publish can come between the check and the record."""
    version = current_version(db)
    if version_shown is not None and version_shown != version:
        raise TermsChanged(version)
    return version


def record_acceptance(db, who: audit.Who, version_shown: int | None = None, *, user_id: int | None = None,
                      subject: str = "") -> int:
    """Record that someone accepted the version their page showed (inside a write); returns it.
    Raises :class:`TermsChanged` when it is no longer in force: the write then records nothing."""
    version = check_shown(db, version_shown)
    db.execute(
        "INSERT INTO terms_acceptances (version, user_id, subject, accepted_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?)",
        [version, user_id, subject, clock.now_iso(), who.ip, who.user_agent[:500]],
    )
    return version


# -- editing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Version:
    """The version in force, as the edit page shows it: its texts by language (missing ones
    filled from English, named in ``from_english``), when and by whom it was published."""

    number: int
    published_at: str | None
    published_by: str  # the admin's address from the trail; empty for the version the install seeded
    published_by_name: str
    texts: dict[str, tuple[str, str]]
    from_english: list[str] = field(default_factory=list)


def in_force(conn) -> Version:
    number = current_version(conn)
    rows = {r["language"]: r for r in conn.query(
        "SELECT language, title, body, created_at FROM terms WHERE version = ?", [number])}
    english = rows.get(i18n.DEFAULT) or next(iter(rows.values()), {"title": "", "body": "", "created_at": None})
    texts = {lang: (rows.get(lang, english)["title"], rows.get(lang, english)["body"]) for lang in EDIT_LANGUAGES}
    publisher = conn.execute(
        "SELECT audit_log.actor, coalesce(users.name, '') FROM audit_log LEFT JOIN users ON users.email = audit_log.actor"
        " WHERE audit_log.action = 'terms.publish' AND audit_log.object = ? ORDER BY audit_log.id DESC LIMIT 1",
        [str(number)],
    ).fetchone()
    return Version(number, english["created_at"], publisher[0] if publisher else "", publisher[1] if publisher else "",
                   texts, [lang for lang in EDIT_LANGUAGES if lang not in rows])


def stored_texts(conn, version: int) -> dict[str, tuple[str, str]]:
    """A version's texts as stored, only the languages it has."""
    return {r["language"]: (r["title"], r["body"])
            for r in conn.query("SELECT language, title, body FROM terms WHERE version = ?", [version])}


def tidy_body(body: str) -> str:
    """A body as a textarea sends it, made the stored form: line ends as LF (browsers send CRLF),
    no spaces at line ends, paragraphs separated by exactly one blank line."""
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _bad_character(text: str, allowed: set[str]) -> bool:
    return any((unicodedata.category(c) == "Cc" and c not in allowed) or c in BIDI for c in text)


def check(texts: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The texts of every edit language, tidied, as they would be published; raises
    :class:`TermsError` on the first one that cannot be (in the form's order)."""
    checked = {}
    for language in EDIT_LANGUAGES:
        raw_title, raw_body = texts.get(language, ("", ""))
        title, body = raw_title.strip(), tidy_body(raw_body)
        # A title is one line; a body keeps its line ends and tabs, nothing else of the controls.
        for name, value, maximum, allowed in (("title", title, MAX_TITLE, set()),
                                              ("body", body, MAX_BODY, ALLOWED_CONTROLS)):
            if _bad_character(value, allowed):
                raise TermsError("control_character", language=language, field=name)
            if not value.strip():
                raise TermsError(f"{name}_required", language=language, field=name)
            if len(value) > maximum:
                raise TermsError(f"{name}_too_long", language=language, field=name, maximum=maximum)
        if body.count("\n\n") >= MAX_PARAGRAPHS:
            raise TermsError("too_many_paragraphs", language=language, field="body", maximum=MAX_PARAGRAPHS)
        checked[language] = (title, body)
    return checked


@dataclass(frozen=True)
class Change:
    """What a language's text does in the new version: ``status`` is ``unchanged``, ``changed``
    or ``added`` (the version in force has no text of its own in it); for a change, the old
    title when it changed and the paragraphs removed and added."""

    language: str
    status: str
    old_title: str = ""
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


def changes(old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]) -> list[Change]:
    """Language by language, what publishing ``new`` changes from the stored texts ``old``."""
    found = []
    for language in EDIT_LANGUAGES:
        if language not in old:
            found.append(Change(language, "added"))
            continue
        if not _differs(old[language], new[language]):
            found.append(Change(language, "unchanged"))
            continue
        (old_title, old_body), (title, body) = old[language], new[language]
        before, after = tidy_body(old_body).split("\n\n"), body.split("\n\n")
        removed, added = [], []
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
            if op != "equal":
                removed += before[i1:i2]
                added += after[j1:j2]
        found.append(Change(language, "changed", old_title if old_title != title else "", removed, added))
    return found


def _differs(old: tuple[str, str], new: tuple[str, str]) -> bool:
    return (old[0], tidy_body(old[1])) != new


def changed_languages(old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]) -> list[str]:
    """The languages whose text publishing ``new`` changes (or adds): linear, for the write."""
    return [language for language in EDIT_LANGUAGES if language not in old or _differs(old[language], new[language])]


@dataclass(frozen=True)
class Review:
    """Edited texts that may be published as ``version``, and what they change."""

    version: int
    texts: dict[str, tuple[str, str]]
    changes: list[Change]


def _checked_against(conn, texts: dict[str, tuple[str, str]], based_on: int):
    """The texts checked (:func:`check`) against the version in force: its number, the checked
    texts and the languages they change. ``based_on`` is the version the admin edited: when
    another admin published since, the texts are refused (``changed_meanwhile``), so that no one
    publishes over a version they never saw; texts identical to it are refused (``unchanged``)."""
    previous = current_version(conn)
    if based_on != previous:
        raise TermsError("changed_meanwhile", version=previous)
    checked = check(texts)
    old = stored_texts(conn, previous)
    changed = changed_languages(old, checked)
    if not changed:
        raise TermsError("unchanged")
    return previous, checked, changed, old


def review(conn, texts: dict[str, tuple[str, str]], based_on: int) -> Review:
    """Edited texts checked against the version in force, with what they change paragraph by
    paragraph, for the confirmation page: a read, never inside the publishing write (the diff
    is the slow part; :func:`publish` checks again with only what it needs)."""
    previous, checked, _, old = _checked_against(conn, texts, based_on)
    return Review(previous + 1, checked, changes(old, checked))


def publish(db, who: audit.Who, texts: dict[str, tuple[str, str]], based_on: int | None = None) -> int:
    """Publish a new version (inside a write); ``texts`` maps language to (title, body).

    With ``based_on`` (an admin's edit) the texts are first checked as :func:`review` does, but
    without the diff: only the version number and whether each text differs, in linear time, so
    that publishing never holds up every other write. Nothing is written if they fail. The number
    is taken in the same write (the single writer's BEGIN IMMEDIATE), so two admins publishing at
    once never share one: the second one's check finds the first one's version and refuses; the
    (version, language) key would refuse a duplicate anyway."""
    if based_on is not None:
        _, texts, changed, _ = _checked_against(db, texts, based_on)
    else:
        changed = sorted(texts)
    version = current_version(db) + 1
    for language, (title, body) in texts.items():
        db.execute(
            "INSERT INTO terms (version, language, title, body, created_at) VALUES (?, ?, ?, ?, ?)",
            [version, language, title, body, clock.now_iso()],
        )
    audit.record(db, who, "terms.publish", str(version), languages=sorted(texts), fields=sorted(changed))
    return version


# -- acceptances -------------------------------------------------------------------------------

def versions(conn, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """Every version, newest first: when it was published and how many acceptances it has."""
    rows, page, total = paging.fetch(
        conn, "SELECT count(DISTINCT version) FROM terms",
        "SELECT terms.version, min(terms.created_at) AS published_at,"
        " (SELECT count(*) FROM terms_acceptances WHERE terms_acceptances.version = terms.version) AS accepted"
        " FROM terms GROUP BY terms.version ORDER BY terms.version DESC", [], page, per_page)
    return paging.Page(rows, page, per_page, total)


def acceptances(conn, version: int | None = None, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """Acceptances, newest first, of one version or of all: the account's name and address, or
    the link guest's subject (``share:<id>``, ``request:<id>``) as stored."""
    where, params = ("WHERE terms_acceptances.version = ?", [version]) if version else ("", [])
    rows, page, total = paging.fetch(
        conn, f"SELECT count(*) FROM terms_acceptances {where}",
        "SELECT terms_acceptances.*, users.email, users.name FROM terms_acceptances"
        f" LEFT JOIN users ON users.id = terms_acceptances.user_id {where} ORDER BY terms_acceptances.id DESC",
        params, page, per_page)
    for row in rows:
        row["link_kind"], _, row["link_id"] = row["subject"].partition(":")
    return paging.Page(rows, page, per_page, total)


def not_accepted(conn, version: int) -> int:
    """How many active accounts have not accepted ``version`` yet (they will at their next login)."""
    return conn.execute(
        "SELECT count(*) FROM users WHERE active AND NOT EXISTS"
        " (SELECT 1 FROM terms_acceptances WHERE terms_acceptances.user_id = users.id AND terms_acceptances.version = ?)",
        [version]).fetchone()[0]
