"""The trading domain: record schemas, ingest sources, risk, matching, persistence.

Domain cores are plain deterministic objects working on numpy batches (``engine.Engine``
chains them in one process); nothing here launches processes or knows of rings.
"""
