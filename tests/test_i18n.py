"""Translation catalogues: complete, not fuzzy, placeholders intact, and in step with the code.

English is the source language. Each other language has ``translations/<lang>/LC_MESSAGES/messages.po``,
built from ``translations/messages.pot``; ``babel.cfg`` holds the two commands that update them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
POT = TRANSLATIONS / "messages.pot"
LANGUAGES = ("nl", "fr", "de")
UPDATE_HELP = "run the two commands in the header of babel.cfg, then translate the new entries"

# A printf-style conversion as Python's % operator reads it: %(name)s, %s, %5.2f, %% ...
CONVERSION = re.compile(r"%(?:\((?P<name>[^)]*)\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?P<type>[diouxXeEfFgGcrsa%])")


def read(path: Path, locale: str | None = None):
    with path.open("rb") as f:
        return read_po(f, locale=locale, abort_invalid=True)


def catalogue(lang: str):
    return read(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", locale=lang)


def forms(value) -> tuple[str, ...]:
    """A msgid or msgstr as a tuple of strings (plural entries already are)."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def placeholders(text: str) -> set[str]:
    """The conversions in ``text`` ("%(minutes)s", "%s"...), without the literal "%%"."""
    return {m.group(0) for m in CONVERSION.finditer(text) if m.group("type") != "%"}


def literal_percents(text: str) -> tuple[int, int]:
    """How many "%%" and how many stray "%" (neither placeholder nor "%%") ``text`` holds."""
    escaped = sum(1 for m in CONVERSION.finditer(text) if m.group("type") == "%")
    return escaped, CONVERSION.sub("", text).count("%")


def is_formatted(message) -> bool:
    """Whether the app applies % to the translation: python-format strings, and every template
    string (Jinja's newstyle gettext formats even when there are no variables)."""
    return message.python_format or any(path.startswith("templates/") for path, _ in message.locations)


def messages(catalog):
    return [m for m in catalog if m.id]


@pytest.fixture(scope="module")
def pot_ids() -> set:
    assert POT.exists(), f"{POT.relative_to(ROOT)} is missing: {UPDATE_HELP}"
    return {m.id for m in messages(read(POT))}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_entry_is_translated_and_not_fuzzy(lang):
    catalog = catalogue(lang)
    assert messages(catalog), f"{lang}: empty catalogue"
    untranslated = [m.id for m in messages(catalog) if not all(s.strip() for s in forms(m.string))]
    fuzzy = [m.id for m in messages(catalog) if m.fuzzy]
    assert not untranslated, f"{lang}: untranslated entries: {untranslated}"
    assert not fuzzy, f"{lang}: fuzzy entries (check the translation, then remove the flag): {fuzzy}"
    assert not catalog.fuzzy, f"{lang}: the catalogue header is marked fuzzy"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_are_kept(lang):
    problems = []
    for m in messages(catalogue(lang)):
        expected = set().union(*(placeholders(s) for s in forms(m.id)))
        found = [placeholders(s) for s in forms(m.string)]
        if len(forms(m.id)) == 1:
            if found[0] != expected:
                problems.append(f"{m.id!r}: expected {sorted(expected)}, found {sorted(found[0])}")
        # Plural entries: a form may leave out the count ("one file"), but may not add or lose a name.
        elif set().union(*found) != expected or any(not f <= expected for f in found):
            problems.append(f"{m.id!r}: expected {sorted(expected)} across forms, found {[sorted(f) for f in found]}")
        # Strings marked with N_() may reach a template's _(), which always applies %: a
        # translation must treat "%" exactly as the English does.
        if any(literal_percents(t) != literal_percents(forms(m.id)[0]) for t in forms(m.string)):
            problems.append(f"{m.id!r}: a literal % must be written as in the English (%% or not at all)")
        if is_formatted(m):
            names = {c.group("name") for s in forms(m.string) for c in CONVERSION.finditer(s) if c.group("name")}
            for text in forms(m.string):
                try:
                    text % {**dict.fromkeys(names, "x"), "num": 1}
                except (KeyError, ValueError, TypeError) as exc:
                    problems.append(f"{m.id!r}: translation cannot be formatted ({exc!r}); write a literal % as %%")
    assert not problems, f"{lang}:\n" + "\n".join(problems)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalogue_covers_the_template(lang, pot_ids):
    ids = {m.id for m in messages(catalogue(lang))}
    missing = sorted(map(str, pot_ids - ids))
    stale = sorted(map(str, ids - pot_ids))
    assert not missing, f"{lang}: msgids of messages.pot missing from the catalogue ({UPDATE_HELP}): {missing}"
    assert not stale, f"{lang}: entries no longer in messages.pot ({UPDATE_HELP}): {stale}"


def extract_command(output: Path) -> list[str]:
    """The extraction command written in babel.cfg's header, run with this Python and writing to ``output``."""
    lines = [line.lstrip("# ").strip() for line in (ROOT / "babel.cfg").read_text(encoding="utf-8").splitlines()]
    commands = [line for line in lines if re.match(r"\S*pybabel extract ", line)]
    assert len(commands) == 1, "babel.cfg's header must hold exactly one `pybabel extract ...` command"
    args = shlex.split(commands[0])[2:]  # after "pybabel extract"
    if "-o" in args:
        args[args.index("-o") + 1] = str(output)
    else:
        args[-1:-1] = ["-o", str(output)]
    return [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", *args]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> list:
    """The messages the code holds today, extracted with babel.cfg's own command."""
    fresh = tmp_path_factory.mktemp("i18n") / "messages.pot"
    done = subprocess.run(extract_command(fresh), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = messages(read(fresh))
    assert found, "extraction found no messages: check babel.cfg"
    return found


def test_template_is_up_to_date_with_the_code(extracted, pot_ids):
    """Every message marked in the code is in messages.pot, so none ships untranslated."""
    missing = sorted({str(m.id) for m in extracted if m.id not in pot_ids})
    assert not missing, f"messages in the code but not in translations/messages.pot ({UPDATE_HELP}): {missing}"


def test_every_trans_tag_is_extracted(extracted):
    """{% trans %} blocks are found although `-k gettext:2` is given (see the keywords in babel.cfg)."""
    locations = {location for m in extracted for location in m.locations}
    tags = [
        (path.relative_to(ROOT).as_posix(), number)
        for path in sorted((ROOT / "templates").rglob("*.html"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\{%-?\s*trans\b", line)
    ]
    assert [tag for tag in tags if tag not in locations] == [], "{% trans %} blocks not extracted: check babel.cfg"
    assert any(path.startswith("templates/") for path, _ in locations), "nothing extracted from templates/"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_app_loads_the_catalogue(lang):
    """relais.i18n compiles the .po in memory; a translated string comes back translated."""
    sys.path.insert(0, str(ROOT))
    try:
        from relais import i18n
    finally:
        sys.path.remove(str(ROOT))
    translated = [m for m in messages(catalogue(lang)) if not m.pluralizable and m.string != m.id]
    assert translated
    sample = translated[0]
    assert i18n.translations(lang).gettext(sample.id) == sample.string


@pytest.mark.parametrize("lang, sizes", [
    ("en", ["1\xa0B", "1,023\xa0B", "1.5\xa0KB", "20\xa0GB"]),
    ("fr", ["1\xa0o", "1\u202f023\xa0o", "1,5\xa0Ko", "20\xa0Go"]),
    ("nl", ["1\xa0B", "1.023\xa0B", "1,5\xa0KB", "20\xa0GB"]),
    ("de", ["1\xa0B", "1.023\xa0B", "1,5\xa0KB", "20\xa0GB"]),
])
def test_sizes_in_each_language(lang, sizes):
    """Counted in 1,024s like the size setting (20,480 MiB shows as 20 GB), in the language's units."""
    from views.common import human_size

    assert [human_size(lang, n) for n in (1, 1023, 1536, 20480 * 1024 * 1024)] == sizes
    assert human_size(lang, 1024 * 1024 - 1) == human_size(lang, 1024 * 1024)  # rounds up to the next unit


def test_a_size_in_a_refusal_is_shown_in_the_persons_units(app, client, auth, staff):
    from relais import files, settings

    auth.login()
    app.state.db.write(lambda db: settings.set_value(db, files.audit.SYSTEM, None, "max_file_size_mib", 2))
    client.cookies.set("__Host-relais_lang", "fr")
    response = client.post("/tus/", headers={
        "Tus-Resumable": "1.0.0", "x-csrftoken": client.cookies.get("__Host-csrf"), "Upload-Length": str(3 * 1024 * 1024),
        "Upload-Metadata": "filename Z3Jvcy5jc3Y="})
    assert response.status_code == 413 and response.text == "Le fichier dépasse la limite de 2\xa0Mo."
