"""`xtremedistil serve`: the API answers what the student predicts, limits and bad input get JSON errors,
concurrent requests share forward passes, metrics count what happened, SIGTERM drains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'xtremedistil[serve]')")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.serve.helpers import TEXTS, free_port, running, saved_tiny_student  # noqa: E402
from xtremedistil.cli import main  # noqa: E402
from xtremedistil.serve import ServeSettings, create_app  # noqa: E402
from xtremedistil.student.saved import load_student  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return saved_tiny_student(tmp_path_factory.mktemp("serve") / "student")


@pytest.fixture(scope="module")
def predictor(folder):
    return load_student(folder)


@pytest.fixture
def client(predictor):
    settings = ServeSettings(max_texts=5, max_chars=60, max_body_bytes=4000)
    with TestClient(create_app(predictor, settings)) as c:
        yield c


def metric(client_or_text, name: str, **labels: str) -> float:
    text = client_or_text if isinstance(client_or_text, str) else client_or_text.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_predict_answers_what_the_student_predicts(client, predictor):
    response = client.post("/v1/predict", json={"texts": TEXTS})
    assert response.status_code == 200
    body = response.json()
    expected = predictor.predict(TEXTS)
    assert any(expected), "the tiny student should find some entities in the test texts"
    assert [r["text"] for r in body["results"]] == TEXTS
    for result, entities in zip(body["results"], expected, strict=True):
        assert result["entities"] == [e.to_dict() for e in entities]
        for e in result["entities"]:  # offsets index the text the client sent
            assert result["text"][e["start"] : e["end"]] == e["text"]
    assert body["took_ms"] > 0


def test_offsets_count_code_points_outside_the_basic_plane(client, predictor):
    text = "😀 alice lives in paris"
    entities = client.post("/v1/predict", json={"texts": [text]}).json()["results"][0]["entities"]
    assert entities == [e.to_dict() for e in predictor.predict([text])[0]]
    assert all(text[e["start"] : e["end"]] == e["text"] for e in entities)


@pytest.mark.parametrize(
    ("payload", "status", "code", "limit"),
    [
        ({"texts": ["alice"] * 6}, 413, "too_many_texts", 5),
        ({"texts": ["alice", "x" * 61]}, 413, "text_too_long", 60),
        ({"texts": ["c" * 4000]}, 413, "body_too_large", 4000),
        ({"texts": [1, 2]}, 422, "invalid_request", None),
        ({"texts": "alice"}, 422, "invalid_request", None),
        ({"texts": []}, 422, "invalid_request", None),
        ({"text": ["alice"]}, 422, "invalid_request", None),
        ([1, 2], 422, "invalid_request", None),
    ],
)
def test_limits_and_wrong_types_get_json_errors(client, payload, status, code, limit):
    response = client.post("/v1/predict", json=payload)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error.get("limit") == limit
    assert metric(client, "xtremedistil_errors_total", code=code) == 1
    assert metric(client, "xtremedistil_requests_total", path="/v1/predict", status=str(status)) == 1


def test_malformed_json_is_a_422_not_a_500(client):
    response = client.post(
        "/v1/predict", content=b'{"texts": ["ali', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "malformed_json"


def test_a_streamed_body_over_the_limit_is_refused_without_content_length(client):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    response = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "body_too_large",
        "message": "request body over 4000 bytes",
        "limit": 4000,
    }


def test_a_failing_model_gives_a_json_500_without_traceback(folder):
    class Broken:
        meta, backend = load_student(folder).meta, "torch"

        def predict(self, texts, batch_size=64):
            raise RuntimeError("boom")

    with TestClient(create_app(Broken()), raise_server_exceptions=False) as c:
        response = c.post("/v1/predict", json={"texts": ["alice"]})
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal"
        assert "Traceback" not in response.text and "boom" not in response.text
        assert c.post("/v1/predict", json={"texts": ["bob"]}).status_code == 500  # still serving


def test_health_metrics_docs_and_demo(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["entity_types"] == ["LOC", "ORG", "PER"]
    assert health["settings"]["max_texts"] == 5
    client.post("/v1/predict", json={"texts": TEXTS[:2]})
    client.post("/v1/predict", json={"texts": TEXTS[:3]})
    text = client.get("/metrics").text
    assert metric(text, "xtremedistil_texts_total") == 5
    assert metric(text, "xtremedistil_request_seconds_count") == 2
    assert metric(text, "xtremedistil_batch_texts_sum") == 5
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="input"' in page.text and "v1/predict" in page.text


def _concurrent(url: str, texts_per_request: list[list[str]]) -> list[httpx.Response]:
    out: list[httpx.Response | None] = [None] * len(texts_per_request)

    def send(i: int) -> None:
        out[i] = httpx.post(f"{url}/v1/predict", json={"texts": texts_per_request[i]}, timeout=30)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(texts_per_request))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out  # type: ignore[return-value]


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_share_forward_passes_only_when_batching(predictor, batching):
    requests = [[t] for t in TEXTS] + [TEXTS[:2], TEXTS[1:]]
    settings = ServeSettings(batching=batching, max_wait_ms=300)  # long enough for all to arrive
    app = create_app(predictor, settings)
    with running(app) as url:
        responses = _concurrent(url, requests)
        text = httpx.get(f"{url}/metrics").text
    expected = predictor.predict(TEXTS)
    by_text = {t: [e.to_dict() for e in es] for t, es in zip(TEXTS, expected, strict=True)}
    for texts, response in zip(requests, responses, strict=True):
        assert response.status_code == 200
        assert [r["entities"] for r in response.json()["results"]] == [by_text[t] for t in texts]
    passes = metric(text, "xtremedistil_batch_requests_count")
    assert metric(text, "xtremedistil_batch_texts_sum") == sum(map(len, requests))
    if batching:
        assert passes < len(requests)
    else:
        assert passes == len(requests)


def test_a_batch_never_exceeds_max_batch_size(predictor):
    app = create_app(predictor, ServeSettings(max_batch_size=3, max_wait_ms=300))
    with running(app) as url:
        responses = _concurrent(url, [TEXTS[:2]] * 5)
        text = httpx.get(f"{url}/metrics").text
    assert all(r.status_code == 200 for r in responses)
    assert metric(text, "xtremedistil_batch_texts_bucket", le="2.0") == metric(
        text, "xtremedistil_batch_texts_count"
    )  # 2 + 2 > 3: one request per pass


def test_sigterm_drains_in_flight_requests_then_exits(folder):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xtremedistil.cli",
            "serve",
            str(folder),
            "--port",
            str(port),
            "--max-wait-ms",
            "1500",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
            time.sleep(0.1)
        result: dict = {}
        sender = threading.Thread(
            target=lambda: result.update(r=httpx.post(f"{url}/v1/predict", json={"texts": TEXTS}, timeout=30))
        )
        sender.start()
        time.sleep(0.5)  # the request is waiting out the 1.5 s batching window
        server.send_signal(signal.SIGTERM)
        sender.join(30)
        assert result["r"].status_code == 200
        assert len(result["r"].json()["results"]) == len(TEXTS)
        assert server.wait(30) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=1)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_cli_serve_refuses_a_folder_that_is_not_a_student(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a saved student folder" in err and "Traceback" not in err


def test_cli_serve_refuses_bad_limits(folder, capsys):
    assert main(["serve", str(folder), "--max-texts", "0"]) == 2
    assert "--max-texts" in capsys.readouterr().err


def test_openapi_documents_the_error_shape(client):
    schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/v1/predict"]["post"]["responses"]
    assert {"200", "413", "422"} <= set(responses)
    assert json.dumps(responses["413"]).count("ErrorResponse") >= 1
