"""Pre-trade and post-trade risk: balances and holds, limits, kill switch, settlement."""
