"""LLM access shared by generation and the judge: providers, the request cache, budget and prices."""
