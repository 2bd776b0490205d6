"""The one error table (api/errors.py) as a client sees it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors as api_errors
from vault import errors


def _raising(exc: Exception) -> TestClient:
    app = FastAPI()
    api_errors.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_a_storage_error_is_503_with_when_to_retry() -> None:
    answer = _raising(errors.StorageError("the database could not carry this out")).get("/boom")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json() == {
        "error": {
            "code": "storage_error",
            "message": "the database could not carry this out",
            "field": None,
        }
    }


def test_an_unauthenticated_answer_names_the_scheme_and_no_retry() -> None:
    answer = _raising(errors.Unauthenticated("sign in first")).get("/boom")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "retry-after" not in answer.headers
