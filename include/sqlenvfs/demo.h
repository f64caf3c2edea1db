/*
 * demo.h — the deterministic synthetic vessel-analytics data set that
 * `init --demo` loads into the tables of schema.sql.
 *
 * The same number of events always gives the same rows (a fixed-seed
 * splitmix64 generator, no clock, no locale): vessels with realistic
 * particulars (MMSI with the flag's MID, IMO numbers with a valid check
 * digit), sailing port to port and reporting positions, arrivals, moorings
 * and departures in arrival order over 30 days from 2026-01-01T00:00:00Z.
 */
#pragma once

#include <glib.h>
#include <sqlite3.h>

#include "sqlenvfs/image.h"

G_BEGIN_DECLS

/* Events loaded by default: about 1.2 million rows, ~200 MB on disk. */
#define SQLENVFS_DEMO_DEFAULT_EVENTS G_GUINT64_CONSTANT(1200000)

/* How many vessels a data set of @n_events has (10 to 5000). */
guint sqlenvfs_demo_n_vessels(guint64 n_events);

/* The schema the demo data set fits (the repository's schema.sql, carried in
 * the binary): `init --demo` uses it when the root has no schema.sql. */
extern const char sqlenvfs_demo_schema_sql[];

/* Insert the vessels and @n_events events into @db, which must have the
 * tables of schema.sql (empty). Uses one prepared statement per table and
 * large transactions; @progress (may be NULL) is called with events done of
 * @n_events. FALSE and *error naming @path on failure, with the transaction
 * in progress rolled back (earlier batches stay: callers load into a
 * temporary file they remove on failure). */
gboolean sqlenvfs_demo_load(sqlite3 *db, guint64 n_events, SqlenvfsProgressFunc progress,
                            gpointer user, const char *path, GError **error);

G_END_DECLS
