from django.core.management.base import BaseCommand, CommandError

from apps.core.dbroles import app_role_grant, app_role_owns_nothing


class Command(BaseCommand):
    help = (
        "Run as the tables' owner after `migrate`: create the application's database role if missing and "
        "grant it row access only (no TRUNCATE, no ALTER; append-only tables: SELECT and INSERT)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("role", help="the role the application connects as (DATABASE_URL's user)")

    def handle(self, *args: object, **options: object) -> None:
        role = str(options["role"])
        for line in app_role_grant(role=role):
            self.stdout.write(line)
        if not app_role_owns_nothing(role=role):
            raise CommandError(f"{role} owns tables here: it could TRUNCATE or ALTER them; use another role")
