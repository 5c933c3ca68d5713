"""Drives the console (`/ui`) in Debian's chromium through Selenium.

    console_test.py BASE_URL KEY USER SESSION DIR

Loads the page, connects with KEY (a key scoped to USER), writes DIR/ready
and waits for DIR/published (the test publishes events for USER then);
checks that the counters change, finds USER's sessions, opens SESSION's
timeline and steps back with as_of. Saves a screenshot of each step in DIR
(01-connected.png …) and prints what it saw as JSON.
"""

import json
import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

base, key, user, session, out = sys.argv[1:6]
opts = Options()
opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
          "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync",
          "--window-size=1300,1000", f"--user-data-dir={tempfile.mkdtemp()}"]:
    opts.add_argument(a)
driver = webdriver.Chrome(
    service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)
wait = WebDriverWait(driver, 30)
seen = {}
try:
    driver.get(base + "/ui")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "connect").click()
    wait.until(lambda d: d.find_element(By.ID, "feed-status").text == "live")
    wait.until(lambda d: d.find_element(By.ID, "active").text not in ("", "–"))
    seen["active_before"] = int(driver.find_element(By.ID, "active").text)
    driver.save_screenshot(os.path.join(out, "01-connected.png"))
    open(os.path.join(out, "ready"), "w").close()
    while not os.path.exists(os.path.join(out, "published")):
        time.sleep(0.1)
    # The feed brings the new sessions: the counters follow.
    wait.until(lambda d: int(d.find_element(By.ID, "active").text) > seen["active_before"])
    seen["active_after"] = int(driver.find_element(By.ID, "active").text)
    seen["ended_last_hour"] = int(driver.find_element(By.ID, "ended").text)
    seen["feed_log"] = len(driver.find_elements(By.CSS_SELECTOR, "#feed-log li"))
    seen["chart_points"] = len(driver.find_elements(By.CSS_SELECTOR, "#chart .chart-point"))
    driver.save_screenshot(os.path.join(out, "02-counters-changed.png"))

    Select(driver.find_element(By.ID, "search-kind")).select_by_value("user_id")
    driver.find_element(By.ID, "search").send_keys(user)
    driver.find_element(By.ID, "search-go").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.result[data-id="{session}"]'))
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.result")
    seen["results"] = [r.get_attribute("data-id") for r in rows]
    seen["result_users"] = sorted({r.find_elements(By.TAG_NAME, "td")[1].text for r in rows})
    driver.save_screenshot(os.path.join(out, "03-found-by-user.png"))

    driver.find_element(By.CSS_SELECTOR, f'tr.result[data-id="{session}"]').click()
    wait.until(lambda d: d.find_element(By.ID, "timeline-id").get_attribute("textContent") == session
               and d.find_elements(By.CSS_SELECTOR, "li.step"))
    steps = driver.find_elements(By.CSS_SELECTOR, "li.step")
    seen["steps"] = [s.text for s in steps]
    seen["now"] = json.loads(driver.find_element(By.ID, "asof").text)
    driver.save_screenshot(os.path.join(out, "04-timeline.png"))

    steps[0].click()
    wait.until(lambda d: d.find_element(By.ID, "asof").text.startswith("as of"))
    text = driver.find_element(By.ID, "asof").text
    seen["as_of_input"] = driver.find_element(By.ID, "asof-input").get_attribute("value")
    seen["as_of"] = json.loads(text.split("\n", 1)[1])
    driver.save_screenshot(os.path.join(out, "05-as-of-first-event.png"))
finally:
    driver.quit()
print(json.dumps(seen))
