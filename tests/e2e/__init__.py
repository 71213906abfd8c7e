"""End-to-end tests against a real llama-server (marker e2e); set up with ./scripts/e2e-setup."""
