"""The cataloguer's page of `elsst-bench serve`, in headless Chromium driven by chromedriver (Debian's chromium and
chromium-driver, which CI installs; skipped only where they are absent): type a text, submit with the keyboard,
read the suggested concepts; nothing is fetched from anywhere but the service."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists() or not CHROMEDRIVER,
                                 reason="Debian's chromium and chromium-driver are absent (CI installs them)"),
              pytest.mark.slow]  # headless Chromium


@pytest.fixture(scope="module")
def served(zero_shot_served):
    return zero_shot_served


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def test_type_a_text_submit_with_the_keyboard_and_read_the_concepts(served, browser, small_dataset, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    th = small_dataset.thesaurus()
    cid = next(c for c in th.live_ids if th.depth(c) >= 3 and "de" in th[c].labels)
    german, english = th[cid].labels["de"].lower(), th[cid].labels["en"].lower()
    browser.get(served.base)
    _wait(browser, lambda d: len(Select(d.find_element(By.ID, "language")).options) == 2)
    assert [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "language")).options] == \
        ["elsst-de", "elsst-en"]
    # keyboard only: the text box has the focus; Tab to the language menu, pick German by typing, back, Ctrl+Enter
    active = browser.switch_to.active_element
    assert active.get_attribute("id") == "text"
    active.send_keys(th[cid].labels["de"])
    active.send_keys(Keys.TAB)
    Select(browser.switch_to.active_element).select_by_value("elsst-de")
    browser.find_element(By.ID, "text").send_keys(Keys.CONTROL, Keys.ENTER)
    _wait(browser, lambda d: d.find_element(By.ID, "results").is_displayed())
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert len(rows) == 10
    first = rows[0].find_elements(By.TAG_NAME, "td")
    assert first[0].text == "1" and german in first[1].text and f"en: {english}" in first[1].text
    parent = th[th.parents(cid)[0]].labels["de"].lower()
    assert first[2].text.endswith(parent)
    link = first[4].find_element(By.TAG_NAME, "a")
    assert link.get_attribute("href") == th[cid].uri
    assert "concepts suggested" in browser.find_element(By.ID, "status").text
    # the same answer as the API gives
    api = requests.post(served.base + "v1/projects/elsst-de/suggest", timeout=30,
                        data={"text": th[cid].labels["de"], "limit": 10}).json()["results"]
    shown = [r.find_element(By.TAG_NAME, "a").get_attribute("href") for r in rows]
    assert shown == [h["uri"] for h in api]
    # an empty text says so, on the page, without a request
    box = browser.find_element(By.ID, "text")
    box.clear()
    browser.find_element(By.ID, "submit").click()
    assert "Type a title" in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(tmp_path / "page.png"))
    # nothing was requested from any other host
    import json

    hosts = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.split(":", 1)[0] in ("http", "https", "ws", "wss"):  # not chrome:// (the browser's own pages)
                hosts.add(url.split("/")[2])
    assert hosts == {served.base.split("/")[2]}, hosts


def test_an_error_from_the_service_is_shown_on_the_page(served, browser):
    from selenium.webdriver.common.by import By

    browser.get(served.base)
    _wait(browser, lambda d: d.find_element(By.ID, "language").get_attribute("value"))
    # a page left open while the service was restarted with other languages asks for a project it no longer has
    browser.execute_script("const s = document.getElementById('language'); s.options[s.selectedIndex].value = 'elsst-fr'")
    browser.find_element(By.ID, "text").send_keys("families")
    browser.find_element(By.ID, "submit").click()
    _wait(browser, lambda d: "Project 'elsst-fr' not found" in d.find_element(By.ID, "status").text)
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
