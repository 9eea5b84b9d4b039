"""The agent: pure core, process containerizer, sandbox files, server shell."""
