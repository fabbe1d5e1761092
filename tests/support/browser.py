"""Browser journeys in Debian's Chromium (Playwright): launch options, sign-in, staff seeded through intake's
API, and a screenshot of each step saved under .rapport/screenshots/<journey>/ as a test artifact (not
committed)."""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import requests

from deploy.local.runtime import ROOT
from services.common.auth import Identity
from tests.support.identity import bearer

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
SCREENSHOTS = ROOT / ".rapport" / "screenshots"


class Journey:
    """Numbered screenshots of one journey's steps: .rapport/screenshots/<journey>/<nn>-<step>.png."""

    def __init__(self, name: str) -> None:
        self.folder = SCREENSHOTS / re.sub(r"[^a-z0-9_-]+", "-", name.lower())
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.steps = 0

    def snap(self, page, step: str) -> Path:
        self.steps += 1
        path = self.folder / f"{self.steps:02d}-{re.sub(r'[^a-z0-9_-]+', '-', step.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def launch(playwright):
    """Debian's Chromium, headless (deploy/local/install-browser.sh installs it)."""
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)


@contextmanager
def chromium():
    """Playwright with Debian's Chromium launched for the length of the with block, closed afterwards."""
    from playwright.sync_api import sync_playwright  # imported here: only browser tests need Playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page, entry_url: str, email: str, password: str) -> None:
    page.goto(f"{entry_url}/signin")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def names_filled(page) -> None:
    """Wait until people.js has put names in for every person on the page it may see."""
    # A selector, not wait_for_function: its predicate is evaluated with eval, which the pages' CSP forbids.
    page.locator("html[data-people-loaded='true']").wait_for(state="attached", timeout=10000)


def add_staff(practice, name: str, display_name: str, role: str, password: str) -> dict:
    """A staff member <name>@<org>.test of the practice's clinic (a tests.e2e.test_platform.Practice), added
    through intake's API by the organisation's admin; intake's answer."""
    admin = bearer(Identity(f"admin-{practice.org[:8]}", practice.org, (), "admin"))
    response = requests.post(practice.url("intake", "/api/staff"), headers=admin, timeout=10, json={
        "email": f"{name}@{practice.org}.test", "display_name": display_name, "password": password,
        "role": role, "clinic_ids": [practice.clinic]})
    assert response.status_code == 201, response.text
    return response.json()


def walk_links(page, entry_url: str, start: str, limit: int = 40) -> tuple[list[str], int]:
    """Follow every same-origin link from `start` breadth-first (at most `limit` pages; sign-out, client
    links and static files left out) in this page's session; the problems found (with the page that linked) - a link answering an error
    or something other than HTML, a page wider than the viewport - and how many pages were seen."""
    from urllib.parse import urljoin, urlsplit

    origin = urlsplit(entry_url).netloc
    width = page.viewport_size["width"]
    queue, seen, problems = [(start, "")], set(), []
    while queue and len(seen) < limit:
        url, linked_from = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        answer = page.goto(url)
        page.wait_for_load_state("networkidle")
        kind = answer.headers.get("content-type", "")
        if answer.status >= 400 or "text/html" not in kind:
            problems.append(f"{url} (linked from {linked_from}): {answer.status} {kind}")
            continue
        if page.evaluate("document.documentElement.scrollWidth") > width:
            problems.append(f"{url}: wider than {width} px")
        for href in page.locator("a[href]").evaluate_all("links => links.map(a => a.href)"):
            target = urljoin(url, href).split("#")[0]
            path = urlsplit(target).path
            if (urlsplit(target).netloc == origin and target not in seen and "/static/" not in path
                    and not path.startswith(("/f/", "/x/")) and not path.endswith(".svg")):
                queue.append((target, url))
    return problems, len(seen)
