"""The input modes of ``tradepipe replay``, one module each (see ``pipeline.commands.replay``)."""
