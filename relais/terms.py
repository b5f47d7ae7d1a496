"""Terms of use: versioned texts in four languages, and who accepted which version when."""

from __future__ import annotations

from relais import audit, clock


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


def record_acceptance(db, who: audit.Who, *, user_id: int | None = None, subject: str = "") -> int:
    """Record that someone accepted the current version (inside a write); returns the version."""
    version = current_version(db)
    db.execute(
        "INSERT INTO terms_acceptances (version, user_id, subject, accepted_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?)",
        [version, user_id, subject, clock.now_iso(), who.ip, who.user_agent[:500]],
    )
    return version


def publish(db, who: audit.Who, texts: dict[str, tuple[str, str]]) -> int:
    """Publish a new version (inside a write); ``texts`` maps language to (title, body)."""
    version = current_version(db) + 1
    for language, (title, body) in texts.items():
        db.execute(
            "INSERT INTO terms (version, language, title, body, created_at) VALUES (?, ?, ?, ?, ?)",
            [version, language, title, body, clock.now_iso()],
        )
    audit.record(db, who, "terms.publish", str(version), languages=sorted(texts))
    return version
