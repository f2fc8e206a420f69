"""Shopping cart: add, remove, a user's cart, and its running value.

Table ShoppingCart, key (user_id, product_id). Besides one item per cart line, each user has a
summary item (product_id ``#summary``) holding the cart's value and when it last changed, kept
in step by the same transaction as each line change, so the fraud features read a user's cart
value with one BatchGetItem key instead of a Query per user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fraud.errors import InputError
from fraud.store.dynamo import Dynamo
from fraud.store.marshal import number_text, to_item

__all__ = ["SUMMARY_PRODUCT", "CartLine", "ShoppingCart"]

SUMMARY_PRODUCT = "#summary"


@dataclass(frozen=True, slots=True)
class CartLine:
    """One product in a user's cart."""

    user_id: str
    product_id: str
    quantity: int
    price: float
    added_at_us: int

    @property
    def value(self) -> float:
        return self.quantity * self.price


class ShoppingCart:
    """The cart access patterns over the ShoppingCart table."""

    def __init__(self, dynamo: Dynamo) -> None:
        self.dynamo = dynamo

    def __repr__(self) -> str:
        return f"ShoppingCart({self.dynamo!r})"

    def _summary_update(self, user_id: str, delta: float, at_us: int) -> dict[str, Any]:
        return {"Update": {
            "TableName": self.dynamo.name("ShoppingCart"),
            "Key": to_item({"user_id": user_id, "product_id": SUMMARY_PRODUCT}),
            "UpdateExpression": "ADD cart_value :d SET updated_at = :t",
            "ExpressionAttributeValues": {":d": {"N": number_text(delta)},
                                          ":t": {"N": str(int(at_us))}},
        }}

    def add(self, user_id: str, product_id: str, quantity: int, price: float,
            added_at_us: int) -> None:
        """Add `quantity` of a product (adds to what is there; the price is the latest one)."""
        if quantity < 1 or not price >= 0:
            raise InputError(f"cart add {product_id!r}: quantity must be >= 1 and price >= 0, "
                             f"got {quantity!r} and {price!r}")
        if product_id.startswith("#"):
            raise InputError(f"cart add: product ids may not start with '#': {product_id!r}")
        line = {"Update": {
            "TableName": self.dynamo.name("ShoppingCart"),
            "Key": to_item({"user_id": user_id, "product_id": product_id}),
            "UpdateExpression": "ADD quantity :q SET price = :p, added_at = :t",
            "ExpressionAttributeValues": {":q": {"N": str(int(quantity))},
                                          ":p": {"N": number_text(price)},
                                          ":t": {"N": str(int(added_at_us))}},
        }}
        self.dynamo.call("transact_write_items", "ShoppingCart", TransactItems=[
            line, self._summary_update(user_id, quantity * price, added_at_us)])

    def remove(self, user_id: str, product_id: str, at_us: int) -> bool:
        """Take a product out of the cart; False when it was not there."""
        current = self.dynamo.get("ShoppingCart", {"user_id": user_id, "product_id": product_id},
                                  consistent=True)
        if current is None:
            return False
        line = {"Delete": {
            "TableName": self.dynamo.name("ShoppingCart"),
            "Key": to_item({"user_id": user_id, "product_id": product_id}),
            # Only if nobody changed the line since it was read; else the summary would drift.
            "ConditionExpression": "quantity = :q AND price = :p",
            "ExpressionAttributeValues": {":q": {"N": number_text(current["quantity"])},
                                          ":p": {"N": number_text(current["price"])}},
        }}
        value = float(current["quantity"]) * float(current["price"])
        self.dynamo.call("transact_write_items", "ShoppingCart", TransactItems=[
            line, self._summary_update(user_id, -value, at_us)])
        return True

    def get(self, user_id: str) -> list[CartLine]:
        """The user's cart lines, by product id."""
        rows = self.dynamo.query_all(
            "ShoppingCart", KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues=Dynamo.values(u=user_id), ConsistentRead=True,
        )
        return [CartLine(str(r["user_id"]), str(r["product_id"]), int(r["quantity"]),
                         float(r["price"]), int(r["added_at"]))
                for r in rows if r["product_id"] != SUMMARY_PRODUCT]

    def value(self, user_id: str) -> tuple[float, int] | None:
        """(cart value, last change time) from the summary item, or None when no cart."""
        row = self.dynamo.get("ShoppingCart", {"user_id": user_id, "product_id": SUMMARY_PRODUCT})
        if row is None:
            return None
        return float(row.get("cart_value", 0.0)), int(row.get("updated_at", 0))
