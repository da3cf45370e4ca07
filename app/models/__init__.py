"""Net summaries: what a model costs (shapes, parameters, FLOPs) before anything trains."""
