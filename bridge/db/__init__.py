"""Everything that talks to PostgreSQL: the embedded server, the engine, migrations, metadata."""
