"""Office: what reviewers read. Reports (table, CSV, JSON, HTML), Camtrap DP and CSV exports,
the review page and the dataset export for retraining. Reads the store; never imports
capture, vision, counting or service."""
