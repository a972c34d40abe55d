"""The persistent request cache: one SQLite file, key -> parsed answer + token usage.

The key hashes everything that changes an answer: model, rendered messages with images
replaced by their digests (so the key is small and never holds pixels), the response schema,
generation parameters and the prompt-template version. No credential is part of a key or a value.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

DATA_URL = re.compile(r"data:[\w/+.-]+;base64,([A-Za-z0-9+/=]+)")


def digest_images(value: Any) -> Any:
    """Replace every data URL by `sha256:<digest of its base64 payload>` (same image, same digest)."""
    if isinstance(value, str):
        return DATA_URL.sub(lambda m: "sha256:" + hashlib.sha256(m.group(1).encode()).hexdigest(), value)
    if isinstance(value, list):
        return [digest_images(v) for v in value]
    if isinstance(value, dict):
        return {k: digest_images(v) for k, v in value.items()}
    return value


def request_key(model: str, messages: list[dict], schema: dict, params: dict, template_version: str) -> str:
    payload = {
        "model": model,
        "messages": digest_images(messages),
        "schema": schema,
        "params": params,
        "template": template_version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class RequestCache:
    """Thread-safe get/put on `<dir>/requests.sqlite`; a put is committed at once (crash-safe)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, json.dumps(value, sort_keys=True))
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
