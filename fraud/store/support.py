"""The supporting features' inputs read from DynamoDB, for one batch, in one batched pass.

Builds the feature engine's `SupportContext` from Sessions (by session id), Users (account
creation and social counters), the cart summary items and the devices' latest-fix items, all
in one multi-table BatchGetItem sequence (100 keys per request), so a batch of N transactions
costs about (distinct sessions + 2 x distinct users + distinct devices) / 100 requests.

Online the stores hold the present, so values are "as of now"; data stamped after a
transaction's timestamp is still ignored, as offline. The cart value is the cart summary when
the cart changed within `CART_WINDOW_US` before the transaction (offline: the sum of items
added in that window) - an approximation documented here on purpose.
"""

from __future__ import annotations

from fraud.features.support import CART_WINDOW_US, SupportContext
from fraud.schema.batch import MISSING_TIME, TransactionBatch
from fraud.store.dynamo import Dynamo
from fraud.store.usecases.cart import SUMMARY_PRODUCT
from fraud.store.usecases.devices import LATEST_TS

__all__ = ["read_support"]


def read_support(dynamo: Dynamo, batch: TransactionBatch) -> SupportContext:
    """Per-row support values for `batch` (absent data takes the neutral "unknown" value)."""
    n = len(batch)
    ctx = SupportContext.empty(n)
    if n == 0:
        return ctx
    users = sorted({str(u) for u in batch.user_id})
    sessions = sorted({str(s) for s in batch.session_id if s})
    devices = sorted({str(d) for d in batch.device_id if d})
    got = dynamo.batch_get({
        "Users": [{"user_id": u} for u in users],
        "Sessions": [{"session_id": s} for s in sessions],
        "ShoppingCart": [{"user_id": u, "product_id": SUMMARY_PRODUCT} for u in users],
        "DeviceData": [{"device_id": d, "ts": LATEST_TS} for d in devices],
    })
    account = {str(r["user_id"]): r for r in got["Users"]}
    session = {str(r["session_id"]): r for r in got["Sessions"]}
    cart = {str(r["user_id"]): r for r in got["ShoppingCart"]}
    device = {str(r["device_id"]): r for r in got["DeviceData"]}
    t = batch.timestamp_us
    for i in range(n):
        ts = int(t[i])
        user = str(batch.user_id[i])
        acc = account.get(user)
        if acc is not None:
            created = int(acc.get("created_at", MISSING_TIME))
            if created != MISSING_TIME and created <= ts:
                ctx.account_created_us[i] = created
            ctx.followers[i] = int(acc.get("followers", 0))
            ctx.posts[i] = int(acc.get("posts", 0))
        sess = session.get(str(batch.session_id[i]))
        if sess is not None and int(sess["created_at"]) <= ts:
            ctx.session_created_us[i] = int(sess["created_at"])
            ctx.session_device_id[i] = str(sess.get("device_id", ""))
        summary = cart.get(user)
        if summary is not None:
            changed = int(summary.get("updated_at", MISSING_TIME))
            if ts - CART_WINDOW_US <= changed <= ts:
                ctx.cart_value[i] = float(summary.get("cart_value", 0.0))
        fix = device.get(str(batch.device_id[i]))
        if fix is not None and "lat" in fix and int(fix["seen_at"]) <= ts:
            ctx.device_lat[i] = float(fix["lat"])
            ctx.device_lon[i] = float(fix["lon"])
            ctx.device_seen_us[i] = int(fix["seen_at"])
    return ctx


