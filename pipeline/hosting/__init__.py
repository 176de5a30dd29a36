"""The team's server host: PostgreSQL (postgres), the secrets kept in the state folder (secrets) and
the MLflow server process with its login (launch). Users and roles are tracking/access.py's."""
