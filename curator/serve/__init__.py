"""``curator serve``: an OpenAI-compatible server for the base model and trained LoRA adapters.

* :mod:`curator.serve.server` -- what is served (names -> runs -> adapters), building and running it;
* :mod:`curator.serve.app` -- the routes (FastAPI): chat completions, models, feedback, auth and limits;
* :mod:`curator.llm.continuous` -- the CPU/CUDA batching engine over one base model and its adapters (shared
  with local generation);
* :mod:`curator.serve.backends` -- the engine seen from the event loop;
* :mod:`curator.serve.traces` -- the trace writer (one thread, a bounded queue, an append-only log);
* :mod:`curator.serve.ab` -- A/B routing between two runs;
* :mod:`curator.serve.vllm` -- ``--engine vllm``: vLLM behind curator's gateway.

Importing this package imports none of FastAPI, uvicorn or torch.
"""
