"""Issue 17: Swagger UI and Redoc work without internet: no asset, font or script from another host."""

from __future__ import annotations

import re

import pytest
from django.test import Client


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_pages_name_no_other_host(db, path):
    response = Client().get(path)
    html = response.content.decode()

    assert response.status_code == 200
    assert re.findall(r"""(?:src|href)=["'](?:https?:)?//""", html) == []
    assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html


def test_the_swagger_script_names_no_other_host(db):
    html = Client().get("/api/docs/").content.decode()
    scripts = [s for s in re.findall(r'src="([^"]+)"', html) if "script" in s or s.startswith("/api/")]
    for url in scripts:
        body = Client().get(url).content.decode()
        assert "cdn.jsdelivr.net" not in body and "unpkg.com" not in body, url
