"""The stream edge: KCL record processor, daemon launcher, producer, local Kinesis emulator.

Modules are imported on use (boto3, amazon-kclpy and subprocess plumbing stay out of the way of
commands that do not need them): `jars`, `properties`, `daemon`, `processor`, `producer`,
`source`, `kinesis`, `emulator`, `testing`.
"""

from __future__ import annotations

__all__: list[str] = []
