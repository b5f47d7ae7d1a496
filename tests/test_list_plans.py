"""Lists that grow without end read their page from an index, never by sorting every row in a
temporary B-tree (migration 0017): the outbox's sent mails (never purged) and the terms'
acceptances of each version. Checked with EXPLAIN QUERY PLAN on the very SQL the pages run."""

from __future__ import annotations

from relais import mail, paging, terms


class Recorder:
    """Stands in for a connection (and for the database handing it out): keeps each statement
    with its parameters, answers a count of 0 and no rows."""

    def __init__(self):
        self.statements: list[tuple[str, list]] = []

    def read_sync(self, fn, *args, **kwargs):
        return fn(self, *args, **kwargs)

    def execute(self, sql, params=()):
        self.statements.append((sql, list(params)))
        return self

    def query(self, sql, params=()):
        self.statements.append((sql, list(params)))
        return iter(())

    def fetchone(self):
        return [0]

    def fetchall(self):
        return []


def plans(app, recorder: Recorder) -> list[list[str]]:
    conn = app.state.db.conn
    return [[row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)] for sql, params in recorder.statements]


def test_the_sent_mails_are_counted_and_paged_from_their_index(app):
    recorder = Recorder()
    mail.listed(recorder, "sent", page=3)
    count, rows = plans(app, recorder)
    for plan in (count, rows):
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
    assert any("outbox_sent" in step for step in rows), rows


def test_the_acceptances_of_each_version_are_counted_and_listed_from_their_index(app):
    recorder = Recorder()
    terms.versions(recorder)
    terms.acceptances(recorder, version=2, page=2)
    _, per_version, count, listed = plans(app, recorder)
    for plan in (per_version, count, listed):
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
        assert any("terms_acceptances_version" in step for step in plan), plan
