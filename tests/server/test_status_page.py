#!/usr/bin/env python3
"""test_status_page.py: the status page (/ and /ui) in headless Chromium.

Starts `vkinfer serve` with two models (the generated default model and a
tiny one) and an API key, opens the page with Debian's chromium and
chromium-driver driven by Selenium (installed from PyPI into the build
folder at the first run; without PyPI the test FAILS), and checks: the page
asks for the key (a wrong one is refused and asked again), the key is kept
in sessionStorage and never put in the URL, then while requests run on both
models the displayed request count and tokens/s change, the memory bars
exist with each model's share on the CPU bar, both models' rows show their
state and breaker, and the events list the loads. Saves status.png (desktop
width) and status-375.png (a phone's 375 px, where the page must not scroll
sideways) in --out. Skips (77) when chromium or chromedriver is absent.
Usage: test_status_page.py --vkinfer PATH --gen vkinfer-gen --model default.gguf --pypi DIR --out DIR"""
import argparse, os, shutil, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check  # noqa: E402
import test_server  # noqa: E402

KEY = "page-test-key"


def install_selenium(dest):
    """Installs selenium into dest (once); exits 1 with pip's reason when it cannot."""
    if os.path.isdir(os.path.join(dest, "selenium")):
        return
    part = dest + ".part"
    shutil.rmtree(part, ignore_errors=True)
    env = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-input",
                        "--disable-pip-version-check", "--timeout", "30", "--retries", "2", "--target", part,
                        "selenium>=4.10,<5"], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-3000:])
        raise SystemExit("FAILED: pip could not install selenium from PyPI into %s (no network to PyPI?)" % part)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(part, dest)


def find_browser():
    chrome = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver")
                                              else None)
    return chrome, driver


def traffic(s, stop, errors):
    i = 0
    while not stop.is_set():
        model = "a" if i % 2 == 0 else "b"
        st, _, text, _ = s.request("POST", "/v1/completions", {"model": model, "prompt": "Once upon a time",
                                                                "max_tokens": 12, "temperature": 0},
                                   headers={"Authorization": "Bearer " + KEY})
        if st != 200:
            errors.append("%s: %s %s" % (model, st, text[:200]))
        i += 1


def wait_for(fn, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # noqa: BLE001 (an element mid-redraw)
            pass
        time.sleep(0.2)
    check(False, "timed out after %.0f s waiting for %s" % (timeout, what))
    return None


def shot(drv, path, width):
    """A full-page screenshot at `width` CSS pixels."""
    drv.set_window_size(width, 900)
    time.sleep(0.3)
    h = drv.execute_script("return document.documentElement.scrollHeight")
    drv.set_window_size(width, min(max(h + 140, 600), 4000))
    time.sleep(0.5)
    check(drv.save_screenshot(path), "screenshot %s" % path)


def run(a, tmp, webdriver, By):
    chrome, driver_path = find_browser()
    cfg = os.path.join(tmp, "page.yaml")
    with open(cfg, "w") as f:
        f.write("server: {api_key_env: VKI_PAGE_KEY}\ndevice: {prefer: cpu}\nmodels:\n"
                "  - {id: a, path: %s}\n  - {id: b, path: %s}\n" % (a.model, a.tiny))
    s = Server(a.vkinfer, ["--config", cfg], env=dict(os.environ, VKI_PAGE_KEY=KEY))
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--force-device-scale-factor=1", "--user-data-dir=" + os.path.join(tmp, "prof")):
        opts.add_argument(arg)
    drv = None
    stop, errors, th = threading.Event(), [], []
    try:
        s.wait_ready()
        drv = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver_path))
        drv.set_page_load_timeout(30)
        base = "http://%s:%d" % (s.host, s.port)
        drv.get(base + "/ui")
        login = wait_for(lambda: drv.find_element(By.ID, "login").is_displayed(), 10, "the key form")
        check(login and not drv.find_element(By.ID, "main").is_displayed(), "the page asks for the key first")
        # a wrong key is refused and asked for again
        drv.find_element(By.ID, "key").send_keys("wrong-key")
        drv.find_element(By.ID, "key-submit").click()
        wait_for(lambda: "refused" in drv.find_element(By.ID, "login-msg").text, 10, "the refusal")
        check(drv.find_element(By.ID, "login").is_displayed(), "still asking after a wrong key")
        drv.find_element(By.ID, "key").send_keys(KEY)
        drv.find_element(By.ID, "key-submit").click()
        wait_for(lambda: drv.find_element(By.ID, "main").is_displayed(), 10, "the status after the key")
        check(KEY not in drv.current_url, "the key is not in the URL (%s)" % drv.current_url)
        check(drv.execute_script("return sessionStorage.getItem('vkinfer.apiKey')") == KEY, "key in sessionStorage")
        check(drv.execute_script("return localStorage.length") == 0, "nothing in localStorage")
        req0 = wait_for(lambda: drv.find_element(By.ID, "requests-total").text.strip() not in ("", "–") and
                        drv.find_element(By.ID, "requests-total").text, 10, "the request count")
        print("requests shown before traffic: %s" % req0)

        th = [threading.Thread(target=traffic, args=(s, stop, errors)) for _ in range(3)]
        for t in th:
            t.start()
        changed = wait_for(lambda: drv.find_element(By.ID, "requests-total").text != req0, 20,
                           "the request count to change")
        check(changed, "the request count changed from %s" % req0)
        tps = wait_for(lambda: float(drv.find_element(By.ID, "tokens-per-s").text) > 0, 20, "tokens/s > 0")
        check(tps, "tokens/s shown above 0")
        p50 = wait_for(lambda: drv.find_element(By.ID, "p50").text.endswith("ms") or
                       drv.find_element(By.ID, "p50").text.endswith(" s"), 10, "a p50 latency")
        check(p50, "p50 latency shown")
        # the memory bars: one per device, the CPU's with both models' shares
        bars = drv.find_elements(By.CSS_SELECTOR, ".membar")
        check(len(bars) >= 1, "memory bars: %d" % len(bars))
        segs = drv.find_elements(By.CSS_SELECTOR, '[data-device="cpu"] .membar .seg[data-model]')
        shares = sorted(x.get_attribute("data-model") for x in segs)
        check(shares == ["a", "b"], "CPU bar shares: %s" % shares)
        check(all(x.size["width"] > 0 for x in segs), "each share has a width")
        check("of" in (bars[-1].get_attribute("aria-label") or ""), "the bar is described for screen readers")
        rows = {r.get_attribute("data-model"): r.text for r in drv.find_elements(By.CSS_SELECTOR, "#models tr")}
        check(set(rows) == {"a", "b"} and all("resident-cpu" in t and "closed" in t for t in rows.values()),
              "model rows: %s" % rows)
        kinds = [e.get_attribute("data-kind") for e in drv.find_elements(By.CSS_SELECTOR, "#events li")]
        check(kinds.count("load") >= 2, "load events shown: %s" % kinds)
        check(len(drv.find_elements(By.CSS_SELECTOR, "#queues tr")) == 3, "three queue classes")
        check(len(drv.find_elements(By.CSS_SELECTOR, "#chart-tps polyline")) == 1, "the tokens/s chart")
        # let the live chart gather a few points before the picture
        time.sleep(4)
        req1 = drv.find_element(By.ID, "requests-total").text
        check(int(req1) > int(changed and req0 or 0), "the count kept rising: %s -> %s" % (req0, req1))
        os.makedirs(a.out, exist_ok=True)
        shot(drv, os.path.join(a.out, "status.png"), 1280)
        shot(drv, os.path.join(a.out, "status-375.png"), 375)
        sw = drv.execute_script("return document.documentElement.scrollWidth")
        iw = drv.execute_script("return window.innerWidth")
        check(sw <= iw, "no sideways scroll at 375 px: content %s px, viewport %s px" % (sw, iw))
        # the page's own console: no CSP violations or script errors
        try:
            logs = [l for l in drv.get_log("browser") if l.get("level") == "SEVERE"]
        except Exception:  # noqa: BLE001 (not every driver keeps the log)
            logs = []
        bad = [l["message"] for l in logs if "401" not in l["message"]]
        check(not bad, "browser errors: %s" % bad[:3])
        print("screenshots in %s" % a.out)
    finally:
        stop.set()
        for t in th:
            t.join()
        if drv:
            drv.quit()
        s.stop()
    check(not errors, "traffic errors: %s" % errors[:3])


def main():
    ap = argparse.ArgumentParser()
    for k in ("--vkinfer", "--gen", "--model", "--pypi", "--out"):
        ap.add_argument(k, required=True)
    a = ap.parse_args()
    a.model = os.path.abspath(a.model)
    if not os.path.exists(a.model):
        print("skipped: %s is absent (built by the vki_default_model target)" % a.model)
        return 77
    chrome, driver = find_browser()
    if not chrome or not driver:
        print("skipped: needs Debian's chromium and chromium-driver (bash scripts/deps.sh installs them)")
        return 77
    install_selenium(a.pypi)
    sys.path.insert(0, a.pypi)
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    with tempfile.TemporaryDirectory() as tmp:
        a.tiny = os.path.join(tmp, "tiny.gguf")
        subprocess.run([a.gen, "--preset", "tiny", "-o", a.tiny], check=True, capture_output=True)
        run(a, tmp, webdriver, By)
    failures = test_server.failures
    print("test_status_page: %s" % ("FAILED (%d checks)" % failures if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
