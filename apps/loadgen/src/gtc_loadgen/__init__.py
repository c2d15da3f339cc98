"""gtc_loadgen: the booth's load generator (multi-turn chat, TTFT by turn, KV-aware vs round-robin)."""

__version__ = "0.1.0"
