"""`make bench`: the console started the production way on loopback, measured from outside.

`python -m console.bench` (the runner) prepares a database, starts two uvicorn processes and a
Celery worker, then runs `console.bench.load` in its own process so the load generator never
shares an interpreter with the server it measures.
"""
