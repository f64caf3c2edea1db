/*
 * error.c — the project's GError domain and the errno / SQLite code mapping.
 */
#include "sqlenvfs/error.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK(sqlenvfs-error-quark, sqlenvfs_error)

static SqlenvfsErrorCode
code_from_errno(int errsv)
{
  switch (errsv) {
  case ENOSPC:
  case EDQUOT:
    return SQLENVFS_ERROR_NOSPACE;
  case EACCES:
  case EPERM:
  case EROFS:
    return SQLENVFS_ERROR_PERMISSION;
  case ENOENT:
  case ENOTDIR:
    return SQLENVFS_ERROR_NOT_FOUND;
  case EEXIST:
    return SQLENVFS_ERROR_EXISTS;
  case EBUSY:
  case EWOULDBLOCK:
    return SQLENVFS_ERROR_BUSY;
  case EINTR:
    return SQLENVFS_ERROR_CANCELLED;
  default:
    return SQLENVFS_ERROR_IO;
  }
}

static const char *
hint_for(SqlenvfsErrorCode code)
{
  switch (code) {
  case SQLENVFS_ERROR_NOSPACE:
    return " (free some space or prune old backups, then retry)";
  case SQLENVFS_ERROR_PERMISSION:
    return " (check ownership and permissions of that path)";
  default:
    return "";
  }
}

/* Whether @path is in a root: a directory at or above it holds
 * .sqlenvfs/ or data/prod/. */
static gboolean
is_in_root(const char *path)
{
  g_autofree char *dir = g_canonicalize_filename(path, NULL);
  for (;;) {
    g_autofree char *state = g_build_filename(dir, ".sqlenvfs", NULL);
    g_autofree char *prod = g_build_filename(dir, "data", "prod", NULL);
    g_autofree char *up = NULL;
    if (g_file_test(state, G_FILE_TEST_IS_DIR) || g_file_test(prod, G_FILE_TEST_IS_DIR))
      return TRUE;
    up = g_path_get_dirname(dir);
    if (strcmp(up, dir) == 0)
      return FALSE;
    g_free(dir);
    dir = g_steal_pointer(&up);
  }
}

char *
sqlenvfs_error_owner_hint(const char *path)
{
  g_autofree char *dir = path ? g_path_get_dirname(path) : NULL;
  const char *which = path;
  struct stat st;
  /* The file, or the directory it would be made in. */
  if (path == NULL || (lstat(path, &st) != 0 && (which = dir, lstat(dir, &st) != 0)) ||
      st.st_uid == geteuid())
    return NULL;
  if (is_in_root(which))
    return g_strdup_printf(" (it belongs to uid %u and this runs as uid %u: run sqlenvfs as "
                           "the user that owns the root's files, or give them back to that "
                           "user with `chown -R`)",
                           (unsigned)st.st_uid, (unsigned)geteuid());
  /* Not the root's: an --output's directory, a file given to read. */
  if (S_ISDIR(st.st_mode))
    return g_strdup_printf(" (the directory %s belongs to uid %u and this runs as uid %u: "
                           "give a path in a directory this user may write, or run sqlenvfs "
                           "as a user who may write there)",
                           which, (unsigned)st.st_uid, (unsigned)geteuid());
  return g_strdup_printf(" (the file %s belongs to uid %u and this runs as uid %u: give a file "
                         "this user may use, or run sqlenvfs as a user who may use it)",
                         which, (unsigned)st.st_uid, (unsigned)geteuid());
}

gboolean
sqlenvfs_error_errno(GError **error, int errsv, const char *what,
                     const char *path)
{
  SqlenvfsErrorCode code = code_from_errno(errsv);
  g_autofree char *owner = code == SQLENVFS_ERROR_PERMISSION && errsv != EROFS
                             ? sqlenvfs_error_owner_hint(path) : NULL;
  /* Ownership or permissions do not explain a read-only filesystem. */
  const char *hint = errsv == EROFS ? " (the filesystem is mounted read-only: remount it "
                                      "read-write, and see `dmesg` if the kernel made it "
                                      "read-only after an error)"
                                    : owner ? owner : hint_for(code);
  g_set_error(error, SQLENVFS_ERROR, code, "%s %s: %s%s", what,
              path ? path : "", g_strerror(errsv), hint);
  return FALSE;
}

gboolean
sqlenvfs_error_sqlite(GError **error, sqlite3 *db, int rc, const char *what,
                      const char *path)
{
  SqlenvfsErrorCode code;
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const char *hint = "";

  if (rc == SQLITE_READONLY_ROLLBACK) {
    /* Not damage: a read-only connection does not play the journal back. */
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s %s: a transaction was cut short and left a hot journal (%s-journal), which "
                "only a read-write connection plays back; the database was left as it is (its "
                "application's next open rolls the transaction back, as does `sqlite3 %s "
                "'PRAGMA quick_check'`; then retry)",
                what, path ? path : "", path ? path : "DB", path ? path : "DB");
    return FALSE;
  }
  switch (rc & 0xff) {
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    code = SQLENVFS_ERROR_INTEGRITY;
    hint = " (the file is damaged: run `sqlenvfs verify` or `sqlenvfs recover`)";
    break;
  case SQLITE_FULL:
    code = SQLENVFS_ERROR_NOSPACE;
    hint = " (free some space or prune old backups, then retry)";
    break;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    code = SQLENVFS_ERROR_BUSY;
    hint = " (another process holds a lock; retry, or see `sqlenvfs doctor`)";
    break;
  case SQLITE_CANTOPEN:
    code = SQLENVFS_ERROR_NOT_FOUND;
    break;
  case SQLITE_READONLY:
  case SQLITE_PERM:
  case SQLITE_AUTH:
    code = SQLENVFS_ERROR_PERMISSION;
    break;
  case SQLITE_IOERR:
    code = SQLENVFS_ERROR_IO;
    break;
  default:
    code = SQLENVFS_ERROR_FAILED;
    break;
  }
  if (code == SQLENVFS_ERROR_PERMISSION) {
    /* A file of another user's is the usual cause: say whose. */
    g_autofree char *owner = sqlenvfs_error_owner_hint(path);
    g_set_error(error, SQLENVFS_ERROR, code, "%s %s: %s%s", what, path ? path : "", msg,
                owner ? owner : " (check ownership and permissions of that file and its "
                                "directory)");
    return FALSE;
  }
  g_set_error(error, SQLENVFS_ERROR, code, "%s %s: %s%s", what,
              path ? path : "", msg, hint);
  return FALSE;
}

int
sqlenvfs_error_to_errno(const GError *error)
{
  if (error == NULL)
    return 0;
  if (error->domain != SQLENVFS_ERROR)
    return EIO;
  switch ((SqlenvfsErrorCode)error->code) {
  case SQLENVFS_ERROR_INVALID:
    return EINVAL;
  case SQLENVFS_ERROR_NOT_FOUND:
  case SQLENVFS_ERROR_GAP:
    return ENOENT;
  case SQLENVFS_ERROR_EXISTS:
    return EEXIST;
  case SQLENVFS_ERROR_REFUSED:
    return EPERM;
  case SQLENVFS_ERROR_NOSPACE:
    return ENOSPC;
  case SQLENVFS_ERROR_BUSY:
    return EBUSY;
  case SQLENVFS_ERROR_PERMISSION:
    return EACCES;
  case SQLENVFS_ERROR_CANCELLED:
    return EINTR;
  case SQLENVFS_ERROR_FAILED:
  case SQLENVFS_ERROR_INTEGRITY:
  case SQLENVFS_ERROR_IO:
  default:
    return EIO;
  }
}

int
sqlenvfs_error_exit_status(const GError *error)
{
  (void)error;
  return 1;
}
