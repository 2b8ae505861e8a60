"""The staff pages' message catalogue (NFZ settlement pages, their exports, the reconciliation's
import messages and reason texts): English msgids in the sources, Polish in
`apps/staff/locale/pl/LC_MESSAGES/django.po`. Compiled to .mo by `manage.py staff_compilemessages`
with the portal's pure-Python compiler (no GNU gettext on the machine); a test checks the catalogue
covers every msgid of these sources and that the committed .mo matches its .po.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.conf import settings

from apps.portal.i18n import mo_bytes, po_parse

LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def sources() -> list[Path]:
    root = Path(settings.BASE_DIR)
    return [root / "templates" / "staff", root / "apps" / "staff", root / "apps" / "reconciliation"]


def catalogues() -> list[tuple[Path, Path]]:
    return [(po, po.with_suffix(".mo")) for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/django.po"))]


def compile_all() -> list[Path]:
    written = []
    for po, mo in catalogues():
        mo.write_bytes(mo_bytes(po_parse(po.read_text(encoding="utf-8"))))
        written.append(mo)
    return written


_STRING = r'"((?:[^"\\]|\\.)*)"'
_TRANS = re.compile(r"\{%\s*trans\s+" + _STRING + r"(?:\s+as\s+\w+)?\s*%\}")
_TRANS_SINGLE = re.compile(r"\{%\s*trans\s+'((?:[^'\\]|\\.)*)'(?:\s+as\s+\w+)?\s*%\}")
_BLOCKTRANS = re.compile(r"\{%\s*blocktrans\b([^%]*)%\}(.*?)\{%\s*endblocktrans\s*%\}", re.S)
# _(...) is gettext_lazy or gettext_noop, _t(...) gettext: the staff and reconciliation modules' names.
_PY = re.compile(r"\b_t?\(\s*" + _STRING + r"\s*[,)]")
_PY_SINGLE = re.compile(r"\b_t?\(\s*'((?:[^'\\]|\\.)*)'\s*[,)]")
_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def msgids_in_sources(roots: list[Path] | None = None) -> set[str]:
    """The msgids of {% trans %} / {% blocktrans %} in templates and `_(...)` / `_t(...)` in Python."""
    found: set[str] = set()
    for root in roots or sources():
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.suffix == ".html":
                text = path.read_text(encoding="utf-8")
                found.update(ast.literal_eval(f'"{m}"') for m in _TRANS.findall(text))
                found.update(ast.literal_eval(f"'{m}'") for m in _TRANS_SINGLE.findall(text))
                for _args, body in _BLOCKTRANS.findall(text):
                    found.add(_VAR.sub(r"%(\1)s", body))
            elif path.suffix == ".py" and "migrations" not in path.parts:
                text = path.read_text(encoding="utf-8")
                found.update(ast.literal_eval(f'"{m}"') for m in _PY.findall(text))
                found.update(ast.literal_eval(f"'{m}'") for m in _PY_SINGLE.findall(text))
    return found
