"""The S3 archive against moto in-process: date partitions, flush by rows / bytes / time,
deterministic object names, and read-back through read_transactions("s3://...")."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from fraud.actions import Archive
from fraud.actions.testing import FEATURE_NAMES, T0_US, make_outcome
from fraud.config import Settings
from fraud.errors import ConfigError, InputError, StoreError
from fraud.schema.files import read_all
from fraud.store import make_client

BUCKET = "archive"
DAY_US = 86_400_000_000


class Clock:
    def __init__(self, now: float = 1_706_800_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = make_client("s3", Settings())
        client.create_bucket(Bucket=BUCKET)
        yield client


def keys(s3: Any, prefix: str = "") -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def seqs(start: int, n: int) -> list[str]:
    return [str(49_000_000_000_000_000_000 + start + i) for i in range(n)]


def test_objects_are_partitioned_by_event_date(s3: Any) -> None:
    ts = [T0_US, T0_US + 1000, T0_US + DAY_US, T0_US + DAY_US + DAY_US // 2 - 1]  # 31 31 1 1
    archive = Archive(s3, f"s3://{BUCKET}/decided", clock=Clock())
    archive.add(make_outcome(["block", "", "", "flag"], timestamps_us=ts,
                             positions=seqs(5, 4)), shard_id="shardId-000000000001")
    assert keys(s3) == []  # buffered until a limit or flush
    written = archive.flush()
    first, third = seqs(5, 4)[0], seqs(5, 4)[2]
    assert keys(s3) == [
        f"decided/dt=2024-01-31/part-shardId-000000000001-{first}.parquet",
        f"decided/dt=2024-02-01/part-shardId-000000000001-{third}.parquet",
    ]
    assert [o.rows for o in written] == [2, 2]
    body = s3.get_object(Bucket=BUCKET, Key=written[1].key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    assert table.column("transaction_id").to_pylist() == ["t2", "t3"]
    assert table.column("timestamp").to_pylist() == ["2024-02-01T12:00:00.000000Z",
                                                     "2024-02-01T23:59:59.999999Z"]
    assert table.column("action").to_pylist() == ["", "flag"]
    assert archive.flush() == [] and archive.buffered_rows == 0


def test_flush_when_rows_reach_the_limit(s3: Any) -> None:
    archive = Archive(s3, f"s3://{BUCKET}/a/", clock=Clock(), max_rows=5)
    assert archive.add(make_outcome([""] * 3, prefix="x", positions=seqs(0, 3))) == []
    written = archive.add(make_outcome([""] * 3, prefix="y", positions=seqs(3, 3)))
    assert [o.rows for o in written] == [6] and archive.buffered_rows == 0
    assert len(keys(s3, "a/dt=2024-01-31/")) == 1


def test_flush_when_bytes_reach_the_limit(s3: Any) -> None:
    archive = Archive(s3, f"s3://{BUCKET}/a", clock=Clock(), max_bytes=1)
    assert len(archive.add(make_outcome([""], positions=seqs(0, 1)))) == 1


def test_flush_by_time_on_the_clock_passed_in(s3: Any) -> None:
    clock = Clock()
    archive = Archive(s3, f"s3://{BUCKET}/a", clock=clock, max_seconds=60)
    archive.add(make_outcome([""] * 2, positions=seqs(0, 2)))
    clock.now += 59
    assert archive.maybe_flush() == [] and archive.add(
        make_outcome([""], prefix="z", positions=seqs(2, 1))) == []
    clock.now += 1
    assert [o.rows for o in archive.maybe_flush()] == [3]
    clock.now += 1000
    assert archive.maybe_flush() == []  # nothing buffered: nothing to write


def test_object_names_are_deterministic_so_redelivery_overwrites(s3: Any) -> None:
    outcome = make_outcome(["block", ""], positions=seqs(7, 2))
    first = Archive(s3, f"s3://{BUCKET}/a", clock=Clock())
    first.add(outcome, shard_id="shardId-1")
    names = [o.key for o in first.flush()]
    second = Archive(s3, f"s3://{BUCKET}/a", clock=Clock(5.0))  # another worker, later
    second.add(outcome, shard_id="shardId-1")
    assert [o.key for o in second.flush()] == names and keys(s3) == names


def test_rows_without_sequence_numbers_are_named_by_content(s3: Any) -> None:
    archive = Archive(s3, f"s3://{BUCKET}/a", clock=Clock(), fmt="jsonl", worker="replay")
    archive.add(make_outcome(["", ""]))
    (one,) = archive.flush()
    archive.add(make_outcome(["", ""]))
    (again,) = archive.flush()
    archive.add(make_outcome(["", ""], prefix="other"))
    (other,) = archive.flush()
    assert one.key == again.key != other.key
    assert one.key.startswith("a/dt=2024-01-31/part-replay-") and one.key.endswith(".jsonl")


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_archive_reads_back_through_read_transactions(s3: Any, fmt: str) -> None:
    archive = Archive(s3, f"s3://{BUCKET}/live", clock=Clock(), fmt=fmt)
    ts = [T0_US, T0_US + 1500, T0_US + DAY_US]
    outcome = make_outcome(["block", "", "alert"], timestamps_us=ts, positions=seqs(0, 3),
                           is_fraud=[1, -1, 0], scores=[0.97, np.nan, 0.5])
    archive.add(outcome, shard_id="shardId-7")
    archive.flush()
    result = read_all(f"s3://{BUCKET}/live", s3_client=s3)
    assert result.rejections == []
    b = result.batch
    assert b.transaction_id.tolist() == ["t0", "t1", "t2"]
    assert b.timestamp_us.tolist() == ts
    assert b.user_id.tolist() == ["u0", "u1", "u2"]
    assert b.amount.tolist() == [10.0, 11.0, 12.0]
    assert b.currency.tolist() == ["EUR"] * 3
    assert b.is_fraud.tolist() == [1, -1, 0]
    assert np.isnan(b.lat[1]) and b.lat[0] == 48.1
    assert [str(v) for v in b.extra["action"]] == ["block", "", "alert"]
    assert float(b.extra["score"][0]) == 0.97
    assert b.extra["score"][1] in ("", None) or np.isnan(float(b.extra["score"][1]))
    assert all(name in b.extra for name in FEATURE_NAMES)
    assert b.extra["sequence_number"].tolist() == seqs(0, 3)
    assert b.position[0] == f"dt=2024-01-31/part-shardId-7-{seqs(0, 3)[0]}.{fmt} " + (
        "row 1" if fmt == "parquet" else "line 1")


def test_a_transaction_archived_twice_is_read_once(s3: Any) -> None:
    archive = Archive(s3, f"s3://{BUCKET}/a", clock=Clock())
    archive.add(make_outcome(["", ""], positions=seqs(0, 2)), shard_id="s")
    archive.flush()
    # a redelivery that regrouped: same rows, starting one record later
    archive.add(make_outcome(["", ""], positions=seqs(1, 2)), shard_id="s")
    archive.flush()
    result = read_all(f"s3://{BUCKET}/a", s3_client=s3)
    assert result.batch.transaction_id.tolist() == ["t0", "t1"]
    assert [r.reason.split(" (")[0] for r in result.rejections] == [
        "duplicate transaction_id", "duplicate transaction_id"]


def test_s3_input_skips_markers_and_reads_csv_and_jsonl_in_key_order(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="in/_SUCCESS", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="in/b.jsonl", Body=(
        b'{"transaction_id":"j1","timestamp":"2024-01-31T00:00:00Z","user_id":"u",'
        b'"terminal_id":"m","amount":2}\n'))
    s3.put_object(Bucket=BUCKET, Key="in/a.csv", Body=(
        b"transaction_id,timestamp,user_id,terminal_id,amount\n"
        b"c1,2024-01-30,u,m,1\nc2,2024-01-30,u,m,-5\n"))
    s3.put_object(Bucket=BUCKET, Key="inside/c.csv", Body=b"not,under,the,prefix\n")
    result = read_all(f"s3://{BUCKET}/in", s3_client=s3)
    assert result.batch.transaction_id.tolist() == ["c1", "j1"]
    assert [str(r) .split(":")[0] for r in result.rejections] == ["a.csv line 3"]
    single = read_all(f"s3://{BUCKET}/in/b.jsonl", s3_client=s3)
    assert single.batch.transaction_id.tolist() == ["j1"]


def test_s3_input_errors_name_the_uri(s3: Any) -> None:
    with pytest.raises(InputError, match=r"s3://archive/nothing: no \.csv"):
        read_all(f"s3://{BUCKET}/nothing", s3_client=s3)
    with pytest.raises(InputError, match="s3://missing-bucket/x: cannot read: NoSuchBucket"):
        read_all("s3://missing-bucket/x", s3_client=s3)
    s3.put_object(Bucket=BUCKET, Key="bad/x.csv", Body=b"a,b\n1,2\n")
    with pytest.raises(InputError, match=r"^s3://archive/bad/x\.csv: missing required column"):
        read_all(f"s3://{BUCKET}/bad", s3_client=s3)
    with pytest.raises(ConfigError, match="no bucket"):
        read_all("s3:///x", s3_client=s3)


def test_oldest_buffered_says_where_a_checkpoint_may_go(s3: Any) -> None:
    archive = Archive(s3, f"s3://{BUCKET}/a", clock=Clock())
    archive.add(make_outcome(["", ""], positions=seqs(3, 2)), shard_id="s1")
    archive.add(make_outcome([""], prefix="o", positions=seqs(1, 1)), shard_id="s2")
    assert archive.oldest_buffered("s1") == seqs(3, 1)[0]
    assert archive.oldest_buffered("s2") == seqs(1, 1)[0]
    assert archive.oldest_buffered("s3") is None
    archive.flush()
    assert archive.oldest_buffered("s1") is None


class BrokenS3:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail = True

    def put_object(self, **kwargs: Any) -> Any:
        if self.fail:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "PutObject")
        return self.inner.put_object(**kwargs)


def test_a_failed_put_keeps_the_rows(s3: Any) -> None:
    broken = BrokenS3(s3)
    archive = Archive(broken, f"s3://{BUCKET}/a", clock=Clock())
    archive.add(make_outcome(["", ""], positions=seqs(0, 2)))
    with pytest.raises(StoreError, match="S3 put_object s3://archive/a/dt=2024-01-31/"):
        archive.flush()
    assert archive.buffered_rows == 2
    broken.fail = False
    assert [o.rows for o in archive.flush()] == [2]


def test_bad_settings_are_refused(s3: Any) -> None:
    with pytest.raises(ConfigError, match="format 'csv'"):
        Archive(s3, f"s3://{BUCKET}/a", clock=Clock(), fmt="csv")
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        Archive(s3, "/tmp/archive", clock=Clock())


def test_batches_with_different_columns_share_an_object(s3: Any) -> None:
    archive = Archive(s3, f"s3://{BUCKET}/a", clock=Clock(), fmt="jsonl")
    archive.add(make_outcome([""], positions=seqs(0, 1), is_fraud=[1]), shard_id="s")
    archive.add(make_outcome([""], prefix="n", positions=seqs(1, 1),
                             scores=[float("inf")]), shard_id="s")
    (written,) = archive.flush()
    result = read_all(f"s3://{BUCKET}/a", s3_client=s3)
    assert result.batch.transaction_id.tolist() == ["t0", "n0"]
    assert result.batch.is_fraud.tolist() == [1, -1] and written.rows == 2
    assert result.batch.extra["score"].tolist()[1] == ""  # inf has no JSON form: missing
