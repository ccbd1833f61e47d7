"""Identity and isolation: every /v1 endpoint needs a credential, and one owner
never sees another's resources (404, never 403)."""

from __future__ import annotations

import dataclasses
import re
import secrets
import time

import pytest

from core.tokens import TokenStore
from service.app import create_app
from service.auth import CSRF_HEADER, SESSION_COOKIE, TOKEN_CACHE_S, check_explicit_secret, load_or_create_secret
from tests.conftest import ADMIN_OWNER, OTHER_OWNER, OWNER, TOKENS, submit
from tests.sample_uploads import as_npz, blobs, uploaded
from tests.service.test_api import WAITING, assert_error_shape

IDS = {"job_id", "dataset_id", "token_id", "sweep_id"}
OTHER_PARTS = {"name": "curves"}  # the parts of a path that name no resource (a plot's name)


def v1_operations(app) -> list[tuple[str, str]]:
    """(method, rule) of every /v1 operation the app serves, read from its URL map."""
    ops = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            ops += [(method, rule.rule) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return ops


def concrete(rule: str, ids: dict[str, str]) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids[m.group(1)], rule)


@pytest.fixture()
def owned(client):
    """One of each resource, owned by OWNER: a queued job, a finished (cancelled) job, an upload, a token,
    a sweep (whose child waits like WAITING)."""
    x, y = blobs(rows_per_class=10)
    dataset = uploaded(client, as_npz(x, y))
    queued = submit(client, {**WAITING, "dataset": {"id": dataset["id"]}})
    finished = submit(client, WAITING)
    client.post(f"/v1/jobs/{finished['id']}/cancel")
    token = client.post("/v1/tokens", json={"label": "isolation"}).get_json()
    sweep = client.post("/v1/sweeps", json={"name": "isolation", "base": WAITING, "max_parallel": 1}).get_json()
    yield {"queued": queued["id"], "finished": finished["id"], "dataset_id": dataset["id"], "token_id": token["id"],
           "sweep_id": sweep["id"]}
    client.post(f"/v1/jobs/{queued['id']}/cancel")
    client.post(f"/v1/sweeps/{sweep['id']}/cancel")


def test_every_v1_operation_needs_a_credential(app, anonymous):
    operations = v1_operations(app)
    assert len(operations) >= 20
    for method, rule in operations:
        path = concrete(rule, {**OTHER_PARTS, **{name: "0" * 32 for name in IDS}})
        resp = anonymous.open(path, method=method, json={} if method in ("POST", "PUT", "PATCH") else None)
        body = assert_error_shape(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
        assert "credential" in body["message"], (method, path)


def test_health_and_the_openapi_document_need_none(anonymous):
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/healthz").status_code in (200, 503)


@pytest.mark.parametrize("header", ["Bearer trx_not-a-real-token-at-all-0000000000000000",
                                    "Basic dXNlcjpwYXNz", "Bearer", "Bearer " + "x" * 5000])
def test_a_wrong_credential_is_401(anonymous, header):
    resp = anonymous.get("/v1/jobs", headers={"Authorization": header})
    assert_error_shape(resp, 401)
    assert "error=" in resp.headers["WWW-Authenticate"]


def test_another_owner_gets_404_on_every_operation_that_names_a_resource(app, client, other_client, owned):
    checked = 0
    for method, rule in v1_operations(app):
        names = set(re.findall(r"<(?:\w+:)?(\w+)>", rule))
        if not names:
            continue
        for job in ("queued", "finished"):
            path = concrete(rule, {**OTHER_PARTS, "job_id": owned[job], "dataset_id": owned["dataset_id"],
                                   "token_id": owned["token_id"], "sweep_id": owned["sweep_id"]})
            body = {"patch": {"epochs": 2}} if rule.endswith("/resubmit") else None
            resp = other_client.open(path, method=method, json=body)
            assert_error_shape(resp, 404)
            checked += 1
    assert checked >= 2 * 12
    # ... and nothing happened to them
    assert client.get(f"/v1/jobs/{owned['queued']}").get_json()["status"] == "queued"
    assert client.get(f"/v1/jobs/{owned['finished']}").status_code == 200
    assert client.get(f"/v1/datasets/{owned['dataset_id']}").status_code == 200
    assert owned["token_id"] in [t["id"] for t in client.get("/v1/tokens").get_json()["items"]]
    assert client.get(f"/v1/sweeps/{owned['sweep_id']}").get_json()["status"] == "running"


def test_listings_show_only_your_own_and_admins_may_name_an_owner(client, other_client, admin_client, owned):
    mine = {j["id"] for j in client.get("/v1/jobs?limit=100").get_json()["items"]}
    assert {owned["queued"], owned["finished"]} <= mine
    assert all(j["owner"] == OWNER for j in client.get("/v1/jobs?limit=100").get_json()["items"])
    assert not {j["id"] for j in other_client.get("/v1/jobs?limit=100").get_json()["items"]} & mine
    assert_error_shape(other_client.get(f"/v1/jobs?owner={OWNER}"), 403)
    assert not {j["id"] for j in admin_client.get("/v1/jobs?limit=100").get_json()["items"]} & mine
    as_admin = {j["id"] for j in admin_client.get(f"/v1/jobs?owner={OWNER}&limit=100").get_json()["items"]}
    assert {owned["queued"], owned["finished"]} <= as_admin
    assert admin_client.get(f"/v1/jobs/{owned['queued']}").status_code == 200  # admins read any job by id


def test_an_upload_of_another_owner_cannot_be_trained_on(other_client, owned):
    resp = other_client.post("/v1/jobs", json={**WAITING, "dataset": {"id": owned["dataset_id"]}})
    body = assert_error_shape(resp, 422)
    assert "No uploaded dataset" in str(body["errors"]["dataset"])


def test_idempotency_keys_are_per_owner(client, other_client):
    key = {"Idempotency-Key": "per-owner-key"}
    first = client.post("/v1/jobs", json=WAITING, headers=key)
    theirs = other_client.post("/v1/jobs", json={**WAITING, "epochs": 2}, headers=key)
    assert first.status_code == 202 and theirs.status_code == 202
    assert first.get_json()["id"] != theirs.get_json()["id"]
    assert client.post("/v1/jobs", json=WAITING, headers=key).get_json()["id"] == first.get_json()["id"]
    for c, resp in ((client, first), (other_client, theirs)):
        c.post(f"/v1/jobs/{resp.get_json()['id']}/cancel")


def test_me_says_who_the_caller_is(client, admin_client):
    me = client.get("/v1/me").get_json()
    assert me["owner"] == OWNER and me["role"] == "user" and me["via"] == "bearer"
    assert "token" not in me["token"] and me["token"]["label"] == "tests"
    assert admin_client.get("/v1/me").get_json()["role"] == "admin"


def test_users_make_and_revoke_their_own_user_tokens_only(client, anonymous):
    made = client.post("/v1/tokens", json={"label": "ci", "expires_in_days": 30})
    assert made.status_code == 201
    token = made.get_json()
    assert token["owner"] == OWNER and token["role"] == "user" and token["token"].startswith("trx_")
    assert len(token["token"]) >= 4 + 43 and token["expires_at"]
    assert all("token" not in t for t in client.get("/v1/tokens").get_json()["items"])
    assert_error_shape(client.post("/v1/tokens", json={"owner": "someone-else"}), 403)
    assert_error_shape(client.post("/v1/tokens", json={"role": "admin"}), 403)
    assert_error_shape(client.post("/v1/tokens", json={"expires_in_days": 0}), 422)
    assert_error_shape(client.post("/v1/tokens", json={"owner": "no spaces"}), 422)
    new = {"Authorization": f"Bearer {token['token']}"}
    assert anonymous.get("/v1/me", headers=new).get_json()["owner"] == OWNER
    assert client.delete(f"/v1/tokens/{token['id']}").status_code == 204
    time.sleep(TOKEN_CACHE_S + 0.2)  # the documented bound on a cached look-up
    assert_error_shape(anonymous.get("/v1/me", headers=new), 401)
    assert_error_shape(client.delete(f"/v1/tokens/{token['id']}"), 404)  # revoked tokens are not listed


def test_admins_make_tokens_for_anyone_and_revoke_any(admin_client, anonymous):
    made = admin_client.post("/v1/tokens", json={"owner": "carol", "role": "admin", "label": "ops"}).get_json()
    assert made["owner"] == "carol" and made["role"] == "admin"
    assert anonymous.get("/v1/me", headers={"Authorization": f"Bearer {made['token']}"}).get_json()["owner"] == "carol"
    assert made["id"] in [t["id"] for t in admin_client.get("/v1/tokens?owner=carol").get_json()["items"]]
    assert admin_client.delete(f"/v1/tokens/{made['id']}").status_code == 204


def test_an_expired_token_is_401(app, anonymous):
    store = TokenStore(app.extensions["trainrx"].store.engine)
    _, token = store.create(OWNER, expires_in_days=0.2 / 86400)  # 0.2 s
    headers = {"Authorization": f"Bearer {token}"}
    time.sleep(0.3)
    body = assert_error_shape(anonymous.get("/v1/me", headers=headers), 401)
    assert "revoked or expired" in body["message"]


def test_a_session_cookie_resolves_to_the_same_owner_and_needs_csrf_for_unsafe_methods(app, owned):
    browser = app.test_client()
    store = TokenStore(app.extensions["trainrx"].store.engine)
    record, token = store.create(OWNER, label="browser")
    started = browser.post("/v1/session", headers={"Authorization": f"Bearer {token}"})
    assert started.status_code == 201
    csrf = started.get_json()["csrf_token"]
    cookie = started.headers["Set-Cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert token not in cookie  # the cookie carries the token's signed id, never the token
    me = browser.get("/v1/me").get_json()
    assert me["owner"] == OWNER and me["via"] == "session"
    assert browser.get(f"/v1/jobs/{owned['queued']}").status_code == 200
    assert_error_shape(browser.post(f"/v1/jobs/{owned['queued']}/cancel"), 403)  # no CSRF token
    assert_error_shape(browser.post(f"/v1/jobs/{owned['queued']}/cancel", headers={CSRF_HEADER: "x" * 64}), 403)
    assert browser.post(f"/v1/jobs/{owned['queued']}/cancel", headers={CSRF_HEADER: csrf}).status_code == 202
    store.revoke(record.id)  # sessions are checked against the token on every request
    assert_error_shape(browser.get("/v1/me"), 401)


def test_a_forged_session_cookie_is_401(app):
    browser = app.test_client()
    browser.set_cookie(SESSION_COOKIE, "forged.value.here")
    assert_error_shape(browser.get("/v1/me"), 401)


def test_tokens_are_stored_hashed(app):
    from sqlalchemy import select

    from core.db import tokens

    with app.extensions["trainrx"].store.engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(select(tokens))]
    flat = " ".join(str(v) for row in stored for v in row)
    for token in TOKENS.values():
        assert token not in flat
    assert {OWNER, OTHER_OWNER, ADMIN_OWNER} <= {row[2] for row in stored}


@pytest.mark.parametrize("secret, why", [("change-me-to-32-or-more-random-characters", "is the example.s placeholder"),
                                         ("change-me", "is the example.s placeholder"), ("s3cret", "has 6 characters"),
                                         ("x" * 31, "has 31 characters")])
def test_a_placeholder_or_short_secret_key_stops_the_api_at_start_up(settings, secret, why):
    with pytest.raises(ValueError, match=f"TRAINRX_SECRET_KEY {why}") as refused:
        create_app({"SETTINGS": dataclasses.replace(settings, secret_key=secret)})
    assert "32 or more characters" in str(refused.value)


def test_a_long_secret_key_or_the_generated_one_is_accepted(tmp_path):
    check_explicit_secret("")  # unset: the generated one under the data dir
    check_explicit_secret(secrets.token_urlsafe(32))
    generated = load_or_create_secret(tmp_path)
    check_explicit_secret(generated)
    assert load_or_create_secret(tmp_path) == generated
