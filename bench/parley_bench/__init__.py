"""Parley's load generator: `python -m parley_bench suite` runs every workload (see bench/run.sh).

One process drives thousands of WebSocket connections with asyncio, uvloop and picows;
the same workload runs against Parley (parley.v1 JSON) and the tutorial peers (plain text).
"""
