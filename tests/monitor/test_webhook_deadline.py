"""A webhook attempt has a deadline for the whole exchange: a receiver that accepts the
POST and then drips its answer a byte at a time (each read well inside a per-read timeout)
is given up on when the deadline passes, and the attempt is counted as failed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from chainmap_otel.monitor.webhook import WebhookNotifier, post_json
from tests.monitor.conftest import WebhookReceiver, wait_until

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
#: One byte every DRIP_S: the whole answer takes far longer than the deadline.
DRIP_S = 0.5
DEADLINE_S = 1.0
#: Generous for a loaded machine; the dripping answer alone takes len(ANSWER) * DRIP_S = 35 s.
MARGIN_S = 10.0


class DrippingReceiver:
    """Accepts, reads the request, then sends ``ANSWER`` one byte per ``DRIP_S``."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.stop = threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in ANSWER:
                if self.stop.wait(DRIP_S):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up: what a deadline does

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def dripping() -> Iterator[DrippingReceiver]:
    receiver = DrippingReceiver()
    yield receiver
    receiver.close()


def test_one_attempt_ends_at_its_deadline(dripping: DrippingReceiver) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within the 1s deadline"):
        post_json(dripping.url, b"{}", DEADLINE_S)
    assert time.monotonic() - started < DEADLINE_S + MARGIN_S


def test_a_dripping_receiver_fails_its_attempts_and_frees_the_worker(
    dripping: DrippingReceiver,
) -> None:
    answering = WebhookReceiver()
    notifier = WebhookNotifier(
        [dripping.url, answering.url], None, timeout_s=DEADLINE_S, max_attempts=2, backoff_s=0.1
    )
    notifier.start()
    try:
        started = time.monotonic()
        notifier.notify({"status": "firing", "alerts": [], "groupLabels": {"chain_id": "CK"}})
        wait_until(lambda: notifier.stats.failed == 1, "the dripping receiver's delivery to fail")
        # Two attempts of one deadline each and a short backoff, not two dripped answers.
        assert time.monotonic() - started < 2 * DEADLINE_S + MARGIN_S
        assert dripping.connections == 2
        assert notifier.stats.delivered == 1 and answering.payloads
        notifier.notify({"status": "resolved", "alerts": [], "groupLabels": {"chain_id": "CK"}})
        wait_until(lambda: notifier.stats.failed == 2, "the worker to take the next one")
    finally:
        notifier.stop()
        answering.close()


def test_an_answer_within_the_deadline_is_delivered() -> None:
    receiver = WebhookReceiver()
    try:
        assert post_json(receiver.url, b'{"status": "firing"}', DEADLINE_S) == 200
        assert receiver.payloads == [{"status": "firing"}]
    finally:
        receiver.close()
