"""SageMaker scorer against botocore's Stubber: payloads, batching, retries, failure mode."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from fraud.errors import ScoreUnavailableError
from fraud.model.artifact import Manifest
from fraud.model.sagemaker import SageMakerScorer, encode_csv, parse_scores
from fraud.model.scorer import score_or_unavailable

NAMES = ("a", "b")
MANIFEST = Manifest(
    feature_names=NAMES, feature_engine_version="t", label_delay_days=7.0, algorithm="hgb",
    params={}, positive_weight=1.0, reference=(0.0, 0.0), train_range=("a", "b"),
    test_range=None, counts={}, metrics={}, library_versions={}, created_at="now",
    model_sha256="0" * 64)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield boto3.client("sagemaker-runtime", region_name="us-east-1",
                       endpoint_url="http://127.0.0.1:1")


def _reply(body: bytes, content_type: str = "text/csv") -> dict[str, Any]:
    return {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": content_type}


def _scorer(client: Any, **kw: Any) -> tuple[SageMakerScorer, list[float]]:
    sleeps: list[float] = []
    return SageMakerScorer(client, "fraud-ep", MANIFEST, sleep=sleeps.append, **kw), sleeps


def test_csv_round_trip_in_batches(client: Any) -> None:
    x = np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]])
    scorer, _ = _scorer(client, batch_rows=2)
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint", _reply(b"0.1\n0.2\n"),
                          {"EndpointName": "fraud-ep", "ContentType": "text/csv",
                           "Accept": "text/csv", "Body": b"1.0,\n2.0,3.0\n"})
        stub.add_response("invoke_endpoint", _reply(b"0.9\n"),
                          {"EndpointName": "fraud-ep", "ContentType": "text/csv",
                           "Accept": "text/csv", "Body": b"4.0,5.0\n"})
        assert scorer.score(x).tolist() == [0.1, 0.2, 0.9]
        stub.assert_no_pending_responses()


def test_json_payload_and_pair_predictions(client: Any) -> None:
    scorer, _ = _scorer(client, content_type="application/json")
    body = json.dumps({"predictions": [[0.7, 0.3], {"score": 0.8}]}).encode()
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint", _reply(body, "application/json"),
                          {"EndpointName": "fraud-ep", "ContentType": "application/json",
                           "Accept": "application/json",
                           "Body": b'{"instances":[[1.0,null],[2.0,3.0]]}'})
        assert scorer.score(np.array([[1.0, np.nan], [2.0, 3.0]])).tolist() == [0.3, 0.8]


def test_throttling_is_retried_with_backoff(client: Any) -> None:
    scorer, sleeps = _scorer(client, attempts=3, backoff_s=0.5)
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", "ThrottlingException", http_status_code=400)
        stub.add_client_error("invoke_endpoint", "InternalFailure", http_status_code=500)
        stub.add_response("invoke_endpoint", _reply(b"0.4\n"), {
            "EndpointName": ANY, "ContentType": ANY, "Accept": ANY, "Body": ANY})
        assert scorer.score(np.zeros((1, 2))).tolist() == [0.4]
    assert sleeps == [0.5, 1.0] and scorer.calls == 3


def test_persistent_failure_is_score_unavailable(client: Any) -> None:
    scorer, sleeps = _scorer(client, attempts=2)
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_client_error("invoke_endpoint", "ServiceUnavailable", http_status_code=503)
        with pytest.raises(ScoreUnavailableError, match="failed after 2 attempts"):
            scorer.score(np.zeros((1, 2)))
    assert len(sleeps) == 1


def test_client_error_is_not_retried(client: Any) -> None:
    scorer, sleeps = _scorer(client, attempts=3)
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", "ValidationError", "no such endpoint",
                              http_status_code=400)
        with pytest.raises(ScoreUnavailableError, match="ValidationError: no such endpoint"):
            scorer.score(np.zeros((1, 2)))
    assert sleeps == [] and scorer.calls == 1


def test_wrong_row_count_is_unavailable_not_a_guess(client: Any) -> None:
    scorer, _ = _scorer(client)
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint", _reply(b"0.1\n"), {
            "EndpointName": ANY, "ContentType": ANY, "Accept": ANY, "Body": ANY})
        scores, ok = score_or_unavailable(scorer, np.zeros((2, 2)))
    assert not ok and np.isnan(scores).all()


def test_connection_refused_on_localhost_is_unavailable(client: Any) -> None:
    """A real HTTP attempt to a closed port on 127.0.0.1: a BotoCoreError, retried, then
    reported as unavailable."""
    import boto3
    from botocore.config import Config

    fast = boto3.client("sagemaker-runtime", region_name="us-east-1",
                        endpoint_url="http://127.0.0.1:9",
                        config=Config(connect_timeout=0.5, read_timeout=0.5,
                                      retries={"max_attempts": 1}))
    scorer, sleeps = _scorer(fast, attempts=2)
    with pytest.raises(ScoreUnavailableError, match="failed after 2 attempts"):
        scorer.score(np.zeros((1, 2)))
    assert len(sleeps) == 1


def test_explain_through_the_endpoint(client: Any) -> None:
    scorer, _ = _scorer(client)
    # one call for the base scores, one for the two occluded copies of the row
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint", _reply(b"0.9\n"), {
            "EndpointName": ANY, "ContentType": ANY, "Accept": ANY, "Body": b"1.0,2.0\n"})
        stub.add_response("invoke_endpoint", _reply(b"0.5\n0.85\n"), {
            "EndpointName": ANY, "ContentType": ANY, "Accept": ANY,
            "Body": b"0.0,2.0\n1.0,0.0\n"})
        reasons = scorer.explain(np.array([[1.0, 2.0]]), k=3)
    assert reasons.row(0)[0]["feature"] == "a"
    assert reasons.row(0)[0]["contribution"] == pytest.approx(0.4)
    assert [r["feature"] for r in reasons.row(0)] == ["a", "b"]


def test_parse_scores_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        parse_scores(b"1.5\n", "text/csv", 1)
    assert parse_scores(b"0.1,0.2", "text/csv", 2).tolist() == [0.1, 0.2]
    assert encode_csv(np.array([[1.5, np.nan]])) == b"1.5,\n"


def test_build_scorer_chooses_by_configuration(client: Any, tmp_path: Path) -> None:
    from dataclasses import replace

    from fraud.config import Settings
    from fraud.errors import ConfigError, ModelError
    from fraud.features.api import FEATURE_ENGINE_VERSION, FEATURE_NAMES
    from fraud.model.scorer import build_scorer

    manifest = replace(MANIFEST, feature_names=FEATURE_NAMES,
                       feature_engine_version=FEATURE_ENGINE_VERSION,
                       reference=tuple(0.0 for _ in FEATURE_NAMES))
    (tmp_path / "manifest.json").write_text(manifest.to_json())
    settings = Settings(scorer="sagemaker", model_dir=tmp_path)
    with pytest.raises(ConfigError, match="FRAUD_SAGEMAKER_ENDPOINT"):
        build_scorer(settings, client)
    scorer = build_scorer(replace(settings, sagemaker_endpoint="ep"), client)
    assert isinstance(scorer, SageMakerScorer) and scorer.feature_names == FEATURE_NAMES
    (tmp_path / "manifest.json").write_text(
        replace(manifest, feature_engine_version="old").to_json())
    with pytest.raises(ModelError, match="feature engine version mismatch"):
        build_scorer(replace(settings, sagemaker_endpoint="ep"), client)


def test_silent_endpoint_times_out_into_unavailable(client: Any) -> None:
    """An endpoint on 127.0.0.1 that accepts the connection but never answers: the client
    `make_client` builds gives up at its read timeout (botocore's own retries off), the
    scorer retries its bounded number of times, then reports "score unavailable"."""
    import socket
    from types import SimpleNamespace

    from fraud.model.sagemaker import make_client

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshakes; nobody ever replies
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = SimpleNamespace(region="us-east-1", aws_endpoint=lambda service: url)
        timed = make_client(settings, connect_timeout=0.5, read_timeout=0.3)
        scorer, sleeps = _scorer(timed, attempts=2)
        with pytest.raises(ScoreUnavailableError, match=r"failed after 2 attempts.*[Tt]imeout"):
            scorer.score(np.zeros((3, 2)))
    assert scorer.calls == 2 and len(sleeps) == 1
    scores, available = score_or_unavailable(scorer, np.zeros((2, 2)))
    assert not available and np.isnan(scores).all()
