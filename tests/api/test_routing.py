"""The check-out path's routers are matched first (api/app.py): that must decide nothing but
speed - no request can match a route of theirs and a route of a router they overtake - and the
API stays documented in the order of API_ROUTERS."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import API_ROUTERS, HOT_ROUTERS


def _segments(path: str) -> list[str]:
    return path.strip("/").split("/")


def _could_match_the_same_path(a: str, b: str) -> bool:
    if ":path}" in a or ":path}" in b:
        return True
    first, second = _segments(a), _segments(b)
    return len(first) == len(second) and all(
        x == y or x.startswith("{") or y.startswith("{") for x, y in zip(first, second, strict=True)
    )


def test_the_routers_matched_first_share_no_path_or_name_with_those_they_overtake() -> None:
    overtaken = API_ROUTERS[: max(API_ROUTERS.index(router) for router in HOT_ROUTERS)]
    hot = [route for router in HOT_ROUTERS for route in router.routes]
    others = [route for router in overtaken if router not in HOT_ROUTERS for route in router.routes]
    assert hot and others
    clashes = [
        (a.path, b.path) for a in hot for b in others if _could_match_the_same_path(a.path, b.path)
    ]
    assert not clashes
    assert not {a.name for a in hot} & {b.name for b in others}


def test_the_schema_lists_paths_in_the_documented_order(api: TestClient) -> None:
    documented: list[str] = []
    for router in API_ROUTERS:
        for route in router.routes:
            if route.path not in documented:
                documented.append(route.path)
    listed = [path for path in api.get("/openapi.json").json()["paths"] if path in documented]
    assert listed == documented
