/*
 * copy.c — full, consistent, verified copies (copy.h).
 *
 * Every copy goes through one function, write_verified(): temporary file
 * ".tmp-<name>-<pid>" next to the destination, the image written once
 * (crc32 computed on the way), fsync, PRAGMA integrity_check, rename,
 * directory fsync. A failure at any step removes the temporary file, so
 * nothing that looks like a copy is ever left behind.
 */
#include "sqlenvfs/copy.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
sqlenvfs_copy_result_clear(SqlenvfsCopyResult *res)
{
  if (res == NULL)
    return;
  g_free(res->journal_mode);
  memset(res, 0, sizeof *res);
}

/* Integrity-check a finished file that no one else uses. */
static gboolean
check_file(const char *path, GError **error)
{
  g_autofree char *uri = g_strdup_printf("file:%s?immutable=1", path);
  g_autoptr(sqlite3) db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, error);
  if (db == NULL)
    return FALSE;
  return sqlenvfs_db_check(db, FALSE, path, error);
}

static gboolean
write_verified(SqlenvfsImage *img, const char *dst, int mode, gboolean overwrite,
               SqlenvfsProgressFunc progress, gpointer user, SqlenvfsCopyResult *res,
               GError **error)
{
  g_autofree char *dir = g_path_get_dirname(dst);
  g_autofree char *base = g_path_get_basename(dst);
  g_autofree char *tmp = g_strdup_printf("%s/.tmp-%s-%d", dir, base, (int)getpid());
  guint32 crc = 0;
  int fd;

  if (!overwrite && g_file_test(dst, G_FILE_TEST_EXISTS)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS,
                "write %s: the file exists (choose another path, or pass --force to replace it)",
                dst);
    return FALSE;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "create", tmp);
  if (fchmod(fd, mode & 0666) != 0 ||
      !sqlenvfs_image_write_to_fd(img, fd, progress, user, &crc, tmp, error) ||
      fsync(fd) != 0) {
    int errsv = errno;
    if (error && *error == NULL)
      sqlenvfs_error_errno(error, errsv, "write", tmp);
    close(fd);
    unlink(tmp);
    return FALSE;
  }
  if (close(fd) != 0) {
    int errsv = errno;
    unlink(tmp);
    return sqlenvfs_error_errno(error, errsv, "close", tmp);
  }
  if (!check_file(tmp, error)) {
    unlink(tmp);
    if (error && *error && (*error)->code == SQLENVFS_ERROR_INTEGRITY)
      g_prefix_error(error, "copy to %s not kept: ", dst);
    return FALSE;
  }
  if (rename(tmp, dst) != 0) {
    int errsv = errno;
    unlink(tmp);
    return sqlenvfs_error_errno(error, errsv, "rename into place", dst);
  }
  if (!sqlenvfs_fsync_dir(dir, error))
    return FALSE;
  if (res) {
    res->size = sqlenvfs_image_size(img);
    res->crc32 = crc;
  }
  return TRUE;
}

gboolean
sqlenvfs_copy_db(const char *src, const char *dst, gboolean overwrite,
                 SqlenvfsProgressFunc progress, gpointer user, SqlenvfsCopyResult *res,
                 GError **error)
{
  g_autoptr(SqlenvfsLiveView) view = NULL;
  struct stat st;

  if (stat(src, &st) != 0)
    return sqlenvfs_error_errno(error, errno, "copy database", src);
  view = sqlenvfs_live_view_open(src, error);
  if (view == NULL)
    return FALSE;
  if (!write_verified(sqlenvfs_live_view_image(view), dst, st.st_mode & 0666, overwrite,
                      progress, user, res, error))
    return FALSE;
  if (res) {
    res->pos = *sqlenvfs_live_view_pos(view);
    g_free(res->journal_mode);
    res->journal_mode = g_strdup(sqlenvfs_live_view_journal_mode(view));
  }
  return TRUE;
}

gboolean
sqlenvfs_copy_image(SqlenvfsImage *img, const char *dst, int mode, gboolean overwrite,
                    SqlenvfsProgressFunc progress, gpointer user, SqlenvfsCopyResult *res,
                    GError **error)
{
  if (res)
    memset(&res->pos, 0, sizeof res->pos);
  return write_verified(img, dst, mode, overwrite, progress, user, res, error);
}

/* The pid at the end of ".tmp-<anything>-<pid>", or 0. */
static pid_t
tmp_owner(const char *name)
{
  const char *dash = strrchr(name, '-');
  char *end = NULL;
  long pid;
  if (dash == NULL)
    return 0;
  pid = strtol(dash + 1, &end, 10);
  return (end && *end == '\0' && pid > 0) ? (pid_t)pid : 0;
}

int
sqlenvfs_copy_cleanup_tmp(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  int n = 0;

  if (d == NULL)
    return 0;
  while ((name = g_dir_read_name(d)) != NULL) {
    pid_t owner;
    g_autofree char *path = NULL;
    if (!g_str_has_prefix(name, ".tmp-"))
      continue;
    owner = tmp_owner(name);
    /* A temporary of a process that still runs is its work in progress. */
    if (owner > 0 && (kill(owner, 0) == 0 || errno == EPERM))
      continue;
    path = g_build_filename(dir, name, NULL);
    if (sqlenvfs_rm_rf(path, NULL)) {
      g_message("removed leftover %s of an interrupted run", path);
      n++;
    }
  }
  return n;
}
