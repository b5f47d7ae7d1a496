"""Schema, as numbered migrations registered in order on one ``migrations`` object. Never edit an
applied migration: add the next one, in the module of its part (shares and files in
:mod:`relais.migrations.schema`, requests in :mod:`relais.migrations.requests`, the second factor in
:mod:`relais.migrations.two_factor`, partners in :mod:`relais.migrations.partners`, day keys in
:mod:`relais.migrations.key_epochs`, the audit trail's search in :mod:`relais.migrations.audit_search`,
partner spaces in :mod:`relais.migrations.spaces`, free-space warnings in
:mod:`relais.migrations.storage_warnings`, lists at a registry's volumes (the admin's open
items, My files, the outbox's sent mails) in :mod:`relais.migrations.lists`).

The schema is documented for admins who query the database directly in ``docs/schema.md``.
Times are ISO 8601 strings in UTC (``2026-11-24T09:37:59.123456+00:00``), which sort correctly
as text and read well in ``sqlite3``.
"""

from relais.migrations.schema import migrations
from relais.migrations import requests  # noqa: F401  (registers 0008 after 0001-0007)
from relais.migrations import two_factor  # noqa: F401  (registers 0009 after 0008)
from relais.migrations import partners  # noqa: F401  (registers 0010 after 0009)
from relais.migrations import key_epochs  # noqa: F401  (registers 0011 after 0010)
from relais.migrations import audit_search  # noqa: F401  (registers 0012 after 0011)
from relais.migrations import spaces  # noqa: F401  (registers 0013 after 0012)
from relais.migrations import storage_warnings  # noqa: F401  (registers 0015)
from relais.migrations import lists  # noqa: F401  (registers 0016 and 0017, last)

__all__ = ["migrations"]
