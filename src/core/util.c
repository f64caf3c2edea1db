/*
 * util.c — shared helpers: opening databases, durable file operations, clock.
 */
#include "sqlenvfs/util.h"
#include "sqlenvfs/error.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <isa-l/crc.h>

sqlite3 *
sqlenvfs_db_open(const char *path, SqlenvfsOpenFlags flags, GError **error)
{
  sqlite3 *db = NULL;
  int oflags = SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
  int rc;

  if ((flags & SQLENVFS_OPEN_MUST_EXIST) && !g_file_test(path, G_FILE_TEST_EXISTS)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "open database %s: no such file (run `sqlenvfs init` or check --root)",
                path);
    return NULL;
  }
  if (flags & SQLENVFS_OPEN_READONLY)
    oflags |= SQLITE_OPEN_READONLY;
  else
    oflags |= SQLITE_OPEN_READWRITE;
  if (flags & SQLENVFS_OPEN_CREATE)
    oflags |= SQLITE_OPEN_CREATE;

  rc = sqlite3_open_v2(path, &db, oflags, NULL);
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, db, rc, "open database", path);
    sqlite3_close_v2(db);
    return NULL;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, SQLENVFS_BUSY_TIMEOUT_MS);
  return db;
}

gboolean
sqlenvfs_db_exec(sqlite3 *db, const char *sql, const char *path, GError **error)
{
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    return sqlenvfs_error_sqlite(error, db, rc, "execute SQL on", path);
  return TRUE;
}

static sqlite3_stmt *
prepare_step(sqlite3 *db, const char *sql, const char *path, int *rc_out,
             GError **error)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, db, rc, "query", path);
    return NULL;
  }
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlenvfs_error_sqlite(error, db, rc, "query", path);
    sqlite3_finalize(st);
    return NULL;
  }
  *rc_out = rc;
  return st;
}

gboolean
sqlenvfs_db_query_int(sqlite3 *db, const char *sql, gint64 *out,
                      const char *path, GError **error)
{
  int rc;
  g_autoptr(sqlite3_stmt) st = prepare_step(db, sql, path, &rc, error);
  if (st == NULL)
    return FALSE;
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  return TRUE;
}

gboolean
sqlenvfs_db_query_text(sqlite3 *db, const char *sql, char **out,
                       const char *path, GError **error)
{
  int rc;
  g_autoptr(sqlite3_stmt) st = prepare_step(db, sql, path, &rc, error);
  if (st == NULL)
    return FALSE;
  *out = NULL;
  if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
    *out = g_strdup((const char *)sqlite3_column_text(st, 0));
  return TRUE;
}

gboolean
sqlenvfs_db_check(sqlite3 *db, gboolean quick, const char *path, GError **error)
{
  g_autofree char *res = NULL;
  if (!sqlenvfs_db_query_text(db, quick ? "PRAGMA quick_check" : "PRAGMA integrity_check",
                              &res, path, error)) {
    if (*error && (*error)->code == SQLENVFS_ERROR_INTEGRITY)
      return FALSE;
    return FALSE;
  }
  if (g_strcmp0(res, "ok") != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "integrity check of %s failed: %s", path, res ? res : "(no result)");
    return FALSE;
  }
  return TRUE;
}

static gboolean
fsync_open(const char *path, int oflags, GError **error)
{
  int fd = open(path, oflags | O_CLOEXEC);
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open for fsync", path);
  if (fsync(fd) != 0) {
    int errsv = errno;
    close(fd);
    return sqlenvfs_error_errno(error, errsv, "fsync", path);
  }
  close(fd);
  return TRUE;
}

gboolean
sqlenvfs_fsync_path(const char *path, GError **error)
{
  return fsync_open(path, O_RDONLY, error);
}

gboolean
sqlenvfs_fsync_dir(const char *dir, GError **error)
{
  return fsync_open(dir, O_RDONLY | O_DIRECTORY, error);
}

gboolean
sqlenvfs_mkdir_p(const char *dir, int mode, GError **error)
{
  g_autofree char *parent = NULL;
  struct stat st;

  if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
    return TRUE;
  parent = g_path_get_dirname(dir);
  if (strcmp(parent, dir) != 0 && !sqlenvfs_mkdir_p(parent, mode, error))
    return FALSE;
  if (mkdir(dir, mode ? mode : 0755) != 0) {
    if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
      return TRUE;
    return sqlenvfs_error_errno(error, errno, "create directory", dir);
  }
  /* a new directory is durable only once its parent's entry is */
  return sqlenvfs_fsync_dir(parent, error);
}

gboolean
sqlenvfs_write_file_atomic(const char *path, const void *data, gsize len,
                           int mode, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *base = g_path_get_basename(path);
  g_autofree char *tmp = g_strdup_printf("%s/.%s.tmp-%d", dir, base, (int)getpid());
  const char *p = data;
  gsize left = len;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ? mode : 0644);

  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "create", tmp);
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      int errsv = errno;
      if (errsv == EINTR)
        continue;
      close(fd);
      unlink(tmp);
      return sqlenvfs_error_errno(error, errsv, "write", tmp);
    }
    p += n;
    left -= (gsize)n;
  }
  if (fsync(fd) != 0) {
    int errsv = errno;
    close(fd);
    unlink(tmp);
    return sqlenvfs_error_errno(error, errsv, "fsync", tmp);
  }
  close(fd);
  if (rename(tmp, path) != 0) {
    int errsv = errno;
    unlink(tmp);
    return sqlenvfs_error_errno(error, errsv, "rename into place", path);
  }
  return sqlenvfs_fsync_dir(dir, error);
}

static int
rm_one(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftwbuf)
{
  (void)sb;
  (void)ftwbuf;
  if (typeflag == FTW_DP)
    return rmdir(fpath) == 0 ? 0 : errno;
  return unlink(fpath) == 0 ? 0 : errno;
}

gboolean
sqlenvfs_rm_rf(const char *path, GError **error)
{
  int rc;
  if (!g_file_test(path, G_FILE_TEST_EXISTS) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK))
    return TRUE;
  rc = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  if (rc != 0)
    return sqlenvfs_error_errno(error, rc > 0 ? rc : errno, "remove", path);
  return TRUE;
}

guint32
sqlenvfs_crc32(guint32 crc, const void *data, gsize len)
{
  return crc32_gzip_refl(crc, data, len);
}

gboolean
sqlenvfs_file_crc32(const char *path, guint32 *crc, goffset *size, GError **error)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  g_autofree unsigned char *buf = NULL;
  guint32 c = 0;
  goffset total = 0;

  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open", path);
  buf = g_malloc(1 << 20);
  for (;;) {
    ssize_t n = read(fd, buf, 1 << 20);
    if (n < 0) {
      int errsv = errno;
      if (errsv == EINTR)
        continue;
      close(fd);
      return sqlenvfs_error_errno(error, errsv, "read", path);
    }
    if (n == 0)
      break;
    c = sqlenvfs_crc32(c, buf, (gsize)n);
    total += n;
  }
  close(fd);
  *crc = c;
  if (size)
    *size = total;
  return TRUE;
}

char *
sqlenvfs_format_size(guint64 bytes)
{
  return g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
}

static SqlenvfsClockFunc clock_fn;

gint64
sqlenvfs_clock_now(void)
{
  return clock_fn ? clock_fn() : g_get_real_time();
}

void
sqlenvfs_clock_set(SqlenvfsClockFunc fn)
{
  clock_fn = fn;
}
