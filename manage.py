#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fortune_project.settings")
    if sys.argv[1:2] == ["serve"]:
        # Before the settings load: serve (bin/up) makes or reuses a generated SECRET_KEY.
        from fortune_project.secret_key import provide_for_serve

        provide_for_serve()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
