"""HTTP API and job worker for autotransfer searches (FastAPI; built on the library).

The library never imports this package. Its routes and worker arrive with the service issue;
until then this package is intentionally empty.
"""
