"""Drives the dashboard at /ui in headless Chromium, as an operator would.

Run by tests/tests/dashboard.rs, which starts the platform and the stream and answers this
script's requests on stdin/stdout:

  -> "counter N"       the page showed N records processed; send more input, then answer
  <- "sent"
  -> "rest"            send the rest of the input, then answer "sent"
  -> "result {json}"   what the page showed, for the Rust test's assertions

Everything it waits for has a generous deadline; nothing is asserted on timing. Settings come from
the environment: DASH_URL, DASH_TOKEN, DASH_TENANT, DASH_APP, DASH_V2_WASM, DASH_DEAD_REASON,
DASH_DEAD_SOURCE, DASH_SHOTS (a folder), DASH_CHROMIUM.
"""

import base64
import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

WAIT_MS = 180_000
expect.set_options(timeout=WAIT_MS)


def say(line):
    print(line, flush=True)


def ask(line):
    say(line)
    answer = sys.stdin.readline().strip()
    if answer != "sent":
        raise SystemExit(f"expected `sent` from the test, got {answer!r}")


def log(text):
    print(f"log {text}", file=sys.stderr, flush=True)


def distinct_colours(browser, png):
    """Counts the distinct colours of a PNG, decoded by the browser itself (not by our page)."""
    page = browser.new_page()
    try:
        return page.evaluate(
            """async (data) => {
                const image = new Image();
                image.src = 'data:image/png;base64,' + data;
                await image.decode();
                const canvas = document.createElement('canvas');
                canvas.width = image.width;
                canvas.height = image.height;
                const context = canvas.getContext('2d');
                context.drawImage(image, 0, 0);
                const pixels = context.getImageData(0, 0, image.width, image.height).data;
                const seen = new Set();
                for (let i = 0; i < pixels.length; i += 4) {
                    seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
                    if (seen.size > 5000) break;
                }
                return { colours: seen.size, width: image.width, height: image.height };
            }""",
            base64.b64encode(png).decode(),
        )
    finally:
        page.close()


def processed(page):
    value = page.locator("#m-records_processed").get_attribute("data-value") or "0"
    return int(value)


def main():
    url = os.environ["DASH_URL"]
    token = os.environ["DASH_TOKEN"]
    tenant = os.environ["DASH_TENANT"]
    app = os.environ["DASH_APP"]
    v2 = os.environ["DASH_V2_WASM"]
    reason = os.environ["DASH_DEAD_REASON"]
    source = os.environ["DASH_DEAD_SOURCE"]
    shots = os.environ["DASH_SHOTS"]
    result = {}

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("DASH_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu"],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        auth = {"with": 0, "without": 0}

        def on_request(request):
            if "/apps" in request.url:
                key = "with" if request.header_value("authorization") == f"Bearer {token}" else "without"
                auth[key] += 1

        page.on("request", on_request)
        page.on("dialog", lambda dialog: dialog.accept())

        page.goto(f"{url}/ui")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#dashboard")).to_be_hidden()

        # A wrong token is refused and shows nothing.
        page.fill("#token", "not-the-token")
        page.click("#sign-in")
        expect(page.locator("#login-error")).to_contain_text("wrong admin token")
        expect(page.locator("#dashboard")).to_be_hidden()
        result["wrong_token_refused"] = page.locator("#login-error").inner_text()
        auth["without"] = 0
        errors.clear()  # the browser logs the refused request (401) as a console error

        page.fill("#token", token)
        page.click("#sign-in")
        expect(page.locator("#dashboard")).to_be_visible()
        expect(page.locator(f'#app-list button[data-app="{tenant}/{app}"]')).to_be_visible()
        page.click(f'#app-list button[data-app="{tenant}/{app}"]')
        expect(page.locator("#app-title")).to_have_text(f"{tenant} / {app}")
        page.wait_for_function(
            "() => Number(document.querySelector('#m-records_processed').dataset.value) > 0"
        )

        # The counter rises while the stream runs.
        first = processed(page)
        ask(f"counter {first}")
        page.wait_for_function(
            "(n) => Number(document.querySelector('#m-records_processed').dataset.value) > n",
            arg=first,
        )
        result["processed_seen"] = [first, processed(page)]
        log(f"records processed rose from {first} to {processed(page)}")
        # A checkpoint covers what was processed: the committed count follows it.
        page.wait_for_function(
            "() => Number(document.querySelector('#m-records_committed')?.dataset.value) > 0"
        )

        # A malformed record's reason is in the dead-letter list.
        letters = page.locator("#dead-letters tbody tr", has_text=source)
        expect(letters.first).to_be_visible()
        expect(letters.first).to_contain_text(reason)
        result["dead_letter_row"] = letters.first.inner_text()

        # A hot swap from the page: upload the new version, confirm, read the answer.
        page.set_input_files("#deploy-file", v2)
        page.click("#deploy")
        expect(page.locator("#answer")).to_contain_text("took over")
        result["deploy_answer"] = page.locator("#answer").inner_text()
        swap = page.locator('#history tbody tr[data-action="deploy"][data-ok="true"]')
        expect(swap.first).to_be_visible()
        result["history_deploy_row"] = swap.first.inner_text()
        result["history_deploy_pause"] = swap.first.locator("td").nth(4).inner_text()

        # ...and a rollback.
        page.click("#rollback")
        expect(page.locator("#answer")).to_contain_text("rollback: 200")
        expect(page.locator('#history tbody tr[data-action="rollback"][data-ok="true"]').first).to_be_visible()
        result["rollback_answer"] = page.locator("#answer").inner_text()

        # Results rows, the charts drawn, the rest of the input, then a drain from the page.
        expect(page.locator("#results tbody tr").first).to_be_visible()
        result["results_rows"] = page.locator("#results tbody tr").count()
        expect(page.locator("#chart-rates canvas")).to_have_count(1)
        ask("rest")
        page.click("#drain")
        expect(page.locator("#answer")).to_contain_text("drain: 202")
        expect(page.locator("#app-state")).to_contain_text("drained")
        result["state_after_drain"] = page.locator("#app-state").inner_text()
        page.wait_for_timeout(1500)  # one more poll, so the charts show the last second

        os.makedirs(shots, exist_ok=True)
        wide = os.path.join(shots, "dashboard-wide.png")
        png = page.screenshot(path=wide, full_page=True)
        result["wide"] = {"path": wide, **distinct_colours(browser, png)}

        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(500)
        result["narrow_overflow_px"] = page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        narrow = os.path.join(shots, "dashboard-narrow.png")
        png = page.screenshot(path=narrow, full_page=True)
        result["narrow"] = {"path": narrow, **distinct_colours(browser, png)}

        # The token is nowhere the page keeps or shows things.
        result["token_in_url"] = token in page.url
        result["token_in_page"] = token in page.content()
        result["storage_items"] = page.evaluate(
            "() => localStorage.length + sessionStorage.length + document.cookie.length"
        )
        result["api_requests"] = auth
        result["page_errors"] = errors
        result["status_line"] = page.locator("#clock").inner_text()

        page.click("#logout")
        expect(page.locator("#login")).to_be_visible()
        result["signed_out_hides_dashboard"] = page.locator("#dashboard").is_hidden()
        browser.close()

    say("result " + json.dumps(result))


if __name__ == "__main__":
    main()
