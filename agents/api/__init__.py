"""The agent-facing native API, together: `native` (the DRF views of /api/v1/requests: create,
read with long-poll, cancel), `fast_path` (the ASGI app that answers the hot create and read calls
before Django), `intake` (the batcher that gathers concurrent creations into one transaction), and
`runs` (runs and their trace events). AAP and HumanLayer live beside it in agents/aap and
agents/humanlayer."""
