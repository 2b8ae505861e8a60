#!/usr/bin/env python
import os
import sys


def main() -> None:
    # Production unless told otherwise, as wsgi.py and asgi.py (issue 15: a worker started without the
    # variable ran with DEBUG and the console SMS gateway). `make run` / `make test` choose dev/test.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
