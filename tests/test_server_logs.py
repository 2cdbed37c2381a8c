"""What the browser tests take from a Streamlit server's log: Streamlit's own websocket handler
logs a traceback when a tab goes away mid-conversation (none of our code); every other
traceback still fails them (tests/conftest.py, without_websocket_noise)."""

from __future__ import annotations

from conftest import without_websocket_noise

SITE = "/usr/lib/python3.11/site-packages"
STARTED = "Uvicorn server started on 127.0.0.1:5000\n\n  URL: http://127.0.0.1:5000\n\n"


def _traceback(frames: list[str], last: str) -> str:
    lines = ["Traceback (most recent call last):"]
    for path in frames:
        lines += [f'  File "{path}", line 10, in handler', "    await something()"]
    return "\n".join([*lines, last]) + "\n"


SEND_AFTER_CLOSE = _traceback(
    [f"{SITE}/streamlit/web/server/starlette/starlette_websocket.py",
     f"{SITE}/starlette/websockets.py"],
    'starlette.websockets.WebSocketDisconnected: Cannot call "send" once a close message has '
    'been sent.')
# CI-like run on cd4f420 (test_newcomer_browser): a tab gone before the handshake.
RECEIVE_BEFORE_ACCEPT = (
    "Exception in ASGI application\n" + _traceback(
        [f"{SITE}/streamlit/web/server/starlette/starlette_websocket.py",
         f"{SITE}/starlette/websockets.py"],
        'starlette.websockets.WebSocketDisconnected: WebSocket is not connected. Need to call '
        '"accept" first.')
    + "\nDuring handling of the above exception, another exception occurred:\n\n"
    + _traceback([f"{SITE}/uvicorn/protocols/websockets/websockets_impl.py",
                  f"{SITE}/starlette/websockets.py"],
                 "RuntimeError: Unexpected ASGI message 'websocket.close', after sending "
                 "'websocket.close' or response already completed."))


def test_streamlits_own_websocket_tracebacks_are_left_out():
    for noise in (SEND_AFTER_CLOSE, RECEIVE_BEFORE_ACCEPT):
        kept = without_websocket_noise(STARTED + noise + "  Stopping...\n")
        assert "Traceback" not in kept and "Stopping..." in kept and "URL:" in kept


def test_a_traceback_through_our_code_is_kept_even_in_a_websocket():
    ours = _traceback([f"{SITE}/streamlit/web/server/starlette/starlette_websocket.py",
                       "/home/someone/dashboard/pages/train.py"],
                      "starlette.websockets.WebSocketDisconnected: boom")
    assert "pages/train.py" in without_websocket_noise(STARTED + ours)


def test_a_traceback_outside_the_websocket_is_kept():
    other = _traceback([f"{SITE}/streamlit/runtime/scriptrunner/exec_code.py"],
                       "ValueError: something broke")
    assert "ValueError: something broke" in without_websocket_noise(STARTED + other)
