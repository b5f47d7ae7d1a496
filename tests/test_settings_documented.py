"""Every variable the README lists and every setting the Settings page shows is read by the code
it governs: a name that nothing outside the tests reads is a promise the code does not keep."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from relais import config as config_module
from relais import settings
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[1]
# The application's code: everything but the tests (and bench/, which is not the app).
CODE = [ROOT / "app.py", *sorted((ROOT / "relais").rglob("*.py")), *sorted((ROOT / "views").rglob("*.py"))]
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))


@cache
def _names_read() -> tuple[frozenset[str], frozenset[str]]:
    """(attribute names read anywhere, string constants used outside relais/settings.py).

    Parsed, not grepped: a name in a comment or a docstring is not a read. relais/settings.py is
    left out of the constants because it defines every setting's name without reading one.
    """
    attributes, constants = set(), set()
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                attributes.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and path.name != "settings.py":
                constants.add(node.value)
    for path in TEMPLATES:
        attributes.update(re.findall(r"\.(\w+)", path.read_text()))
    return frozenset(attributes), frozenset(constants)


def config_field_is_read(field: str) -> bool:
    return field in _names_read()[0]


def setting_is_read(name: str) -> bool:
    return name in _names_read()[1]


def readme_variables() -> set[str]:
    """The variables in the README's "Settings" table (a row may name two)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `RELAIS_")]
    assert rows, "the README's settings table was not found"
    return {var for row in rows for var in re.findall(r"`(RELAIS_\w+)`", row.split("|")[1])}


def test_the_checker_notices_a_name_nothing_reads():
    assert config_field_is_read("smtp_host") and setting_is_read("session_idle_minutes")
    assert not config_field_is_read("no_such_field") and not setting_is_read("no_such_setting")


def test_every_variable_in_the_readme_is_read():
    by_variable = {var: field for field, (var, _) in config_module.FIELDS.items()}
    documented = readme_variables()
    unknown = documented - by_variable.keys()
    assert not unknown, f"the README lists variables the configuration does not know: {sorted(unknown)}"
    unread = sorted(var for var in documented if not config_field_is_read(by_variable[var]))
    assert not unread, f"the README lists variables that nothing reads: {unread}"


def test_every_variable_the_configuration_takes_is_in_the_readme():
    missing = {var for var, _ in config_module.FIELDS.values()} - readme_variables()
    assert not missing, f"variables missing from the README's table: {sorted(missing)}"


def test_every_setting_in_the_table_is_read():
    unread = sorted(name for name in settings.SETTINGS if not setting_is_read(name))
    assert not unread, f"settings that nothing reads: {unread}"


def test_every_setting_on_the_page_is_read(client, auth, admin):
    auth.login(email=admin.email, password=PASSWORD)
    page = client.get("/admin/settings")
    assert page.status_code == 200
    shown = set(re.findall(r'<input id="setting-[^"]+" name="([^"]+)"', page.text))
    assert shown == set(settings.SETTINGS)
    unread = sorted(name for name in shown if not setting_is_read(name))
    assert not unread, f"the Settings page shows settings that nothing reads: {unread}"
    assert {"partner_password_days", "partner_reminder_days"} <= shown  # enforced by relais.partners
