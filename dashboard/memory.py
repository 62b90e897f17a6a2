"""Give a long-running dashboard's memory back when its sessions end.

Measured (RELIABILITY.md, drill 7): every Predict session that uploaded photos left its bytes in
the server after its tab closed. Streamlit keeps a closed tab's session for a reconnect
(`server.disconnectedSessionTTL`, set to 10 s in `.streamlit/config.toml`), and a session that
expires from that store is dropped without being shut down, so its uploaded files stay in the
upload manager for good. What was freed also stayed in the process: each script run is a new
thread, and glibc gives threads their own heaps (arenas), which it rarely hands back.

`start_sweeper()` starts one daemon thread per server that, every few seconds, forgets the
uploads and images of sessions Streamlit no longer knows and asks glibc to return free memory to
the system. It touches Streamlit's runtime, never `st.*`; on another Streamlit or C library the
parts it cannot find are skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
import time

SWEEP_SECONDS = 5.0  # how soon after a session has gone its memory is given back
ARENAS = 2  # glibc heaps for all threads; its default, 8 per core, kept freed memory in each
_M_ARENA_MAX = -8  # mallopt's parameter number for the arena count (glibc's malloc.h)

_started = False
_start_lock = threading.Lock()


def start_sweeper() -> None:
    """Start the sweeping thread, once per server process (every script run may call this)."""
    global _started
    with _start_lock:
        if _started:
            return
        _started = True
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, ARENAS)  # threads started from now on share these heaps
    threading.Thread(
        target=_sweep_forever, args=(libc,), name="memory-sweeper", daemon=True
    ).start()


def release_closed_sessions() -> int:
    """Forget the uploaded files and images of sessions Streamlit no longer holds (neither
    connected nor kept for a reconnect); return how many sessions' files were dropped."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return 0
    runtime = Runtime.instance()
    uploads = runtime.uploaded_file_mgr
    stored = getattr(uploads, "file_storage", None)  # the in-memory manager keeps a dict
    if stored is None:
        return 0
    known = {info.session.id for info in runtime._session_mgr.list_sessions()}
    gone = [session_id for session_id in list(stored) if session_id not in known]
    for session_id in gone:
        uploads.remove_session_files(session_id)
        runtime.media_file_mgr.clear_session_refs(session_id)
    if gone:
        runtime.media_file_mgr.remove_orphaned_files()
    return len(gone)


def _sweep_forever(libc: ctypes.CDLL | None) -> None:
    while True:
        time.sleep(SWEEP_SECONDS)
        with contextlib.suppress(Exception):  # why: a sweep must never take the server down
            release_closed_sessions()
        if libc is not None:
            libc.malloc_trim(0)  # free pages at the top and inside every heap go back


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has malloc_trim and mallopt), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 - only glibc has both
    except (OSError, AttributeError):
        return None
    return libc
