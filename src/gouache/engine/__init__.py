"""The engine owns models: catalog, pipeline loading, rendering stages and the job queue."""
