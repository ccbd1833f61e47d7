"""The dashboard's pages without a browser: who may see them, the session cookie's life
(log in, revoke, log out), and what the HTML refers to (this server only)."""

from __future__ import annotations

import re
import uuid
from html import unescape

import pytest

from core.tokens import USER, TokenStore, new_token
from tests.conftest import OWNER, TOKENS
from tests.service.test_api import WAITING


def session_client(app, token: str):
    """A browser-like client: it logged in with the token, then holds only the cookie."""
    client = app.test_client()
    resp = client.post("/v1/session", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201
    assert "HttpOnly" in resp.headers["Set-Cookie"] and token not in resp.headers["Set-Cookie"]
    return client, resp.get_json()["csrf_token"]


def test_pages_without_a_session_send_the_browser_to_the_login_page(anonymous):
    for path, target in [("/", "/login?next=/"), ("/jobs/" + "a" * 32, "/login?next=/jobs/" + "a" * 32),
                         ("/compare?jobs=x", "/login?next=/compare?jobs%3Dx")]:
        resp = anonymous.get(path)
        assert resp.status_code == 302 and resp.headers["Location"] == target
    login = anonymous.get("/login?next=/jobs/abc")
    assert login.status_code == 200 and login.mimetype == "text/html"
    assert 'data-next="/jobs/abc"' in login.get_data(as_text=True)
    # the API itself still answers a JSON 401
    assert anonymous.get("/v1/jobs").status_code == 401


@pytest.mark.parametrize("target", ["//elsewhere.example/x", "https://elsewhere.example/", "/\\elsewhere.example",
                                    "/%09/evil.com", "/%0a/evil.com", "/%0d/evil.com", "/%20/evil.com", "//evil.com",
                                    "/%5Cevil.com", "https://evil.com", "/%7f/evil.com"])
def test_the_login_page_only_returns_to_this_site(anonymous, target):
    """A tab, newline or space after the first slash is dropped by browsers: ``/%09/host`` is ``//host``."""
    html = anonymous.get("/login?next=" + target).get_data(as_text=True)
    assert 'data-next="/"' in html


def test_a_session_shows_the_owners_jobs_with_its_csrf_token_and_only_local_assets(app, client):
    job = client.post("/v1/jobs", json=WAITING).get_json()
    browser, csrf = session_client(app, TOKENS[OWNER])
    resp = browser.get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and f'<meta name="csrf-token" content="{csrf}">' in html
    assert f'data-job-id="{job["id"]}"' in html and "data-stream-cursor=" in html
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    for page in ("/", f"/jobs/{job['id']}", "/submit", "/compare", "/login"):
        html = browser.get(page).get_data(as_text=True)
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), (page, assets)
        assert "<script>" not in html  # no inline script: the CSP allows none
    for asset in set(re.findall(r'(?:src|href)="(/static/[^"]+)"', browser.get("/").get_data(as_text=True))):
        assert browser.get(asset).status_code == 200, asset


def test_the_submit_page_starts_from_an_example(app):
    browser, _ = session_client(app, TOKENS[OWNER])
    html = unescape(browser.get("/submit?example=deep-sigmoid-digits").get_data(as_text=True))
    assert '"activation": "sigmoid"' in html and 'value="digits-relu"' in html


def test_another_owners_job_page_does_not_exist_and_filters_are_checked(app, client):
    job = client.post("/v1/jobs", json=WAITING).get_json()
    store = TokenStore(app.extensions["trainrx"].store.engine)
    owner, token = f"pages-{uuid.uuid4().hex[:8]}", new_token()
    store.create(owner, USER, label="pages", token=token)
    browser, _ = session_client(app, token)
    resp = browser.get(f"/jobs/{job['id']}")
    assert resp.status_code == 404 and resp.mimetype == "text/html" and "No job with id" in resp.get_data(as_text=True)
    assert job["id"] not in browser.get("/").get_data(as_text=True)
    assert browser.get("/?status=exploded").status_code == 400
    assert browser.get("/?cursor=not-a-cursor").status_code == 400
    assert browser.get("/compare?metric=vibes").status_code == 400


def test_revoking_the_token_ends_its_sessions_and_logging_out_needs_the_csrf_token(app):
    store = TokenStore(app.extensions["trainrx"].store.engine)
    owner, token = f"pages-{uuid.uuid4().hex[:8]}", new_token()
    record = store.create(owner, USER, label="pages", token=token)[0]
    browser, csrf = session_client(app, token)
    assert browser.get("/").status_code == 200
    assert browser.delete("/v1/session").status_code == 403  # no X-CSRF-Token: refused
    out = browser.delete("/v1/session", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204 and "trainrx_session=;" in out.headers["Set-Cookie"]
    assert browser.get("/").status_code == 302

    browser, _ = session_client(app, token)
    assert browser.get("/").status_code == 200
    assert store.revoke(record.id, owner)
    assert browser.get("/").status_code == 302  # checked on every request
    assert browser.get("/v1/jobs").status_code == 401


def test_the_job_list_pages_and_filters_by_status_and_verdict(app):
    from sqlalchemy import update

    from core.db import jobs

    store = TokenStore(app.extensions["trainrx"].store.engine)
    owner, token = f"pages-{uuid.uuid4().hex[:8]}", new_token()
    store.create(owner, USER, label="pages", token=token)
    browser, csrf = session_client(app, token)
    made = [browser.post("/v1/jobs", json={**WAITING, "name": f"job-{i}"}, headers={"X-CSRF-Token": csrf})
            .get_json()["id"] for i in range(23)]
    overfit = made[3], made[21]
    with app.extensions["trainrx"].store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id.in_(overfit)).values(diagnosis={"verdict": "overfitting",
                                                                                  "findings": []}))
    rows = lambda html: re.findall(r'<tr data-job-id="([0-9a-f]{32})"', html)  # noqa: E731

    first = browser.get("/").get_data(as_text=True)
    assert rows(first) == made[::-1][:20]  # newest first
    following = unescape(re.search(r'href="([^"]+)" id="next-page"', first).group(1))
    second = browser.get(following).get_data(as_text=True)
    assert rows(second) == made[::-1][20:] and 'id="next-page"' not in second
    assert rows(browser.get("/?verdict=overfitting").get_data(as_text=True)) == [made[21], made[3]]
    empty = browser.get("/?status=running&verdict=healthy").get_data(as_text=True)
    assert rows(empty) == [] and "No jobs match these filters" in empty


def test_a_regression_job_shows_r2_and_compare_offers_the_regression_metrics(app, client):
    regression = {"dataset": {"name": "friedman1"}, "architecture": {"hidden_layers": [4]}, "epochs": 2,
                  "device": "cuda"}  # waits in its queue: the page shows the live charts
    made = client.post("/v1/jobs", json=regression)
    assert made.status_code == 202, made.get_data(as_text=True)
    browser, _ = session_client(app, TOKENS[OWNER])
    html = browser.get(f"/jobs/{made.get_json()['id']}").get_data(as_text=True)
    assert 'data-keys="train_r2,val_r2" data-title="R²"' in html and "train_accuracy" not in html
    classification = browser.get(f"/jobs/{client.post('/v1/jobs', json=WAITING).get_json()['id']}")
    assert 'data-keys="train_accuracy,val_accuracy"' in classification.get_data(as_text=True)
    compare = browser.get("/compare", query_string={"metric": "val_r2"})
    assert compare.status_code == 200 and '<option value="val_r2" selected>' in compare.get_data(as_text=True)
