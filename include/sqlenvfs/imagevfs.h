/*
 * imagevfs.h — an SQLite VFS over an SqlenvfsImage (image.h): open a
 * database state (a point in time, a pinned view) as an sqlite3 connection
 * without writing it anywhere.
 *
 * The image reads as a rollback-journal database
 * (SQLENVFS_IMAGE_ROLLBACK_HEADER) and as immutable (SQLITE_IOCAP_IMMUTABLE):
 * SQLite takes no locks, looks for no journal and writes nothing. The
 * image opens read-only (a write to it is refused by SQLite: "attempt to
 * write a readonly database"), and the VFS refuses any write, truncate,
 * journal or WAL that reaches it; the connection itself may hold
 * temporary tables (in memory).
 *
 * Invariants:
 *   (1) A byte SQLite reads at offset o is byte o of the image (with the
 *       rollback header); bytes past the image's size read as a short read.
 *   (2) The VFS never writes: xWrite, xTruncate and opening a journal, WAL
 *       or temporary file fail. Connections use temp_store=MEMORY.
 *   (3) The image is not owned: it must outlive every connection that reads
 *       it. One image is read by one thread at a time (the image keeps no
 *       lock of its own).
 *
 * Reads are counted per open file (sqlenvfs_imagevfs_stats), for
 * benchmarks and tests.
 */
#pragma once

#include <glib.h>
#include <sqlite3.h>

#include "sqlenvfs/image.h"

G_BEGIN_DECLS

/* The name the VFS is registered under (once, on first use). */
#define SQLENVFS_IMAGEVFS_NAME "sqlenvfs-image"

/* Open @img (read-only) as the main database of a new connection in *@db (close it with
 * sqlite3_close_v2). @label names the state in error messages (e.g.
 * "app.db at 2026-11-28T16:14:00Z"). FALSE and *error (nothing left open)
 * when the VFS cannot be registered or SQLite refuses the image. */
gboolean sqlenvfs_imagevfs_open(SqlenvfsImage *img, const char *label, sqlite3 **db,
                                GError **error);

/* As sqlenvfs_imagevfs_open, with a clock that stands still: SQL that reads
 * it ('now', CURRENT_TIMESTAMP) reads @now_us (Unix time, microseconds, to
 * the millisecond), so that a query that reads the clock gives the same
 * result on the same state each time. The clock is that of the calling
 * thread: run the connection's statements there. */
gboolean sqlenvfs_imagevfs_open_clock(SqlenvfsImage *img, const char *label, gint64 now_us,
                                      sqlite3 **db, GError **error);

/* ATTACH @img read-only to @db as schema @schema (a plain identifier).
 * FALSE and *error on failure. */
gboolean sqlenvfs_imagevfs_attach(sqlite3 *db, SqlenvfsImage *img, const char *label,
                                  const char *schema, GError **error);

typedef struct {
  guint64 n_reads;  /* read calls SQLite made                */
  guint64 n_bytes;  /* bytes it asked for                    */
} SqlenvfsImagevfsStats;

/* The reads made so far through the image open as @schema ("main", or an
 * attached name) of @db. FALSE when that schema is not an image. */
gboolean sqlenvfs_imagevfs_stats(sqlite3 *db, const char *schema, SqlenvfsImagevfsStats *out);

G_END_DECLS
