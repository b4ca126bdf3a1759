"""The Lakehouse sidecar: a FastAPI service wrapping Ollama (see ``sidecar.app``)."""
