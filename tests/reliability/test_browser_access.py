"""Who may see the dashboard, in headless Chromium against `streamlit run app.py` (issue 13,
part 1): a host name the dashboard does not answer to (as a DNS-rebinding page would use) sees
only a refusal; on a shared server (`CNN_CORE_SHARED=1`) a signed-out visitor sees only the
sign-in page, even on a deep link that is the fresh server's first request, and signs in through
a real local OpenID Connect provider (`oidc-provider-mock`), not a stand-in for `st.login`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from support import QUIET, Dashboard, dashboard_env, free_port, launch_chromium
from test_browser import TIMEOUT_MS

from cnn_core import access
from cnn_core.config import TrainConfig
from cnn_core.presets import load_preset
from cnn_core.runs import create_run

oidc_provider_mock = pytest.importorskip("oidc_provider_mock")

SECRET_RUN = "secret-net"  # in a run's name, which a refused visitor must not see


def serve(
    tmp_path: Path, env: dict[str, str], *extra: str, port: int | None = None
) -> tuple[str, Dashboard]:
    port = port or free_port()
    log = tmp_path / f"server-{port}.log"
    server = Dashboard(port, dashboard_env(tmp_path, **env), log, options=(*QUIET, *extra))
    if not server.runs.exists():
        spec = dataclasses.replace(load_preset("tutorial_cnn").spec, name="Secret net")
        create_run(spec, TrainConfig(), data_source="cifar10", root=server.runs)
    server.start()
    return server.url, server


@pytest.fixture
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # why: "evil.example" is made to resolve to this machine, as DNS rebinding does
        browser = launch_chromium(playwright, "--host-resolver-rules=MAP evil.example 127.0.0.1")
        yield browser
        browser.close()


def new_page(browser: Browser) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def test_a_host_name_the_dashboard_does_not_answer_to_sees_nothing(
    tmp_path: Path, browser: Browser
) -> None:
    url, server = serve(tmp_path, {})
    try:
        port = url.rsplit(":", 1)[1]
        page = new_page(browser)
        page.goto(f"http://evil.example:{port}/runs")
        main = page.get_by_test_id("stMain")
        expect(main).to_contain_text("does not answer to the name evil.example")
        expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
        assert SECRET_RUN not in page.content()
        page.goto(f"{url}/runs")  # the machine's own name: the dashboard
        expect(page.get_by_test_id("stSidebarNav")).to_contain_text("Runs")
        expect(main).to_contain_text(SECRET_RUN)
    finally:
        server.stop()
    url, server = serve(tmp_path, {"CNN_CORE_ALLOWED_HOSTS": "evil.example"})
    try:  # a name the operator allowed is served
        page = new_page(browser)
        page.goto(f"http://evil.example:{url.rsplit(':', 1)[1]}/runs")
        expect(page.get_by_test_id("stMain")).to_contain_text(SECRET_RUN)
    finally:
        server.stop()


def owned_run(root: Path, name: str, user: str) -> str:
    spec = dataclasses.replace(load_preset("tutorial_cnn").spec, name=name)
    run = create_run(spec, TrainConfig(), data_source="cifar10", root=root)
    access.record_owner(run, access.Principal(user))
    return run.name


def sign_in(page: Page, user: str) -> None:
    page.get_by_role("button", name="Sign in").click()
    page.get_by_placeholder("sub").fill(user)  # the provider's own form
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_test_id("stSidebar")).to_contain_text(f"Signed in as {user}")


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()  # the provider's own page
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_a_shared_dashboard_shows_nothing_before_sign_in_and_each_user_their_own_runs(
    tmp_path: Path, browser: Browser
) -> None:
    runs = tmp_path / "runs"
    alices = owned_run(runs, "Alice net", "alice@example.com")
    bobs = owned_run(runs, "Bob net", "bob@example.com")
    with oidc_provider_mock.run_server_in_thread() as provider:
        port = free_port()
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
            'cookie_secret = "a-test-cookie-secret-of-enough-length"\n'
            'client_id = "cnn-workbench"\n'
            'client_secret = "not-a-real-secret"\n'
            f'server_metadata_url = "http://localhost:{provider.server_port}'
            '/.well-known/openid-configuration"\n'
        )
        url, server = serve(
            tmp_path, {"CNN_CORE_SHARED": "1"}, *("--secrets.files", str(secrets)), port=port
        )
        try:
            page = new_page(browser)
            page.goto(f"{url}/runs?run={alices}")  # a deep link, the server's first request
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
            for name in (alices, bobs, SECRET_RUN):
                assert name not in page.content()

            sign_in(page, "alice@example.com")
            expect(page.get_by_test_id("stSidebarNav")).to_contain_text("Runs")
            page.goto(f"{url}/runs")
            main = page.get_by_test_id("stMain")
            expect(main).to_contain_text(alices)
            assert bobs not in page.content() and SECRET_RUN not in page.content()
            page.goto(f"{url}/evaluate?run={bobs}")  # someone else's run, by its address
            expect(main).to_contain_text(f"run {bobs} is not one of your runs")
            page.goto(f"{url}/train?run={bobs}")
            expect(main).to_contain_text(f"run {bobs} is not one of your runs")
            sign_out(page)

            sign_in(page, "bob@example.com")
            page.goto(f"{url}/runs")
            expect(page.get_by_test_id("stMain")).to_contain_text(bobs)
            assert alices not in page.content()
            sign_out(page)
            page.goto(f"{url}/runs")
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            assert alices not in page.content() and bobs not in page.content()
        finally:
            server.stop()


def test_shared_mode_without_a_provider_refuses_everyone(tmp_path: Path, browser: Browser) -> None:
    url, server = serve(tmp_path, {"CNN_CORE_SHARED": "1"})
    try:
        page = new_page(browser)
        page.goto(f"{url}/runs")
        expect(page.get_by_test_id("stMain")).to_contain_text("no sign-in provider is configured")
        assert SECRET_RUN not in page.content()
    finally:
        server.stop()
