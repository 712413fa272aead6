"""The trading domain: record schemas, ingest sources, risk, matching, persistence.

Domain cores are plain deterministic objects working on numpy batches; each stage's
``stage.py`` joins a core to rings. Nothing here launches processes.
"""
