"""A tiny saved student whose tags are decided by its weights (a random model scaled so that it commits to
entities), and a real uvicorn server on loopback in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from tests.student.test_model import LABELS, tiny_student
from xtremedistil.student.saved import save_student

TEXTS = [
    "alice lives in paris",
    "bob works at acme corp in london , the city",
    "alice met bob",
    "paris",
]


def saved_tiny_student(folder: Path) -> Path:
    from tests.conftest import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(3)
    student = tiny_student(tokenizer).eval()
    with torch.no_grad():  # a random head is near-uniform; scaled, it makes confident, varied tags
        for p in student.parameters():
            p.mul_(2.0)
    student.set_backoff(5 + np.arange(len(tokenizer)) % 25)
    save_student(student, tokenizer, LABELS, folder, {"max_length": 16})
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread (no signal handlers there); yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
