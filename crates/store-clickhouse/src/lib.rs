//! The scale store: ClickHouse over its HTTP interface, with batched inserts, a durable local spill and versioned migrations.
