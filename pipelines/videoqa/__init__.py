"""The VideoRefer-style multi-agent video QA engine: track facts, agents, branches, the `videoqa` verb."""
