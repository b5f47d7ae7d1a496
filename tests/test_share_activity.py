"""What a share's owner reads in its activity: each event in words, and a file only where one was involved."""

from __future__ import annotations

import re

from litestar.testing import TestClient

from tests.conftest import BASE_URL
from tests.test_shares import share_one_file, unlock


def activity_rows(page: str) -> list[list[str]]:
    table = page.split("<tbody>")[-1].split("</tbody>")[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


def test_refusals_name_no_file_and_a_refusal_while_waiting_says_so(app, auth, staff):
    link, password, stored, _ = share_one_file(app, auth, staff)
    with TestClient(app, base_url=BASE_URL) as guest:
        for _ in range(5):  # link_failures_before_wait: the fifth wrong password starts a wait
            unlock(guest, link, "not the right password at all")
        assert unlock(guest, link, password).status_code == 429  # refused during the wait, unchecked
    share_id = app.state.db.scalar("SELECT id FROM shares")
    rows = activity_rows(auth.client.get(f"/shares/{share_id}").text)
    what_and_file = [(row[1], row[2]) for row in rows]
    assert ("Wrong password", "") in what_and_file
    assert ("Refused: waiting after wrong passwords", "") in what_and_file
    assert all(file == "" for _, file in what_and_file), what_and_file  # "password"/"wait" were shown as files
