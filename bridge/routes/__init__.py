"""Flask blueprints: Ollama routes, OpenAI pass-through routes, monitoring routes."""
