"""The audit page in words: a translated label for every action, actors by name, details as lines."""

from __future__ import annotations

import html

import pytest
from babel.messages.pofile import read_po

from relais import audit, audit_labels, i18n
from tests.audit_actions import recorded_actions
from tests.conftest import PASSWORD
from tests.test_i18n import POT, catalogue


def test_every_action_the_code_records_has_a_label():
    actions = recorded_actions()
    # The scan finds the three ways actions are written (a sanity check that it still does).
    assert {"mail.sent", "share.revoke", "login.link", "share.download_start", "logout"} <= actions
    missing = sorted(actions - set(audit_labels.ACTIONS))
    assert not missing, f"add a label to relais/audit_labels.py ACTIONS for: {missing}"


def test_every_label_is_in_the_catalogues_and_translated():
    labels = {*audit_labels.ACTIONS.values(), *audit_labels.KEYS.values(), audit_labels.SYSTEM, audit_labels.ANONYMOUS,
              *(label for values in audit_labels.VALUES.values() for label in values.values())}
    with POT.open("rb") as f:
        extracted = {m.id for m in read_po(f)}
    assert labels <= extracted, sorted(labels - extracted)
    for lang in ("nl", "fr", "de"):
        translated = {m.id for m in catalogue(lang) if m.id and m.string}
        assert labels <= translated, (lang, sorted(labels - translated))


def login_admin(client, auth, lang):
    client.get(f"/language/{lang}")
    assert auth.login(email="admin@registry.example").status_code == 303


@pytest.mark.parametrize("lang, logged_in, wrong, failed", [
    ("nl", "Aangemeld", "verkeerd wachtwoord", "Aanmelden mislukt"),
    ("fr", "Connexion", "mot de passe erroné", "Échec de la connexion"),
    ("de", "Angemeldet", "falsches Passwort", "Anmeldung fehlgeschlagen"),
    ("en", "Logged in", "wrong password", "Login failed"),
])
def test_the_page_speaks_the_admins_language(app, client, auth, admin, staff, lang, logged_in, wrong, failed):
    auth.login(password="not the password at all")
    login_admin(client, auth, lang)
    page = client.get("/admin/audit")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert f'<span class="audit-name">{logged_in}</span>' in text
    assert f'<span class="audit-name">{failed}</span>' in text and wrong in text
    # Actors by name, with the address they used; the code stays readable for queries, but small.
    assert '<span class="audit-name">Ada Admin</span><span class="audit-sub">admin@registry.example</span>' in text
    assert '<span class="audit-sub">login.success</span>' in text
    assert '{"reason"' not in text  # no raw JSON


def test_details_are_readable_lines(app, client, auth, admin):
    database = app.state.db
    database.write(lambda db: audit.record(db, audit.SYSTEM, "file.upload", "f1", name="report.pdf", size=3 * 1024 * 1024,
                                           sha256="ab" * 32))
    database.write(lambda db: audit.record(db, audit.SYSTEM, "share.create", "s1", files=2, recipients=1, expires_days=30,
                                           download_limit=None, delete_after_download=True, password="generated"))
    database.write(lambda db: audit.record(db, audit.Who(actor="anonymous"), "upgrade.future_action", "x", note="kept"))
    login_admin(client, auth, "fr")
    text = html.unescape(client.get("/admin/audit").text)
    assert "Taille\u00a0:</dt> <dd>3\u00a0Mo</dd>" in text
    assert "Suppression après téléchargement\u00a0:</dt> <dd>oui</dd>" in text
    assert f"<code>{'ab' * 32}</code>" in text
    assert "créé par Relais" in text and "Relais (automatique)" in text
    # An action this version has no label for shows as its code, its detail as it is.
    assert '<span class="audit-name">upgrade.future_action</span>' in text and "note\u00a0:</dt> <dd>kept</dd>" in text
    assert "Non connecté" in text


def test_details_that_are_not_json_show_as_they_are():
    [line] = audit_labels.details("not json {")
    assert line.value == "not json {" and line.kind == "code"
    assert audit_labels.details('{"file": "", "reason": "idle"}') == [
        audit_labels.Detail("reason", audit_labels.KEYS["reason"], audit_labels.VALUES["reason"]["idle"], "label")]


def test_names_of_languages_in_details():
    [line] = audit_labels.details('{"languages": ["nl", "fr"]}')
    assert line.value == f"{i18n.NAMES['nl']}, {i18n.NAMES['fr']}"


def test_the_page_is_for_admins_only(client, auth, staff):
    auth.login(password=PASSWORD)
    assert client.get("/admin/audit", follow_redirects=False).status_code == 403
