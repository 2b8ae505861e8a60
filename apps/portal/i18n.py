"""A pure-Python .po -> .mo compiler for the portal's catalogue (the machine has no GNU msgfmt).

It follows CPython's Tools/i18n/msgfmt.py: parse msgid/msgstr pairs (with continuation lines and
the header entry), then write the GNU .mo layout (magic, index tables, strings). Plural forms and
contexts are not used by the portal, so they are not supported. `manage.py portal_compilemessages`
writes the .mo files; a test checks the committed ones match their .po sources.
"""

from __future__ import annotations

import ast
import re
import struct
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def po_parse(text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file (fuzzy and untranslated entries are left out)."""
    messages: dict[str, str] = {}
    msgid: list[str] = []
    msgstr: list[str] = []
    section = ""
    fuzzy = False

    def flush() -> None:
        nonlocal msgid, msgstr, fuzzy
        if section and not fuzzy:
            key, value = "".join(msgid), "".join(msgstr)
            if value:
                messages[key] = value
        msgid, msgstr, fuzzy = [], [], False

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            if section == "msgstr":
                flush()
                section = ""
            fuzzy = True
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid "):
            if section == "msgstr":
                keep_fuzzy = fuzzy
                flush()
                fuzzy = keep_fuzzy
            section = "msgid"
            msgid.append(ast.literal_eval(line[6:]))
        elif line.startswith("msgstr "):
            section = "msgstr"
            msgstr.append(ast.literal_eval(line[7:]))
        elif line.startswith('"'):
            (msgid if section == "msgid" else msgstr).append(ast.literal_eval(line))
        else:
            raise ValueError(f"unsupported .po line: {raw!r}")
    if section == "msgstr":
        flush()
    return messages


def mo_bytes(messages: dict[str, str]) -> bytes:
    """The GNU .mo encoding of a catalogue (keys sorted, as gettext requires for binary search)."""
    keys = sorted(messages)
    ids = b""
    strs = b""
    offsets = []
    for key in keys:
        k, v = key.encode("utf-8"), messages[key].encode("utf-8")
        offsets.append((len(ids), len(k), len(strs), len(v)))
        ids += k + b"\0"
        strs += v + b"\0"
    count = len(keys)
    key_start = 7 * 4 + 16 * count
    value_start = key_start + len(ids)
    koffsets: list[int] = []
    voffsets: list[int] = []
    for o1, l1, o2, l2 in offsets:
        koffsets += [l1, o1 + key_start]
        voffsets += [l2, o2 + value_start]
    header = struct.pack("Iiiiiii", 0x950412DE, 0, count, 7 * 4, 7 * 4 + count * 8, 0, 0)
    return (
        header
        + struct.pack(f"{len(koffsets)}i", *koffsets)
        + struct.pack(f"{len(voffsets)}i", *voffsets)
        + ids
        + strs
    )


def catalogues() -> list[tuple[Path, Path]]:
    return [(po, po.with_suffix(".mo")) for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/django.po"))]


def compile_all() -> list[Path]:
    written = []
    for po, mo in catalogues():
        mo.write_bytes(mo_bytes(po_parse(po.read_text(encoding="utf-8"))))
        written.append(mo)
    return written


_TRANS = re.compile(r"""\{%\s*trans\s+"((?:[^"\\]|\\.)*)"\s*%\}""")
_TRANS_SINGLE = re.compile(r"""\{%\s*trans\s+'((?:[^'\\]|\\.)*)'\s*%\}""")
_BLOCKTRANS = re.compile(r"\{%\s*blocktrans\b([^%]*)%\}(.*?)\{%\s*endblocktrans\s*%\}", re.S)
_PY = re.compile(r"""\b_\(\s*"((?:[^"\\]|\\.)*)"\s*\)""")
_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def msgids_in_sources(roots: list[Path]) -> set[str]:
    """The msgids used by templates ({% trans %}, {% blocktrans %}) and Python gettext calls under roots.

    Stands in for `makemessages` (which needs GNU xgettext) so a test can check the catalogue is complete.
    """
    found: set[str] = set()
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.suffix == ".html":
                text = path.read_text(encoding="utf-8")
                found.update(ast.literal_eval(f'"{m}"') for m in _TRANS.findall(text))
                found.update(ast.literal_eval(f"'{m}'") for m in _TRANS_SINGLE.findall(text))
                for _args, body in _BLOCKTRANS.findall(text):
                    found.add(_VAR.sub(r"%(\1)s", body))
            elif path.suffix == ".py" and "migrations" not in path.parts:
                text = path.read_text(encoding="utf-8")
                found.update(ast.literal_eval(f'"{m}"') for m in _PY.findall(text))
    return found
