"""The vector layer: embedders, index backends (HNSW in the core, Lance), the index
manager with versions and refresh, autotune and profiles."""
