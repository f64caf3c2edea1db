/*
 * util.c — shared helpers: opening databases, durable file operations, clock.
 */
#include "sqlenvfs/util.h"
#include "sqlenvfs/error.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <fts.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>
#include <isa-l/crc.h>
#include <zlib.h>

const char *const sqlenvfs_db_files[SQLENVFS_N_DB_FILES] = { "", "-wal", "-shm", "-journal" };

char *
sqlenvfs_db_of_file(const char *name)
{
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *suffix = g_strconcat(".db", sqlenvfs_db_files[i], NULL);
    if (g_str_has_suffix(name, suffix) && strlen(name) > strlen(suffix))
      return g_strndup(name, strlen(name) - strlen(suffix));
  }
  return NULL;
}

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
  if (flags & (SQLENVFS_OPEN_READONLY | SQLENVFS_OPEN_NO_CKPT_ON_CLOSE))
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, SQLENVFS_BUSY_TIMEOUT_MS);
  return db;
}

const char *
sqlenvfs_db_file_journal(const char *path)
{
  static const char magic[16] = "SQLite format 3";
  sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
  g_autofree sqlite3_file *f = NULL;
  guint8 h[20];
  int out = 0, rc;

  /* Through SQLite's VFS, not open(2) and close(2): closing any descriptor
   * of the file would drop the locks of this process's own connections to
   * it (POSIX locks are the process's); the VFS keeps such a descriptor
   * open until they let go. */
  if (vfs == NULL || !g_file_test(path, G_FILE_TEST_IS_REGULAR))
    return NULL;
  f = g_malloc0((gsize)vfs->szOsFile);
  if (vfs->xOpen(vfs, path, f, SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_DB, &out) != SQLITE_OK) {
    if (f->pMethods != NULL)
      f->pMethods->xClose(f);
    return NULL;
  }
  rc = f->pMethods->xRead(f, h, sizeof h, 0);
  f->pMethods->xClose(f);
  if (rc != SQLITE_OK || memcmp(h, magic, sizeof magic) != 0)
    return NULL;
  if (h[18] == 2 && h[19] == 2)
    return "wal";
  if (h[18] == 1 && h[19] == 1)
    return "delete";
  return NULL;
}

char *
sqlenvfs_db_uri_immutable(const char *path)
{
  g_autofree char *esc = g_uri_escape_string(path, "/", FALSE);
  return g_strdup_printf("file:%s?immutable=1", esc);
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
                              &res, path, error))
    return FALSE;
  if (g_strcmp0(res, "ok") != 0) {
    /* Its first row can hold one line per damaged page: one line, the
     * first few of them. */
    g_auto(GStrv) lines = g_strsplit(res ? res : "(no result)", "\n", -1);
    guint n = g_strv_length(lines), shown = MIN(n, 3u);
    g_autofree char *more = n > shown ? g_strdup_printf(" (and %u more)", n - shown) : NULL;
    char *keep = lines[shown];
    lines[shown] = NULL;
    {
      g_autofree char *head = g_strjoinv("; ", lines);
      lines[shown] = keep;
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "integrity check of %s failed: %s%s", path, head, more ? more : "");
    }
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
    int errsv = errno;
    if (errsv == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
      return TRUE;
    if (errsv == EEXIST && lstat(dir, &st) == 0) {
      /* A bare "File exists" says neither what is in the way nor what to do. */
      g_autofree char *word = sqlenvfs_shell_word(dir);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS,
                  "create directory %s: a %s is there, not a directory; nothing was changed: "
                  "move it aside (`mv %s %s.aside`) and run the command again",
                  dir, S_ISLNK(st.st_mode) ? "symbolic link to no directory"
                       : S_ISREG(st.st_mode) ? "regular file" : "file of another kind",
                  word, word);
      return FALSE;
    }
    return sqlenvfs_error_errno(error, errsv, "create directory", dir);
  }
  /* a new directory is durable only once its parent's entry is */
  return sqlenvfs_fsync_dir(parent, error);
}

/* sqlenvfs_write_file_atomic, and its @durable-less form. */
static gboolean
write_file_replace(const char *path, const void *data, gsize len, int mode, gboolean durable,
                   GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *base = g_path_get_basename(path);
  g_autofree char *prefix = sqlenvfs_tmp_prefix(base);
  g_autofree char *tmp = g_strdup_printf("%s/%s%d", dir, prefix, (int)getpid());
  const char *p = data;
  gsize left = len;
  int fd;

  /* The temporaries of writers of this file that died. */
  if (sqlenvfs_tmp_leftovers(dir, prefix, FALSE, TRUE, NULL, error) < 0)
    return FALSE;
  fd = sqlenvfs_create_file(tmp, mode ? mode : 0644, error);
  if (fd < 0)
    return FALSE;
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
  if (durable && fsync(fd) != 0) {
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
  return !durable || sqlenvfs_fsync_dir(dir, error);
}

gboolean
sqlenvfs_write_file_atomic(const char *path, const void *data, gsize len,
                           int mode, GError **error)
{
  return write_file_replace(path, data, len, mode, TRUE, error);
}

gboolean
sqlenvfs_write_file_replace(const char *path, const void *data, gsize len, int mode,
                            GError **error)
{
  return write_file_replace(path, data, len, mode, FALSE, error);
}

int
sqlenvfs_mode_dir(int file_mode)
{
  int m = file_mode & 0777;
  return m | ((m & 0444) >> 2);
}

int
sqlenvfs_dev_mode(const struct stat *dev, const struct stat *prod)
{
  int mode = (int)(dev->st_mode & 07777);
  gboolean others = prod != NULL && (prod->st_mode & S_IROTH) != 0;
  gboolean group =
    others || (prod != NULL && (prod->st_mode & S_IRGRP) != 0 && prod->st_gid == dev->st_gid);

  if (!others)
    mode &= ~S_IROTH;
  if (!group)
    mode &= ~S_IRGRP;
  return mode;
}

int
sqlenvfs_copy_mode(const struct stat *st)
{
  int mode = (int)(st->st_mode & 0666);
  return st->st_gid == getegid() ? mode : mode & ~0060;
}

int
sqlenvfs_group_mode(int fd, int mode)
{
  struct stat st;
  if ((mode & 0070) != 0 && fstat(fd, &st) == 0 && st.st_gid != getegid())
    return mode & ~0070;
  return mode;
}

/* A file just made with @mode (its umask aside): narrowed when its group
 * is not this process's (sqlenvfs_group_mode). */
static void
group_narrow_new(int fd, int mode)
{
  int want = sqlenvfs_group_mode(fd, mode & 0666);
  if (want != (mode & 0666) && fchmod(fd, (mode_t)want) != 0) {
    /* the owner's own file: fchmod fails only on a read-only filesystem,
     * where nothing is written into it either */
  }
}

gboolean
sqlenvfs_narrow_fd(int fd, int mode, const char *path, GError **error)
{
  struct stat st;
  if (fstat(fd, &st) != 0)
    return sqlenvfs_error_errno(error, errno, "stat", path);
  if ((st.st_mode & 0777 & ~(mode_t)mode) != 0 &&
      fchmod(fd, (st.st_mode & 07000) | (st.st_mode & (mode_t)mode & 0777)) != 0)
    return sqlenvfs_error_errno(error, errno, "restrict the mode of", path);
  return TRUE;
}

gboolean
sqlenvfs_narrow_dir(const char *dir, int mode, GError **error)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  gboolean ok;
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open", dir);
  ok = sqlenvfs_narrow_fd(fd, mode, dir, error);
  close(fd);
  return ok;
}

int
sqlenvfs_create_file(const char *path, int mode, GError **error)
{
  int fd;
  /* unlink never follows a symlink: whatever holds this name goes, and
   * what SQLite may have kept beside it (a hot -journal of the leftover
   * would be played back into the new file when SQLite opens it). On a
   * read-only filesystem unlink fails even where nothing is: then the
   * create below says what is wrong, not "remove the leftover". */
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *p = g_strconcat(path, sqlenvfs_db_files[i], NULL);
    struct stat st;
    if (unlink(p) != 0 && errno != ENOENT) {
      int errsv = errno;
      if (lstat(p, &st) == 0 || errno != ENOENT) {
        sqlenvfs_error_errno(error, errsv, "remove the leftover", p);
        return -1;
      }
    }
  }
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0666);
  if (fd < 0) {
    sqlenvfs_error_errno(error, errno, "create", path);
    return -1;
  }
  group_narrow_new(fd, mode);
  return fd;
}

/* Whether @st is a file sqlenvfs_open_own_file() refuses: FALSE and the
 * error naming @path when it is. */
static gboolean
own_file_ok(const char *path, const struct stat *st, GError **error)
{
  if (S_ISREG(st->st_mode) && st->st_nlink <= 1)
    return TRUE;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
              "%s is %s: sqlenvfs never writes into it (nothing was changed; remove this "
              "name, `rm %s`, and retry)", path,
              S_ISREG(st->st_mode) ? "a hard link, another name of a file that may be "
                                     "production's database"
                                   : "not a regular file",
              path);
  return FALSE;
}

int
sqlenvfs_open_own_file(const char *path, int flags, int mode, GError **error)
{
  struct stat st;
  int fd;

  g_return_val_if_fail((flags & O_TRUNC) == 0, -1);
  /* Looked at before it is opened too: closing a descriptor of
   * production's database would drop the locks this process's own SQLite
   * connections hold on it (POSIX locks are the process's). The check
   * after the open covers a link made in between. */
  if (lstat(path, &st) == 0 && !own_file_ok(path, &st, error))
    return -1;
  fd = open(path, flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode & 0666);
  if (fd < 0) {
    sqlenvfs_error_errno(error, errno, "open", path);
    return -1;
  }
  if (fstat(fd, &st) != 0) {
    sqlenvfs_error_errno(error, errno, "stat", path);
    close(fd);
    return -1;
  }
  group_narrow_new(fd, mode);
  if (!own_file_ok(path, &st, error)) {
    close(fd);
    return -1;
  }
  return fd;
}

char *
sqlenvfs_link_destination(const char *path)
{
  char *resolved = realpath(path, NULL);
  g_autofree char *target = NULL, *abs = NULL, *parent = NULL;
  char *out;

  if (resolved != NULL) {
    out = g_strdup(resolved);
    free(resolved);
    return out;
  }
  target = g_file_read_link(path, NULL);
  if (target == NULL)
    return NULL;
  abs = g_canonicalize_filename(path, NULL);
  parent = g_path_get_dirname(abs);
  return g_canonicalize_filename(target, parent);
}

gboolean
sqlenvfs_refuse_symlink(const char *path, const char *what, GError **error)
{
  struct stat st;
  g_autofree char *target = NULL;

  if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode))
    return TRUE;
  target = g_file_read_link(path, NULL);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
              "%s: %s is a symbolic link (to %s); sqlenvfs never writes or deletes through a "
              "link (nothing was changed; replace the link by the real file or directory)",
              what, path, target ? target : "?");
  return FALSE;
}

/* The pid of a temporary named "<anything>-<pid>[-journal|-wal|-shm]", or 0. */
static pid_t
tmp_pid(const char *name)
{
  g_autofree char *stem = g_strdup(name);
  const char *dash;
  char *end = NULL;
  long pid;

  for (gsize i = 0; i < SQLENVFS_N_DB_SIDECARS; i++)
    if (g_str_has_suffix(stem, SQLENVFS_DB_SIDECARS[i])) {
      stem[strlen(stem) - strlen(SQLENVFS_DB_SIDECARS[i])] = '\0';
      break;
    }
  dash = strrchr(stem, '-');
  if (dash == NULL || !g_ascii_isdigit(dash[1]))
    return 0;
  pid = strtol(dash + 1, &end, 10);
  return (end && *end == '\0' && pid > 0 && pid <= G_MAXINT32) ? (pid_t)pid : 0;
}

static gboolean
pid_is_dead(pid_t pid)
{
  return kill(pid, 0) != 0 && errno == ESRCH;
}

/* Remove the tree @name inside the directory @dfd, never following a symlink. */
static gboolean
remove_at(int dfd, const char *name, const char *path, GError **error)
{
  struct stat st;
  int sub;
  DIR *d;
  struct dirent *ent;
  gboolean ok = TRUE;

  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? TRUE : sqlenvfs_error_errno(error, errno, "remove", path);
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
      return sqlenvfs_error_errno(error, errno, "remove", path);
    return TRUE;
  }
  sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0)
    return sqlenvfs_error_errno(error, errno, "remove", path);
  d = fdopendir(sub);
  if (d == NULL) {
    close(sub);
    return sqlenvfs_error_errno(error, errno, "remove", path);
  }
  while (ok && (ent = readdir(d)) != NULL) {
    g_autofree char *child = NULL;
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
      continue;
    child = g_build_filename(path, ent->d_name, NULL);
    ok = remove_at(dirfd(d), ent->d_name, child, error);
  }
  closedir(d);
  if (ok && unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    return sqlenvfs_error_errno(error, errno, "remove", path);
  return ok;
}

/* The longest name kept whole in a temporary's name: ".tmp-" (5), the name,
 * "-<pid>" (8 at most) and the "-journal" SQLite may add (8) stay within the
 * 255 bytes a file name may have. */
#define TMP_NAME_MAX 220

char *
sqlenvfs_tmp_prefix(const char *name)
{
  g_autofree char *hash = NULL;
  const char *cut;

  if (strlen(name) <= TMP_NAME_MAX)
    return g_strdup_printf(".tmp-%s-", name);
  /* A longer (legal) name: its start, for a person to recognize, and a
   * hash of it, for the leftovers of this name alone. */
  hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, name, -1);
  cut = name + 100;
  if (g_utf8_validate(name, -1, NULL))
    cut = g_utf8_find_prev_char(name, cut + 1);
  return g_strdup_printf(".tmp-%.*s~%.16s-", (int)(cut - name), name, hash);
}

char *
sqlenvfs_tmp_path(const char *dir, const char *name)
{
  g_autofree char *prefix = sqlenvfs_tmp_prefix(name);
  return g_strdup_printf("%s/%s%d", dir, prefix, (int)getpid());
}

/* The temporaries being written (sqlenvfs_tmp_track): a slot is filled,
 * then marked used; a signal handler reads only slots marked used. */
#define TRACKED_MAX 16
static struct {
  char path[4096];
  gboolean is_dir;
  int used; /* read and written with __atomic builtins */
} tracked[TRACKED_MAX];
static GMutex tracked_lock;

int
sqlenvfs_tmp_track(const char *path, gboolean is_dir)
{
  size_t n = strlen(path);
  int handle = -1;

  /* Room for the longest sidecar suffix the handler appends. */
  if (n + sizeof "-journal" > sizeof tracked[0].path)
    return -1;
  g_mutex_lock(&tracked_lock);
  for (int i = 0; i < TRACKED_MAX && handle < 0; i++) {
    if (__atomic_load_n(&tracked[i].used, __ATOMIC_ACQUIRE))
      continue;
    memcpy(tracked[i].path, path, n + 1);
    tracked[i].is_dir = is_dir;
    __atomic_store_n(&tracked[i].used, 1, __ATOMIC_RELEASE);
    handle = i;
  }
  g_mutex_unlock(&tracked_lock);
  return handle;
}

void
sqlenvfs_tmp_untrack(int handle)
{
  if (handle >= 0 && handle < TRACKED_MAX)
    __atomic_store_n(&tracked[handle].used, 0, __ATOMIC_RELEASE);
}

/* How deep remove_dir_at() goes: a remote restore's temporary root
 * (.tmp-remote-<pid>/root/backups/prod/wal_archives/<db>/) is the deepest. */
#define TRACKED_DIR_DEPTH 8

/* Remove the directory @name in @dirfd, with what it holds: opened with
 * O_NOFOLLOW, so a symlink of that name is left alone (and one inside is
 * removed as a link, never followed). Async-signal-safe (openat,
 * getdents64, unlinkat, close); a few passes, in case removing entries
 * while reading makes one skip some. */
static void
remove_dir_at(int dirfd, const char *name, int depth)
{
  char buf[4096] __attribute__((aligned(8)));
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return;
  for (int pass = 0; pass < 4; pass++) {
    gboolean removed = FALSE;
    ssize_t n;
    if (lseek(fd, 0, SEEK_SET) != 0)
      break;
    while ((n = getdents64(fd, buf, sizeof buf)) > 0) {
      for (ssize_t off = 0; off < n;) {
        const struct dirent64 *d = (const struct dirent64 *)(buf + off);
        off += d->d_reclen;
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
          continue;
        /* A directory (by its type, or by the unlink it refuses where the
         * file system does not give types), else a file or a link. */
        if (d->d_type == DT_DIR ||
            (d->d_type == DT_UNKNOWN && unlinkat(fd, d->d_name, 0) != 0 && errno == EISDIR)) {
          if (depth < TRACKED_DIR_DEPTH)
            remove_dir_at(fd, d->d_name, depth + 1);
          removed = TRUE;
        } else if (d->d_type == DT_UNKNOWN || unlinkat(fd, d->d_name, 0) == 0) {
          removed = TRUE;
        }
      }
    }
    if (!removed)
      break;
  }
  close(fd);
  unlinkat(dirfd, name, AT_REMOVEDIR);
}

void
sqlenvfs_tmp_remove_tracked(void)
{
  char p[sizeof tracked[0].path];

  for (int i = 0; i < TRACKED_MAX; i++) {
    size_t n;
    if (!__atomic_load_n(&tracked[i].used, __ATOMIC_ACQUIRE))
      continue;
    n = strlen(tracked[i].path);
    memcpy(p, tracked[i].path, n + 1);
    if (tracked[i].is_dir) {
      remove_dir_at(AT_FDCWD, p, 0);
      continue;
    }
    unlink(p); /* never follows a symlink */
    for (size_t k = 0; k < SQLENVFS_N_DB_SIDECARS; k++) {
      memcpy(p + n, SQLENVFS_DB_SIDECARS[k], strlen(SQLENVFS_DB_SIDECARS[k]) + 1);
      unlink(p);
    }
  }
}

int
sqlenvfs_tmp_leftovers(const char *dir, const char *prefix, gboolean dirs, gboolean remove,
                       GPtrArray *found, GError **error)
{
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d;
  struct dirent *ent;
  int n = 0;

  if (dfd < 0) {
    int errsv = errno;
    if (errsv == ENOENT)
      return 0;
    if (sqlenvfs_refuse_symlink(dir, "clean up temporaries", error))
      sqlenvfs_error_errno(error, errsv, "open directory", dir);
    return -1;
  }
  d = fdopendir(dfd);
  if (d == NULL) {
    close(dfd);
    sqlenvfs_error_errno(error, errno, "read directory", dir);
    return -1;
  }
  while ((ent = readdir(d)) != NULL) {
    g_autofree char *path = NULL;
    g_autoptr(GError) local = NULL;
    struct stat st;
    pid_t pid;

    if (!g_str_has_prefix(ent->d_name, prefix) || (pid = tmp_pid(ent->d_name)) == 0 ||
        !pid_is_dead(pid))
      continue;
    path = g_build_filename(dir, ent->d_name, NULL);
    if (fstatat(dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (!S_ISREG(st.st_mode) && !(dirs && S_ISDIR(st.st_mode))) {
      g_warning("%s looks like a leftover temporary but is not a %s: left alone (remove it "
                "yourself if it is not yours)",
                path, dirs ? "regular file or directory" : "regular file");
      continue;
    }
    if (remove) {
      if (!remove_at(dirfd(d), ent->d_name, path, &local)) {
        g_warning("remove the leftover %s: %s", path, local->message);
        continue;
      }
      g_message("removed %s, left by an interrupted run (pid %d)", path, (int)pid);
    }
    if (found)
      g_ptr_array_add(found, g_steal_pointer(&path));
    n++;
  }
  closedir(d);
  return n;
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

guint64
sqlenvfs_tree_bytes(const char *path)
{
  char *const paths[] = { (char *)path, NULL };
  FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
  FTSENT *e;
  guint64 n = 0;
  if (fts == NULL)
    return 0;
  while ((e = fts_read(fts)) != NULL)
    if (e->fts_info == FTS_F && S_ISREG(e->fts_statp->st_mode))
      n += (guint64)e->fts_statp->st_size;
  fts_close(fts);
  return n;
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

/* A transparent huge page on x86-64 and arm64 (4 KiB base pages). */
#define LARGE_PAGE ((gsize)2 << 20)

/* The smallest block sqlenvfs_alloc_large() puts on huge pages (util.h). */
#define LARGE_ALLOC_MIN (LARGE_PAGE / 16)

/* @len rounded up to whole huge pages. */
static gsize
whole_large_pages(gsize len)
{
  return (len + LARGE_PAGE - 1) & ~(LARGE_PAGE - 1);
}

static gboolean large_pages = TRUE;

void
sqlenvfs_set_large_pages(gboolean on)
{
  large_pages = on;
}

gpointer
sqlenvfs_alloc_kept(gsize len)
{
  gsize n = whole_large_pages(len);
  guint8 *p = mmap(NULL, n + LARGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  gsize head;

  if (p == MAP_FAILED)
    g_error("%s: failed to map %" G_GSIZE_FORMAT " bytes", G_STRLOC, n + LARGE_PAGE);
  /* Keep the 2 MiB-aligned part only (head < LARGE_PAGE: a tail is left). */
  head = (LARGE_PAGE - ((guintptr)p & (LARGE_PAGE - 1))) & (LARGE_PAGE - 1);
  if (head > 0)
    munmap(p, head);
  munmap(p + head + n, LARGE_PAGE - head);
  (void)madvise(p + head, n, MADV_HUGEPAGE);
  return p + head;
}

gpointer
sqlenvfs_alloc_large(gsize len)
{
  gsize n;
  void *p;

  if (len < LARGE_ALLOC_MIN || !large_pages)
    return g_malloc(len);
  n = whole_large_pages(len);
  p = aligned_alloc(LARGE_PAGE, n);
  if (p == NULL)
    g_error("%s: failed to allocate %" G_GSIZE_FORMAT " bytes", G_STRLOC, n);
  /* Advice: without it (or where THP is off) the pages are 4 KiB. */
  (void)madvise(p, n, MADV_HUGEPAGE);
  return p;
}

gpointer
sqlenvfs_grow_large(gpointer p, gsize used, gsize want, gsize *cap)
{
  gsize n = MAX(want, *cap * 2);
  gpointer q;

  g_return_val_if_fail(used <= *cap, p);
  if (n < LARGE_ALLOC_MIN) {
    *cap = n;
    return g_realloc(p, n);
  }
  n = whole_large_pages(n);
  q = sqlenvfs_alloc_large(n);
  if (used > 0)
    memcpy(q, p, used);
  g_free(p);
  *cap = n;
  return q;
}

guint32
sqlenvfs_crc32(guint32 crc, const void *data, gsize len)
{
  return crc32_gzip_refl(crc, data, len);
}

/* zlib's crc32_combine() works out the operator for @len (a power of x
 * modulo the polynomial, by squarings) on every call; the lengths combined
 * repeat (records and blocks of a few sizes), so each thread keeps the
 * operators of the last few and applies them alone (one multiplication). */
guint32
sqlenvfs_crc32_combine(guint32 crc1, guint32 crc2, guint64 len)
{
  enum { N_OPS = 8 };
  static _Thread_local struct {
    guint64 len;
    uLong op;
  } ops[N_OPS];
  static _Thread_local guint next;
  guint i;

  if (len == 0)
    return crc1 ^ crc2;
  for (i = 0; i < N_OPS; i++)
    if (ops[i].len == len)
      break;
  if (i == N_OPS) {
    i = next++ % N_OPS;
    ops[i].len = len;
    ops[i].op = crc32_combine_gen((z_off_t)len);
  }
  return (guint32)crc32_combine_op(crc1, crc2, ops[i].op);
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
  /* GLib puts a no-break space (U+00A0) between number and unit; output
   * that scripts read (status, ctl results, --json) must be plain ASCII. */
  g_autofree char *s = g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
  GString *out = g_string_sized_new(strlen(s));
  for (const char *p = s; *p; p++) {
    if ((guchar)p[0] == 0xc2 && (guchar)p[1] == 0xa0) {
      g_string_append_c(out, ' ');
      p++;
    } else {
      g_string_append_c(out, *p);
    }
  }
  return g_string_free(out, FALSE);
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

char *
sqlenvfs_shell_word(const char *arg)
{
  if (*arg == '\0')
    return g_strdup("''");
  for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
    if (*p < 0x80 && !g_ascii_isalnum(*p) && strchr("_-./:@%+=,", *p) == NULL)
      return g_shell_quote(arg);
  return g_strdup(arg);
}

void
sqlenvfs_notify_service(const char *state)
{
  const char *path = g_getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  gsize n;
  int fd;

  /* A path, or an abstract name written with '@'; anything else is not
   * systemd's (nothing to tell). */
  if (path == NULL || (path[0] != '/' && path[0] != '@') ||
      (n = strlen(path)) >= sizeof sa.sun_path)
    return;
  memcpy(sa.sun_path, path, n);
  if (path[0] == '@')
    sa.sun_path[0] = '\0';
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
    g_debug("tell the service manager \"%s\": %s", state, g_strerror(errno));
  close(fd);
}
