"""The seed use cases on their DynamoDB tables: cart, leaderboard, sessions, devices, social.

Each is a small typed API over its table(s); `fraud.store.support` reads what the fraud
features need from them in one batched pass.
"""

from __future__ import annotations

from fraud.store.usecases.cart import CartLine, ShoppingCart
from fraud.store.usecases.devices import DeviceData, Reading
from fraud.store.usecases.leaderboard import Leaderboard, ScoreEntry, score_key
from fraud.store.usecases.sessions import Session, Sessions
from fraud.store.usecases.social import Post, Social, UserAccount

__all__ = ["CartLine", "DeviceData", "Leaderboard", "Post", "Reading", "ScoreEntry", "Session",
           "Sessions", "ShoppingCart", "Social", "UserAccount", "score_key"]
