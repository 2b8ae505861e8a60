"""Issue, rotate or revoke facility API credentials. The secret is printed once and never stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.catalog.models import Facility
from apps.core.errors import DomainError

from ...services import IssuedCredential, api_client_issue, api_client_revoke, api_client_rotate


class Command(BaseCommand):
    help = "Issue (--facility), rotate (--rotate CLIENT_ID) or revoke (--revoke CLIENT_ID) API credentials."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--facility", help="NFZ code of the facility")
        parser.add_argument("--name", default="facility system")
        parser.add_argument(
            "--scopes",
            default="schedules:read,schedules:write,bookings:read,bookings:write,waitlist:read,waitlist:write",
        )
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--rotate", metavar="CLIENT_ID")
        parser.add_argument("--revoke", metavar="CLIENT_ID")
        parser.add_argument(
            "--overlap-hours",
            type=int,
            default=7 * 24,
            help="with --rotate: how long the old secret keeps working (0: stops now, e.g. after a leak)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = [o for o in ("facility", "rotate", "revoke") if options[o]]
        if len(chosen) != 1:
            raise CommandError("Give exactly one of --facility, --rotate, --revoke.")
        try:
            if options["revoke"]:
                client = api_client_revoke(client_id=options["revoke"])
                self.stdout.write(f"Revoked API client {client.pk} ({client.name}); its tokens are deleted.")
                return
            if options["rotate"]:
                overlap = dt.timedelta(hours=max(0, options["overlap_hours"]))
                self._print(api_client_rotate(client_id=options["rotate"], overlap=overlap), rotated=True)
                return
            facility = Facility.objects.filter(nfz_code=options["facility"]).first()
            if facility is None:
                raise CommandError(f"No facility with NFZ code {options['facility']!r}.")
            issued = api_client_issue(
                facility=facility,
                name=options["name"],
                scopes=options["scopes"].split(","),
                days=options["days"],
            )
            self._print(issued, rotated=False)
        except DomainError as exc:
            raise CommandError(exc.message_in("en")) from None

    def _print(self, issued: IssuedCredential, *, rotated: bool) -> None:
        client = issued.client
        self.stdout.write(f"facility:      {client.facility.nfz_code} {client.facility.name}")
        self.stdout.write(f"scopes:        {' '.join(client.scopes)}")
        self.stdout.write(f"expires:       {client.expires_at:%Y-%m-%d %H:%M %Z}")
        self.stdout.write(f"client_id:     {issued.client_id}")
        self.stdout.write(f"client_secret: {issued.client_secret}")
        self.stdout.write("The secret is shown only now and stored only as a hash: keep it safe.")
        if rotated:
            self.stdout.write("The previous credentials stay valid for 7 days, then stop working.")
