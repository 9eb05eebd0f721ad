"""Keeps the dashboard open on one app for a while, signed in, as an operator watching it: the
load `scripts/bench-dashboard.sh` measures. Settings: DASH_URL, DASH_TOKEN (from
MYSIMBDP_ADMIN_TOKEN), DASH_TENANT, DASH_APP, DASH_SECONDS, DASH_CHROMIUM."""

import os
import sys

from playwright.sync_api import expect, sync_playwright


def main():
    url = os.environ["DASH_URL"]
    token = os.environ["MYSIMBDP_ADMIN_TOKEN"]
    key = f'{os.environ["DASH_TENANT"]}/{os.environ["DASH_APP"]}'
    seconds = float(os.environ.get("DASH_SECONDS", "60"))
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("DASH_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/ui")
        page.fill("#token", token)
        page.click("#sign-in")
        page.click(f'#app-list button[data-app="{key}"]', timeout=60_000)
        expect(page.locator("#chart-rates canvas")).to_have_count(1, timeout=60_000)
        print("open", flush=True)
        page.wait_for_timeout(seconds * 1000)
        polls = page.evaluate("() => performance.getEntriesByType('resource').filter((e) => e.name.includes('/apps')).length")
        print(f"polls {polls}", flush=True)
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
