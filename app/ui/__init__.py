"""The faces a person looks at: the OpenAPI console and the dashboard, served offline."""
