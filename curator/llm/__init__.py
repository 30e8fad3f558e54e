"""LLM access shared by generation and the judge.

* :mod:`curator.llm.providers`: openai, anthropic, compatible and local behind one async interface;
* :mod:`curator.llm.runner`: the one request runner (cache, budget, retries, rate limits, concurrency,
  secret scrubbing) and :func:`~curator.llm.runner.run_requests` for synchronous callers;
* :mod:`curator.llm.limits`: :class:`~curator.llm.limits.RetryPolicy` and :class:`~curator.llm.limits.RateLimiter`;
* :mod:`curator.llm.keys`: API keys from the environment and the keys file, and their scrubbing;
* :mod:`curator.llm.cache`: the ``requests`` table; :mod:`curator.llm.budget`: prices and the spend cap.
"""
