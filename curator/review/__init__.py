"""``curator review``: a local web app where people accept, reject and edit examples, rate a run's answers
and choose between two runs' answers (blind A/B).

:mod:`curator.review.store` holds the queries and actions (plain functions over the workspace, tested
directly); :mod:`curator.review.app` is the FastAPI app (server-rendered Jinja2 pages from ``templates/``,
plain JavaScript and CSS from ``static/``, a JSON API); :func:`curator.review.app.serve` runs it on uvicorn.
"""
