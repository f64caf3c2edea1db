/*
 * copy.c — full, consistent, verified copies (copy.h).
 *
 * Every copy goes through two functions: start_copy() writes the image
 * once to a temporary file ".tmp-<name>-<pid>" next to the destination
 * (crc32 computed on the way), created with O_EXCL | O_NOFOLLOW and the
 * source's mode, after removing the same destination's temporaries of
 * processes that died; finish_copy() runs fsync and PRAGMA
 * integrity_check at once, then renames and syncs the directory. A live
 * view is released between the two. A failure at any step removes the
 * temporary file, so nothing that looks like a copy is ever left behind.
 */
#include "sqlenvfs/copy.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/readvfs.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
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
  g_autofree char *immutable = sqlenvfs_db_uri_immutable(path);
  g_autofree char *uri = NULL;
  g_autoptr(sqlite3) db = NULL;
  /* Read ahead (readvfs.h): the check asks for a page at a time, mostly
   * going forward through the file. No mmap: it would be faster still,
   * but every page of the copy would count in the resident size of the
   * process (a mount daemon that rebuilt a 4 GiB pitr image would show 4
   * GiB), and a read error would be a SIGBUS rather than an error. */
  if (!sqlenvfs_readvfs_register(error))
    return FALSE;
  uri = g_strconcat(immutable, "&vfs=" SQLENVFS_READVFS_NAME, NULL);
  db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, error);
  if (db == NULL)
    return FALSE;
  return sqlenvfs_db_check(db, FALSE, path, error);
}

/* A copy being made: written to a temporary file, then made durable,
 * checked and put in place (finish_copy). */
typedef struct {
  char *dst, *dir, *tmp;
  int fd;
  int tracked; /* sqlenvfs_tmp_track's handle for a temporary named here, or -1 */
  gint64 size;
  guint32 crc;
} PendingCopy;

static void
pending_copy_clear(PendingCopy *pc)
{
  if (pc->fd >= 0) {
    close(pc->fd);
    unlink(pc->tmp);
  }
  sqlenvfs_tmp_untrack(pc->tracked);
  pc->tracked = -1;
  g_free(pc->dst);
  g_free(pc->dir);
  g_free(pc->tmp);
}

/* Write @img to a temporary file next to @dst (@tmp: that exact file), with
 * its crc32 in pc->crc when @want_crc. The image is not needed afterwards (a pinned view can be released before the
 * slow part). Leftovers of the same destination from processes that died
 * are removed first. */
static gboolean
start_copy(SqlenvfsImage *img, const char *dst, const char *tmp, int mode, gboolean overwrite,
           gboolean want_crc, SqlenvfsProgressFunc progress, gpointer user, PendingCopy *pc,
           GError **error)
{
  g_autofree char *base = g_path_get_basename(dst);
  g_autofree char *prefix = sqlenvfs_tmp_prefix(base);

  pc->fd = -1;
  pc->tracked = -1;
  pc->dst = g_strdup(dst);
  pc->dir = g_path_get_dirname(dst);
  pc->tmp = tmp ? g_strdup(tmp) : sqlenvfs_tmp_path(pc->dir, base);
  pc->crc = 0;
  if (tmp == NULL && !overwrite && g_file_test(dst, G_FILE_TEST_EXISTS)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS,
                "write %s: the file exists (choose another path, or pass --force to replace it)",
                dst);
    return FALSE;
  }
  if (tmp == NULL && sqlenvfs_tmp_leftovers(pc->dir, prefix, FALSE, TRUE, NULL, error) < 0)
    return FALSE;
  /* An interrupted command line removes it (util.h): tracked before it is
   * created, so that no signal between the two leaves it behind; a
   * temporary given by the caller is the caller's to track. */
  if (tmp == NULL)
    pc->tracked = sqlenvfs_tmp_track(pc->tmp, FALSE);
  /* Created owner-only, then given the source's mode: never more readable
   * than the source, whatever the umask. */
  pc->fd = sqlenvfs_create_file(pc->tmp, 0600, error);
  if (pc->fd < 0)
    return FALSE;
  if (fchmod(pc->fd, (mode_t)sqlenvfs_group_mode(pc->fd, mode & 0666)) != 0 ||
      !sqlenvfs_image_write_to_fd(img, pc->fd, progress, user, want_crc ? &pc->crc : NULL,
                                  pc->tmp, error)) {
    if (error && *error == NULL)
      sqlenvfs_error_errno(error, errno, "write", pc->tmp);
    return FALSE;
  }
  pc->size = sqlenvfs_image_size(img);
  return TRUE;
}

static gpointer
fsync_thread(gpointer data)
{
  int fd = GPOINTER_TO_INT(data);
  return GINT_TO_POINTER(fsync(fd) == 0 ? 0 : errno);
}

/* Make the temporary file durable and check it (the two at once: the check
 * reads from the page cache while the disk writes), then rename it into
 * place and sync the directory. */
static gboolean
finish_copy(PendingCopy *pc, SqlenvfsCopyResult *res, GError **error)
{
  GThread *syncer = g_thread_new("sqlenvfs-fsync", fsync_thread, GINT_TO_POINTER(pc->fd));
  g_autoptr(GError) check_error = NULL;
  gboolean checked = check_file(pc->tmp, &check_error);
  int sync_errno = GPOINTER_TO_INT(g_thread_join(syncer));
  int fd = pc->fd;

  pc->fd = -1;
  if (sync_errno != 0 || close(fd) != 0) {
    unlink(pc->tmp);
    return sqlenvfs_error_errno(error, sync_errno ? sync_errno : errno, "write", pc->tmp);
  }
  if (!checked) {
    unlink(pc->tmp);
    if (check_error->code == SQLENVFS_ERROR_INTEGRITY)
      g_prefix_error(&check_error, "copy to %s not kept: ", pc->dst);
    g_propagate_error(error, g_steal_pointer(&check_error));
    return FALSE;
  }
  if (strcmp(pc->tmp, pc->dst) != 0 && rename(pc->tmp, pc->dst) != 0) {
    int errsv = errno;
    unlink(pc->tmp);
    return sqlenvfs_error_errno(error, errsv, "rename into place", pc->dst);
  }
  if (!sqlenvfs_fsync_dir(pc->dir, error))
    return FALSE;
  if (res) {
    res->size = pc->size;
    res->crc32 = pc->crc;
  }
  return TRUE;
}

gboolean
sqlenvfs_copy_db(const char *src, const char *dst, gboolean overwrite,
                 SqlenvfsProgressFunc progress, gpointer user, SqlenvfsCopyResult *res,
                 GError **error)
{
  g_autoptr(SqlenvfsLiveView) view = NULL;
  g_autofree char *not_wal = NULL;
  PendingCopy pc = { .fd = -1, .tracked = -1 };
  struct stat st;
  gboolean ok;

  if (stat(src, &st) != 0)
    return sqlenvfs_error_errno(error, errno, "copy database", src);
  view = sqlenvfs_live_view_open_wal(src, &not_wal, error);
  if (not_wal != NULL) /* it was in WAL mode a moment ago, when it was checked */
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "copy database %s: it is now in journal mode '%s', not WAL (switch it back "
                "with `sqlite3 %s 'PRAGMA journal_mode=WAL'`, then retry)", src, not_wal, src);
  if (view == NULL)
    return FALSE;
  ok = start_copy(sqlenvfs_live_view_image(view), dst, NULL, sqlenvfs_copy_mode(&st), overwrite,
                  TRUE, progress, user, &pc, error);
  if (ok && res) {
    res->pos = *sqlenvfs_live_view_pos(view);
    g_free(res->journal_mode);
    res->journal_mode = g_strdup(sqlenvfs_live_view_journal_mode(view));
  }
  /* Unpin before the sync and the check, which take as long as the copy:
   * checkpoints need not wait for them. */
  g_clear_pointer(&view, sqlenvfs_live_view_free);
  ok = ok && finish_copy(&pc, res, error);
  pending_copy_clear(&pc);
  return ok;
}

gboolean
sqlenvfs_copy_image(SqlenvfsImage *img, const char *dst, int mode, gboolean overwrite,
                    SqlenvfsProgressFunc progress, gpointer user, SqlenvfsCopyResult *res,
                    GError **error)
{
  PendingCopy pc = { .fd = -1, .tracked = -1 };
  gboolean ok;

  if (res)
    memset(&res->pos, 0, sizeof res->pos);
  ok = start_copy(img, dst, NULL, mode, overwrite, res != NULL, progress, user, &pc, error) &&
       finish_copy(&pc, res, error);
  pending_copy_clear(&pc);
  return ok;
}

gboolean
sqlenvfs_copy_image_aside(SqlenvfsImage *img, const char *tmp, int mode,
                          SqlenvfsProgressFunc progress, gpointer user, GError **error)
{
  PendingCopy pc = { .fd = -1, .tracked = -1 };
  gboolean ok = start_copy(img, tmp, tmp, mode, TRUE, FALSE, progress, user, &pc, error) &&
                finish_copy(&pc, NULL, error);
  pending_copy_clear(&pc);
  return ok;
}

gboolean
sqlenvfs_copy_check_output(const SqlenvfsRoot *root, const char *output, gboolean overwrite,
                           const char *cmd, const char *advice, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(output);
  g_autofree char *which = NULL;
  g_autofree char *area = NULL;
  gboolean has_output;
  struct stat st;
  int pid = 0;

  g_autofree char *base = g_path_get_basename(output);
  long name_max = pathconf(dir, _PC_NAME_MAX);

  /* Said before anything is written, rather than by the rename at the end
   * (of a recovery that may have run for long). */
  if (name_max <= 0)
    name_max = NAME_MAX;
  if (strlen(base) > (gsize)name_max) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "%s to %s: the file name is %zu bytes long, more than the %ld a file name can "
                "have there (nothing was written; choose a shorter --output)",
                cmd, output, strlen(base), name_max);
    return FALSE;
  }
  if (root != NULL && sqlenvfs_root_is_db_file(root, output, &which)) {
    g_autofree char *which_dir = g_path_get_dirname(which);
    gboolean dev = strcmp(which_dir, sqlenvfs_root_path(root, SQLENVFS_DIR_DEV)) == 0;
    /* A database, or a file SQLite keeps beside one (its -wal holds
     * commits the database file does not). */
    if (g_str_has_suffix(which, ".db"))
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "%s to %s: that is the %s database %s of the root %s, which applications "
                  "open; %s never writes there, even with --force (nothing was written; %s)",
                  cmd, output, dev ? "development" : "production", which,
                  sqlenvfs_root_dir(root), cmd, advice);
    else
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "%s to %s: that is %s, a file SQLite keeps beside a %s database of the root "
                  "%s; %s never writes there, even with --force (nothing was written; %s)",
                  cmd, output, which, dev ? "development" : "production",
                  sqlenvfs_root_dir(root), cmd, advice);
    return FALSE;
  }
  if ((area = sqlenvfs_root_env_dir_of(output)) != NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s to %s: that is in %s, where a root keeps the databases applications open; "
                "%s never writes there, even with --force (nothing was written; %s)",
                cmd, output, area, cmd, advice);
    return FALSE;
  }
  if ((area = sqlenvfs_root_store_area_of(output)) != NULL ||
      (root != NULL && (area = sqlenvfs_root_store_dir_holding(root, output)) != NULL)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s to %s: that is inside %s, where a root keeps its backups, snapshots, WAL "
                "archive or state; %s never writes there, even with --force, since a file "
                "replaced there is a copy or a piece of the archive lost (nothing was written; "
                "choose an --output outside it)",
                cmd, output, area, cmd);
    return FALSE;
  }
  if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)) {
    /* Its temporaries and the output would be made through the link: the
     * directory it points to is named instead. */
    g_autofree char *target = g_file_read_link(dir, NULL);
    g_autofree char *real = sqlenvfs_link_destination(dir);
    g_autofree char *real_out = real ? g_build_filename(real, base, NULL) : NULL;
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s to %s: %s is a symbolic link (to %s), and sqlenvfs writes nothing through "
                "a link (nothing was written; name the directory it points to: --output %s)",
                cmd, output, dir, target ? target : "?", real_out ? real_out : "DIR/FILE");
    return FALSE;
  }
  has_output = lstat(output, &st) == 0;
  for (gsize i = 0; i < SQLENVFS_N_DB_SIDECARS; i++) {
    const char *suffix = SQLENVFS_DB_SIDECARS[i];
    g_autofree char *side = g_strconcat(output, suffix, NULL);
    struct stat sst;
    if (lstat(side, &sst) != 0)
      continue;
    /* Beside an existing file: a database in use (or not closed cleanly).
     * Beside no file: what a reader left, harmless unless SQLite would
     * apply its content to the new file or someone still has it open. */
    if (has_output) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "%s to %s: %s exists beside it, so it is a database in use (or one not "
                  "closed cleanly): a connection to it would mix its old %s with the new file, "
                  "and --force never removes it (nothing was written; choose another --output, "
                  "or close what uses it and remove the %s; %s)",
                  cmd, output, side, suffix + 1, suffix + 1, advice);
      return FALSE;
    }
    if ((sst.st_size > 0 && strcmp(suffix, "-shm") != 0) ||
        (pid = sqlenvfs_doctor_file_opener(side)) > 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "%s to %s: %s is left beside it%s, and SQLite would apply it to the new "
                  "file (nothing was written; choose another --output, or remove %s once "
                  "nothing uses it)",
                  cmd, output, side, sst.st_size > 0 ? " with content" : " and open", side);
      return FALSE;
    }
  }
  if (!has_output) {
    struct stat dst;
    /* Said here, not as the failure to create a temporary inside it. */
    gboolean found = stat(dir, &dst) == 0;
    if (!found || !S_ISDIR(dst.st_mode)) {
      int errsv = found ? ENOTDIR : errno;
      if (errsv == ENOENT)
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                    "%s to %s: the directory %s does not exist (nothing was written; "
                    "create it, or choose another --output)", cmd, output, dir);
      else
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                    "%s to %s: %s is no directory to write in: %s (nothing was written; "
                    "choose another --output)", cmd, output, dir, g_strerror(errsv));
      return FALSE;
    }
    return TRUE;
  }
  /* --force would not replace it either: say so now, not "pass --force". */
  if (!overwrite && S_ISREG(st.st_mode)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS,
                "%s to %s: the file already exists (choose another --output, or pass --force "
                "to replace it)", cmd, output);
    return FALSE;
  }
  if (!S_ISREG(st.st_mode)) {
    g_autofree char *target = S_ISLNK(st.st_mode) ? g_file_read_link(output, NULL) : NULL;
    g_autofree char *link = g_strdup_printf("a symbolic link (to %s)", target ? target : "?");
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s to %s: it is %s, not a plain file; --force replaces only a plain file "
                "(nothing was written; choose another --output)",
                cmd, output, S_ISLNK(st.st_mode) ? link
                             : S_ISDIR(st.st_mode) ? "a directory" : "a special file");
    return FALSE;
  }
  /* Another name may be a copy the store keeps (whose check would then
   * see it change) or a file someone else relies on. */
  if (st.st_nlink > 1) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s to %s: the file has %ju names (hard links), and another of them may be a "
                "backup, a snapshot or a file someone else uses; --force replaces only a file "
                "with one name (nothing was written; choose another --output, or remove its "
                "other names first)",
                cmd, output, (uintmax_t)st.st_nlink);
    return FALSE;
  }
  pid = sqlenvfs_doctor_file_opener(output);
  if (pid > 0) {
    g_autofree char *who = sqlenvfs_doctor_describe_pid(pid);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "%s to %s: %s has it open; --force replaces only a file nobody uses (nothing "
                "was written; stop that process or choose another --output; %s)",
                cmd, output, who, advice);
    return FALSE;
  }
  return TRUE;
}

int
sqlenvfs_copy_cleanup_tmp(const char *dir)
{
  g_autoptr(GError) error = NULL;
  int n = sqlenvfs_tmp_leftovers(dir, ".tmp-", TRUE, TRUE, NULL, &error);
  if (n < 0) {
    g_warning("clean up %s: %s", dir, error->message);
    return 0;
  }
  return n;
}
