"""HTTP edge: the FastAPI app, middleware, error mapping and thin routes over services."""
