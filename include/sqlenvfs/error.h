/*
 * error.h — the project's one GError domain, and the only place where
 * errno values and SQLite result codes become GErrors (and GErrors become
 * errno at the FUSE edge).
 *
 * Contract for every core function that can fail: it returns gboolean (or a
 * pointer, NULL on failure), takes GError **error last, and on failure sets
 * exactly one error whose message names the operation, the file, and what the
 * user can do about it.
 */
#pragma once

#include <glib.h>
#include <sqlite3.h>

G_BEGIN_DECLS

#define SQLENVFS_ERROR (sqlenvfs_error_quark())
GQuark sqlenvfs_error_quark(void);

typedef enum {
  SQLENVFS_ERROR_FAILED,     /* generic failure                            -> EIO    */
  SQLENVFS_ERROR_INVALID,    /* bad input: option, time, name, content     -> EINVAL */
  SQLENVFS_ERROR_NOT_FOUND,  /* missing root, database, backup, time       -> ENOENT */
  SQLENVFS_ERROR_EXISTS,     /* refusing to overwrite                      -> EEXIST */
  SQLENVFS_ERROR_REFUSED,    /* a safety check said no                     -> EPERM  */
  SQLENVFS_ERROR_INTEGRITY,  /* corrupt database, copy or archive          -> EIO    */
  SQLENVFS_ERROR_IO,         /* read/write/fsync failure                   -> EIO    */
  SQLENVFS_ERROR_NOSPACE,    /* disk full                                  -> ENOSPC */
  SQLENVFS_ERROR_BUSY,       /* locked by another process or daemon        -> EBUSY  */
  SQLENVFS_ERROR_PERMISSION, /* the OS refused access                      -> EACCES */
  SQLENVFS_ERROR_GAP,        /* a time the archive cannot restore          -> ENOENT */
  SQLENVFS_ERROR_CANCELLED,  /* stopped by shutdown or signal              -> EINTR  */
} SqlenvfsErrorCode;

/* For a permission error on @path (or on the directory it would be made
 * in) that belongs to another user than this process's: " (it belongs to
 * uid N and this runs as uid M: ...)", what to do (newly allocated); NULL
 * otherwise. In a root (a directory above holds .sqlenvfs/ or data/prod/)
 * the advice is about the root's files; outside one (an --output's
 * directory) it names that file or directory. */
char *sqlenvfs_error_owner_hint(const char *path);

/* Set *error from errno value @errsv (read right after the failing call):
 * "<what> <path>: <strerror>". The code is chosen from errsv (ENOSPC ->
 * NOSPACE, EACCES/EPERM/EROFS -> PERMISSION, ENOENT -> NOT_FOUND, else IO).
 * Always returns FALSE so callers can `return sqlenvfs_error_errno(...)`. */
gboolean sqlenvfs_error_errno(GError **error, int errsv, const char *what,
                              const char *path);

/* Set *error from a SQLite result code: "<what> <path>: <sqlite3_errmsg>"
 * (or sqlite3_errstr(rc) when db is NULL). SQLITE_CORRUPT/NOTADB ->
 * INTEGRITY, SQLITE_FULL -> NOSPACE, SQLITE_BUSY/LOCKED -> BUSY,
 * SQLITE_CANTOPEN -> NOT_FOUND, SQLITE_READONLY/PERM/AUTH -> PERMISSION.
 * Returns FALSE. */
gboolean sqlenvfs_error_sqlite(GError **error, sqlite3 *db, int rc,
                               const char *what, const char *path);

/* The errno (positive) that fits an error, for the FUSE edge. */
int sqlenvfs_error_to_errno(const GError *error);

/* Exit status the CLI uses for an error (always 1 today; kept in one place). */
int sqlenvfs_error_exit_status(const GError *error);

G_END_DECLS
