"""My files in Chromium: drop two files on the zone, watch them upload, find them listed, download one."""

from __future__ import annotations

import hashlib
import re

from playwright.sync_api import expect

from relais import settings
from tests.browser.conftest import check_accessibility, login

DROP = """([files]) => {
  const transfer = new DataTransfer();
  for (const [name, text] of files) transfer.items.add(new File([text], name, {type: "text/csv"}));
  const zone = document.getElementById("drop-zone");
  zone.dispatchEvent(new DragEvent("dragenter", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""


def test_drop_two_files_see_progress_then_download_one(page, server, tmp_path):
    first = "id;value\n" + "".join(f"{i};{i * i}\n" for i in range(300_000))  # ~4 MB: several progress events
    second = "name,comment\nÉlodie,ça va\n"
    login(page, server)
    page.goto(server.url + "/files")
    expect(page.get_by_role("heading", level=1)).to_have_text("My files")
    expect(page.locator("#upload-form")).to_be_hidden()  # the script took over from the plain form
    check_accessibility(page)

    patches = []
    page.on("request", lambda r: "/tus/" in r.url and r.method == "PATCH" and patches.append(r.headers["upload-offset"]))
    page.evaluate(DROP, [[["measurements.csv", first], ["remarks é.csv", second]]])
    transfers = page.locator("#transfers li")
    expect(transfers).to_have_count(2)
    for i in range(2):
        expect(transfers.nth(i).locator(".status")).to_have_text("Uploaded", timeout=30_000)
    assert patches == ["0", "0"]  # each file whole, in one request
    assert page.locator("#transfers progress").evaluate_all("bars => bars.map(b => b.value / b.max)") == [1, 1]

    table = page.locator("#file-list table")
    expect(table.get_by_role("cell", name="measurements.csv", exact=True)).to_be_visible()
    expect(table.get_by_role("cell", name="remarks é.csv", exact=True)).to_be_visible()
    expect(table.get_by_text(hashlib.sha256(first.encode()).hexdigest())).to_be_visible()
    check_accessibility(page)

    with page.expect_download() as download:
        table.get_by_role("link", name="Download measurements.csv").click()
    assert download.value.suggested_filename == "measurements.csv"
    assert open(download.value.path(), "rb").read() == first.encode()


def test_an_upload_cut_off_resumes_after_a_refresh(page, server):
    """The same file added again after a refresh continues the upload it began (no new creation)."""
    drop_one = """() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(["a,b\\n".repeat(500000)], "resumed.csv", {type: "text/csv", lastModified: 1700000000000}));
      document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }"""
    login(page, server)
    page.goto(server.url + "/files")
    seen = []
    page.on("request", lambda r: "/tus/" in r.url and seen.append(r.method))
    page.route("**/tus/*", lambda route: route.abort() if route.request.method == "PATCH" else route.continue_())
    page.evaluate(drop_one)
    page.wait_for_function("() => document.querySelector('#transfers li') !== null")
    page.wait_for_timeout(500)  # the creation went through, the data did not
    assert "POST" in seen and "PATCH" in seen
    page.unroute("**/tus/*")
    page.reload()
    page.evaluate(drop_one)
    expect(page.locator("#transfers li .status")).to_have_text("Uploaded", timeout=30_000)
    assert seen.count("POST") == 1  # resumed the upload stored in localStorage, not a new one
    expect(page.locator("#file-list").get_by_role("cell", name="resumed.csv", exact=True)).to_have_count(1)


def test_in_french_the_uploader_speaks_french_and_counts_in_ko(page, server):
    """A refused file shows the server's reason in the person's language; sizes use its units."""
    login(page, server)
    page.goto(server.url + "/files")
    page.get_by_role("link", name="Français").click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    page.evaluate("""() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(["MZ\\x90\\x00binary"], "outil.exe"));
      document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""")
    expect(page.locator("#transfers li .status")).to_contain_text("Échec", timeout=10_000)
    expect(page.locator("#transfers li .status")).to_contain_text("Ce type de fichier n'est pas accepté")
    gib = settings.SETTINGS["max_file_size_mib"].default // 1024  # the setting is in MiB: 51,200 is "50 Go"
    expect(page.locator(".help").first).to_contain_text(f"Taille maximale par fichier : {gib}\xa0Go.")


def test_many_files_upload_three_at_a_time(page, server):
    """Five files dropped at once: three upload while the others wait, and all five arrive."""
    page.add_init_script("""(() => {
      window.tusActive = 0; window.tusMostActive = 0;
      const open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
      XMLHttpRequest.prototype.open = function (method, url) { this.isTus = String(url).includes("/tus/") && method !== "HEAD"; return open.apply(this, arguments); };
      XMLHttpRequest.prototype.send = function () {
        if (this.isTus) {
          window.tusActive += 1; window.tusMostActive = Math.max(window.tusMostActive, window.tusActive);
          // readyState 4 comes before "load", on which tus-js-client reports success and the next upload starts.
          this.addEventListener("readystatechange", () => { if (this.readyState === 4) window.tusActive -= 1; });
        }
        return send.apply(this, arguments);
      };
    })()""")
    login(page, server)
    page.goto(server.url + "/files")
    files = [[f"batch-{i}.csv", "id;value\n" + f"{i};1\n" * 200_000] for i in range(5)]
    page.evaluate(DROP, [files])
    statuses = page.locator("#transfers li .status")
    expect(statuses).to_have_count(5)
    for i in range(5):
        expect(statuses.nth(i)).to_have_text("Uploaded", timeout=30_000)
    assert page.evaluate("window.tusMostActive") == 3
    for name, _ in files:
        expect(page.locator("#file-list").get_by_role("cell", name=name, exact=True)).to_be_visible()


def test_an_upload_stopped_halfway_sends_only_the_rest(page, server):
    """An upload whose first half reached the server (another tab, before a crash...) is resumed
    by the uploader from the server's offset: one more request, carrying the second half only."""
    login(page, server)
    page.goto(server.url + "/files")
    make_file = """() => new File(["x;y\\n".repeat(600000)], "halves.csv", {type: "text/csv", lastModified: 1700000000000})"""
    size = page.evaluate(f"() => ({make_file})().size")
    half = size // 2
    # tus-js-client itself sends the first half and remembers the upload, as the uploader would.
    page.evaluate(f"""() => new Promise((done, failed) => {{
      const upload = new tus.Upload(({make_file})(), {{
        endpoint: "/tus/", chunkSize: {half}, metadata: {{filename: "halves.csv", filetype: "text/csv"}},
        headers: {{"x-csrftoken": document.getElementById("uploader").dataset.csrf}},
        onChunkComplete: () => {{ upload.abort().then(done); }}, onError: failed}});
      upload.start();
    }})""")
    page.reload()
    patches = []
    page.on("request", lambda r: "/tus/" in r.url and r.method == "PATCH" and patches.append(r.headers["upload-offset"]))
    page.evaluate(f"""() => {{
      const transfer = new DataTransfer();
      transfer.items.add(({make_file})());
      document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {{dataTransfer: transfer, bubbles: true, cancelable: true}}));
    }}""")
    expect(page.locator("#transfers li .status")).to_have_text("Uploaded", timeout=30_000)
    assert patches == [str(half)]
    content = ("x;y\n" * 600000).encode()
    expect(page.locator("#file-list").get_by_text(hashlib.sha256(content).hexdigest())).to_be_visible()


def test_a_refused_file_offers_no_retry_and_milestones_are_announced(page, server):
    login(page, server)
    page.goto(server.url + "/files")
    assert page.locator("#transfers").get_attribute("aria-live") is None  # the status line is not read out
    page.evaluate("""() => {
      window.news = [];
      new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => window.news.push(n.textContent))))
        .observe(document.getElementById("transfer-news"), {childList: true});
    }""")
    page.evaluate(DROP, [[["fine.csv", "id;value\n" + "1;2\n" * 200_000], ["outil.exe", "MZ\x90\x00binary"]]])
    refused = page.locator("#transfers li").filter(has_text="outil.exe")
    expect(refused.locator(".status")).to_contain_text("Failed", timeout=30_000)
    expect(refused.get_by_role("button", name="Remove outil.exe")).to_be_visible()
    expect(refused.get_by_role("button", name=re.compile("Retry"))).to_have_count(0)
    fine = page.locator("#transfers li").filter(has_text="fine.csv")
    expect(fine.locator(".status")).to_have_text("Uploaded", timeout=30_000)
    news = page.evaluate("window.news")
    assert "fine.csv: Upload started" in news and "fine.csv: Uploaded" in news
    assert any(line.startswith("outil.exe: Failed") for line in news)
    assert not any("/s" in line for line in news)  # never the speed


def test_a_network_error_offers_retry(page, server):
    login(page, server)
    page.goto(server.url + "/files")
    # No automatic retries (the uploader's own take two minutes): straight to the error.
    page.evaluate("""() => {
      const Upload = window.tus.Upload;
      window.tus.Upload = function (file, options) { return new Upload(file, {...options, retryDelays: []}); };
    }""")
    page.route("**/tus/", lambda route: route.abort())
    page.evaluate("""() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(["a;b\\n1;2\\n"], "offline.csv", {type: "text/csv"}));
      document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""")
    item = page.locator("#transfers li").filter(has_text="offline.csv")
    expect(item.locator(".status")).to_contain_text("could not be reached")
    expect(item.get_by_role("button", name="Retry offline.csv")).to_be_visible()
    expect(item.get_by_role("button", name="Remove offline.csv")).to_be_visible()


def contrast(rgb_a: tuple[int, int, int], rgb_b: tuple[int, int, int]) -> float:
    def luminance(rgb):
        channels = [c / 255 for c in rgb]
        channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]

    light, dark = sorted([luminance(rgb_a), luminance(rgb_b)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_focus_ring_has_3_to_1_contrast_on_the_page_and_the_header(page, server):
    login(page, server)
    page.goto(server.url + "/files")
    page.keyboard.press("Tab")  # the skip link, on white
    page.keyboard.press("Tab")  # "Relais", in the header
    ring = page.evaluate("""() => {
      const el = document.activeElement, style = getComputedStyle(el);
      return {outline: style.outlineColor, width: style.outlineWidth, style: style.outlineStyle,
              header: getComputedStyle(document.querySelector(".site-header")).backgroundColor};
    }""")
    def rgb(css: str) -> tuple[int, int, int]:
        return tuple(int(v) for v in re.findall(r"\d+", css)[:3])
    assert ring["style"] == "solid" and ring["width"] == "3px"
    assert contrast(rgb(ring["outline"]), (255, 255, 255)) >= 3
    assert contrast(rgb(ring["outline"]), rgb(ring["header"])) >= 3


def test_at_320_px_nothing_overflows_sideways_in_any_language(browser, server):
    context = browser.new_context(locale="fr-BE", viewport={"width": 320, "height": 640})
    page = context.new_page()
    try:
        login_fr = server.url + "/login"
        page.goto(login_fr)
        page.locator("#email").fill("admin@registry.example")
        page.locator("#password").fill("violet tugboat marmalade")
        page.locator("form button[type=submit]").last.click()
        page.wait_for_url(re.compile(r"/$|/shares|/files"))
        for code in ("fr", "nl", "de", "en"):
            for path in ("/files", "/shares/new", "/admin/users"):
                page.goto(f"{server.url}/language/{code}?next={path}")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 320, (code, path, width)
        page.goto(f"{server.url}/language/fr?next=/files")
        logout = page.get_by_role("button", name="Se déconnecter")
        box = logout.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 320
    finally:
        context.close()
