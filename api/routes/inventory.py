"""Vendors, domains and assets: one router per kind, from one factory."""

# No `from __future__ import annotations` here: FastAPI must see ``body_model`` itself, not
# the string "body_model", in the route signatures built by the factory.

from typing import Any, cast

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CallerDep
from api.schemas import AssetIn, DomainIn, InventoryPublic, VendorIn
from api.views import inventory as inventory_view
from vault.services import inventory


def make_router(kind: str, body_model: type[Any]) -> APIRouter:
    router = APIRouter(prefix=f"/clients/{{client}}/{kind}s", tags=[f"{kind}s"])

    @router.get("", response_model=list[InventoryPublic], name=f"list_{kind}s")
    def list_records(client: str, caller: CallerDep, q: str | None = None) -> list[dict[str, Any]]:
        with caller.read_transaction() as ctx:
            rows = inventory.list_records(ctx, kind, client, q)
            return [inventory_view(ctx, kind, r) for r in rows]

    @router.post("", response_model=InventoryPublic, status_code=201, name=f"add_{kind}")
    def add(client: str, body: body_model, caller: CallerDep) -> dict[str, Any]:  # type: ignore[valid-type]  # noqa: E501
        values = cast(BaseModel, body).model_dump(exclude_unset=True)
        with caller.transaction() as ctx:
            record = inventory.add_record(ctx, kind, client, **values)
            return inventory_view(ctx, kind, record.row, record.private)

    @router.get("/{name}", response_model=InventoryPublic, name=f"show_{kind}")
    def show(client: str, name: str, caller: CallerDep) -> dict[str, Any]:
        """With the sealed fields (account numbers, recovery contacts); the read is logged."""
        with caller.read_transaction() as ctx:
            record = inventory.show_record(ctx, kind, client, name)
            return inventory_view(ctx, kind, record.row, record.private)

    @router.patch("/{name}", response_model=InventoryPublic, name=f"update_{kind}")
    def update(client: str, name: str, body: body_model, caller: CallerDep) -> dict[str, Any]:  # type: ignore[valid-type]  # noqa: E501
        values = cast(BaseModel, body).model_dump(exclude_unset=True)
        if "name" in values:
            values["new_name"] = values.pop("name")
        with caller.transaction() as ctx:
            record = inventory.update_record(ctx, kind, client, name, **values)
            return inventory_view(ctx, kind, record.row, record.private)

    return router


routers = [
    make_router("vendor", VendorIn),
    make_router("domain", DomainIn),
    make_router("asset", AssetIn),
]
