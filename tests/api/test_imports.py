"""POST /clients/{client}/imports: admins only, dry run, the report carries no values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import Cast
from vault.services import secrets

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "import"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_import_over_the_api(cast: Cast) -> None:
    url = f"/clients/{cast.ids['client_a']}/imports"
    upload = {"file": ("bw.json", (VECTORS / "bitwarden-individual.json").read_bytes())}
    refused = cast.api.post(
        url, headers=cast.headers("cons_a"), files=upload, data={"source": "bitwarden"}
    )
    assert refused.status_code == 403
    dry = cast.api.post(
        url,
        headers=cast.headers("admin"),
        files=upload,
        data={"source": "bitwarden", "dry_run": "true"},
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["counts"]["create"] == 6
    with cast.vault.ctx() as ctx:
        assert not secrets.list_secrets(ctx, "Acme", query="Gandi")
    done = cast.api.post(
        url, headers=cast.headers("admin"), files=upload, data={"source": "bitwarden"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["counts"]["created"] == 6
    assert "gandi-pass" not in done.text and "JBSWY3DP" not in done.text
    with cast.vault.ctx() as ctx:
        assert [s.title for s in secrets.list_secrets(ctx, "Acme", query="Gandi")] == [
            "Gandi",
            "Gandi TOTP",
        ]
    bad = cast.api.post(
        url,
        headers=cast.headers("admin"),
        files={"file": ("x.json", b"{not json")},
        data={"source": "bitwarden"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "format_error"
    refused_pass = cast.api.post(
        url, headers=cast.headers("admin"), files=upload, data={"source": "pass"}
    )
    assert refused_pass.status_code == 422


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_import_json_body(cast: Cast) -> None:
    import base64
    import json

    url = f"/clients/{cast.ids['client_a']}/imports"
    content = (VECTORS / "generic.csv").read_text()
    body = {
        "source": "csv",
        "content": content,
        "map": {"Account": "title", "Secret": "password", "Web Site": "url"},
        "dry_run": True,
    }
    dry = cast.api.post(url, headers=cast.headers("admin"), json=body)
    assert dry.status_code == 200, dry.text
    assert [e["action"] for e in dry.json()["entries"]] == ["create"]
    raw = (VECTORS / "bitwarden-organization.json").read_bytes()
    done = cast.api.post(
        url,
        headers=cast.headers("admin"),
        json={"source": "bitwarden", "content_base64": base64.b64encode(raw).decode()},
    )
    assert done.status_code == 200 and done.json()["counts"]["created"] == 1
    assert "m365-secret" not in json.dumps(done.json())
    bad = cast.api.post(url, headers=cast.headers("admin"), json={"source": "csv"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "content"
    refused = cast.api.post(url, headers=cast.headers("client_a"), json=body)
    assert refused.status_code == 403
