"""IoT / device data: append readings, a device's readings over a time range, its latest fix.

Table DeviceData, key (device_id, ts). Readings are appended with BatchWriteItem (25 per
request; a reading at the same device and microsecond replaces the earlier one). Each device
also has a "latest" item at ``ts = -1`` (below every real time, so range queries never meet
it) holding the newest located reading; it moves forward only (a conditional update), so the
fraud features read a device's last known location with one BatchGetItem key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fraud.errors import InputError
from fraud.store.dynamo import Dynamo, error_code

__all__ = ["LATEST_TS", "DeviceData", "Reading"]

LATEST_TS = -1


@dataclass(frozen=True, slots=True)
class Reading:
    """One report from a device: where it was, its status, and any numeric readings."""

    device_id: str
    ts_us: int
    user_id: str = ""
    lat: float = math.nan
    lon: float = math.nan
    status: str = ""
    values: Mapping[str, float] = field(default_factory=dict)

    @property
    def located(self) -> bool:
        return math.isfinite(self.lat) and math.isfinite(self.lon)

    def item(self, ts: int | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"device_id": self.device_id,
                                "ts": self.ts_us if ts is None else ts}
        if ts is not None:
            item["seen_at"] = self.ts_us
        if self.user_id:
            item["user_id"] = self.user_id
        if self.located:
            item["lat"], item["lon"] = float(self.lat), float(self.lon)
        if self.status:
            item["status"] = self.status
        if self.values:
            item["readings"] = {k: float(v) for k, v in self.values.items()}
        return item


def reading_from_item(row: Mapping[str, Any]) -> Reading:
    ts = int(row["seen_at"]) if int(row["ts"]) == LATEST_TS else int(row["ts"])
    return Reading(str(row["device_id"]), ts, str(row.get("user_id", "")),
                   float(row.get("lat", math.nan)), float(row.get("lon", math.nan)),
                   str(row.get("status", "")), dict(row.get("readings", {})))


class DeviceData:
    """The device-data access patterns over the DeviceData table."""

    def __init__(self, dynamo: Dynamo) -> None:
        self.dynamo = dynamo

    def __repr__(self) -> str:
        return f"DeviceData({self.dynamo!r})"

    def append(self, readings: Sequence[Reading]) -> int:
        """Store readings and move each device's latest located fix forward; returns requests."""
        if any(r.ts_us < 0 for r in readings):
            raise InputError("device readings must have a time >= 0 (epoch microseconds)")
        unique = {(r.device_id, r.ts_us): r for r in readings}
        sent = self.dynamo.batch_write(puts={"DeviceData": [r.item() for r in unique.values()]})
        newest: dict[str, Reading] = {}
        for r in unique.values():
            if r.located and (r.device_id not in newest or r.ts_us > newest[r.device_id].ts_us):
                newest[r.device_id] = r
        for r in newest.values():
            self._advance_latest(r)
            sent += 1
        return sent

    def _advance_latest(self, reading: Reading) -> None:
        item = reading.item(ts=LATEST_TS)
        names = [k for k in item if k not in ("device_id", "ts")]
        try:
            self.dynamo.call(
                "update_item", "DeviceData", TableName=self.dynamo.name("DeviceData"),
                Key={"device_id": {"S": reading.device_id}, "ts": {"N": str(LATEST_TS)}},
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in names),
                ConditionExpression="attribute_not_exists(seen_at) OR seen_at < :seen_at",
                ExpressionAttributeNames={f"#{k}": k for k in names},
                ExpressionAttributeValues=Dynamo.values(**{k: item[k] for k in names}),
            )
        except Exception as exc:
            if error_code(exc.__cause__) != "ConditionalCheckFailedException":
                raise  # a check failure means a newer fix is already stored: fine

    def query(self, device_id: str, since_us: int, until_us: int) -> list[Reading]:
        """A device's readings with since_us <= ts <= until_us, oldest first."""
        if since_us > until_us:
            raise InputError(f"device range: since {since_us} is after until {until_us}")
        rows = self.dynamo.query_all(
            "DeviceData", KeyConditionExpression="device_id = :d AND ts BETWEEN :a AND :b",
            ExpressionAttributeValues=Dynamo.values(d=device_id, a=max(since_us, 0),
                                                    b=until_us),
        )
        return [reading_from_item(r) for r in rows]

    def latest(self, device_id: str) -> Reading | None:
        """The device's newest located reading, or None."""
        row = self.dynamo.get("DeviceData", {"device_id": device_id, "ts": LATEST_TS})
        return None if row is None else reading_from_item(row)
