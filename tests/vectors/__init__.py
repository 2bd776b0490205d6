"""One loader for the JSON test vectors in this folder (each vector has an ``expect`` field).

The age vectors (C2SP CCTV, in ``age/``) have their own text format and loader in
``tests/crypto/age_vectors.py``. ``generate.py`` documents how the Custody vectors were made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def load_json_vectors(name: str) -> list[dict[str, Any]]:
    data = json.loads((HERE / name).read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = data["vectors"]
    for vector in vectors:
        assert vector["expect"] in ("success", "failure"), vector
    return vectors
