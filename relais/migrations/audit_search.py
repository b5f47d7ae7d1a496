"""Migration 0012: the audit trail searched through an index (relais.audit_search), and views for
admins' common questions (docs/schema.md)."""

from sqlite_utils import Database

from relais.migrations.schema import migrations

# What an event's free text is made of, in the trigger and in the backfill alike. The user agent
# is left out: it is in every row, says little, and would double the index.
_WORDS = "{t}.actor || ' ' || {t}.action || ' ' || {t}.object || ' ' || {t}.ip || ' ' || {t}.detail"
# The action once more as a single word ('a' and its UTF-8 in hex), so that a search naming an
# action by its label finds that action exactly, and not share.download_start for share.download.
_CODE = "'a' || hex({t}.action)"


@migrations(name="0012_audit_search")
def m0012_audit_search(db: Database) -> None:
    db.executescript(
        f"""
        -- The audit trail's search index (relais.audit_search): an FTS5 table holding no text of
        -- its own (contentless), one entry per audit_log row under the same rowid. audit_log only
        -- grows, so an insert trigger keeps it in step; nothing in it takes part in the hash chain.
        CREATE VIRTUAL TABLE audit_search USING fts5(
            words, code, content='', tokenize='unicode61 remove_diacritics 2'
        );
        INSERT INTO audit_search (rowid, words, code)
            SELECT id, {_WORDS.format(t="audit_log")}, {_CODE.format(t="audit_log")} FROM audit_log;
        CREATE TRIGGER audit_log_search AFTER INSERT ON audit_log
        BEGIN
            INSERT INTO audit_search (rowid, words, code)
            VALUES (new.id, {_WORDS.format(t="new")}, {_CODE.format(t="new")});
        END;
        -- The structured filters: by object and by time (by actor and action existed already).
        CREATE INDEX audit_log_object ON audit_log(object);
        CREATE INDEX audit_log_at ON audit_log(at);

        -- Lists at a registry's volumes (bench/pages.py): My files in its order, read from the
        -- index alone when counting (it replaces files_owner, its first two columns), and every
        -- share newest first for an admin.
        CREATE INDEX files_listed ON files(owner_id, state, completed_at DESC, id);
        DROP INDEX files_owner;
        CREATE INDEX shares_created ON shares(created_at DESC, id);

        -- Who accessed what, on links of every kind: the owner and the object's id for shares and
        -- requests alike (share_id stays for the queries written against the old view).
        DROP VIEW who_accessed_what;
        CREATE VIEW who_accessed_what AS
            SELECT link_events.at, link_events.event, link_events.ip, link_events.user_agent,
                   shares.id AS share_id, users.email AS owner,
                   coalesce(files.name, link_events.detail) AS file_name,
                   link_events.kind, link_events.object_id
            FROM link_events
            LEFT JOIN shares ON link_events.kind = 'share' AND shares.id = link_events.object_id
            LEFT JOIN requests ON link_events.kind = 'request' AND requests.id = link_events.object_id
            JOIN users ON users.id = coalesce(shares.owner_id, requests.owner_id)
            LEFT JOIN files ON files.id = link_events.file_id AND link_events.file_id != '';

        -- Every link that still works, of every kind, with its owner.
        CREATE VIEW open_links_all AS
            SELECT 'share' AS kind, id, owner, recipients, created_at, expires_at FROM open_links
            UNION ALL
            SELECT 'request', id, owner, recipient, created_at, expires_at FROM open_requests;

        -- Failed and refused logins, with the account typed (lowercased) and why.
        CREATE VIEW failed_logins AS
            SELECT at, object AS account, action, json_extract(detail, '$.reason') AS reason, ip, user_agent
            FROM audit_log WHERE action IN ('login.failure', 'login.refused');
        """
    )
