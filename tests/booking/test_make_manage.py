"""The README's way to run a manage.py command on a development machine works as written."""

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_manage_runs_a_command_with_the_development_settings():
    assert 'make manage ARGS="booking_rules_doc --check"' in (ROOT / "README.md").read_text(encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    make = shutil.which("make")
    assert make, "make is one of the two commands of the README"
    done = subprocess.run(  # noqa: S603 (a fixed command line)
        [make, "-s", "manage", "ARGS=booking_rules_doc --check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "docs/booking-rules.md is up to date" in done.stdout
