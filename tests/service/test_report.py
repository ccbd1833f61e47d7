"""GET /v1/jobs/{id}/report on a real finished job: self-contained (no URL to another
host), readable without JavaScript, everything user-written escaped, and a resubmit
button that works with the browser session and its CSRF header."""

from __future__ import annotations

import base64
import io
import json
import re
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urlparse

from PIL import Image

from core.plots import spec as P
from core.spec import merge_patch
from service.report_api import REPORT_SIZE, number
from tests.conftest import HOSTILE_NAME, OWNER, TOKENS
from tests.service.test_api import assert_error_shape


class Page(HTMLParser):
    """The tags and attributes of a page, and its text outside scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if not self._in_script:
            self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


def report(client, job_id: str):
    response = client.get(f"/v1/jobs/{job_id}/report")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    return response, response.get_data(as_text=True)


def test_the_report_is_self_contained_with_every_plot_inlined(client, plotted_job):
    response, html = report(client, plotted_job["id"])
    page = Page(html)
    for tag, attrs in page.tags:
        for key in ("src", "href", "action", "data"):
            value = attrs.get(key) or ""
            if value.startswith("data:") or value.startswith("#"):
                continue
            host = urlparse(value).netloc
            assert host in ("", "localhost"), (tag, key, value)  # only this API (the test client's host)
    assert page.all("link") == [] and all(not a.get("src") for a in page.all("script"))
    images = page.all("img")
    assert len(images) == len(P.PLOT_NAMES)
    for attrs in images:
        header, data = attrs["src"].split(",", 1)
        assert header == "data:image/png;base64"
        assert Image.open(io.BytesIO(base64.b64decode(data))).size == (REPORT_SIZE.width, REPORT_SIZE.height)
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_the_report_reads_without_javascript(client, plotted_job):
    job = client.get(f"/v1/jobs/{plotted_job['id']}").get_json()
    diagnosis = client.get(f"/v1/jobs/{job['id']}/diagnosis").get_json()
    assert diagnosis["findings"] and any(f["suggestions"] for f in diagnosis["findings"])
    _, html = report(client, job["id"])
    page = Page(html)
    text = " ".join(" ".join(page.text).split())
    assert job["status"] in text and f"{number(job['timings']['total_s'])} s" in text  # status and timings
    assert diagnosis["verdict"].replace("_", " ").capitalize() in text
    assert "Loss and accuracy per epoch" in text  # a classification job's score (R² for regression)
    for finding in diagnosis["findings"]:
        assert " ".join(finding["explanation"].split()) in text
        for suggestion in finding["suggestions"]:
            assert suggestion["why"] in text
    # Each patched request is on the page as JSON to copy, equal to what the resubmit would run.
    patched = [json.loads(unescape(area)) for area in re.findall(r'<textarea class="patched"[^>]*>(.*?)</textarea>',
                                                                 html, flags=re.S)]
    assert patched == [merge_patch(job["request"], s["patch"]) for f in diagnosis["findings"] for s in f["suggestions"]]
    submitted = re.search(r'<section id="request">.*?<pre>(.*?)</pre>', html, flags=re.S).group(1)
    assert json.loads(unescape(submitted)) == job["request"]
    hrefs = [a.get("href", "") for a in page.all("a")]
    assert any(h.endswith(f"/v1/jobs/{job['id']}/weights") for h in hrefs)
    # Buttons that need JavaScript are hidden until the script shows them.
    assert all("hidden" in b for b in page.all("button"))


def test_a_hostile_job_name_is_escaped_everywhere(client, plotted_job):
    _, html = report(client, plotted_job["id"])
    assert "<script>alert" not in html and 'src="http://evil.example' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    page = Page(html)
    assert len(page.all("script")) == 1 and page.all("img") and all(
        a["src"].startswith("data:") for a in page.all("img"))
    assert HOSTILE_NAME in "".join(page.text)  # shown as text, exactly as written


def test_the_resubmit_button_works_with_the_session_and_its_csrf_token(app, plotted_job):
    browser = app.test_client()
    session = browser.post("/v1/session", headers={"Authorization": f"Bearer {TOKENS[OWNER]}"})
    assert session.status_code in (200, 201), session.get_json()
    _, html = report(browser, plotted_job["id"])
    csrf = Page(html).all("meta")
    token = next(m["content"] for m in csrf if m.get("name") == "csrf-token")
    button = next(b for b in Page(html).all("button") if b.get("class") == "resubmit")
    url = re.search(r'fetch\("([^"]+)"', html).group(1)
    assert url == f"/v1/jobs/{plotted_job['id']}/resubmit"
    refused = browser.post(url, data=button["data-body"], content_type="application/json")
    assert refused.status_code == 403  # the cookie alone is not enough
    made = browser.post(url, data=button["data-body"], content_type="application/json",
                        headers={"X-CSRF-Token": token, "Idempotency-Key": "report-test"})
    assert made.status_code in (200, 202), made.get_json()
    assert made.get_json()["links"]["parent"].endswith(plotted_job["id"])
    browser.post(f"/v1/jobs/{made.get_json()['id']}/cancel", headers={"X-CSRF-Token": token})


def test_a_bearer_report_carries_no_csrf_token(client, plotted_job):
    _, html = report(client, plotted_job["id"])
    assert not [m for m in Page(html).all("meta") if m.get("name") == "csrf-token"]


def test_another_owners_job_has_no_report(other_client, plotted_job):
    assert_error_shape(other_client.get(f"/v1/jobs/{plotted_job['id']}/report"), 404)
