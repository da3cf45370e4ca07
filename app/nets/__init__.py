"""Nets (DESIGN's word; the URL keeps /v1/models) and their summaries: what a net costs
(shapes, parameters, FLOPs) before anything trains."""
