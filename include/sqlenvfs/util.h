/*
 * util.h — small shared helpers: SQLite handle cleanup, opening databases the
 * project's way, durable file operations, and the injectable clock.
 */
#pragma once

#include <glib.h>
#include <sqlite3.h>
#include <sys/types.h>

G_BEGIN_DECLS

static inline void sqlenvfs_sqlite3_close(sqlite3 *db) { sqlite3_close_v2(db); }
static inline void sqlenvfs_sqlite3_finalize(sqlite3_stmt *st) { sqlite3_finalize(st); }
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sqlite3, sqlenvfs_sqlite3_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sqlite3_stmt, sqlenvfs_sqlite3_finalize)

/* How long a connection waits for another process's lock (milliseconds). */
#define SQLENVFS_BUSY_TIMEOUT_MS 10000

typedef enum {
  SQLENVFS_OPEN_READONLY = 1 << 0,  /* SQLITE_OPEN_READONLY                 */
  SQLENVFS_OPEN_CREATE = 1 << 1,    /* create the file if missing           */
  SQLENVFS_OPEN_MUST_EXIST = 1 << 2 /* fail with NOT_FOUND before SQLite    */
} SqlenvfsOpenFlags;

/* Open @path with a busy timeout and extended result codes. On failure NULL
 * is returned, *error is set, and no handle is leaked. */
sqlite3 *sqlenvfs_db_open(const char *path, SqlenvfsOpenFlags flags,
                          GError **error);

/* Run SQL with no result rows. FALSE and *error (naming @path) on failure. */
gboolean sqlenvfs_db_exec(sqlite3 *db, const char *sql, const char *path,
                          GError **error);

/* Run a query returning one integer (first column of first row). */
gboolean sqlenvfs_db_query_int(sqlite3 *db, const char *sql, gint64 *out,
                               const char *path, GError **error);

/* Run a query returning one text value (newly allocated; NULL if no row). */
gboolean sqlenvfs_db_query_text(sqlite3 *db, const char *sql, char **out,
                                const char *path, GError **error);

/* PRAGMA integrity_check (or quick_check when @quick). TRUE when "ok"; else
 * FALSE with SQLENVFS_ERROR_INTEGRITY naming @path and the first problem. */
gboolean sqlenvfs_db_check(sqlite3 *db, gboolean quick, const char *path,
                           GError **error);

/* fsync a file by path, and a directory (so that renames inside it are
 * durable). */
gboolean sqlenvfs_fsync_path(const char *path, GError **error);
gboolean sqlenvfs_fsync_dir(const char *dir, GError **error);

/* mkdir -p with mode 0755 (or @mode); each directory it creates is made
 * durable (its parent is fsync'd), so that what is later fsync'd inside it
 * survives a power cut. */
gboolean sqlenvfs_mkdir_p(const char *dir, int mode, GError **error);

/* Write @len bytes to @path atomically: temp file in the same directory,
 * fsync, rename, fsync directory. The file gets @mode. */
gboolean sqlenvfs_write_file_atomic(const char *path, const void *data,
                                    gsize len, int mode, GError **error);

/* Remove a directory tree (best effort is not enough: FALSE on failure). */
gboolean sqlenvfs_rm_rf(const char *path, GError **error);

/* crc32 (zlib polynomial) of a whole file; FALSE on read error. */
/* zlib's crc32 (gzip's: reflected IEEE polynomial): crc32(crc, data, len),
 * starting from 0, continued with the previous value. */
guint32 sqlenvfs_crc32(guint32 crc, const void *data, gsize len);
gboolean sqlenvfs_file_crc32(const char *path, guint32 *crc, goffset *size,
                             GError **error);

/* Human-readable size, e.g. "12.3 MiB". */
char *sqlenvfs_format_size(guint64 bytes);

/* The clock: wall time in microseconds since the Unix epoch (UTC). Tests
 * inject a fake with sqlenvfs_clock_set(); NULL restores the real clock. */
typedef gint64 (*SqlenvfsClockFunc)(void);
gint64 sqlenvfs_clock_now(void);
void sqlenvfs_clock_set(SqlenvfsClockFunc fn);

G_END_DECLS
