"""Demo API client for one demo facility (idempotent). The secret is generated at first run, printed,
and kept only in var/demo-credentials.txt (outside git); the database holds only its hash."""

from __future__ import annotations

from typing import TextIO

from apps.catalog.models import Facility
from apps.core.demo import credential_remember, credentials_read

from .models import SCOPES, ApiClient
from .services import api_client_issue, api_client_rotate

DEMO_NAME = "demo HIS"
PREFERRED_FACILITY = "14/DEMO/KARDIO"


def demo_seed(*, out: TextIO) -> None:
    facility = (
        Facility.objects.filter(nfz_code=PREFERRED_FACILITY).first()
        or Facility.objects.order_by("id").first()
    )
    if facility is None:
        out.write("integration: no facility yet, no demo API client")
        return
    key = f"api-client:{facility.nfz_code}"
    client = ApiClient.objects.filter(facility=facility, name=DEMO_NAME, revoked_at__isnull=True).first()
    if client is not None and client.is_active() and key in credentials_read():
        out.write(f"integration: demo API client for {facility.nfz_code} exists")
        return
    if client is not None and client.is_active():
        # The secret was lost with the local file: rotate instead of issuing a second client.
        credential = client.credentials.order_by("-id").select_related("application").first()
        assert credential is not None
        issued = api_client_rotate(client_id=credential.application.client_id)
    else:
        issued = api_client_issue(facility=facility, name=DEMO_NAME, scopes=SCOPES, days=365)
    credential_remember(
        key,
        f"API client for {facility.nfz_code}: "
        f"client_id={issued.client_id} client_secret={issued.client_secret}",
    )
    out.write(f"integration: demo API client issued for {facility.nfz_code} (see the log-ins below)")
