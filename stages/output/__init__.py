"""The output side: events released to the outside only once their command is durable."""
