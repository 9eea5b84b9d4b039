"""The master: pure core, durable state, log backends and the server shell."""
