"""Helpers for the demo data that `make run` loads (`manage.py seed_demo`).

Each app may have a `demo.py` with `demo_seed(*, out)`; seed_demo calls them in INSTALLED_APPS order.
Every seeder is idempotent. Demo credentials are generated at first run (never committed), printed,
and kept in `var/demo-credentials.txt` (outside git) so later runs can show them again.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

CREDENTIALS_FILE = Path(settings.BASE_DIR) / "var" / "demo-credentials.txt"


def credential_remember(key: str, line: str) -> None:
    """Keep one line per key (e.g. 'staff', 'api-client:120/0001') in the local credentials file."""
    CREDENTIALS_FILE.parent.mkdir(parents=True, exist_ok=True)
    lines = credentials_read()
    lines[key] = line
    CREDENTIALS_FILE.write_text("".join(f"{k}\t{v}\n" for k, v in lines.items()), encoding="utf-8")
    CREDENTIALS_FILE.chmod(0o600)


def credentials_read() -> dict[str, str]:
    if not CREDENTIALS_FILE.exists():
        return {}
    pairs = (
        row.split("\t", 1) for row in CREDENTIALS_FILE.read_text(encoding="utf-8").splitlines() if "\t" in row
    )
    return dict(pairs)
