"""The one place that reads the process environment.

Settings modules import `env` and the helpers from here; nothing else in the project calls
`os.environ`. A value may also come from a file named by `<VAR>_FILE` (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()


class ConfigError(Exception):
    pass


def _from_file(name: str) -> str | None:
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE={path} cannot be read: {exc.strerror}") from exc


def secret(name: str, default: str | None = None) -> str | None:
    """A secret from `<NAME>` or the file named by `<NAME>_FILE`."""
    return os.environ.get(name) or _from_file(name) or default


def required(name: str, cast: Any = str) -> Any:
    """A variable production cannot start without; a missing or malformed one is a ConfigError."""
    raw = secret(name)
    if raw is None or raw == "":
        raise ConfigError(f"{name} is required (set it in the environment or in a file named by {name}_FILE)")
    try:
        return cast(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} is malformed: {exc}") from exc


def fail(exc: ConfigError) -> None:
    """Stop the start with one clear line naming the variable (no traceback to dig through)."""
    sys.stderr.write(f"configuration error: {exc}\n")
    raise SystemExit(2)


def otel_traces_requested(environ: Any = None) -> bool:
    """OpenTelemetry traces are off unless the standard OTEL_* variables ask for them: an exporter
    named (OTEL_TRACES_EXPORTER) or an OTLP endpoint given, and the SDK not disabled."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
