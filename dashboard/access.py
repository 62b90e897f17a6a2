"""Who may see the dashboard, decided in `app.py` before any page runs (a deep link that is a
fresh server's first request included: `dashboard.routing` runs `app.py` first).

Two checks: the browser's `Host` must be one of `cnn_core.settings.allowed_hosts()` (so a page
elsewhere that rebinds its own name to this machine reaches nothing), and in shared mode
(`CNN_CORE_SHARED=1`) the visitor must be signed in through Streamlit's own `st.login` (OpenID
Connect, configured in `.streamlit/secrets.toml`). A visitor who fails either sees one page that
says why, and nothing else: no page names, no runs.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from cnn_core import access, settings
from cnn_core.errors import UserError


def request_host() -> str | None:
    """The host name the browser asked for, lower-case and without the port; None if no
    `Host` header came (Streamlit's test runner; never a browser)."""
    host = (st.context.headers.get("Host") or "").strip().lower()
    if not host:
        return None
    if host.startswith("["):  # [::1]:8501
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def current_user() -> str | None:
    """The signed-in user's e-mail (or subject, when the provider gives no e-mail); None when
    nobody is signed in or the dashboard is not shared."""
    if not getattr(st.user, "is_logged_in", False):
        return None
    return str(st.user.get("email") or st.user.get("sub") or "") or None


def who() -> access.Principal:
    """Who is using the dashboard now: the signed-in user on a shared server; else the one local
    user, who may do everything (`cnn_core.access`)."""
    return access.principal(current_user())


def gate() -> Callable[[], None] | None:
    """None when this visitor may use the dashboard; else the page to show instead."""
    try:
        shared = settings.shared_mode()
        allowed = settings.allowed_hosts()
    except UserError as exc:
        return _message_page("The dashboard is misconfigured", str(exc))
    host = request_host()
    if host is not None and host not in allowed:
        return _message_page(
            "Unknown address",
            f"This dashboard does not answer to the name {host}. If that is this machine's "
            "name, add it to CNN_CORE_ALLOWED_HOSTS where the dashboard is started.",
        )
    if not shared:
        return None
    if not _sign_in_configured():
        return _message_page(
            "Sign-in is not set up",
            "This dashboard is shared (CNN_CORE_SHARED=1) but no sign-in provider is configured: "
            "add an [auth] section to .streamlit/secrets.toml as the README's Shared server "
            "section shows, then restart the dashboard.",
        )
    if current_user() is None:
        return _sign_in_page
    return None


def stand_ins(pages: list[st.Page], show: Callable[[], None]) -> list[st.Page]:
    """A page at each of `pages`' addresses that only calls `show` (the first is the default,
    as in `app.py`): a deep link to /runs then shows the sign-in (or refusal) rather than
    Streamlit's "page not found"."""

    def stand_in(page: st.Page, first: bool) -> st.Page:
        def draw() -> None:
            show()

        draw.__name__ = f"welcome_{page.url_path or 'home'}"
        return st.Page(draw, title="CNN Workbench", url_path=page.url_path, default=first)

    return [stand_in(page, i == 0) for i, page in enumerate(pages)]


def _sign_in_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all (Streamlit's own error derives from it)
        return False


def _sign_in_page() -> None:
    st.title("CNN Workbench")
    st.write("This dashboard is shared: sign in to see and train your own runs.")
    st.button("Sign in", key="sign_in", icon=":material/login:", type="primary", on_click=st.login)


def _message_page(title: str, message: str) -> Callable[[], None]:
    def page() -> None:
        st.title(title)
        st.error(message, icon=":material/block:")

    return page


def account_ui() -> None:
    """In the sidebar of a shared dashboard: who is signed in, and a way out."""
    user = current_user()
    if user is None:
        return
    with st.sidebar:
        st.caption(f"Signed in as {user}")
        st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=st.logout)
