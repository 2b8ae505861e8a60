from django.core.management.base import BaseCommand, CommandError

from apps.core.dbroles import app_role_grant, app_role_owns_nothing, app_role_verify


class Command(BaseCommand):
    help = (
        "Run as the tables' owner after `migrate`: create the application's database role if missing and "
        "grant it row access only (no TRUNCATE, no ALTER; append-only tables: SELECT and INSERT). "
        "With --verify, run as the application's role: check that it cannot empty or alter them."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("role", nargs="?", help="the role the application connects as")
        parser.add_argument("--verify", action="store_true", help="check the connecting role's limits")

    def handle(self, *args: object, **options: object) -> None:
        if options["verify"]:
            allowed = app_role_verify()
            if allowed:
                raise CommandError("this role may still: " + "; ".join(allowed))
            self.stdout.write("ok: TRUNCATE and DISABLE TRIGGER are refused on the append-only tables")
            return
        if not options["role"]:
            raise CommandError("name the application's role (or use --verify as that role)")
        role = str(options["role"])
        for line in app_role_grant(role=role):
            self.stdout.write(line)
        if not app_role_owns_nothing(role=role):
            raise CommandError(f"{role} owns tables here: it could TRUNCATE or ALTER them; use another role")
