"""Migration 0010: partner accounts (relais.partners): institutions, the partners' details and
how long their access lasts."""

from sqlite_utils import Database

from relais.migrations.schema import migrations


@migrations(name="0010_partners")
def m0010_partners(db: Database) -> None:
    db.executescript(
        """
        -- The organisations partners work for; partners of one institution are listed together.
        CREATE TABLE institutions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,                    -- as typed first
            name_key TEXT NOT NULL UNIQUE,         -- the name case-folded, spaces collapsed: one per institution
            created_at TEXT NOT NULL,
            created_by INTEGER REFERENCES users(id)
        );

        -- What a partner account (users.role = 'partner') has beyond users: full name, e-mail (the
        -- login), language and created_by stay in users.
        CREATE TABLE partners (
            user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
            institution_id INTEGER NOT NULL REFERENCES institutions(id),
            function TEXT NOT NULL DEFAULT '',     -- their role or function at the institution
            phone TEXT NOT NULL DEFAULT '',
            contact_id INTEGER NOT NULL REFERENCES users(id),  -- the staff member they deal with
            access_until TEXT,                     -- the password stops working then; NULL until one is chosen
            reminded_at TEXT,                      -- the reminder before access_until (once per period)
            updated_at TEXT NOT NULL,
            updated_by INTEGER REFERENCES users(id)
        );
        CREATE INDEX partners_institution ON partners(institution_id);
        CREATE INDEX partners_access ON partners(access_until);

        -- For admins: partner accounts whose access ends within 7 days, and whom they deal with.
        CREATE VIEW partners_expiring_soon AS
            SELECT users.email, users.name, institutions.name AS institution, partners.access_until,
                   contacts.email AS contact, partners.reminded_at
            FROM partners
            JOIN users ON users.id = partners.user_id
            JOIN institutions ON institutions.id = partners.institution_id
            JOIN users AS contacts ON contacts.id = partners.contact_id
            WHERE users.active = 1 AND partners.access_until IS NOT NULL
              AND partners.access_until > strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
              AND partners.access_until <= strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '+7 days');
        """
    )
