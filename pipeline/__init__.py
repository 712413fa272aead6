"""Process plumbing: the ``tradepipe`` CLI, config, the runs that wire stages together.

It starts, wires and reports; what a record means (codes, outcomes, state) is asked of
``stages`` (``stages.outcomes`` counts events for the summaries), never decided here.
"""
