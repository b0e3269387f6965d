"""The web console in a real browser: Debian's chromium driven by Playwright, against a real
control plane (real PostgreSQL, gRPC on loopback) and a real worker process running
tests/support/console_app.py. Every page loads; a requeue, a delete, a cancel and a signal are
clicked through and checked through the API; the queues' throughput chart follows completions;
each page is saved as a screenshot under docs/console/ (the README shows two of them).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from durable.client import Client
from durable.common.security import ClientSecurity, ServerSecurity
from durable.console.server import build_server
from durable.console.settings import ConsoleSettings
from durable.controlplane.store import Store
from tests.support.controlplane import free_port, running_control_plane
from tests.support.processes import ROOT, wait_for, worker_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SHOTS = ROOT / "docs" / "console"
WAIT_MS = 15_000

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)


@asynccontextmanager
async def console(address: str, security: ClientSecurity | None = None, **settings: Any) -> AsyncIterator[str]:
    """The console served in this process on 127.0.0.1; yields its base URL."""
    port = free_port()
    server = build_server(
        ConsoleSettings(host="127.0.0.1", port=port, grpc_address=address, poll_seconds=0.5, **settings),
        security or ClientSecurity(),
    )
    task = asyncio.create_task(server.serve(), name="console-under-test")
    try:
        await wait_for(lambda: server.started or task.done(), 20, "the console to listen")
        assert not task.done(), "the console stopped at start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def unlabelled_controls(page: Any) -> list[str]:
    """Form controls a screen reader could not name (no label, aria-label or labelledby)."""
    return await page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                           && !e.getAttribute('aria-labelledby'))
              .map(e => e.outerHTML)"""
    )


async def history_has(client: Client, workflow_id: str, event_type: str) -> bool:
    return any(e.event_type == event_type for e in await client.history(workflow_id))


@needs_chromium
async def test_every_page_and_the_actions_in_a_browser(database_url: str, tmp_path: Path) -> None:
    from playwright.async_api import expect

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        # A breaker so that /queues shows one (configured the way an operator would, in SQL
        # through the store; the console itself reads it over gRPC).
        await Store(pool).configure_circuit_breaker("console_flaky", {"failure_threshold": 10})
    finally:
        await pool.close()
    async with running_control_plane(database_url, poll_interval=0.1, timer_interval=0.05) as address, \
            Client(address) as api:
        with worker_process(address, "console-worker", "tests.support.console_app:app", log_dir=tmp_path):
            demo, _ = await api.start_workflow("console_demo", {"order": 42})
            waiter, _ = await api.start_workflow("console_waits", {"note": "cancel me"})
            await api.enqueue_activity("console_doomed", {"disk": "sda"})
            await wait_for(lambda: history_has(api, demo, "TimerFired"), 30, "the demo's timer to fire")
            await wait_for(lambda: api.list_dead_letters("console_doomed"), 30, "the doomed task's dead letter")
            await wait_for(lambda: api.list_workers(), 30, "the worker to register")

            async with console(address) as base, browser() as b:
                page = await b.new_page(viewport={"width": 1280, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))

                # / leads to the rest
                await page.goto(base + "/")
                await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
                for name in ("Workflows", "Dead letters", "Workers", "Queues"):
                    await expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=name)).to_be_visible()
                await shot(page, "overview")

                # /workflows: both workflows, counts by status, a filter by type
                await page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
                await expect(page.get_by_role("link", name=demo)).to_be_visible()
                await expect(page.get_by_role("link", name=waiter)).to_be_visible()
                await expect(page.get_by_role("navigation", name="Counts by status")).to_contain_text("all 2")
                await page.get_by_label("Type").fill("console_waits")
                await page.get_by_role("button", name="Apply").click()
                await expect(page.get_by_role("link", name=waiter)).to_be_visible()
                await expect(page.get_by_role("link", name=demo)).to_have_count(0)
                await page.get_by_label("Id starts with").fill(demo[:8])
                await page.get_by_label("Type").fill("")
                await page.get_by_role("button", name="Apply").click()
                await expect(page.get_by_role("link", name=demo)).to_be_visible()
                await expect(page.get_by_role("link", name=waiter)).to_have_count(0)
                assert await unlabelled_controls(page) == []
                # live: a workflow started now shows up without a reload
                await page.goto(base + "/workflows")
                late, _ = await api.start_workflow("console_waits", {"note": "arrived later"})
                await expect(page.get_by_role("link", name=late)).to_be_visible(timeout=WAIT_MS)
                await shot(page, "workflows")

                # /workflows/<id>: input, timeline with two retries, events; then a signal
                await page.get_by_role("link", name=demo).click()
                await expect(page.get_by_role("heading", name=f"Workflow {demo}")).to_be_visible()
                await expect(page.locator("#wf-status")).to_have_text("running")
                await expect(page.locator("figure.timeline svg")).to_be_visible()
                await expect(page.locator("svg .mark.retry")).to_have_count(2)
                await expect(page.locator("svg .row.timer .bar")).to_have_count(1)
                await expect(page.locator("#event-1")).to_contain_text("WorkflowStarted")
                await expect(page.locator("#h-input + pre")).to_contain_text('"order": 42')
                assert await unlabelled_controls(page) == []
                await shot(page, "workflow-running")
                await page.get_by_label("Signal type").fill("approve")
                await page.get_by_label("Payload (a JSON object)").fill('{"by": "the browser test"}')
                await page.get_by_role("button", name="Send signal").click()
                await expect(page.get_by_role("status")).to_contain_text("Signal recorded as event")
                done = await api.wait_workflow(demo, timeout=30)
                assert done.status == "completed" and done.result == {"approved_by": "the browser test"}
                # the open page catches up by itself (conditional polling)
                await expect(page.locator("#wf-status")).to_have_text("completed", timeout=WAIT_MS)
                await expect(page.locator("svg .row.signals .mark.signal")).to_have_count(1)
                await expect(page.get_by_role("button", name="Send signal")).to_have_count(0)
                await shot(page, "workflow")

                # a bad payload is refused with a message, and nothing is sent
                await page.goto(f"{base}/workflows/{waiter}")
                await page.get_by_label("Signal type").fill("poke")
                await page.get_by_label("Payload (a JSON object)").fill("[1, 2]")
                await page.get_by_role("button", name="Send signal").click()
                await expect(page.get_by_role("alert")).to_contain_text("must be a JSON object")
                assert not await history_has(api, waiter, "SignalReceived")

                # cancel, checked through the API
                await page.get_by_label("Reason").fill("clicked in the browser test")
                await page.get_by_role("button", name="Cancel workflow").click()
                await expect(page.get_by_role("status")).to_contain_text("Cancellation recorded")
                assert (await api.wait_workflow(waiter, timeout=30)).status == "cancelled"
                history = await api.history(waiter)
                assert history[-1].event_type == "WorkflowCancelled"
                assert {"reason": "clicked in the browser test"} in [e.data for e in history]

                # /dead-letters: filter by error text, the error history, requeue one
                await page.get_by_role("navigation", name="Main").get_by_role("link", name="Dead letters").click()
                [entry] = await api.list_dead_letters("console_doomed")
                await page.get_by_label("Error contains").fill("DISK IS ON")
                await page.get_by_role("button", name="Apply").click()
                await expect(page.get_by_text(entry.id)).to_be_visible()
                await page.get_by_text("1 errors").click()
                await expect(page.locator("ol.errors")).to_contain_text("DiskOnFire")
                assert await unlabelled_controls(page) == []
                await shot(page, "dead-letters")
                await page.get_by_role("button", name=f"Requeue console_doomed {entry.id}").click()
                await expect(page.get_by_role("status")).to_contain_text("Requeued 1 entry")
                [after] = [e for e in await api.list_dead_letters("console_doomed") if e.id == entry.id]
                assert after.requeue_count == 1 and after.requeued_at > 0
                # the requeued task runs (and fails for good again): a second entry appears
                await wait_for(lambda: _count(api.list_dead_letters("console_doomed"), 2), 30, "the rerun to die")
                await page.get_by_label("Error contains").fill("no such error text")
                await page.get_by_role("button", name="Apply").click()
                await expect(page.get_by_text("No dead letters match.")).to_be_visible()

                # requeue many: tick both entries, one button
                await page.goto(base + "/dead-letters")
                entries = await api.list_dead_letters("console_doomed")
                fresh = [e for e in entries if e.requeue_count == 0]
                for e in fresh:
                    await page.get_by_label(f"Select console_doomed {e.id}").check()
                await page.get_by_role("button", name="Requeue selected").click()
                await expect(page.get_by_role("status")).to_contain_text(f"Requeued {len(fresh)}")
                assert all(e.requeue_count == 1 for e in await api.list_dead_letters("console_doomed")
                           if e.id in {f.id for f in fresh})

                # delete one: the row's button asks first, then deletes; checked through the API
                await wait_for(lambda: _count(api.list_dead_letters("console_doomed"), 3), 30, "the reruns to die")
                await page.goto(base + "/dead-letters")
                [last] = [e for e in await api.list_dead_letters("console_doomed") if e.requeue_count == 0]
                await page.get_by_role("button", name=f"Delete console_doomed {last.id}").click()
                await expect(page.get_by_role("heading", name="Delete 1 dead letter?")).to_be_visible()
                assert await unlabelled_controls(page) == []
                await shot(page, "dead-letters-delete")
                await page.get_by_role("button", name="Delete 1 entry").click()
                await expect(page.get_by_role("status")).to_contain_text("Deleted 1 entry")
                remaining = await api.list_dead_letters("console_doomed")
                assert len(remaining) == 2 and last.id not in {e.id for e in remaining}

                # /workers and /queues
                await page.get_by_role("navigation", name="Main").get_by_role("link", name="Workers").click()
                await expect(page.get_by_role("cell", name="console-worker")).to_be_visible()
                await expect(page.locator("meter")).to_have_count(1)
                await shot(page, "workers")
                await page.get_by_role("navigation", name="Main").get_by_role("link", name="Queues").click()
                await expect(page.get_by_role("heading", name="Circuit breakers")).to_be_visible()
                await expect(page.get_by_role("cell", name="console_flaky").first).to_be_visible()
                # throughput: the demo's activity completed once in the last hour, drawn as a line
                flaky_chart = page.locator("tr", has=page.get_by_role("cell", name="console_flaky", exact=True)) \
                    .locator("svg.spark")
                await expect(flaky_chart).to_have_attribute(
                    "aria-label", re.compile(r"^console_flaky: 1 completed in the last 60 minutes"))
                await expect(flaky_chart.locator("title")).to_contain_text("at most 1 in a minute")
                await expect(flaky_chart.locator("polyline")).to_have_count(1)
                # and it follows new completions without a reload
                await api.enqueue_activity("console_flaky", {})
                await expect(flaky_chart).to_have_attribute(
                    "aria-label", re.compile(r"^console_flaky: 2 completed"), timeout=WAIT_MS)
                await shot(page, "queues")

                # keyboard: the first Tab lands on the skip link, which jumps to the content
                await page.keyboard.press("Tab")
                await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

                # a phone
                phone = await b.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                await phone.goto(f"{base}/workflows/{demo}")
                await expect(phone.locator("#wf-status")).to_have_text("completed")
                width = await phone.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"the page is {width} px wide on a 390 px phone"
                await shot(phone, "workflow-phone")
                assert errors == []

                # without JavaScript every page still reads, and a form still acts
                plain = await (await b.new_context(java_script_enabled=False)).new_page()
                for path in ("/", "/workflows", f"/workflows/{demo}", "/dead-letters", "/workers", "/queues"):
                    reply = await plain.goto(base + path)
                    assert reply is not None and reply.status == 200, path
                other, _ = await api.start_workflow("console_waits", {"note": "no script"})
                await plain.goto(f"{base}/workflows/{other}")
                await plain.get_by_role("button", name="Cancel workflow").click()
                await expect(plain.get_by_role("status")).to_contain_text("Cancellation recorded")
                assert (await api.wait_workflow(other, timeout=30)).status == "cancelled"

                # delete many without JavaScript: tick both, confirm; "Keep them" first deletes nothing
                await plain.goto(base + "/dead-letters")
                for e in remaining:
                    await plain.get_by_label(f"Select console_doomed {e.id}").check()
                await plain.get_by_role("button", name="Delete selected").click()
                await expect(plain.get_by_role("heading", name="Delete 2 dead letters?")).to_be_visible()
                await plain.get_by_role("link", name="Keep them").click()
                await expect(plain.get_by_role("heading", name="Dead letters")).to_be_visible()
                assert len(await api.list_dead_letters("console_doomed")) == 2
                for e in remaining:
                    await plain.get_by_label(f"Select console_doomed {e.id}").check()
                await plain.get_by_role("button", name="Delete selected").click()
                await plain.get_by_role("button", name="Delete 2 entries").click()
                await expect(plain.get_by_role("status")).to_contain_text("Deleted 2 entries")
                assert await api.list_dead_letters("console_doomed") == []
                await expect(plain.get_by_text("No dead letters match.")).to_be_visible()


async def _count(entries: Any, n: int) -> bool:
    return len(await entries) >= n


@needs_chromium
async def test_read_only_credentials_see_no_action_buttons(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the scope check answering `read`, no action shows and an action POST is refused."""
    import durable.console.app as console_app

    async def read_only(client: Client) -> str:
        return "read"

    monkeypatch.setattr(console_app, "scope_of", read_only)
    async with running_control_plane(database_url) as address, Client(address) as api:
        wid, _ = await api.start_workflow("console_waits", {})
        async with console(address) as base, browser() as b:
            page = await b.new_page()
            await page.goto(f"{base}/workflows/{wid}")
            await page.get_by_role("heading", name=f"Workflow {wid}").wait_for()
            assert await page.get_by_role("button", name="Cancel workflow").count() == 0
            assert await page.get_by_role("button", name="Send signal").count() == 0
            await page.goto(f"{base}/dead-letters")
            assert await page.get_by_role("button", name="Requeue selected").count() == 0
            assert await page.get_by_role("button", name="Delete selected").count() == 0
            # a hand-made POST with a valid CSRF token is still refused
            csrf = next(c["value"] for c in await page.context.cookies() if c["name"] == "durable_console_csrf")
            reply = await page.request.post(f"{base}/workflows/{wid}/cancel", form={"csrf": csrf})
            assert reply.status == 403 and "may only read" in await reply.text()
            reply = await page.request.post(f"{base}/dead-letters/delete",
                                            form={"csrf": csrf, "one": str(uuid.uuid4()), "confirm": "yes"})
            assert reply.status == 403 and "may only read" in await reply.text()
        assert (await api.describe_workflow(wid)).status != "cancelled"


@needs_chromium
async def test_sign_in_with_a_token_and_csrf(database_url: str) -> None:
    token = "console-test-token-7f3a"
    security = ServerSecurity(DURABLE_AUTH_TOKEN=token)
    async with running_control_plane(database_url, security=security) as address:
        async with Client(address, security=ClientSecurity(DURABLE_AUTH_TOKEN=token)) as api:
            wid, _ = await api.start_workflow("console_waits", {})
        # the console's own configuration has a token: it asks users to sign in
        async with console(address, ClientSecurity(DURABLE_AUTH_TOKEN=token)) as base, browser() as b:
            page = await b.new_page()
            await page.goto(f"{base}/workflows")
            await expect_url(page, "/sign-in")
            await shot(page, "sign-in")
            await page.get_by_label("Token").fill("not-the-token")
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_text("The control plane refused this token.").wait_for()
            await page.get_by_label("Token").fill(token)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("link", name=wid).wait_for()  # back where it was going
            assert page.url.endswith("/workflows")
            # a forged form (no CSRF token) is refused and changes nothing
            reply = await page.request.post(f"{base}/workflows/{wid}/cancel", form={"reason": "forged"})
            assert reply.status == 403 and "CSRF" in await reply.text()
            # sign out: the next page asks again
            await page.get_by_role("button", name="Sign out").click()
            await expect_url(page, "/sign-in")
            await page.goto(f"{base}/workflows/{wid}")
            await expect_url(page, "/sign-in")
        async with Client(address, security=ClientSecurity(DURABLE_AUTH_TOKEN=token)) as api:
            assert (await api.describe_workflow(wid)).status != "cancelled"


async def expect_url(page: Any, path: str) -> None:
    from playwright.async_api import expect

    await expect(page).to_have_url(__import__("re").compile(rf"{path}(\?.*)?$"), timeout=WAIT_MS)


def test_durable_console_command_serves(tmp_path: Path) -> None:
    """`durable console --port N` serves its pages (the control plane need not be up for /healthz)."""
    port = free_port()
    env = {**os.environ, "GRPC_ADDRESS": f"127.0.0.1:{free_port()}", "PYTHONUNBUFFERED": "1"}
    env.pop("DURABLE_AUTH_TOKEN", None)
    log = open(tmp_path / "console.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "durable.cli", "console", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        body = _get_when_up(f"http://127.0.0.1:{port}/healthz", proc)
        assert body == "ok"
        css = urllib.request.urlopen(f"http://127.0.0.1:{port}/static/htmx.min.js", timeout=5).read()
        assert css.startswith(b"var htmx")
        # with no control plane there, a page says so instead of failing obscurely
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/workers", timeout=30)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503 and b"Control plane unavailable" in exc.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _get_when_up(url: str, proc: subprocess.Popen[bytes]) -> str:
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@needs_chromium
async def test_schedules_page_lists_shows_and_acts(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedules list, a schedule's spec, next fire times and recent runs; pause, resume and
    trigger clicked through and checked through the API; a read-only viewer sees no buttons and
    a hand-made POST is refused."""
    async with running_control_plane(database_url) as address, Client(address) as api:
        await api.create_schedule("nightly-report", workflow_type="report", cron="0 3 * * *",
                                  time_zone="Europe/Berlin", input={"kind": "daily"}, overlap_policy="allow_all")
        await api.create_schedule("every-minute", activity_type="ping", interval_seconds=60)
        outcome, run_id = await api.trigger_schedule("nightly-report")
        assert outcome == "started"
        async with console(address) as base, browser() as b:
            page = await b.new_page()
            await page.goto(f"{base}/schedules")
            await page.get_by_role("heading", name="Schedules").wait_for()
            assert await unlabelled_controls(page) == []
            rows = page.locator("tbody tr")
            assert await rows.count() == 2
            await page.get_by_role("link", name="nightly-report", exact=True).click()
            await page.get_by_role("heading", name="Schedule nightly-report").wait_for()
            text = await page.inner_text("main")
            assert "cron 0 3 * * * (Europe/Berlin)" in text and "workflow report" in text and '"daily"' in text
            _, ticks = await api.describe_schedule("nightly-report", upcoming=5)
            shown = await page.locator("ol.ticks li").all_inner_texts()
            assert len(shown) == 5 and len(ticks) == 5
            runs = page.locator("table tbody tr")
            assert "started" in await runs.first.inner_text() and run_id in await runs.first.inner_text()
            await shot(page, "schedule")

            await page.get_by_role("button", name="Pause schedule").click()
            await page.get_by_role("status").filter(has_text="Paused.").wait_for()
            assert (await api.describe_schedule("nightly-report"))[0].paused
            await page.get_by_role("button", name="Resume schedule").click()
            await page.get_by_role("status").filter(has_text="Resumed.").wait_for()
            assert not (await api.describe_schedule("nightly-report"))[0].paused
            started = (await api.describe_schedule("nightly-report"))[0].started_count
            await page.get_by_role("button", name="Trigger now").click()
            await page.get_by_role("status").filter(has_text="Triggered: started.").wait_for()
            assert (await api.describe_schedule("nightly-report"))[0].started_count == started + 1

        import durable.console.app as console_app

        async def read_only(client: Client) -> str:
            return "read"

        monkeypatch.setattr(console_app, "scope_of", read_only)
        async with console(address) as base, browser() as b:
            page = await b.new_page()
            await page.goto(f"{base}/schedules/nightly-report")
            await page.get_by_role("heading", name="Schedule nightly-report").wait_for()
            for name in ("Pause schedule", "Resume schedule", "Trigger now"):
                assert await page.get_by_role("button", name=name).count() == 0
            csrf = next(c["value"] for c in await page.context.cookies() if c["name"] == "durable_console_csrf")
            reply = await page.request.post(f"{base}/schedules/nightly-report/pause", form={"csrf": csrf})
            assert reply.status == 403 and "may only read" in await reply.text()
        assert not (await api.describe_schedule("nightly-report"))[0].paused
