"""Sources that turn outside input (files, feeds, gateways) into sequenced command batches."""
