"""`fraud replay --store dynamodb` decides exactly as the in-memory store does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraud.cli import cli
from fraud.config import Settings
from fraud.generate import GenerateConfig, generate, write_dataset
from fraud.replay import ReplayConfig, run_replay
from fraud.store.clients import RequestCounter
from fraud.store.dynamo import Dynamo
from fraud.store.feature_store import DynamoStateStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _world(path: Path, users: int, terminals: int, days: int, seed: int) -> Path:
    write_dataset(generate(GenerateConfig(users=users, terminals=terminals, days=days, seed=seed,
                                          start=datetime(2024, 3, 1, tzinfo=UTC))), path)
    return path


def test_replay_on_dynamodb_gives_the_in_memory_decisions(
    dynamo: Dynamo, counter: RequestCounter, tmp_path: Path
) -> None:
    data = _world(tmp_path / "tx.csv", users=120, terminals=25, days=5, seed=11)

    def config(out: Path) -> ReplayConfig:
        return ReplayConfig(input=str(data), output=out, model_dir=ROOT / "models" / "default",
                            rules_path=str(ROOT / "rules" / "default.yaml"), chunk_rows=500)

    memory, dynamodb = tmp_path / "memory.csv", tmp_path / "dynamodb.csv"
    run_replay(config(memory))
    summary = run_replay(config(dynamodb), store=DynamoStateStore(dynamo))
    assert summary.rows_decided > 500
    assert dynamodb.read_bytes() == memory.read_bytes()
    # Batched reads and writes: far fewer DynamoDB requests than transactions.
    per_tx = counter.per(summary.rows_decided, "dynamodb")
    assert per_tx < 0.1, f"{per_tx:.4f} DynamoDB requests per transaction"  # 0.026 measured


def test_replay_cli_reports_dynamodb_requests_per_transaction(
    dynamo: Dynamo, settings: Settings, tmp_path: Path
) -> None:
    data = _world(tmp_path / "tx.csv", users=40, terminals=10, days=3, seed=5)
    assert settings.endpoint_url is not None
    result = CliRunner().invoke(cli, [
        "replay", "--input", str(data), "--output", str(tmp_path / "out.csv"),
        "--store", "dynamodb", "--endpoint-url", settings.endpoint_url,
        "--table-prefix", settings.table_prefix,
        "--model", str(ROOT / "models" / "default"),
        "--rules", str(ROOT / "rules" / "default.yaml"),
    ])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("dynamodb: "))
    requests = int(line.split()[1])
    per_tx = float(line.rsplit(",", 1)[1].split()[0])
    assert requests > 0 and "BatchGetItem=" in line
    assert 0 < per_tx < 0.5, line
