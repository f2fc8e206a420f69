"""A `Scorer` backed by a SageMaker endpoint (``sagemaker-runtime`` InvokeEndpoint).

The seed architecture hosts the model on SageMaker; this keeps the pipeline's interface
(`score`, `explain`) and adds what a network hop needs: rows are sent in batches (CSV or JSON),
each call has connect/read timeouts, throttling and 5xx errors are retried a bounded number of
times with backoff, and when it still fails the scorer raises `ScoreUnavailableError`: the
decision records "score unavailable" and the rules decide what that means. It never answers
"not fraud" for a call that failed, and a reply that does not hold one probability per row
is a failure too.

Feature names and the reference values for reasons come from the local artifact's manifest,
which must describe the model the endpoint serves.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from fraud.errors import ScoreUnavailableError
from fraud.logs import get_logger
from fraud.model.artifact import Manifest
from fraud.model.reasons import Reasons, explain
from fraud.model.scorer import check_matrix, correct_for_weight

__all__ = ["RETRYABLE_CODES", "SageMakerScorer", "encode_csv", "encode_json", "make_client",
           "parse_scores"]

F64 = npt.NDArray[np.float64]
log = get_logger(__name__)

RETRYABLE_CODES = frozenset({
    "ThrottlingException", "ServiceUnavailable", "InternalFailure", "InternalServerError",
    "ModelNotReadyException", "ServiceUnavailableException", "RequestTimeout",
})
CONTENT_TYPES = ("text/csv", "application/json")


def make_client(settings: Any, connect_timeout: float = 1.0, read_timeout: float = 2.0) -> Any:
    """A ``sagemaker-runtime`` client with short timeouts and botocore's retries off (the
    scorer retries itself, so attempts and backoff are bounded in one place)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client("sagemaker-runtime", region_name=settings.region,
                        endpoint_url=settings.aws_endpoint("sagemaker-runtime"), config=config)


def _number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def encode_csv(x: F64) -> bytes:
    """One row per line, no header; NaN is an empty field."""
    return "".join(",".join(_number(v) for v in row) + "\n" for row in x.tolist()).encode()


def encode_json(x: F64) -> bytes:
    """``{"instances": [[...], ...]}`` with NaN as null."""
    rows = [[None if math.isnan(v) else v for v in row] for row in x.tolist()]
    return json.dumps({"instances": rows}, separators=(",", ":")).encode()


def _as_probability(item: Any) -> float:
    if isinstance(item, dict):
        for key in ("score", "probability", "predicted_probability"):
            if key in item:
                return _as_probability(item[key])
        if "probabilities" in item:
            return _as_probability(item["probabilities"])
        raise ValueError(f"no score in {sorted(item)}")
    if isinstance(item, list):
        if not item:
            raise ValueError("empty prediction")
        return _as_probability(item[-1])  # [p_genuine, p_fraud] -> p_fraud
    if isinstance(item, bool) or not isinstance(item, int | float | str):
        raise ValueError(f"not a number: {type(item).__name__}")
    return float(item)


def parse_scores(body: bytes, content_type: str, rows: int) -> F64:
    """The fraud probability per row from an endpoint reply, or ValueError saying why not.

    Accepted: CSV with one number per line (or ``p_genuine,p_fraud``); JSON as a list, or
    ``{"predictions": [...]}``, whose items are numbers, ``[p_genuine, p_fraud]`` pairs or
    ``{"score": p}`` objects.
    """
    text = body.decode("utf-8")
    if "json" in content_type or text.lstrip().startswith(("[", "{")):
        doc = json.loads(text)
        items = doc.get("predictions", doc.get("scores")) if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise ValueError("JSON reply has no list of predictions")
        values = [_as_probability(i) for i in items]
    else:
        lines = [ln for ln in io.StringIO(text).read().splitlines() if ln.strip()]
        if len(lines) == 1 and rows > 1 and lines[0].count(",") == rows - 1:
            lines = lines[0].split(",")  # some containers answer one comma-separated line
        values = [float(ln.split(",")[-1]) for ln in lines]
    scores = np.asarray(values, dtype=np.float64)
    if scores.size != rows:
        raise ValueError(f"endpoint returned {scores.size} scores for {rows} rows")
    if not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
        raise ValueError("endpoint returned scores outside [0, 1]")
    return scores


class SageMakerScorer:
    """Scores through InvokeEndpoint. `sleep` is injectable so tests need no real waiting."""

    def __init__(self, client: Any, endpoint: str, manifest: Manifest, *,
                 content_type: str = "text/csv", batch_rows: int = 1000, attempts: int = 3,
                 backoff_s: float = 0.05, apply_weight_correction: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if content_type not in CONTENT_TYPES:
            raise ValueError(f"content_type must be one of {CONTENT_TYPES}")
        if batch_rows < 1 or attempts < 1:
            raise ValueError("batch_rows and attempts must be >= 1")
        self._client = client
        self.endpoint = endpoint
        self._names = tuple(manifest.feature_names)
        self._reference = np.asarray(manifest.reference, dtype=np.float64)
        # An endpoint serving the raw estimator returns weighted-training probabilities;
        # one serving our scorer returns corrected ones. Say which with this flag.
        self._weight = float(manifest.positive_weight) if apply_weight_correction else 1.0
        self._version = f"sagemaker:{endpoint}:{manifest.model_sha256[:12]}"
        self.content_type = content_type
        self.batch_rows = batch_rows
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.calls = 0

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def version(self) -> str:
        return self._version

    def _invoke(self, x: F64) -> F64:
        from botocore.exceptions import BotoCoreError, ClientError

        body = encode_csv(x) if self.content_type == "text/csv" else encode_json(x)
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            self.calls += 1
            try:
                reply = self._client.invoke_endpoint(
                    EndpointName=self.endpoint, ContentType=self.content_type,
                    Accept=self.content_type, Body=body)
                payload = reply["Body"].read()
                return parse_scores(payload, str(reply.get("ContentType", self.content_type)),
                                    x.shape[0])
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
                last = exc
                if code not in RETRYABLE_CODES and status < 500:
                    raise ScoreUnavailableError(
                        f"SageMaker endpoint {self.endpoint}: {code or status}: "
                        f"{exc.response.get('Error', {}).get('Message', '')}") from exc
            except BotoCoreError as exc:  # timeouts, connection refused
                last = exc
            except (ValueError, UnicodeDecodeError, KeyError) as exc:
                raise ScoreUnavailableError(
                    f"SageMaker endpoint {self.endpoint}: unusable reply: {exc}") from exc
            log.warning("sagemaker_retry", endpoint=self.endpoint, attempt=attempt,
                        error=type(last).__name__)
            if attempt < self.attempts:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        raise ScoreUnavailableError(
            f"SageMaker endpoint {self.endpoint}: failed after {self.attempts} attempts: "
            f"{last}") from last

    def _raw(self, x: F64) -> F64:
        if x.shape[0] == 0:
            return np.zeros(0)
        parts = [self._invoke(x[i:i + self.batch_rows])
                 for i in range(0, x.shape[0], self.batch_rows)]
        return correct_for_weight(np.concatenate(parts), self._weight)

    def score(self, x: F64) -> F64:
        return self._raw(check_matrix(x, len(self._names)))

    def explain(self, x: F64, k: int = 3) -> Reasons:
        """Occlusion reasons through the endpoint: ``rows * features`` extra rows, batched."""
        x = check_matrix(x, len(self._names))
        return explain(self._raw, x, self._reference, self._names, k=k)
