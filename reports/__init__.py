"""Tables and figures from MLflow runs."""
