"""Pure translation between the Ollama API and OpenAI-compatible backends (no I/O, no clock, no env)."""
