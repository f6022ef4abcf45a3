#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError as error:
        from console.database import DatabaseUnavailable

        if not isinstance(error.__cause__, DatabaseUnavailable):
            raise
        # The message says what is wrong and what to do; where the command first queried adds
        # nothing to it.
        sys.exit(f"Error: {error}")


if __name__ == "__main__":
    main()
