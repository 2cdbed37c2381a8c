"""The password's guard inside Streamlit's server: the password form (gate.py) only decides what
a page draws, while a browser tab also talks to the server directly (uploads, its messages,
/media/ files, /_stcore/metrics). Where a password is set, this makes the server itself refuse
those to a tab that has not given it (README, "Showing it to others").

It wraps four objects of the running server, each at the method Streamlit's own routes call:
the upload store's add_file (PUT /_stcore/upload_file/...), the runtime's handle_backmsg (every
websocket message), the media store's get_file (GET /media/...; and the media manager's
execute_deferred, to know whose click made a download) and the statistics' get_stats
(GET /_stcore/metrics). app.py installs it on every run (only the first install does
anything, and lets go of what tabs without the password uploaded before it). A Streamlit
upgrade that renames one of these fails tests/test_faults_hostile_security.py rather than
leaving a hole quietly.
"""

from __future__ import annotations

import asyncio
import os
import threading

from starlette.exceptions import HTTPException
from streamlit.runtime import Runtime
from streamlit.runtime.media_file_storage import MediaFileStorageError

from cifar_core.password import (
    MESSAGES_BEFORE_PASSWORD,
    UPLOADS_PER_SESSION_BYTES,
    dashboard_password,
)
from pages.shared import gate

_installing = threading.Lock()
_MARK = "_cifar_password_guard"


def install() -> None:
    """Put the guard into this process's Streamlit server, once, where a password is set.
    Nothing to do without one, nor in tests' AppTest (no server: its runtime is a stand-in)."""
    if not _password_set() or not Runtime.exists():
        return
    runtime = Runtime.instance()
    if not isinstance(runtime, Runtime):
        return
    with _installing:
        if getattr(runtime, _MARK, False):
            return
        _guard_uploads(runtime)
        _guard_messages(runtime)
        _guard_media(runtime)
        _guard_metrics(runtime)
        setattr(runtime, _MARK, True)
    _drop_uploads_of_tabs_without_password(runtime)


def _password_set() -> bool:
    return dashboard_password(gate.secrets()) is not None


def _passed(runtime: Runtime, session_id: str) -> bool:
    """True when no password is set, or this tab is connected and has given it."""
    if not _password_set():
        return True
    session = runtime.get_app_session(session_id)
    if session is None:
        return False
    state = session.session_state
    return gate.PASSED in state and state[gate.PASSED] is True


def _guard_uploads(runtime: Runtime) -> None:
    uploads = runtime.uploaded_file_mgr
    add_file = uploads.add_file

    def guarded_add_file(session_id: str, file) -> None:
        if not _passed(runtime, session_id):
            raise HTTPException(status_code=403, detail="Give the dashboard's password first.")
        held = sum(len(kept.data) for file_id, kept in
                   list(uploads.file_storage.get(session_id, {}).items())
                   if file_id != file.file_id)
        if held + len(file.data) > UPLOADS_PER_SESSION_BYTES:
            raise HTTPException(status_code=413, detail="This tab holds too many uploads: "
                                "remove some before adding more.")
        add_file(session_id=session_id, file=file)

    uploads.add_file = guarded_add_file


def _drop_uploads_of_tabs_without_password(runtime: Runtime) -> None:
    # A server started with `streamlit run app.py` has its guard only from the first page run
    # on: whatever a tab without the password uploaded before that is let go now.
    uploads = runtime.uploaded_file_mgr
    for session_id in list(getattr(uploads, "file_storage", {})):
        if not _passed(runtime, session_id):
            uploads.remove_session_files(session_id)


def _guard_messages(runtime: Runtime) -> None:
    handle_backmsg = runtime.handle_backmsg

    def guarded_handle_backmsg(session_id: str, msg, *, client=None) -> None:
        if msg.WhichOneof("type") in MESSAGES_BEFORE_PASSWORD or _passed(runtime, session_id):
            handle_backmsg(session_id, msg, client=client)

    runtime.handle_backmsg = guarded_handle_backmsg


# A download made when it is clicked (st.download_button given a function) is kept under an id
# of its own, which no tab holds: the id each click made -> the id the tab holds.
_made_on_click: dict[str, str] = {}


def _shown_to_a_tab_with_password(runtime: Runtime, file_id: str) -> bool:
    """True when a connected tab that gave the password shows this file: a file's address works
    only while such a tab is open."""
    file_id = _made_on_click.get(file_id, file_id)
    media = runtime.media_file_mgr
    # Read without its lock: the manager calls get_file while holding it (a Lock, not an RLock),
    # and copying a dict with list() happens under the interpreter's lock anyway.
    showing = [session_id for session_id, by_place in
               list(media._files_by_session_and_coord.items())
               if file_id in list(by_place.values())]
    showing += [session_id for session_id, ids in list(media._deferred_ids_by_session.items())
                if file_id in set(ids)]
    return any(_passed(runtime, session_id) for session_id in showing)


def _guard_media(runtime: Runtime) -> None:
    media = runtime.media_file_mgr
    storage = media._storage  # the store the /media/ route reads
    get_file, execute_deferred = storage.get_file, media.execute_deferred

    def guarded_get_file(filename: str):
        # Only the /media/ route asks from the server's event loop; Streamlit's own calls (a
        # page adding a picture, a click making its download) come from other threads.
        file_id = os.path.splitext(filename)[0]
        if _on_event_loop() and _password_set() and \
                not _shown_to_a_tab_with_password(runtime, file_id):
            raise MediaFileStorageError(f"No media file with id '{file_id}'")
        return get_file(filename)

    def remembered_execute_deferred(file_id: str) -> str:
        url = execute_deferred(file_id)
        _made_on_click[os.path.splitext(url.rsplit("/", 1)[-1])[0]] = file_id
        return url

    storage.get_file = guarded_get_file
    media.execute_deferred = remembered_execute_deferred


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _guard_metrics(runtime: Runtime) -> None:
    # /_stcore/metrics tells anyone how many tabs are open and how much the caches hold; with a
    # password set it answers with no figures.
    stats = runtime.stats_mgr
    get_stats = stats.get_stats

    def guarded_get_stats(*args, **kwargs):
        return {} if _password_set() else get_stats(*args, **kwargs)

    stats.get_stats = guarded_get_stats
