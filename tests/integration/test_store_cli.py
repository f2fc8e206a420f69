"""``fraud local``, ``fraud tables`` and ``fraud label`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraud.cli.label import command as label_command
from fraud.config import Settings
from fraud.errors import ConfigError
from fraud.schema.batch import TransactionBatch
from fraud.store import connect
from fraud.store.feature_store import DynamoStateStore
from fraud.store.history import write_history

pytestmark = pytest.mark.integration


def _fraud(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "fraud", *args], capture_output=True,
                          stdin=subprocess.DEVNULL, text=True, env=full, timeout=120,
                          check=False)


def test_local_up_status_down(tmp_path: Path, aws_env: None) -> None:
    local = str(tmp_path / "local")
    assert _fraud("local", "status", "--local-dir", local).returncode == 3
    up = _fraud("local", "up", "--service", "moto", "--local-dir", local)
    assert up.returncode == 0, up.stderr
    assert "Traceback" not in up.stderr
    export = up.stdout.strip()
    assert export.startswith("export FRAUD_ENDPOINT_URL=http://127.0.0.1:")
    assert "# ready: 13 tables (" in up.stderr and "no streams" in up.stderr  # not Kinesis
    endpoint = export.split("=", 1)[1]
    state = json.loads((tmp_path / "local" / "local.json").read_text())["services"]["moto"]
    assert state["endpoint"] == endpoint and state["pid"] > 0
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5) as resp:
        assert resp.status == 200
    again = _fraud("local", "up", "--service", "moto", "--local-dir", local)  # idempotent
    assert again.stdout.strip() == export and "already running" in again.stderr
    status = _fraud("local", "status", "--local-dir", local)
    assert status.returncode == 0 and "moto: up" in status.stdout
    down = _fraud("local", "down", "--local-dir", local)
    assert down.returncode == 0 and "moto: stopped" in down.stdout
    assert not (tmp_path / "local" / "local.json").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2)
    assert _fraud("local", "status", "--local-dir", local).returncode == 3
    assert "nothing running" in _fraud("local", "down", "--local-dir", local).stdout


def test_tables_seed_and_label_commands(settings: Settings, tmp_path: Path) -> None:
    env = {"FRAUD_ENDPOINT_URL": str(settings.endpoint_url)}
    prefix = ["--prefix", settings.table_prefix]
    created = _fraud("tables", "create", *prefix, env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.count(": created") == 13
    assert _fraud("tables", "create", *prefix, env=env).stdout.count(": exists") == 13
    described = _fraud("tables", "describe", "--json", *prefix, env=env)
    rows = [json.loads(line) for line in described.stdout.splitlines()]
    assert {r["status"] for r in rows} == {"ACTIVE"} and len(rows) == 13

    seed_dir = tmp_path / "gen"
    seed_dir.mkdir()
    (seed_dir / "posts.jsonl").write_text(
        '{"post_id": "p1", "user_id": "u1", "ts": "2023-08-01T00:00:00Z"}\n')
    seeded = _fraud("tables", "seed", "--input", str(seed_dir), *prefix, env=env)
    assert seeded.returncode == 0, seeded.stderr
    assert "read posts.jsonl: 1 rows" in seeded.stdout
    missing = _fraud("tables", "seed", "--input", str(tmp_path / "nope"), *prefix, env=env)
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    assert "Traceback" not in missing.stderr

    batch = TransactionBatch.from_columns(transaction_id=["t1"], timestamp_us=[10**15],
                                          user_id=["u1"], terminal_id=["m1"], amount=[5.0])
    write_history(connect(settings), batch)
    labels = tmp_path / "labels.csv"
    labels.write_text("transaction_id,is_fraud,label_time\nt1,1,2001-09-10T00:00:00Z\n")
    out = [_fraud("label", "--input", str(labels), *prefix, env=env) for _ in range(2)]
    reports = [json.loads(o.stdout) for o in out]
    assert [(r["updated"], r["repeated"]) for r in reports] == [(1, 0), (0, 1)]
    bad = _fraud("label", "--input", str(tmp_path / "absent.csv"), *prefix, env=env)
    assert bad.returncode == 2 and "no such file" in bad.stderr
    # A foreign column name, and a bad row reported with its line while the good one applies.
    foreign = tmp_path / "chargebacks.csv"
    foreign.write_text("transaction_id,chargeback\nt1,1\nt2,maybe\n")
    mixed = _fraud("label", "--input", str(foreign), "--columns", "is_fraud=chargeback",
                   *prefix, env=env)
    assert mixed.returncode == 0, mixed.stderr
    assert "chargebacks.csv: line 3: is_fraud" in mixed.stderr and "maybe" in mixed.stderr
    report = json.loads(mixed.stdout)
    assert (report["labels"], report["rejected"], report["matched"]) == (1, 1, 1)
    only_bad = tmp_path / "only_bad.csv"
    only_bad.write_text("transaction_id,is_fraud\nt2,maybe\n")
    none = _fraud("label", "--input", str(only_bad), *prefix, env=env)
    assert none.returncode == 2 and "no valid labels" in none.stderr
    assert "Traceback" not in none.stderr

    unknown = tmp_path / "unknown.csv"
    unknown.write_text("transaction_id,is_fraud\nnobody,1\n")
    stray = _fraud("label", "--input", str(unknown), *prefix, env=env)
    assert stray.returncode == 0 and json.loads(stray.stdout)["unmatched"] == 1
    assert "note: none of the 1 labels matched" in stray.stderr

    refused = _fraud("tables", "delete", *prefix, env=env)  # no --yes, no terminal
    assert refused.returncode == 2 and "without --yes" in refused.stderr
    deleted = _fraud("tables", "delete", "--yes", *prefix, env=env)
    assert deleted.returncode == 0 and deleted.stdout.count(": deleted") == 13
    gone = _fraud("tables", "describe", *prefix, env=env)
    assert gone.returncode == 2 and "13 of 13 tables missing" in gone.stderr


def test_label_twice_counts_once_and_a_correction_retracts(settings: Settings,
                                                           tmp_path: Path) -> None:
    env = {"FRAUD_ENDPOINT_URL": str(settings.endpoint_url)}
    prefix = ["--table-prefix", settings.table_prefix]  # README's spelling; --prefix too
    early = tmp_path / "early.csv"
    early.write_text("transaction_id,is_fraud\nt1,1\n")
    with pytest.raises(ConfigError, match="create them with `fraud tables create"):
        CliRunner().invoke(label_command, ["--input", str(early), *prefix], env=env,
                           catch_exceptions=False)
    assert _fraud("tables", "create", *prefix, env=env).returncode == 0
    day = 86_400_000_000
    t0 = 1_700_000_000_000_000
    batch = TransactionBatch.from_columns(
        transaction_id=["t1", "t2", "t3"], timestamp_us=[t0, t0 + 1, t0 + 2],
        user_id=["u1", "u2", "u1"], terminal_id=["m1", "m1", "m2"], amount=[5.0, 6.0, 7.0])
    db = connect(settings)
    write_history(db, batch)
    labels = tmp_path / "labels.csv"
    labels.write_text("transaction_id,is_fraud\nt1,1\nt2,1\nt3,0\n")

    def frauds() -> int:
        snap = DynamoStateStore(db).load_terminals(["m1", "m2"], t0 - day, t0 + day)
        return len(snap.fraud_ts)

    def label(*args: str) -> dict[str, int]:
        # In-process (the subprocess path is covered above): the same command, faster.
        run = CliRunner().invoke(label_command, list(args), env=env, catch_exceptions=False)
        assert run.exit_code == 0, run.output
        report: dict[str, int] = json.loads(run.stdout)
        return report

    reports = [label("--input", str(labels), *prefix) for _ in range(2)]
    assert [(r["updated"], r["repeated"], r["fraud_labels_sent"]) for r in reports] == [
        (3, 0, 2), (0, 3, 0)]
    assert reports[0]["requests"] > 0
    assert frauds() == 2  # two fraud labels, counted once although applied twice
    labels.write_text("transaction_id,is_fraud\nt2,0\n")  # a chargeback reversed
    assert label("--input", str(labels), "--prefix", settings.table_prefix)["retracted"] == 1
    assert frauds() == 1


def test_store_commands_explain_a_dead_endpoint_and_a_bad_prefix(tmp_path: Path,
                                                                 aws_env: None) -> None:
    dead = {"FRAUD_ENDPOINT_URL": "http://127.0.0.1:9"}  # the discard port: nothing listens
    labels = tmp_path / "labels.csv"
    labels.write_text("transaction_id,is_fraud\nt1,1\n")
    for args in (["tables", "create", "--timeout", "5"], ["label", "--input", str(labels)]):
        run = _fraud(*args, env=dead)
        assert run.returncode == 2, (args, run.stderr)
        assert "cannot reach dynamodb at http://127.0.0.1:9" in run.stderr
        assert "Traceback" not in run.stderr
    bad = _fraud("tables", "create", "--prefix", "no spaces!", env=dead)
    assert bad.returncode == 2 and "table prefix 'no spaces!'" in bad.stderr
