"""The dashboard in a real browser: Debian's Chromium, headless, driven through its
chromium-driver (Selenium), against a real gunicorn, the session's real worker, Redis and
database. Skipped, saying why, where Chromium or chromium-driver is missing (.ci/run
installs them) or TRAINRX_BROWSER_TESTS=0 (the second CI pass).

One browser and one owner for the module; the tests run in order, as a person would:
log in, submit from the form and watch the job finish live (on its page, and in the job
list in a second tab), read its plots and report, get a field error, compare two jobs,
log out. Screenshots go to a temporary directory, and also to TRAINRX_SCREENSHOTS_DIR
when set (docs/img for docs/dashboard.md).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest

from core.db import make_engine
from core.tokens import USER, TokenStore, new_token
from tests.clients.conftest import start_api

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900"]

if os.environ.get("TRAINRX_BROWSER_TESTS") == "0":
    pytest.skip("browser tests: off in this run (TRAINRX_BROWSER_TESTS=0)", allow_module_level=True)
if not (CHROMIUM.exists() and DRIVER.exists()):
    pytest.skip("browser tests: /usr/bin/chromium or /usr/bin/chromedriver is missing "
                "(apt-get install chromium chromium-driver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="browser tests: selenium is not installed "
                                                             "(pip install -r requirements-dev.txt)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# Small, real trainings. The blocker keeps the one worker busy until the form's job is on screen,
# so that the page sees that job go from queued to running to succeeded, however fast the machine.
FORM_JOB = {"name": "from-the-form", "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [32, 32]},
            "epochs": 6}
OTHER_JOB = {"name": "moons-tanh", "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [8]},
             "activation": "tanh", "epochs": 4}
# A learning rate far too large: the diagnosis finds the explosion and suggests a smaller one.
EXPLODING = {"name": "huge-learning-rate", "dataset": {"name": "digits"}, "architecture": {"hidden_layers": [64, 64]},
             "optimizer": {"name": "sgd", "learning_rate": 50.0}, "epochs": 3}
BLOCKER = {"name": "blocker", "dataset": {"name": "moons"}, "architecture": {"hidden_layers": [64, 64]},
           "epochs": 1000}
WAIT_S = 180


@pytest.fixture(scope="module")
def api(settings, tmp_path_factory, worker):
    yield from start_api(settings, tmp_path_factory.mktemp("api-browser") / "gunicorn.log",
                         TRAINRX_EVENTS_KEEPALIVE_S="2")


@pytest.fixture(scope="module")
def token(settings) -> str:
    token = new_token()
    engine = make_engine(settings.database_url)
    TokenStore(engine).create(f"browser-{uuid.uuid4().hex[:8]}", USER, label="browser tests", token=token)
    engine.dispose()
    return token


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    directory = tmp_path_factory.mktemp("screenshots")
    extra = os.environ.get("TRAINRX_SCREENSHOTS_DIR")

    def shot(driver, name: str, height: int | None = None) -> Path:
        if height:
            driver.set_window_size(1280, height)
        path = directory / f"dashboard-{name}.png"
        assert driver.save_screenshot(str(path)), name
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        driver.set_window_size(1280, 900)
        return path

    return shot


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def jobs(api, token):
    """The API side of the story, as the same owner: another small job, then the blocker."""
    http = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    other = http.post("/v1/jobs", json=OTHER_JOB).json()
    exploding = http.post("/v1/jobs", json=EXPLODING).json()
    blocker = http.post("/v1/jobs", json=BLOCKER).json()
    state = {"http": http, "other": other["id"], "exploding": exploding["id"], "blocker": blocker["id"]}
    yield state
    for job_id in (blocker["id"], state.get("resubmitted")):
        if job_id:
            http.post(f"/v1/jobs/{job_id}/cancel")
    http.close()


def wait(driver, condition, what: str, timeout: float = WAIT_S):
    """Until ``condition`` holds; an element replaced by a live update meanwhile is looked up again."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(lambda d: condition(d), message=what)


def images_loaded(driver, selector: str) -> list[dict]:
    """Each image's natural size, once the browser has finished with it (0 x 0: it did not decode)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(i => ({src: i.src.slice(0, 80), "
        "complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))", selector)


def test_log_in_with_a_token(api, browser, token, shots):
    browser.get(f"{api}/")
    wait(browser, lambda d: d.find_elements(By.ID, "token"), "the login page")
    assert "/login" in browser.current_url
    shots(browser, "login")
    browser.find_element(By.ID, "token").send_keys("trx_not-a-real-token")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(browser, lambda d: d.find_element(By.ID, "login-error").is_displayed(), "the login error")
    assert "not valid" in browser.find_element(By.ID, "login-error").text
    browser.find_element(By.ID, "token").clear()
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait(browser, lambda d: d.find_elements(By.ID, "jobs"), "the jobs page")
    assert browser.get_cookie("trainrx_session")["httpOnly"] is True
    assert token not in json.dumps(browser.get_cookies())


def test_submit_from_the_form_and_watch_it_finish_live(api, browser, jobs, shots):
    http = jobs["http"]
    deadline = time.monotonic() + WAIT_S
    while http.get(f"/v1/jobs/{jobs['blocker']}").json()["status"] != "running":  # the worker is busy
        assert time.monotonic() < deadline, "the blocker did not start"
        time.sleep(0.2)

    browser.get(f"{api}/submit")
    editor = browser.find_element(By.ID, "request")
    browser.execute_script("arguments[0].value = arguments[1]", editor, json.dumps(FORM_JOB, indent=2))
    browser.find_element(By.ID, "submit").click()
    wait(browser, lambda d: d.find_elements(By.ID, "job"), "the new job's page")
    job_id = browser.find_element(By.ID, "job").get_attribute("data-job-id")
    jobs["form"] = job_id
    assert browser.find_element(By.ID, "job").get_attribute("data-status") == "queued"
    wait(browser, lambda d: d.find_element(By.ID, "live").text == "live", "the job's stream to open")

    form_tab = browser.current_window_handle  # the job list, in a second tab, follows GET /v1/events
    browser.switch_to.new_window("tab")
    browser.get(f"{api}/")
    row = f'tr[data-job-id="{job_id}"] [data-field="status"]'
    wait(browser, lambda d: d.find_element(By.ID, "live").text == "live", "the owner stream to open")
    assert browser.find_element(By.CSS_SELECTOR, row).text == "queued"

    assert http.post(f"/v1/jobs/{jobs['blocker']}/cancel").status_code == 202  # the form's job runs now
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, row).text in ("running", "succeeded"), "it to start")
    shots(browser, "jobs")
    list_tab = browser.current_window_handle
    browser.switch_to.window(form_tab)
    live_events = lambda d: d.execute_script("return window.trainrxLive.events")  # noqa: E731
    wait(browser, lambda d: any(e["type"] == "epoch" and e["epoch"] >= 3 for e in live_events(d)), "epochs")
    shots(browser, "job-live")
    wait(browser, lambda d: d.find_element(By.ID, "job").get_attribute("data-ended") == "true", "the end")
    browser.switch_to.window(list_tab)
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, row).text == "succeeded", "the list to show it done")
    browser.close()
    browser.switch_to.window(form_tab)
    seen = live_events(browser)
    assert [e["status"] for e in seen if e["type"] == "status"] == ["queued", "running", "succeeded"]
    assert [e["epoch"] for e in seen if e["type"] == "epoch"] == list(range(1, FORM_JOB["epochs"] + 1))
    assert seen[-1] == {"type": "end", "id": seen[-1]["id"], "status": "succeeded"}
    assert browser.find_element(By.ID, "chart-loss").get_attribute("data-points") == str(2 * FORM_JOB["epochs"])
    assert browser.find_element(By.CSS_SELECTOR, "#job-status .badge").text == "succeeded"


def report_plots(driver) -> list[dict]:
    """The plots of the report framed in the job page, once it has loaded."""
    wait(driver, lambda d: d.find_element(By.ID, "job").get_attribute("data-report") == "loaded", "the report")
    driver.switch_to.frame(driver.find_element(By.ID, "report-frame"))
    try:
        return images_loaded(driver, "img")
    finally:
        driver.switch_to.default_content()


def test_the_finished_job_shows_its_report_with_its_plots_loaded(api, browser, jobs, shots):
    for _ in ("framed when the stream ended", "framed by the page rendered for the finished job"):
        plots = report_plots(browser)
        assert len(plots) >= 4 and all(p["src"].startswith("data:image/png") for p in plots), plots
        assert all(p["complete"] and p["width"] > 300 and p["height"] > 200 for p in plots), plots
        browser.refresh()
    report_plots(browser)
    assert browser.find_element(By.ID, "delete").is_displayed()
    shots(browser, "job-finished", height=1800)


def test_a_findings_resubmit_button_in_the_report_starts_the_patched_job(api, browser, jobs):
    browser.get(f"{api}/jobs/{jobs['exploding']}")
    wait(browser, lambda d: d.find_element(By.ID, "job").get_attribute("data-finished") == "true", "its end",
         timeout=5)
    report_plots(browser)
    browser.switch_to.frame(browser.find_element(By.ID, "report-frame"))
    buttons = [b for b in browser.find_elements(By.CSS_SELECTOR, "button.resubmit") if b.is_displayed()]
    assert buttons, "the report offers no resubmit button"
    buttons[0].click()
    browser.switch_to.default_content()
    wait(browser, lambda d: d.find_element(By.ID, "job").get_attribute("data-job-id") != jobs["exploding"],
         "the new job's page")
    jobs["resubmitted"] = browser.find_element(By.ID, "job").get_attribute("data-job-id")
    child = jobs["http"].get(f"/v1/jobs/{jobs['resubmitted']}").json()
    assert child["links"]["parent"].endswith(jobs["exploding"])
    assert child["request"]["optimizer"]["learning_rate"] < EXPLODING["optimizer"]["learning_rate"]


def test_an_invalid_request_shows_the_servers_field_error(api, browser, shots):
    browser.get(f"{api}/submit")
    editor = browser.find_element(By.ID, "request")
    bad = {**FORM_JOB, "epochs": 0, "optimizer": {"name": "sgd", "learning_rate": -1}}
    browser.execute_script("arguments[0].value = arguments[1]", editor, json.dumps(bad, indent=2))
    browser.find_element(By.ID, "submit").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#field-errors li"), "the field errors")
    fields = {li.get_attribute("data-field"): li.text for li in browser.find_elements(By.CSS_SELECTOR,
                                                                                         "#field-errors li")}
    assert "epochs" in fields and "optimizer.learning_rate" in fields, fields
    assert browser.find_element(By.ID, "errors-message").text
    assert "/submit" in browser.current_url  # nothing was submitted
    shots(browser, "submit-error")


def test_compare_two_jobs(api, browser, jobs, shots):
    http = jobs["http"]
    deadline = time.monotonic() + WAIT_S
    while http.get(f"/v1/jobs/{jobs['other']}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    browser.get(f"{api}/")
    for job_id in (jobs["form"], jobs["other"]):
        browser.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"] input[name="pick"]').click()
    browser.find_element(By.ID, "compare-picked").click()
    wait(browser, lambda d: d.find_elements(By.ID, "compare-chart"), "the compare page")
    wait(browser, lambda d: d.find_element(By.ID, "compare-chart").get_attribute("data-series") == "2", "2 curves")
    assert int(browser.find_element(By.ID, "compare-chart").get_attribute("data-points")) == (
        FORM_JOB["epochs"] + OTHER_JOB["epochs"])
    wait(browser, lambda d: images_loaded(d, "#compare-png")[0]["complete"], "the server's overlay")
    png = images_loaded(browser, "#compare-png")[0]
    assert png["width"] > 100 and png["height"] > 100, png
    shots(browser, "compare", height=1300)


def test_log_out_then_a_job_url_asks_for_login(api, browser, jobs):
    browser.get(f"{api}/")
    browser.find_element(By.ID, "logout").click()
    wait(browser, lambda d: "/login" in d.current_url, "the login page after logging out")
    assert browser.get_cookie("trainrx_session") is None
    browser.get(f"{api}/jobs/{jobs['form']}")
    wait(browser, lambda d: d.find_elements(By.ID, "token"), "the login form")
    assert browser.current_url.endswith(f"/login?next=/jobs/{jobs['form']}")
