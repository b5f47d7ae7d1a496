"""The terms of use for admins (/admin/terms): who may see it, the form and its checks, publishing
through the confirmation, who accepted which version; and that a new version is asked for, and
recorded, at the next login and the next link access."""

from __future__ import annotations

import html
import json
import re

import pytest
from litestar.testing import TestClient

from relais import terms, terms_text
from tests.conftest import BASE_URL, PASSWORD, AuthActions, audit_rows, csrf_token
from tests.test_partners import NEW_PASSWORD, PARTNER_EMAIL, activate, make_partner
from tests.test_request_guest import make_request
from tests.test_request_guest import unlock as unlock_request
from tests.test_shares import guest, shared, unlock  # noqa: F401 (fixtures)

PAGES = ["/admin/terms", "/admin/terms/acceptances"]


def version_one() -> dict[str, str]:
    """The edit form's fields as the page fills them (version 1), line ends as a browser sends them."""
    form = {"based_on": "1"}
    for language, (title, body) in terms_text.VERSION_1.items():
        form[f"title_{language}"], form[f"body_{language}"] = title, body.replace("\n", "\r\n")
    return form


def edited() -> dict[str, str]:
    form = version_one()
    form["title_en"] = "Terms of use, second edition"
    form["body_fr"] += "\r\n\r\nLe Registre conserve la trace de chaque acceptation."
    return form


def version(app) -> int:
    return app.state.db.read_sync(terms.current_version)


def texts_of(app, number: int) -> dict[str, tuple[str, str]]:
    return app.state.db.read_sync(terms.stored_texts, number)


def page_text(response) -> str:
    return html.unescape(response.text)


def publish(auth, form: dict) -> None:
    """Through the confirmation, as an admin does: review, then confirm."""
    reviewed = auth.post("/admin/terms", form)
    assert reviewed.status_code == 200, reviewed.text
    published = auth.post("/admin/terms/publish", {**form, "confirm": "yes"})
    assert published.status_code == 303, published.text


# -- who may see it --------------------------------------------------------------------------------

def test_anonymous_visitors_are_sent_to_log_in(client):
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == f"/login?next={path}"


def test_staff_are_refused(app, client, auth, staff):
    auth.login()
    for path in PAGES:
        assert client.get(path).status_code == 403
    assert auth.post("/admin/terms", edited()).status_code == 403
    assert auth.post("/admin/terms/publish", {**edited(), "confirm": "yes"}).status_code == 403
    assert version(app) == 1 and audit_rows(app, "terms.publish") == []


def test_partners_are_refused_and_each_try_is_audited(app, client, staff, frozen):
    partner = make_partner(app, staff)
    activate(app, client, partner)
    auth = AuthActions(client)
    for path in PAGES:
        assert client.get(path).status_code == 403
    assert auth.post("/admin/terms/publish", {**edited(), "confirm": "yes"}).status_code == 403
    assert [r["object"] for r in audit_rows(app, "partner.refused")] == [*PAGES, "/admin/terms/publish"]
    assert version(app) == 1


def test_both_posts_need_their_csrf_token(app, client, auth, admin):
    auth.login(email=admin.email)
    for path in ("/admin/terms", "/admin/terms/publish"):
        response = client.post(path, data={**edited(), "confirm": "yes"}, follow_redirects=False)
        assert response.status_code == 403 and "Form expired" in response.text, path
        forged = client.post(path, data={**edited(), "confirm": "yes", "_csrf_token": "forged"}, follow_redirects=False)
        assert forged.status_code == 403, path
    assert version(app) == 1 and audit_rows(app, "terms.publish") == []


def test_the_nav_and_the_settings_lead_admins_here(client, auth, admin):
    auth.login(email=admin.email)
    settings = client.get("/admin/settings").text
    nav = settings[settings.index('class="console-nav"'):]
    nav = nav[:nav.index("</nav>")]
    assert nav.index('href="/admin/settings"') < nav.index('href="/admin/terms"')
    assert 'The <a href="/admin/terms">terms of use</a> are edited on their own page.' in settings
    page = client.get("/admin/terms").text
    assert '<a href="/admin/terms" aria-current="page">Terms of use</a>' in page


def test_staff_have_no_link_to_it(client, auth, staff):
    auth.login()
    assert 'href="/admin/terms"' not in client.get("/").text


# -- the form --------------------------------------------------------------------------------------

def test_the_form_is_filled_with_the_version_in_force(client, auth, admin):
    auth.login(email=admin.email)
    page = page_text(client.get("/admin/terms"))
    assert "Version in force" in page and "Not known (the version Relais was installed with)" in page
    for language, (title, body) in terms_text.VERSION_1.items():
        assert f'name="title_{language}" type="text" required maxlength="200" value="{title}"' in page
        assert f">{body}</textarea>" in page
    assert [m for m in re.findall(r"<legend[^>]*>([^<]+)</legend>", page)] == ["English", "Dutch", "French", "German"]
    assert 'name="based_on" value="1"' in page
    assert "filled in from English" not in page
    assert "0 active accounts have not accepted version 1 yet." in page  # the one admin did, by logging in


def test_a_language_missing_from_the_version_is_filled_from_english_and_said_so(app, client, auth, admin):
    english = terms_text.VERSION_1["en"]
    app.state.db.write(terms.publish, terms.audit.SYSTEM, {"en": english, "fr": terms_text.VERSION_1["fr"]})
    auth.login(email=admin.email)
    page = page_text(client.get("/admin/terms"))
    assert f'name="title_nl" type="text" required maxlength="200" value="{english[0]}"' in page
    assert f'name="title_de" type="text" required maxlength="200" value="{english[0]}"' in page
    assert page.count("Version 2 has no text of its own in this language: it is filled in from English.") == 2
    # Publishing the English text as the Dutch one is a change: Dutch gets a text of its own.
    form = {f"{part}_{lang}": text for lang in terms.EDIT_LANGUAGES
            for part, text in zip(("title", "body"), terms_text.VERSION_1["fr" if lang == "fr" else "en"])}
    reviewed = page_text(auth.post("/admin/terms", {**form, "based_on": "2"}))
    assert reviewed.count("New: a text of its own, no longer the English one") == 2


# -- publishing ------------------------------------------------------------------------------------

def test_publishing_through_the_confirmation_makes_the_next_version(app, client, auth, admin, frozen):
    auth.login(email=admin.email)
    form = edited()
    reviewed = auth.post("/admin/terms", form)
    text = page_text(reviewed)
    assert reviewed.status_code == 200 and version(app) == 1  # nothing is published yet
    assert "Publish version 2?" in text
    assert "Everyone will be asked to accept it at their next login or link access." in text
    rows = re.findall(r"<tr><td>(\w+)</td>\s*<td>(.*?)</td></tr>", text, re.S)
    assert [(lang, re.sub("<[^>]+>", "", change)) for lang, change in rows] == [
        ("English", "Changed: the title"), ("Dutch", "Unchanged"), ("French", "Changed: 1 paragraph"),
        ("German", "Unchanged")]
    assert "<ins>Le Registre conserve la trace de chaque acceptation.</ins>" in text
    assert '<del lang="en">Terms of use of the secure file-exchange service</del>' in text
    # The texts ride along in hidden fields, line ends and all, to the confirm and to "back".
    body_fr = terms.tidy_body(form["body_fr"])
    assert text.count(f'name="body_fr" value="{body_fr}"') == 2

    frozen.advance(minutes=5)
    published = auth.post("/admin/terms/publish", {**form, "confirm": "yes"})
    assert published.status_code == 303 and published.headers["location"] == "/admin/terms?published=2"
    assert version(app) == 2
    stored = texts_of(app, 2)
    assert sorted(stored) == ["de", "en", "fr", "nl"]
    assert stored["en"][0] == "Terms of use, second edition"
    assert stored["fr"][1] == terms_text.VERSION_1["fr"][1] + "\n\nLe Registre conserve la trace de chaque acceptation."
    assert "\r" not in stored["fr"][1] and stored["de"] == terms_text.VERSION_1["de"]
    [row] = audit_rows(app, "terms.publish")
    assert (row["actor"], row["object"]) == (admin.email, "2")
    assert json.loads(row["detail"]) == {"languages": ["de", "en", "fr", "nl"], "fields": ["en", "fr"]}

    page = page_text(client.get(published.headers["location"]))
    assert "Version 2 is published. Everyone is asked to accept it at their next login or link access." in page
    facts = page[page.index('<dl class="facts">'):page.index("</dl>")]
    assert "<dd>2</dd>" in facts and "Ada Admin (admin@registry.example)" in facts
    assert "24 Nov 2026, 10:05" in facts  # when, in the registry's zone
    assert 'value="Terms of use, second edition"' in page and 'name="based_on" value="2"' in page
    assert "1 active account has not accepted version 2 yet." in page


def test_back_to_editing_keeps_the_edited_texts(app, auth, admin):
    auth.login(email=admin.email)
    back = page_text(auth.post("/admin/terms", {**edited(), "back": "yes"}))
    assert 'value="Terms of use, second edition"' in back
    assert "Le Registre conserve la trace de chaque acceptation.</textarea>" in back
    assert version(app) == 1


def test_a_publish_without_its_confirmation_changes_nothing(app, auth, admin):
    auth.login(email=admin.email)
    response = auth.post("/admin/terms/publish", edited())
    assert response.status_code == 303 and response.headers["location"] == "/admin/terms"
    assert version(app) == 1 and audit_rows(app, "terms.publish") == []


@pytest.mark.parametrize("change, message", [
    ({"title_nl": ""}, "Dutch: enter a title."),
    ({"title_de": "   "}, "German: enter a title."),
    ({"body_fr": " \r\n\r\n "}, "French: enter the text of the terms."),
    ({"body_en": ""}, "English: enter the text of the terms."),
    ({"title_en": "T" * 201}, "English: the title is longer than 200 characters."),
    ({"body_de": "Wort " * 6001}, "German: the text is longer than 30000 characters."),
    ({"body_nl": "Tekst\x00 met een NUL"}, "Dutch: the text contains a control character"),
    ({"title_fr": "Titre\x1b[31m"}, "French: the text contains a control character"),
    ({"title_en": "Two\nlines"}, "English: the text contains a control character"),
    ({"body_en": "Evil \u202e reversed"}, "English: the text contains a control character"),
])
def test_bad_texts_are_refused_kept_in_the_form_and_nothing_is_written(app, auth, admin, change, message):
    auth.login(email=admin.email)
    form = {**edited(), **change}
    for path in ("/admin/terms", "/admin/terms/publish"):  # the confirm checks again: hidden fields can be forged
        response = auth.post(path, {**form, "confirm": "yes"})
        text = page_text(response)
        assert response.status_code == 400, (path, response.text)
        assert message in text
        assert 'role="alert"' in text and 'aria-invalid="true"' in text
        assert 'value="Terms of use, second edition"' in text or "title_en" in change  # the edit is kept
        assert "Le Registre conserve la trace de chaque acceptation.</textarea>" in text or "body_fr" in change
    assert version(app) == 1 and audit_rows(app, "terms.publish") == []


def test_texts_identical_to_the_version_in_force_are_refused(app, auth, admin):
    auth.login(email=admin.email)
    # Only line ends and spaces at the ends of lines differ: nothing changed.
    form = {**version_one(), "body_en": terms_text.VERSION_1["en"][1].replace("\n", "  \r\n") + "\r\n\r\n\r\n",
            "title_nl": "  " + terms_text.VERSION_1["nl"][0] + " "}
    for path in ("/admin/terms", "/admin/terms/publish"):
        response = auth.post(path, {**form, "confirm": "yes"})
        assert response.status_code == 400
        assert "Nothing changed: the texts are those of the version in force." in page_text(response)
    assert version(app) == 1 and audit_rows(app, "terms.publish") == []


def test_two_admins_publishing_at_once_get_two_versions_or_a_refusal(app, client, auth, admin, make_user):
    """Both edited version 1: the first publishes version 2; the second is told, and keeps their texts."""
    make_user(email="second@registry.example", role="admin", name="Second Admin")
    auth.login(email=admin.email)
    with TestClient(app, base_url=BASE_URL) as other:
        second = AuthActions(other)
        second.login(email="second@registry.example")
        theirs = {**version_one(), "title_de": "Nutzungsbedingungen, zweite Fassung"}
        assert second.post("/admin/terms", theirs).status_code == 200  # reviewed against version 1
        publish(auth, edited())
        late = second.post("/admin/terms/publish", {**theirs, "confirm": "yes"})
        text = page_text(late)
        assert late.status_code == 409
        assert "Another admin published version 2 meanwhile. Your texts are kept below" in text
        assert 'value="Nutzungsbedingungen, zweite Fassung"' in text and 'name="based_on" value="2"' in text
        assert version(app) == 2
        # Sent again from the form (now based on version 2), it becomes version 3.
        publish(second, {**theirs, "based_on": "2"})
    assert version(app) == 3
    assert [(r["actor"], r["object"]) for r in audit_rows(app, "terms.publish")] == [
        (admin.email, "2"), ("second@registry.example", "3")]
    assert app.state.db.scalar("SELECT count(*) FROM terms WHERE version = 3") == 4


def test_the_write_itself_refuses_a_second_publish_of_one_version(app):
    """The check is inside the publishing write: two writes queued with the same base version."""
    form = {lang: terms_text.VERSION_1[lang] for lang in terms.EDIT_LANGUAGES}
    first = {**form, "en": ("New English title", form["en"][1])}
    app.state.db.write(terms.publish, terms.audit.SYSTEM, first, 1)
    with pytest.raises(terms.TermsError) as refused:
        app.state.db.write(terms.publish, terms.audit.SYSTEM, {**form, "nl": ("Nieuwe titel", form["nl"][1])}, 1)
    assert refused.value.reason == "changed_meanwhile" and version(app) == 2
    assert app.state.db.scalar("SELECT count(*) FROM terms WHERE version = 2") == 4


# -- who accepted which version --------------------------------------------------------------------

def test_acceptances_by_version_paged_and_filtered(app, client, auth, admin, staff, guest, frozen):  # noqa: F811
    auth.login(email=admin.email)
    token, password, made = make_request(app, staff)
    assert unlock_request(guest, token, password).status_code == 303  # a link guest accepts version 1
    publish(auth, edited())
    other = TestClient(app, base_url=BASE_URL)
    with other:
        for _ in range(3):  # three logins of the staff member under version 2, a minute apart
            frozen.advance(minutes=1)
            assert AuthActions(other).login().status_code == 303
    page = page_text(client.get("/admin/terms/acceptances"))
    counts = re.findall(r'version=(\d)"[^>]*>Version \d</a>(?: \(in force\))?</td>\s*<td>[^<]+</td>\s*<td>(\d+)</td>', page)
    assert counts == [("2", "3"), ("1", "2")]  # the admin's login and the guest's Access under version 1
    assert "5 acceptances" in page
    who = re.findall(r'<span class="audit-name">([^<]+)</span>', page)
    assert who == ["Sam Staff"] * 3 + ["Sender of a request", "Ada Admin"]  # newest first
    assert f'href="/requests/{made.id}"><code>request:{made.id}</code>' in page

    only_one = page_text(client.get("/admin/terms/acceptances?version=1"))
    assert "Acceptances of version 1" in only_one and "2 acceptances" in only_one
    assert re.findall(r'<span class="audit-name">([^<]+)</span>', only_one) == ["Sender of a request", "Ada Admin"]

    def make(db):
        for i in range(60):
            terms.record_acceptance(db, terms.audit.Who(ip=f"192.0.2.{i}"), user_id=staff.id)

    app.state.db.write(make)
    first = page_text(client.get("/admin/terms/acceptances?version=2"))
    assert "63 acceptances" in first and "Page 1 of 2" in first
    assert first.count("<td>192.0.2.59</td>") == 1 and "192.0.2.9</td>" not in first  # newest first, 50 a page
    assert 'href="/admin/terms/acceptances?version=2&page=2" rel="next"' in first
    second = page_text(client.get("/admin/terms/acceptances?version=2&page=2"))
    assert "Page 2 of 2" in second and "<td>192.0.2.0</td>" in second and "Ada Admin" not in second
    assert second.count('<span class="audit-name">Sam Staff</span>') == 13


def test_the_edit_page_counts_active_accounts_yet_to_accept(app, client, auth, admin, staff, make_user):
    make_user(email="gone@registry.example", name="Gone")
    from relais import users
    users.set_active(app.state.db, terms.audit.SYSTEM, users.by_email(app.state.db, "gone@registry.example")["id"], False)
    auth.login(email=admin.email)
    publish(auth, edited())
    page = page_text(client.get("/admin/terms"))
    assert "2 active accounts have not accepted version 2 yet." in page  # the admin and Sam; not the deactivated one
    with TestClient(app, base_url=BASE_URL) as other:
        AuthActions(other).login()
    assert "1 active account has not accepted version 2 yet." in page_text(client.get("/admin/terms"))


# -- the new version is asked for and recorded ---------------------------------------------------

def test_after_a_publish_the_next_staff_login_accepts_the_new_version(app, client, auth, admin, staff):
    """Sam reads French: the login page and the terms it links to are the new version, in French."""
    with TestClient(app, base_url=BASE_URL) as staff_browser:
        staff_browser.cookies.set("__Host-relais_lang", "fr", domain="relais.test")
        assert AuthActions(staff_browser).login().status_code == 303
        AuthActions(staff_browser).logout()
        auth.login(email=admin.email)
        publish(auth, edited())
        page = page_text(staff_browser.get("/login"))
        assert "conditions d'utilisation" in page and "(version 2)" in page and 'name="terms_version" value="2"' in page
        terms_page = page_text(staff_browser.get("/terms"))
        assert "Le Registre conserve la trace de chaque acceptation." in terms_page and "Version 2" in terms_page
        assert AuthActions(staff_browser).login(terms_version="2").status_code == 303
    rows = app.state.db.query("SELECT version FROM terms_acceptances WHERE user_id = ? ORDER BY id", [staff.id])
    assert [r["version"] for r in rows] == [1, 2]
    assert json.loads(audit_rows(app, "login.success")[-1]["detail"]) == {"terms_version": 2}


def test_a_login_page_opened_before_the_publish_asks_again(app, client, auth, admin, staff):
    with TestClient(app, base_url=BASE_URL) as staff_browser:
        shown = page_text(staff_browser.get("/login"))
        assert 'name="terms_version" value="1"' in shown
        auth.login(email=admin.email)
        publish(auth, edited())
        stale = AuthActions(staff_browser).login(terms_version="1")
        text = page_text(stale)
        assert stale.status_code == 409
        assert "The terms of use changed while this page was open: version 2 is now in force." in text
        assert "(version 2)" in text and 'value="staff@registry.example"' in text
        assert staff_browser.get("/", follow_redirects=False).headers["location"] == "/login"  # not logged in
        assert app.state.db.scalar("SELECT count(*) FROM terms_acceptances WHERE user_id = ?", [staff.id]) == 0
        assert AuthActions(staff_browser).login(terms_version="2").status_code == 303
    assert app.state.db.query("SELECT version FROM terms_acceptances WHERE user_id = ?", [staff.id]) == [{"version": 2}]


def test_after_a_publish_a_partners_next_login_accepts_the_new_version(app, client, auth, admin, staff, frozen):
    partner = make_partner(app, staff)
    with TestClient(app, base_url=BASE_URL) as browser:
        activate(app, browser, partner)
        AuthActions(browser).logout()
        auth.login(email=admin.email)
        publish(auth, edited())
        assert AuthActions(browser).login(email=PARTNER_EMAIL, password=NEW_PASSWORD, terms_version="2").status_code == 303
    versions = [r["version"] for r in app.state.db.query(
        "SELECT version FROM terms_acceptances WHERE user_id = ? ORDER BY id", [partner.id])]
    assert versions[-1] == 2 and set(versions) <= {1, 2}


def test_after_a_publish_a_share_link_accepts_the_new_version(app, auth, admin, shared, guest):  # noqa: F811
    link, password, share_id, _ = shared
    shown = page_text(guest.get(link))
    assert "(version 1)" in shown and 'name="terms_version" value="1"' in shown
    admin_browser = TestClient(app, base_url=BASE_URL)
    with admin_browser:
        admin_auth = AuthActions(admin_browser)
        admin_auth.login(email=admin.email)
        publish(admin_auth, edited())
    # The page opened before the publish asked for version 1: Access asks again, the password untried.
    stale = guest.post(link, data={"password": password, "terms_version": "1", "_csrf_token": csrf_token(guest)},
                       follow_redirects=False)
    text = page_text(stale)
    assert stale.status_code == 409 and "version 2 is now in force" in text
    assert "(version 2)" in text and "Terms of use, second edition" in text
    assert app.state.db.scalar("SELECT count(*) FROM terms_acceptances WHERE subject = ?", [f"share:{share_id}"]) == 0
    guest.cookies.set("__Host-relais_lang", "fr", domain="relais.test")
    french = page_text(guest.get(link))
    assert "Le Registre conserve la trace de chaque acceptation." in french and 'value="2"' in french
    opened = guest.post(link, data={"password": password, "terms_version": "2", "_csrf_token": csrf_token(guest)},
                        follow_redirects=False)
    assert opened.status_code == 303
    accepted = app.state.db.query("SELECT version FROM terms_acceptances WHERE subject = ?", [f"share:{share_id}"])
    assert accepted == [{"version": 2}]
    assert json.loads(audit_rows(app, "share.access")[-1]["detail"]) == {"terms_version": 2}


def test_after_a_publish_a_request_link_accepts_the_new_version(app, auth, admin, staff, guest):  # noqa: F811
    token, password, made = make_request(app, staff)
    auth.login(email=admin.email)
    publish(auth, edited())
    assert 'name="terms_version" value="2"' in guest.get(f"/r/{token}").text
    assert unlock_request(guest, token, password).status_code == 303
    assert app.state.db.query("SELECT version FROM terms_acceptances WHERE subject = ?",
                              [f"request:{made.id}"]) == [{"version": 2}]


def test_an_unknown_link_with_an_old_terms_version_looks_like_any_unknown_link(app, auth, admin, guest):  # noqa: F811
    auth.login(email=admin.email)
    publish(auth, edited())
    response = guest.post("/s/" + "A" * 43, data={"password": PASSWORD, "terms_version": "1",
                                                   "_csrf_token": csrf_token(guest)}, follow_redirects=False)
    plain = guest.post("/s/" + "A" * 43, data={"password": PASSWORD, "_csrf_token": csrf_token(guest)},
                       follow_redirects=False)
    assert response.status_code == plain.status_code == 404


def test_bytes_that_are_not_utf8_are_refused_and_nothing_is_written(app, client, auth, admin):
    auth.login(email=admin.email)
    body = b"title_en=Terms&body_en=caf%E9&based_on=1&_csrf_token=" + csrf_token(client).encode()
    response = client.post("/admin/terms", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and "The request contained text that is not valid UTF-8." in response.text
    assert version(app) == 1


# -- limits and odd input --------------------------------------------------------------------------

def paragraphs(count: int, word: str = "Paragraph") -> str:
    return "\r\n\r\n".join(f"{word} {i}." for i in range(count))


def test_a_text_at_the_paragraph_cap_is_published(app, auth, admin):
    auth.login(email=admin.email)
    form = {**version_one(), **{f"body_{lang}": paragraphs(terms.MAX_PARAGRAPHS) for lang in terms.EDIT_LANGUAGES}}
    publish(auth, form)
    assert version(app) == 2 and texts_of(app, 2)["de"][1].count("\n\n") == terms.MAX_PARAGRAPHS - 1


def test_a_text_above_the_paragraph_cap_is_refused_and_nothing_is_written(app, auth, admin):
    auth.login(email=admin.email)
    form = {**edited(), "body_nl": paragraphs(terms.MAX_PARAGRAPHS + 1)}
    for path in ("/admin/terms", "/admin/terms/publish"):
        response = auth.post(path, {**form, "confirm": "yes"})
        assert response.status_code == 400, path
        assert "Dutch: the text has more than 500 paragraphs." in page_text(response)
    assert version(app) == 1 and audit_rows(app, "terms.publish") == []


def test_publishing_compares_the_texts_without_the_diff(app, monkeypatch):
    """The paragraph diff is for the review page, a read: inside the write only what is needed."""
    def no_diff(*args):
        raise AssertionError("the diff ran inside the publishing write")

    monkeypatch.setattr(terms, "changes", no_diff)
    form = {lang: (terms_text.VERSION_1[lang][0], paragraphs(terms.MAX_PARAGRAPHS, lang)) for lang in terms.EDIT_LANGUAGES}
    assert app.state.db.write(terms.publish, terms.audit.SYSTEM, form, 1) == 2
    [row] = audit_rows(app, "terms.publish")
    assert json.loads(row["detail"])["fields"] == ["de", "en", "fr", "nl"]
    with pytest.raises(terms.TermsError) as unchanged:
        app.state.db.write(terms.publish, terms.audit.SYSTEM, form, 2)
    assert unchanged.value.reason == "unchanged" and version(app) == 2


@pytest.mark.parametrize("published", ["<b>anything</b>", "2", "0", "%C2%B2", "99"])
def test_the_published_notice_names_only_a_published_version(client, auth, admin, published):
    auth.login(email=admin.email)
    page = page_text(client.get(f"/admin/terms?published={published}"))
    assert "is published" not in page
    assert "Version 1 is published." in page_text(client.get("/admin/terms?published=1"))


def test_unicode_digits_are_no_version_number(app, client, auth, admin):
    auth.login(email=admin.email)
    listed = client.get("/admin/terms/acceptances?version=%C2%B2")
    assert listed.status_code == 200 and "Acceptances of version" not in page_text(listed)
    for path in ("/admin/terms", "/admin/terms/publish"):
        response = auth.post(path, {**edited(), "based_on": "\u00b2", "confirm": "yes"})
        assert response.status_code == 409, (path, response.text)
        assert "Your texts are kept below" in page_text(response)
    assert version(app) == 1 and audit_rows(app, "terms.publish") == []


# -- the version accepted is the version shown, checked in the write that records it ---------------

def publish_during_the_password_check(app, monkeypatch) -> None:
    """An admin publishes version 2 while argon2 checks the password (after any read before it)."""
    hasher = app.state.hasher
    verify = hasher.verify_async

    async def publishing(stored, password):
        ok = await verify(stored, password)
        monkeypatch.setattr(hasher, "verify_async", verify)  # once
        await app.state.db.write_async(terms.publish, terms.audit.SYSTEM, {
            lang: ("Second edition" if lang == "en" else text[0], text[1]) for lang, text in terms_text.VERSION_1.items()}, 1)
        return ok

    monkeypatch.setattr(hasher, "verify_async", publishing)


def test_the_write_refuses_an_acceptance_of_a_version_no_longer_in_force(app, staff):
    app.state.db.write(terms.publish, terms.audit.SYSTEM, {"en": ("New", "Text")})
    with pytest.raises(terms.TermsChanged) as stale:
        app.state.db.write(terms.record_acceptance, terms.audit.SYSTEM, 1, user_id=staff.id)
    assert stale.value.version == 2
    assert app.state.db.write(terms.record_acceptance, terms.audit.SYSTEM, 2, user_id=staff.id) == 2
    assert app.state.db.write(terms.record_acceptance, terms.audit.SYSTEM, None, user_id=staff.id) == 2  # no field
    assert [r["version"] for r in app.state.db.query("SELECT version FROM terms_acceptances")] == [2, 2]


def test_a_publish_during_the_password_check_makes_the_login_ask_again(app, client, auth, staff, monkeypatch):
    shown = page_text(client.get("/login"))
    assert 'name="terms_version" value="1"' in shown
    publish_during_the_password_check(app, monkeypatch)
    stale = auth.login(terms_version="1")
    text = page_text(stale)
    assert stale.status_code == 409 and version(app) == 2
    assert "The terms of use changed while this page was open: version 2 is now in force." in text
    assert 'name="terms_version" value="2"' in text
    assert app.state.db.scalar("SELECT count(*) FROM terms_acceptances") == 0
    assert app.state.db.scalar("SELECT count(*) FROM sessions") == 0 and audit_rows(app, "login.success") == []
    assert auth.login(terms_version="2").status_code == 303
    assert app.state.db.query("SELECT version FROM terms_acceptances") == [{"version": 2}]


def test_a_form_without_a_version_accepts_the_one_in_force_and_one_with_garbage_is_asked_again(app, auth, staff):
    for garbage in ("abc", "\u00b2", "1" * 12):
        assert auth.login(terms_version=garbage).status_code == 409, garbage
    assert app.state.db.scalar("SELECT count(*) FROM terms_acceptances") == 0
    assert auth.login().status_code == 303  # no field at all: the version in force, recorded in the write
    assert app.state.db.query("SELECT version FROM terms_acceptances") == [{"version": 1}]


def test_the_code_page_carries_the_version_and_a_publish_while_it_is_open_asks_again(app, client, auth, staff, frozen):
    from tests.test_two_factor import code, enrol

    secret, _ = enrol(app, staff, frozen)
    assert auth.login(terms_version="1").headers["location"] == "/login/code"
    page = page_text(client.get("/login/code"))
    assert page.count('name="terms_version" value="1"') == 2  # the code's form and the recovery code's
    assert "By logging in you accept the terms of use (version 1)." in re.sub("<[^>]+>", "", page)
    app.state.db.write(terms.publish, terms.audit.SYSTEM, {"en": ("New", "Text")})
    stale = auth.post("/login/code", {"code": code(secret, frozen), "terms_version": "1"})
    text = page_text(stale)
    assert stale.status_code == 409 and "version 2 is now in force" in text
    assert 'name="terms_version" value="2"' in text and "(version 2)" in text
    assert app.state.db.scalar("SELECT count(*) FROM sessions") == 0
    assert app.state.db.scalar("SELECT count(*) FROM terms_acceptances") == 0 and audit_rows(app, "login.success") == []
    # Nothing was used up: the pending login and the same code work, for the version now shown.
    assert auth.post("/login/code", {"code": code(secret, frozen), "terms_version": "2"}).status_code == 303
    assert app.state.db.query("SELECT version FROM terms_acceptances") == [{"version": 2}]


def test_the_one_time_link_page_carries_the_version_and_a_publish_while_it_is_open_asks_again(app, client, auth, staff):
    from relais import users

    token = users.issue_login_link(app.state.db, terms.audit.SYSTEM, staff.id)
    assert 'name="terms_version" value="1"' in client.get(f"/login/link/{token}").text
    app.state.db.write(terms.publish, terms.audit.SYSTEM, {"en": ("New", "Text")})
    stale = auth.post(f"/login/link/{token}", {"terms_version": "1"})
    text = page_text(stale)
    assert stale.status_code == 409 and "version 2 is now in force" in text and 'name="terms_version" value="2"' in text
    assert app.state.db.scalar("SELECT count(*) FROM terms_acceptances") == 0
    assert audit_rows(app, "user.login_link_used") == [] and audit_rows(app, "login.link") == []
    assert client.get(f"/login/link/{token}").status_code == 200  # the link was not used up
    used = auth.post(f"/login/link/{token}", {"terms_version": "2"})
    assert used.status_code == 303 and used.headers["location"] == "/account/password"
    assert app.state.db.query("SELECT version FROM terms_acceptances") == [{"version": 2}]


def test_a_one_time_link_of_an_account_with_a_factor_checks_the_version_too(app, client, auth, staff, frozen):
    from relais import users
    from tests.test_two_factor import enrol

    enrol(app, staff, frozen)
    token = users.issue_login_link(app.state.db, terms.audit.SYSTEM, staff.id)
    app.state.db.write(terms.publish, terms.audit.SYSTEM, {"en": ("New", "Text")})
    assert auth.post(f"/login/link/{token}", {"terms_version": "1"}).status_code == 409
    assert app.state.db.scalar("SELECT count(*) FROM login_pending") == 0
    assert auth.post(f"/login/link/{token}", {"terms_version": "2"}).headers["location"].startswith("/login/code")


def test_a_publish_during_a_share_links_password_check_asks_again(app, shared, guest, monkeypatch):  # noqa: F811
    link, password, share_id, _ = shared
    assert 'name="terms_version" value="1"' in guest.get(link).text
    publish_during_the_password_check(app, monkeypatch)
    stale = guest.post(link, data={"password": password, "terms_version": "1", "_csrf_token": csrf_token(guest)},
                       follow_redirects=False)
    text = page_text(stale)
    assert stale.status_code == 409 and "version 2 is now in force" in text and "(version 2)" in text
    assert app.state.db.scalar("SELECT count(*) FROM terms_acceptances WHERE subject = ?", [f"share:{share_id}"]) == 0
    assert app.state.db.scalar("SELECT count(*) FROM link_sessions") == 0 and audit_rows(app, "share.access") == []
    opened = guest.post(link, data={"password": password, "terms_version": "2", "_csrf_token": csrf_token(guest)},
                        follow_redirects=False)
    assert opened.status_code == 303
    assert json.loads(audit_rows(app, "share.access")[-1]["detail"]) == {"terms_version": 2}


def test_a_publish_during_a_request_links_password_check_asks_again(app, staff, guest, monkeypatch):  # noqa: F811
    token, password, made = make_request(app, staff)
    assert 'name="terms_version" value="1"' in guest.get(f"/r/{token}").text
    publish_during_the_password_check(app, monkeypatch)
    stale = guest.post(f"/r/{token}", data={"password": password, "terms_version": "1", "_csrf_token": csrf_token(guest)},
                       follow_redirects=False)
    assert stale.status_code == 409 and 'name="terms_version" value="2"' in stale.text
    assert app.state.db.scalar("SELECT count(*) FROM terms_acceptances") == 0
    assert app.state.db.scalar("SELECT count(*) FROM link_sessions") == 0
