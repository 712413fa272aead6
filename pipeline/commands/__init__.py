"""One module per ``tradepipe`` sub-command (or group of them).

Each module defines ``register(subparsers)``, which adds its parser(s) and sets
``func`` on them; ``pipeline.cli`` finds every module here, so adding a command never
edits a shared file.
"""
