"""Process plumbing: supervisor, the ``tradepipe`` CLI, config, control plane and CPU pinning.

It wires stages to rings and processes; it knows nothing of what the records mean.
"""
