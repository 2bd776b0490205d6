"""The vault's keys (admin): list them, rotate them (vault/services/rotation.py).

A rotation is one transaction and one audit event. Once it has committed, this process loads
the new key at once; the server's other processes load it the first time they meet it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from api.deps import Caller, CallerDep
from api.schemas import RotationPublic, VaultKeyPublic
from vault.services import Context, rotation

router = APIRouter(prefix="/keys", tags=["keys"])


@router.get("", response_model=list[VaultKeyPublic])
def list_keys(caller: CallerDep) -> list[dict[str, Any]]:
    with caller.read_transaction() as ctx:
        ctx.require("admin")
        return rotation.list_keys(ctx.session)


def _rotate(caller: Caller, rotate: Callable[[Context], rotation.RotationResult]) -> dict[str, Any]:
    with caller.transaction() as ctx:
        result = rotate(ctx)
    if caller.state.keys is not None:  # unsealed: the rotation could not have run otherwise
        caller.state.store.refresh_keys(caller.state.keys)
    return result.as_dict()


@router.post("/rotate/client/{client}", response_model=RotationPublic)
def rotate_client(client: str, caller: CallerDep) -> dict[str, Any]:
    """A new client key: every value sealed under the old one is sealed again, and the key is
    wrapped to the vault and the client's *current* escrow recipients only."""
    return _rotate(caller, lambda ctx: rotation.rotate_client_key(ctx, client))


@router.post("/rotate/identity", response_model=RotationPublic)
def rotate_identity(caller: CallerDep) -> dict[str, Any]:
    """A new vault identity; every client key is re-wrapped to it; the old one is retired."""
    return _rotate(caller, rotation.rotate_vault_identity)


@router.post("/rotate/log", response_model=RotationPublic)
def rotate_log(caller: CallerDep) -> dict[str, Any]:
    """A new log key; the handover checkpoint is signed by the old key and the new one."""
    return _rotate(caller, rotation.rotate_log_key)
