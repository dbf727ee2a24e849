//! The embedded store: SQLite (WAL) with versioned migrations, group-committed writes and indexed search.
