/*
 * doctor.c — the check-up of a root (doctor.h).
 *
 * SQLite's locks, as they appear in /proc/locks (fcntl byte-range locks; see
 * SQLite src/os.h and src/wal.c):
 *
 *   database file   1073741824 (0x40000000)  PENDING byte
 *                   1073741825               RESERVED byte: a write transaction
 *                                            in rollback-journal mode
 *                   1073741826..+509         SHARED range: READ = a reader (in WAL
 *                                            mode: the connection is open), WRITE =
 *                                            EXCLUSIVE, committing
 *   -shm file       120  WAL write lock: a write transaction in WAL mode
 *                   121  checkpointer lock
 *                   122  recovery lock
 *                   123..127  read marks 0..4: a read transaction
 *                   128  "DMS": the connection uses the shared memory
 *
 * Invariants:
 *   (1) Nothing here writes a database, takes a lock, or opens and closes a
 *       descriptor of a database or -shm file of its own: databases are read
 *       through read-only SQLite connections with checkpoint-on-close off,
 *       locks are read from /proc/locks, holders from /proc/<pid>/fd. Only
 *       the -wal file (which carries no locks) is read directly.
 *   (2) Every finding has a severity, a subject, what was found and what to do.
 *   (3) A problem that stops one check becomes a finding of that check; the
 *       other checks still run.
 */
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/drill.h"
#include "sqlenvfs/archive.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/json.h"
#include "sqlenvfs/shipper.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/walfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define SHM_WRITE_LOCK 120
#define SHM_CKPT_LOCK 121
#define SHM_RECOVER_LOCK 122
#define SHM_READ_LOCK0 123
#define SHM_DMS_LOCK 128
#define DB_PENDING_BYTE G_GUINT64_CONSTANT(0x40000000)
#define DB_RESERVED_BYTE (DB_PENDING_BYTE + 1)
#define DB_SHARED_FIRST (DB_PENDING_BYTE + 2)

/* How long a write lock must be seen held to be reported (two samples). */
#define LOCK_RECHECK_US (500 * 1000)

/* ------------------------------------------------------------------------ */
/* Report                                                                   */

const char *
sqlenvfs_severity_name(SqlenvfsSeverity severity)
{
  switch (severity) {
  case SQLENVFS_SEVERITY_OK:
    return "ok";
  case SQLENVFS_SEVERITY_WARNING:
    return "warning";
  case SQLENVFS_SEVERITY_FAILURE:
    return "failure";
  }
  return "?";
}

static void
finding_free(gpointer p)
{
  SqlenvfsFinding *f = p;
  g_free(f->check);
  g_free(f->subject);
  g_free(f->path);
  g_free(f->found);
  g_free(f->action);
  g_free(f);
}

void
sqlenvfs_doctor_report_free(SqlenvfsDoctorReport *report)
{
  if (report == NULL)
    return;
  g_ptr_array_unref(report->findings);
  g_free(report);
}

static SqlenvfsDoctorReport *
report_new(void)
{
  SqlenvfsDoctorReport *r = g_new0(SqlenvfsDoctorReport, 1);
  r->findings = g_ptr_array_new_with_free_func(finding_free);
  r->checked_at = sqlenvfs_clock_now();
  return r;
}

void
sqlenvfs_doctor_report_add(SqlenvfsDoctorReport *report, SqlenvfsSeverity severity,
                           const char *check, const char *subject, const char *path,
                           const char *action, const char *found_fmt, ...)
{
  SqlenvfsFinding *f = g_new0(SqlenvfsFinding, 1);
  va_list ap;

  g_return_if_fail(action != NULL && check != NULL && subject != NULL);
  f->severity = severity;
  f->check = g_strdup(check);
  f->subject = g_strdup(subject);
  f->path = g_strdup(path);
  f->action = g_strdup(action);
  va_start(ap, found_fmt);
  f->found = g_strdup_vprintf(found_fmt, ap);
  va_end(ap);
  g_ptr_array_add(report->findings, f);
  if (severity > report->worst)
    report->worst = severity;
  switch (severity) {
  case SQLENVFS_SEVERITY_OK:
    report->n_ok++;
    break;
  case SQLENVFS_SEVERITY_WARNING:
    report->n_warnings++;
    break;
  case SQLENVFS_SEVERITY_FAILURE:
    report->n_failures++;
    break;
  }
  if (severity != SQLENVFS_SEVERITY_OK)
    g_info("doctor: %s %s %s: %s", sqlenvfs_severity_name(severity), subject, check, f->found);
}

int
sqlenvfs_doctor_exit_status(const SqlenvfsDoctorReport *report)
{
  return (int)report->worst;
}

/* ------------------------------------------------------------------------ */
/* /proc: locks and processes                                               */

GArray *
sqlenvfs_doctor_parse_locks(const char *text)
{
  GArray *locks = g_array_new(FALSE, TRUE, sizeof(SqlenvfsProcLock));
  g_auto(GStrv) lines = g_strsplit(text ? text : "", "\n", -1);

  for (char **l = lines; *l; l++) {
    /* "1: POSIX  ADVISORY  WRITE 9709 fe:00:10953236 120 120"
     * "1: -> POSIX  ADVISORY  WRITE 9710 fe:00:10953236 120 120" */
    g_auto(GStrv) tok = g_strsplit_set(*l, " \t", -1);
    const char *w[9];
    int n = 0;
    SqlenvfsProcLock lk = { 0 };
    char *end = NULL;
    guint64 maj, min, ino;

    for (char **t = tok; *t && n < 9; t++)
      if (**t)
        w[n++] = *t;
    if (n < 7)
      continue;
    {
      int i = 1;
      if (strcmp(w[i], "->") == 0) {
        lk.is_waiting = TRUE;
        i++;
      }
      if (n - i < 7)
        continue;
      if (strcmp(w[i], "POSIX") == 0 || strcmp(w[i], "OFDLCK") == 0)
        lk.is_posix = TRUE;
      else if (strcmp(w[i], "FLOCK") == 0)
        lk.is_posix = FALSE;
      else
        continue; /* LEASE, DELEG, ... */
      lk.is_write = strcmp(w[i + 2], "WRITE") == 0;
      lk.pid = (int)g_ascii_strtoll(w[i + 3], NULL, 10);
      /* device "maj:min:ino", major and minor in hex */
      maj = g_ascii_strtoull(w[i + 4], &end, 16);
      if (*end != ':')
        continue;
      min = g_ascii_strtoull(end + 1, &end, 16);
      if (*end != ':')
        continue;
      ino = g_ascii_strtoull(end + 1, &end, 10);
      lk.dev_major = maj;
      lk.dev_minor = min;
      lk.ino = ino;
      lk.start = g_ascii_strtoull(w[i + 5], NULL, 10);
      lk.end = strcmp(w[i + 6], "EOF") == 0 ? G_MAXUINT64 : g_ascii_strtoull(w[i + 6], NULL, 10);
      g_array_append_val(locks, lk);
    }
  }
  return locks;
}

static GArray *
read_locks(GError **error)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) local = NULL;

  if (!g_file_get_contents("/proc/locks", &text, NULL, &local)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "read /proc/locks: %s (mount /proc to let the doctor see locks)", local->message);
    return NULL;
  }
  return sqlenvfs_doctor_parse_locks(text);
}

static gboolean
lock_matches(const SqlenvfsProcLock *lk, dev_t dev, ino_t ino)
{
  return lk->ino == (guint64)ino && lk->dev_major == (guint64)major(dev) &&
         lk->dev_minor == (guint64)minor(dev);
}

/* Called for each regular file open in another process; return FALSE to
 * stop the walk. */
typedef gboolean (*OpenFileFunc)(int pid, const struct stat *st, gpointer user);

/* Walk /proc/<pid>/fd of every process but this one, calling @fn for each
 * regular file it has open (fstatat follows the magic link to the open file
 * itself). Returns how many processes could not be inspected. */
static guint
for_each_open_file(OpenFileFunc fn, gpointer user)
{
  DIR *proc = opendir("/proc");
  struct dirent *ent;
  guint n_denied = 0;
  int self = (int)getpid();
  gboolean go_on = TRUE;

  if (proc == NULL)
    return 0;
  while (go_on && (ent = readdir(proc)) != NULL) {
    char *end;
    long pid = strtol(ent->d_name, &end, 10);
    g_autofree char *fddir = NULL;
    DIR *fds;
    struct dirent *fe;

    if (*end != '\0' || pid <= 0 || pid == self)
      continue;
    fddir = g_strdup_printf("/proc/%ld/fd", pid);
    fds = opendir(fddir);
    if (fds == NULL) {
      if (errno == EACCES || errno == EPERM)
        n_denied++;
      continue;
    }
    while (go_on && (fe = readdir(fds)) != NULL) {
      struct stat st;
      if (fe->d_name[0] != '.' && fstatat(dirfd(fds), fe->d_name, &st, 0) == 0 &&
          S_ISREG(st.st_mode))
        go_on = fn((int)pid, &st, user);
    }
    closedir(fds);
  }
  closedir(proc);
  return n_denied;
}

typedef struct {
  guint n;
  const struct stat *files; /* st_mode 0: a file that does not exist */
  int *pids;                /* the first opener seen of each file, 0 none yet */
  guint n_left;             /* files still without an opener */
  int except;               /* a process not to name (0: none) */
} Openers;

static gboolean
match_openers(int pid, const struct stat *st, gpointer user)
{
  Openers *o = user;
  if (pid == o->except)
    return TRUE;
  for (guint i = 0; i < o->n; i++)
    if (o->pids[i] == 0 && o->files[i].st_mode != 0 && st->st_dev == o->files[i].st_dev &&
        st->st_ino == o->files[i].st_ino) {
      o->pids[i] = pid;
      o->n_left--;
    }
  return o->n_left > 0;
}

/* For each of the @n files @files (st_dev, st_ino; st_mode 0: none), the
 * first process other than this one and @except found to have it open, in
 * @pids (0: none). One walk of /proc, which stops once each has one. */
static void
find_openers(guint n, const struct stat *files, int except, int *pids)
{
  Openers o = { n, files, pids, 0, except };
  for (guint i = 0; i < n; i++) {
    pids[i] = 0;
    if (files[i].st_mode != 0)
      o.n_left++;
  }
  if (o.n_left > 0)
    for_each_open_file(match_openers, &o);
}

/* A process other than this one and @except that has the file (@dev, @ino)
 * open; 0 if none. */
static int
find_opener(dev_t dev, ino_t ino, int except)
{
  struct stat st = { .st_dev = dev, .st_ino = ino, .st_mode = S_IFREG };
  int pid;
  find_openers(1, &st, except, &pid);
  return pid;
}

void
sqlenvfs_doctor_file_openers(const char *const *paths, guint n_paths, int except, int *pids)
{
  g_autofree struct stat *files = g_new0(struct stat, n_paths);
  for (guint i = 0; i < n_paths; i++)
    if (stat(paths[i], &files[i]) != 0)
      files[i].st_mode = 0;
  find_openers(n_paths, files, except, pids);
}

int
sqlenvfs_doctor_file_opener_except(const char *path, int except)
{
  int pid;
  sqlenvfs_doctor_file_openers(&path, 1, except, &pid);
  return pid;
}

int
sqlenvfs_doctor_file_opener(const char *path)
{
  return sqlenvfs_doctor_file_opener_except(path, 0);
}

int
sqlenvfs_doctor_lock_holder(const char *lock_path, GError **error)
{
  struct stat st;
  g_autoptr(GArray) locks = NULL;

  if (stat(lock_path, &st) != 0) {
    int e = errno;
    if (e == ENOENT)
      return 0; /* no archiver ever ran here */
    /* Not "none": the lock file is there or not, this user cannot see. */
    g_set_error(error, SQLENVFS_ERROR,
                e == EACCES || e == EPERM ? SQLENVFS_ERROR_PERMISSION : SQLENVFS_ERROR_IO,
                "cannot look at the lock file %s: %s", lock_path, g_strerror(e));
    return -1;
  }
  locks = read_locks(error);
  if (locks == NULL)
    return -1;
  for (guint i = 0; i < locks->len; i++) {
    const SqlenvfsProcLock *lk = &g_array_index(locks, SqlenvfsProcLock, i);
    if (!lk->is_posix && !lk->is_waiting && lock_matches(lk, st.st_dev, st.st_ino)) {
      g_autofree char *proc = g_strdup_printf("/proc/%d", lk->pid);
      int holder;
      if (lk->pid > 0 && g_file_test(proc, G_FILE_TEST_IS_DIR))
        return lk->pid;
      /* The process that took the lock is gone, but a child that inherited
       * the descriptor still holds it: name a process that has it open. */
      holder = find_opener(st.st_dev, st.st_ino, 0);
      return holder > 0 ? holder : lk->pid;
    }
  }
  return 0;
}

char *
sqlenvfs_doctor_describe_pid(int pid)
{
  g_autofree char *file = g_strdup_printf("/proc/%d/comm", pid);
  g_autofree char *comm = NULL;

  if (pid <= 0)
    return g_strdup("an open file description (OFD lock)");
  if (g_file_get_contents(file, &comm, NULL, NULL)) {
    g_strstrip(comm);
    return g_strdup_printf("pid %d (%s)", pid, comm);
  }
  return g_strdup_printf("pid %d", pid);
}

/* The files of one database the process scan looks for, in the order of
 * sqlenvfs_db_files (their suffixes). */
typedef enum { FILE_DB, FILE_WAL, FILE_SHM, FILE_JOURNAL, N_FILE_KINDS } FileKind;
G_STATIC_ASSERT(N_FILE_KINDS == SQLENVFS_N_DB_FILES);

typedef struct {
  char *subject; /* "prod/app" */
  char *path;    /* the .db file */
  gboolean exists[N_FILE_KINDS];
  dev_t dev[N_FILE_KINDS];
  ino_t ino[N_FILE_KINDS];
  GArray *holders; /* int pid of processes holding any of the files open */
} DbFiles;

static void
db_files_free(gpointer p)
{
  DbFiles *d = p;
  g_free(d->subject);
  g_free(d->path);
  g_array_unref(d->holders);
  g_free(d);
}

static DbFiles *
db_files_new(const char *subject, const char *path)
{
  DbFiles *d = g_new0(DbFiles, 1);
  d->subject = g_strdup(subject);
  d->path = g_strdup(path);
  d->holders = g_array_new(FALSE, FALSE, sizeof(int));
  for (int k = 0; k < N_FILE_KINDS; k++) {
    g_autofree char *p = g_strconcat(path, sqlenvfs_db_files[k], NULL);
    struct stat st;
    if (stat(p, &st) == 0) {
      d->exists[k] = TRUE;
      d->dev[k] = st.st_dev;
      d->ino[k] = st.st_ino;
    }
  }
  return d;
}

static void
add_holder(DbFiles *d, int pid)
{
  for (guint i = 0; i < d->holders->len; i++)
    if (g_array_index(d->holders, int, i) == pid)
      return;
  g_array_append_val(d->holders, pid);
}

static gboolean
record_holder(int pid, const struct stat *st, gpointer user)
{
  GPtrArray *dbs = user;
  for (guint i = 0; i < dbs->len; i++) {
    DbFiles *d = g_ptr_array_index(dbs, i);
    for (int k = 0; k < N_FILE_KINDS; k++)
      if (d->exists[k] && d->dev[k] == st->st_dev && d->ino[k] == st->st_ino)
        add_holder(d, pid);
  }
  return TRUE;
}

/* Record which processes but this one hold a file of @dbs open. Returns how
 * many processes could not be inspected. */
static guint
scan_open_files(GPtrArray *dbs)
{
  return for_each_open_file(record_holder, dbs);
}

/* What a lock on a database file means, in words; NULL for locks that say
 * nothing worth reporting (the DMS lock, the WAL-mode shared lock). */
/* In WAL mode a commit locks the -shm, not the database file: the file's
 * EXCLUSIVE lock is taken only for an instant (changing the journal mode,
 * the last connection closing) or for good by a connection in exclusive
 * locking mode. */
static const char exclusive_in_wal[] =
  "holds the EXCLUSIVE lock on the database file (changing the journal mode, closing, or in "
  "exclusive locking mode)";

static const char *
lock_meaning(FileKind kind, const SqlenvfsProcLock *lk, gboolean wal_mode, gboolean *is_writer)
{
  *is_writer = FALSE;
  if (kind == FILE_SHM) {
    if (lk->start <= SHM_WRITE_LOCK && lk->end >= SHM_WRITE_LOCK && lk->is_write) {
      *is_writer = TRUE;
      return "holds the WAL write lock (a write transaction is open)";
    }
    if (lk->start <= SHM_CKPT_LOCK && lk->end >= SHM_CKPT_LOCK && lk->is_write)
      return "is running a checkpoint";
    if (lk->start <= SHM_RECOVER_LOCK && lk->end >= SHM_RECOVER_LOCK && lk->is_write)
      return "is recovering the WAL index";
    if (lk->start >= SHM_READ_LOCK0 && lk->start < SHM_DMS_LOCK)
      return lk->is_write ? "is updating a WAL read mark" : "has a read transaction open";
    return NULL;
  }
  if (kind == FILE_DB) {
    if (lk->start <= DB_RESERVED_BYTE && lk->end >= DB_RESERVED_BYTE && lk->is_write) {
      *is_writer = TRUE;
      return "holds the RESERVED lock (a write transaction is open)";
    }
    if (lk->start <= DB_PENDING_BYTE && lk->end >= DB_PENDING_BYTE && lk->is_write) {
      *is_writer = TRUE;
      return "holds the PENDING lock (waiting to commit)";
    }
    if (lk->end >= DB_SHARED_FIRST && lk->start >= DB_SHARED_FIRST - 2) {
      if (lk->is_write) {
        *is_writer = TRUE;
        return wal_mode ? exclusive_in_wal
                        : "holds the EXCLUSIVE lock (committing or changing the journal mode)";
      }
      return wal_mode ? NULL : "has a read transaction open (SHARED lock)";
    }
    return NULL;
  }
  return NULL;
}

typedef struct {
  int pid;
  FileKind kind;
  const char *meaning;
  gboolean is_writer;
  gboolean is_waiting;
} SeenLock;

/* Locks held (or waited for) on the files of @d, from @locks. */
static GArray *
locks_of(const DbFiles *d, GArray *locks, gboolean wal_mode)
{
  GArray *seen = g_array_new(FALSE, TRUE, sizeof(SeenLock));
  int self = (int)getpid();

  for (guint i = 0; i < locks->len; i++) {
    const SqlenvfsProcLock *lk = &g_array_index(locks, SqlenvfsProcLock, i);
    if (!lk->is_posix || lk->pid == self)
      continue;
    for (int k = 0; k < N_FILE_KINDS; k++) {
      SeenLock s = { 0 };
      if (!d->exists[k] || !lock_matches(lk, d->dev[k], d->ino[k]))
        continue;
      s.meaning = lock_meaning((FileKind)k, lk, wal_mode, &s.is_writer);
      if (s.meaning == NULL)
        continue;
      s.pid = lk->pid;
      s.kind = (FileKind)k;
      s.is_waiting = lk->is_waiting;
      g_array_append_val(seen, s);
    }
  }
  return seen;
}

/* ------------------------------------------------------------------------ */
/* Per-database checks                                                      */

typedef struct {
  SqlenvfsDoctorReport *report;
  SqlenvfsRoot *root;
  const SqlenvfsSettings *settings;
  SqlenvfsDoctorFlags flags;
  int archiver_pid; /* 0: none */
  gboolean archiver_unknown; /* whether one runs cannot be told (archiver_pid 0) */
  guint64 prod_bytes; /* sum of production database sizes */
  guint64 largest_db;
  GPtrArray *backups; /* SqlenvfsStoredCopy *, oldest first; NULL: unreadable */
  char *backups_error;
  /* the root's directories with a link, or what is no directory, on the
   * way to them (check_layout): nothing is written there until it is fixed */
  gboolean is_blocked[SQLENVFS_DIR_STATE + 1];
} Ctx;

/* Collect up to @max rows of a check pragma ("ok" alone means none). */
static gboolean
run_check(sqlite3 *db, gboolean full, GPtrArray *problems, const char *path, GError **error)
{
  g_autofree char *sql = g_strdup_printf("PRAGMA %s(20)", full ? "integrity_check" : "quick_check");
  g_autoptr(sqlite3_stmt) st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

  if (rc != SQLITE_OK)
    return sqlenvfs_error_sqlite(error, db, rc, "check", path);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *msg = (const char *)sqlite3_column_text(st, 0);
    g_auto(GStrv) lines = g_strsplit(msg ? msg : "", "\n", -1);
    if (msg == NULL || strcmp(msg, "ok") == 0)
      continue;
    /* One row may hold several lines, headed by "*** in database main ***". */
    for (char **l = lines; *l; l++)
      if (**l && !g_str_has_prefix(*l, "*** in database") && problems->len < 20)
        g_ptr_array_add(problems, g_strdup(*l));
  }
  if (rc != SQLITE_DONE)
    return sqlenvfs_error_sqlite(error, db, rc, "check", path);
  return TRUE;
}

static gboolean
pragma_int(sqlite3 *db, const char *pragma, gint64 *out, const char *path, GError **error)
{
  g_autofree char *sql = g_strdup_printf("PRAGMA %s", pragma);
  return sqlenvfs_db_query_int(db, sql, out, path, error);
}

static const char *
auto_vacuum_name(gint64 v)
{
  return v == 1 ? "full" : v == 2 ? "incremental" : "none";
}

static const char *
synchronous_name(gint64 v)
{
  switch (v) {
  case 0:
    return "OFF";
  case 1:
    return "NORMAL";
  case 2:
    return "FULL";
  case 3:
    return "EXTRA";
  }
  return "?";
}

/* Frames of the current WAL generation: frame headers whose salts match the
 * WAL header's, read with a private descriptor (the -wal file carries no
 * locks). Returns FALSE when the file has no valid header. */
static gboolean
wal_count_frames(const char *wal_path, guint32 *page_size, guint64 *n_frames)
{
  int fd = open(wal_path, O_RDONLY | O_CLOEXEC);
  guint8 hdr[32], fh[24];
  guint32 magic, psz, salt1, salt2;
  guint64 n = 0;
  struct stat st;

  if (fd < 0)
    return FALSE;
  if (fstat(fd, &st) != 0 || pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
    close(fd);
    return FALSE;
  }
  magic = sqlenvfs_be32(hdr);
  psz = sqlenvfs_be32(hdr + 8);
  salt1 = sqlenvfs_be32(hdr + 16);
  salt2 = sqlenvfs_be32(hdr + 20);
  if ((magic & 0xfffffffe) != 0x377f0682 || !sqlenvfs_page_size_ok(psz)) {
    close(fd);
    return FALSE;
  }
  for (;;) {
    goffset off = 32 + (goffset)n * (24 + psz);
    if (off + 24 + psz > st.st_size || pread(fd, fh, sizeof fh, off) != (ssize_t)sizeof fh)
      break;
    if (sqlenvfs_be32(fh + 8) != salt1 || sqlenvfs_be32(fh + 12) != salt2)
      break;
    n++;
  }
  close(fd);
  *page_size = psz;
  *n_frames = n;
  return TRUE;
}

/* The first @len bytes of the file @path into @buf: FALSE when it cannot be
 * opened or is shorter. */
static gboolean
read_head(const char *path, guint8 *buf, gsize len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  gboolean ok;
  if (fd < 0)
    return FALSE;
  ok = pread(fd, buf, len, 0) == (ssize_t)len;
  close(fd);
  return ok;
}

#define WAL_DAMAGE_ACTION                                                                      \
  "do not checkpoint it (that would copy damaged pages into the database file): stop the "     \
  "application, keep a copy of the database, -wal and -shm files, see what is lost with "      \
  "`sqlenvfs recover`, and restore the newest state from the WAL archive (`sqlenvfs restore "  \
  "--time latest --output NEW`; docs/OPERATIONS.md, \"Putting a restored database into "       \
  "production\")"

/* Frames of the WAL not yet copied into the database file (checkpointed),
 * from the wal-index in -shm: mxFrame - nBackfill, when the wal-index is
 * initialized and describes the same WAL generation (its salts are the WAL
 * header's). Layout (SQLite's wal.c, native byte order): WalIndexHdr at 0
 * (iVersion u32 @0 = 3007000, isInit u8 @12, mxFrame u32 @16, aSalt[2] @32),
 * its copy at 48, WalCkptInfo at 96 (nBackfill u32 @96). Read with a private
 * descriptor, taking no lock: a torn read only makes the answer unknown or
 * briefly stale. FALSE when it cannot be told. */
static gboolean
wal_pending_frames(const char *wal_path, const char *shm_path, guint64 *pending)
{
  guint8 shm[100], whdr[24];
  guint32 version, mx, mx2, backfill;

  if (!read_head(wal_path, whdr, sizeof whdr) || !read_head(shm_path, shm, sizeof shm))
    return FALSE;
  memcpy(&version, shm, 4);
  memcpy(&mx, shm + 16, 4);
  memcpy(&mx2, shm + 48 + 16, 4);
  memcpy(&backfill, shm + 96, 4);
  if (version != 3007000 || shm[12] != 1 || mx != mx2 || memcmp(shm + 32, whdr + 16, 8) != 0 ||
      memcmp(shm, shm + 48, 48) != 0)
    return FALSE;
  *pending = mx > backfill ? mx - backfill : 0;
  return TRUE;
}

/* Committed transactions in the WAL at @wal (whose stat @st was taken
 * before) that SQLite will not read when it next recovers the WAL
 * (sqlenvfs_wal_tail_damage): reported, TRUE. Looked at twice, the file
 * unchanged from before the first look to after the second, so that a
 * frame being written while it was read is not taken for damage. */
static gboolean
wal_damage_report(Ctx *c, const DbFiles *d, const char *wal, const struct stat *st)
{
  SqlenvfsWalTailDamage t1, t2;
  struct stat after;

  if (!sqlenvfs_wal_tail_damage(wal, &t1) || !sqlenvfs_wal_tail_damage(wal, &t2) ||
      memcmp(&t1, &t2, sizeof t1) != 0 || stat(wal, &after) != 0 ||
      after.st_size != st->st_size || after.st_ino != st->st_ino ||
      after.st_mtim.tv_sec != st->st_mtim.tv_sec || after.st_mtim.tv_nsec != st->st_mtim.tv_nsec)
    return FALSE;
  if (t1.no_header)
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_FAILURE, "wal", d->subject, wal, WAL_DAMAGE_ACTION,
      "the WAL file (%" G_GINT64_FORMAT " bytes) has frames but its header is damaged: when "
      "SQLite next recovers it (the last connection closed, or a crash), every transaction in "
      "it is lost", t1.size);
  else
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_FAILURE, "wal", d->subject, wal, WAL_DAMAGE_ACTION,
      "%u frame%s of the WAL from frame %u on fail their checksums, and frame %u among them "
      "ends a committed transaction: when SQLite next recovers the WAL (the last connection "
      "closed, or a crash), the transactions from frame %u on are lost",
      t1.n_after, t1.n_after == 1 ? "" : "s", t1.first_bad, t1.commit_at, t1.first_bad);
  return TRUE;
}

static void
check_wal(Ctx *c, const DbFiles *d, gboolean wal_mode, GArray *seen)
{
  g_autofree char *wal = g_strconcat(d->path, "-wal", NULL);
  g_autofree char *fsize = NULL, *csize = NULL;
  guint32 psz = 0;
  guint64 frames = 0;
  gint64 limit = c->settings->checkpoint_pages;
  struct stat st;

  if (!wal_mode)
    return;
  if (stat(wal, &st) != 0 || st.st_size == 0) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "wal", d->subject, wal,
                               "nothing to do",
                               "the WAL is empty or absent: every commit is in the database file");
    return;
  }
  fsize = sqlenvfs_format_size(st.st_size);
  if (wal_damage_report(c, d, wal, &st))
    return;
  if (!wal_count_frames(wal, &psz, &frames)) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "wal", d->subject, wal,
                               "nothing to do",
                               "the WAL file (%s) has no valid header: it holds no commits", fsize);
    return;
  }
  csize = sqlenvfs_format_size(frames * (guint64)(psz + 24));
  /* What counts is what waits for a checkpoint: frames already copied into
   * the database file are reused by the next writer, whatever the file's
   * size. Unknown (no readable wal-index): every frame of the file. */
  {
    g_autofree char *shm = g_strconcat(d->path, "-shm", NULL);
    guint64 pending;
    if (wal_pending_frames(wal, shm, &pending) && pending <= (guint64)(4 * limit)) {
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_OK, "wal", d->subject, wal, "nothing to do",
        "the WAL holds %" G_GUINT64_FORMAT " pages (%s; the file is %s), %" G_GUINT64_FORMAT
        " of them not yet checkpointed; checkpoint-pages is %" G_GINT64_FORMAT,
        frames, csize, fsize, pending, limit);
      return;
    }
  }
  if ((gint64)frames > 4 * limit) {
    g_autoptr(GString) readers = g_string_new(NULL);
    for (guint i = 0; i < seen->len; i++) {
      const SeenLock *s = &g_array_index(seen, SeenLock, i);
      if (s->kind == FILE_SHM && !s->is_writer && strstr(s->meaning, "read transaction")) {
        g_autofree char *who = sqlenvfs_doctor_describe_pid(s->pid);
        g_string_append_printf(readers, "%s%s", readers->len ? ", " : "", who);
      }
    }
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_WARNING, "wal", d->subject, wal,
      c->archiver_pid > 0
        ? "find the long read transaction (see the processes finding) and end it; the "
          "archiver checkpoints as soon as no reader needs the old pages. If the archive "
          "finding says the archiver is behind, it holds the WAL until its archive can be "
          "written (or until less than [cache] min-free-bytes is free here, or it passes "
          "[archive] max-wal-bytes): free space there"
        : "start the archiver (`sqlenvfs archive`, or mount the root): it archives and "
          "checkpoints the WAL; a long read transaction also stops checkpoints, end it",
      "the WAL holds %" G_GUINT64_FORMAT " pages (%s; the file is %s), more than 4 times "
      "[archive] checkpoint-pages=%" G_GINT64_FORMAT ": checkpoints are not keeping up, reads "
      "get slower and the file keeps growing%s%s",
      frames, csize, fsize, limit, readers->len ? "; read transactions open now: " : "",
      readers->str);
  } else {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "wal", d->subject, wal,
                               "nothing to do",
                               "the WAL holds %" G_GUINT64_FORMAT " pages (%s; the file is %s); "
                               "checkpoint-pages is %" G_GINT64_FORMAT,
                               frames, csize, fsize, limit);
  }
}

static void
report_processes(Ctx *c, const DbFiles *d, gboolean is_prod, GArray *seen, GArray *seen_again)
{
  g_autoptr(GString) exclusive = g_string_new(NULL);
  g_autoptr(GString) open_by = g_string_new(NULL);
  g_autoptr(GString) lockers = g_string_new(NULL);
  g_autoptr(GString) long_writers = g_string_new(NULL);

  for (guint i = 0; i < d->holders->len; i++) {
    int pid = g_array_index(d->holders, int, i);
    g_autofree char *who = sqlenvfs_doctor_describe_pid(pid);
    g_string_append_printf(open_by, "%s%s%s", open_by->len ? ", " : "", who,
                           pid == c->archiver_pid ? " [archiver]" : "");
  }
  for (guint i = 0; i < seen->len; i++) {
    const SeenLock *s = &g_array_index(seen, SeenLock, i);
    g_autofree char *who = sqlenvfs_doctor_describe_pid(s->pid);
    g_string_append_printf(lockers, "%s%s %s%s", lockers->len ? "; " : "", who,
                           s->is_waiting ? "waits for a lock: it " : "", s->meaning);
    if (s->is_writer && !s->is_waiting && seen_again != NULL) {
      for (guint j = 0; j < seen_again->len; j++) {
        const SeenLock *t = &g_array_index(seen_again, SeenLock, j);
        if (t->pid == s->pid && t->is_writer && !t->is_waiting && t->kind == s->kind) {
          if (s->meaning == exclusive_in_wal && t->meaning == exclusive_in_wal)
            g_string_append_printf(exclusive, "%s%s", exclusive->len ? ", " : "", who);
          else
            g_string_append_printf(long_writers, "%s%s", long_writers->len ? ", " : "", who);
          break;
        }
      }
    }
  }
  if (exclusive->len) {
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_WARNING, "locks", d->subject, d->path,
      "remove PRAGMA locking_mode=EXCLUSIVE from that application and restart it (in WAL "
      "mode processes share the database without it)",
      "%s held the database file locked EXCLUSIVE for at least %.1f s while it is in WAL "
      "mode: a connection in exclusive locking mode (PRAGMA locking_mode=EXCLUSIVE), unless "
      "it was closing with a long checkpoint (run the doctor again). No other process can "
      "read the database while it runs: %s (locks now: %s)",
      exclusive->str, LOCK_RECHECK_US / 1e6,
      is_prod ? "its commits are not archived (the archive records a gap when it ends), and "
                "backups, snapshots and the mount's prod/ wait or fail"
              : "refresh-dev, the mount's dev/ and other applications wait or fail",
      lockers->str);
  } else if (long_writers->len) {
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_WARNING, "locks", d->subject, d->path,
      "end that transaction (commit or roll back in the application), or stop the process; "
      "give applications a busy timeout (e.g. Python sqlite3.connect(timeout=30)) so "
      "short transactions wait instead of failing",
      "%s held the write lock for at least %.1f s: other writers wait and then fail with "
      "\"database is locked\" (locks now: %s)",
      long_writers->str, LOCK_RECHECK_US / 1e6, lockers->str);
  } else if (lockers->len) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "locks", d->subject, d->path,
                               "nothing to do; run the doctor again if writers report "
                               "\"database is locked\"",
                               "locks held now: %s", lockers->str);
  }
  sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "processes", d->subject, d->path,
                             "nothing to do (stop these processes before replacing the file "
                             "by hand)",
                             "%s%s", open_by->len ? "open by " : "not open in any other process",
                             open_by->str);
}

/* "3 h 12 min", "2 days 4 h", "45 s". */
static char *
format_age(gint64 us)
{
  gint64 s = us / G_USEC_PER_SEC;
  if (s < 0)
    s = 0;
  if (s < 120)
    return g_strdup_printf("%" G_GINT64_FORMAT " s", s);
  if (s < 2 * 3600)
    return g_strdup_printf("%" G_GINT64_FORMAT " min", s / 60);
  if (s < 2 * 86400)
    return g_strdup_printf("%" G_GINT64_FORMAT " h %" G_GINT64_FORMAT " min", s / 3600,
                           (s % 3600) / 60);
  return g_strdup_printf("%" G_GINT64_FORMAT " days %" G_GINT64_FORMAT " h", s / 86400,
                         (s % 86400) / 3600);
}

/* The environment marker: production must say production, development must
 * say development. */
static void
check_marker(Ctx *c, const DbFiles *d, sqlite3 *db, gboolean is_prod)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *env = NULL;
  const char *want = is_prod ? SQLENVFS_ENV_PRODUCTION : SQLENVFS_ENV_DEVELOPMENT;

  if (!sqlenvfs_env_read(db, &env, d->path, &error)) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "environment", d->subject,
                               d->path, "see the integrity finding; the marker table may be damaged",
                               "the environment marker cannot be read: %s", error->message);
  } else if (env == NULL) {
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_WARNING, "environment", d->subject, d->path,
      is_prod ? "if this is production, mark it: recreate it with `sqlenvfs init` or copy the "
                "data into a database made by init; refresh-dev refuses an unmarked source "
                "unless --force"
              : "run `sqlenvfs refresh-dev`: it rebuilds development from production and marks it",
      "the database has no environment marker (_environment table): tools cannot tell it is %s",
      want);
  } else if (strcmp(env, want) != 0) {
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_FAILURE, "environment", d->subject, d->path,
      is_prod ? "find out how the files were swapped before anything writes to it; put the real "
                "production database back (`sqlenvfs restore --time latest --output ...`)"
              : "run `sqlenvfs refresh-dev`: it replaces development with a copy marked "
                "development (with --force if production's own marker is wrong too)",
      "the database in the %s place is marked '%s', not '%s'", is_prod ? "production" : "development",
      env, want);
  } else {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "environment", d->subject, d->path,
                               "nothing to do", "marked %s", env);
  }
}

/* Backups and snapshots whose MANIFEST cannot be read (@damaged:
 * SqlenvfsDamagedCopy *): no restore uses them, and prune never removes
 * them. */
static void
check_damaged_copies(Ctx *c, GPtrArray *damaged)
{
  for (guint i = 0; i < damaged->len; i++) {
    const SqlenvfsDamagedCopy *d = damaged->pdata[i];
    const char *kind = sqlenvfs_copy_kind_name(d->kind);
    g_autofree char *action = g_strdup_printf(
      "do not restore from it; take a new %s to replace it (`sqlenvfs %s`), then inspect and "
      "remove its directory yourself: prune never removes it", kind, kind);
    if (d->unreadable) {
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "backup", "root",
                                 d->manifest,
                                 "run sqlenvfs as the user that owns the root's files, or give "
                                 "them back to that user (chown -R); do not remove it for this",
                                 "%s %s cannot be read by this user, so none of this user's "
                                 "restores uses it: %s", kind, d->name, d->reason);
      continue;
    }
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "backup", "root",
                               d->manifest, action,
                               "%s %s is damaged, and no restore uses it: %s", kind, d->name,
                               d->reason);
  }
}

/* The newest backup of @name that passes verification, and its age. */
static void
check_backups(Ctx *c, const DbFiles *d, const char *name)
{
  const int max_h = c->settings->backup_max_age_hours;
  gboolean verify = !(c->flags & SQLENVFS_DOCTOR_NO_INTEGRITY);
  const char *dir = sqlenvfs_root_path(c->root, SQLENVFS_DIR_DAILY);
  gint64 now = sqlenvfs_clock_now();
  g_autofree char *root_word = sqlenvfs_shell_word(sqlenvfs_root_dir(c->root));
  g_autofree char *backup_cmd = g_strdup_printf(
    "%stake one now (`sqlenvfs backup`) and schedule it daily (cron: `0 2 * * * sqlenvfs backup "
    "--root %s`)",
    c->is_blocked[SQLENVFS_DIR_DAILY] || c->is_blocked[SQLENVFS_DIR_STATE]
      ? "a backup refuses until the layout finding is fixed: fix it first, then " : "",
    root_word);
  guint n_bad = 0;

  if (c->backups == NULL) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "backup", d->subject, dir,
                               "check the directory's permissions and disk",
                               "the backups cannot be listed: %s", c->backups_error);
    return;
  }
  for (guint i = c->backups->len; i-- > 0;) {
    const SqlenvfsStoredCopy *copy = g_ptr_array_index(c->backups, i);
    const SqlenvfsStoredDb *sdb = sqlenvfs_stored_copy_find(copy, name);
    g_autoptr(GError) error = NULL;
    g_autofree char *age = NULL, *when = NULL;

    g_autofree char *misdated = NULL;

    if (sdb == NULL)
      continue;
    misdated = sqlenvfs_stored_copy_misdated(copy, now);
    if (misdated != NULL) {
      /* Its age is not what its name says: not the newest, whatever it holds. */
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "backup", d->subject,
                                 copy->dir, misdated,
                                 "backup %s is not counted as the newest, and prune leaves it "
                                 "alone", copy->name);
      continue;
    }
    if (verify && !sqlenvfs_store_verify_db(sdb, &error)) {
      g_autofree char *dir_word = sqlenvfs_shell_word(copy->dir);
      g_autofree char *action = g_strdup_printf(
        "do not restore from it; take a new backup (`sqlenvfs backup`), check the disk, then "
        "remove it (`rm -r %s`): `sqlenvfs verify` fails for as long as it is there", dir_word);
      n_bad++;
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "backup", d->subject,
                                 sdb->path, action, "backup %s is damaged: %s", copy->name,
                                 error->message);
      continue;
    }
    age = format_age(now - copy->time);
    when = sqlenvfs_time_format_local(copy->time);
    if (now - copy->time > (gint64)max_h * 3600 * G_USEC_PER_SEC) {
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_WARNING, "backup", d->subject, sdb->path, backup_cmd,
        "the newest %sbackup is %s old (%s, %s), older than [doctor] backup-max-age-hours=%d: "
        "the daily backup has stopped running%s",
        verify ? "valid " : "", age, copy->name, when, max_h,
        n_bad ? "; newer ones are damaged (above)" : "");
    } else {
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "backup", d->subject, sdb->path,
                                 "nothing to do",
                                 "the newest %sbackup is %s old (%s)%s", verify ? "valid " : "",
                                 age, copy->name,
                                 verify ? ", crc32 and integrity_check passed" : "");
    }
    return;
  }
  sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "backup", d->subject, dir,
                             backup_cmd, "there is no %sbackup of %s%s", n_bad ? "valid " : "",
                             name, n_bad ? " (every one is damaged)" : "");
}

/* The last restore drill of @name (drill.h): a failed or never-run drill is a
 * warning. */
static void
check_drill(Ctx *c, const DbFiles *d, const char *name)
{
  g_autofree char *memo = g_build_filename(sqlenvfs_root_path(c->root, SQLENVFS_DIR_STATE),
                                           "drilled", NULL);
  g_autofree char *root_word = sqlenvfs_shell_word(sqlenvfs_root_dir(c->root));
  g_autofree char *db_word = sqlenvfs_shell_word(name);
  g_autofree char *cmd = g_strdup_printf("sqlenvfs verify --drill --root %s --db %s",
                                         root_word, db_word);
  g_autofree char *again = NULL, *schedule = NULL, *what = NULL;
  SqlenvfsDrillLast last;
  gboolean has_run = sqlenvfs_drill_last(c->root, name, &last);

  what = sqlenvfs_drill_last_describe(&last, has_run);
  schedule = g_strdup_printf("run `%s`, and schedule it daily (scripts/sqlenvfs-drill@.timer)",
                             cmd);
  if (!has_run && c->is_blocked[SQLENVFS_DIR_STATE] && access(memo, R_OK) != 0)
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "drill", d->subject, memo,
                               "make the state directory a real directory (the layout "
                               "finding), then run the doctor again",
                               "cannot tell whether the last restore drill passed: %s cannot "
                               "be read (%s)", memo, g_strerror(errno));
  else if (!has_run && access(memo, R_OK) != 0 && errno != ENOENT)
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "drill", d->subject, memo,
                               "run the doctor as the user who owns the root",
                               "cannot tell whether the last restore drill passed: %s is not "
                               "readable to this user", memo);
  else if (!has_run)
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "drill", d->subject, memo,
                               schedule, "no restore drill has run: nothing has proven yet "
                               "that production can be rebuilt from its copies and archive");
  else if (!last.ok) {
    again = g_strdup_printf("repair or replace what it names, then drill again (`%s`)", cmd);
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "drill", d->subject, memo,
                               again, "%s", what);
  } else {
    g_autofree char *age = format_age(MAX(sqlenvfs_clock_now() - last.at_us, 0));
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "drill", d->subject, memo,
                               "nothing to do", "%s (%s ago)", what, age);
  }
  sqlenvfs_drill_last_clear(&last);
}

/* Lag past which a replica that ships is said to fall behind. */
#define REPLICA_LAG_WARN_US (15 * 60 * G_USEC_PER_SEC)

/* With a replica configured, whether it keeps up with @name's archive and
 * copies: what the shipper's status says (list's replica lines). */
static void
check_replica(Ctx *c, const DbFiles *d, const char *name)
{
  g_autoptr(GPtrArray) all = NULL;
  const SqlenvfsShipperDbStatus *st;
  g_autofree char *conf = NULL, *backlog = NULL, *lag = NULL;
  gboolean is_up;

  g_autoptr(GError) settings = NULL;

  if (!sqlenvfs_shipper_is_configured(c->root))
    return;
  conf = g_build_filename(sqlenvfs_root_dir(c->root), "sqlenvfs.conf", NULL);
  if (!sqlenvfs_shipper_check_settings(c->root, &settings)) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "replica", d->subject, conf,
                               "docs/REPLICA.md lists the settings", "%s", settings->message);
    return;
  }
  all = sqlenvfs_shipper_status(c->root);
  st = sqlenvfs_shipper_status_find(all, name);
  if (st == NULL) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "replica", d->subject, conf,
                               "start the archiver (`sqlenvfs mount` or `sqlenvfs archive`): it "
                               "ships", "a replica is configured, but nothing says that %s "
                               "was ever shipped to it", name);
    return;
  }
  backlog = sqlenvfs_format_size(st->backlog_bytes);
  lag = format_age(st->lag_us);
  /* "starting": no round has shipped yet since the archiver started. */
  is_up = strcmp(st->state, "shipping") == 0 || strcmp(st->state, "starting") == 0;
  if (is_up && st->lag_us < REPLICA_LAG_WARN_US)
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "replica", d->subject, conf,
                               "nothing to do", "%s: %s not yet shipped (lag %s)", st->state,
                               backlog, lag);
  else if (is_up || strcmp(st->state, "stalled") == 0)
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "replica", d->subject, conf,
                               "check that the object storage is reachable and accepts "
                               "uploads; the archiver retries by itself",
                               "the replica falls behind: %s not yet shipped, the oldest "
                               "for %s%s%s", backlog, lag, st->error ? ": " : "",
                               st->error ? st->error : "");
  else if (strcmp(st->state, "off") == 0)
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "replica", d->subject, conf,
                               "start the archiver, or do what the error says",
                               "nothing is shipped to the replica now: %s (%s not yet shipped)",
                               st->error ? st->error : "no reason recorded", backlog);
  else
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "replica", d->subject, conf,
                               "do what the error says, then restart the archiver",
                               "nothing is shipped to the replica (%s): %s (%s not yet shipped)",
                               st->state, st->error ? st->error : "no reason recorded", backlog);
}

/* How far the archive of @name reaches, and how far behind it is. */
static void
check_archive(Ctx *c, const DbFiles *d, const char *name)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(c->root, SQLENVFS_DIR_WAL), name,
                                          NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsArchive) a = sqlenvfs_archive_open(dir, &error);
  gint64 now = sqlenvfs_clock_now();
  gint64 alive, lag;
  g_autofree char *lag_s = NULL, *when = NULL;

  if (a == NULL) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "archive", d->subject, dir,
                               "run `sqlenvfs verify` for details; check the disk",
                               "the WAL archive cannot be read: %s", error->message);
    return;
  }
  alive = sqlenvfs_archive_alive(a);
  if (alive <= 0) {
    sqlenvfs_doctor_report_add(
      c->report, c->archiver_pid > 0 ? SQLENVFS_SEVERITY_OK : SQLENVFS_SEVERITY_WARNING,
      "archive", d->subject, dir,
      c->archiver_pid > 0 ? "nothing to do: the archiver picks the database up"
                          : "start the archiver (`sqlenvfs archive`, or mount the root)",
      "nothing is archived yet: no point in time can be restored");
    return;
  }
  lag = MAX(now - alive, 0);
  lag_s = format_age(lag);
  when = sqlenvfs_time_format_local(alive);
  if (c->archiver_pid > 0 && lag > (gint64)c->settings->archive_lag_warn_seconds * G_USEC_PER_SEC) {
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_WARNING, "archive", d->subject, dir,
      "look at the archiver's log and the mount's status file for the database's state (not "
      "in WAL mode, out of space, a long write lock); restart it if it is stuck. While the "
      "archive cannot be written, production's WAL is held and grows (until less than [cache] "
      "min-free-bytes is free on its filesystem, or past [archive] max-wal-bytes)",
      "the archiver runs but is %s behind (more than [doctor] archive-lag-warn-seconds=%d): "
      "commits are archived only up to %s",
      lag_s, c->settings->archive_lag_warn_seconds, when);
  } else {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "archive", d->subject, dir,
                               c->archiver_pid > 0 ? "nothing to do"
                               : c->archiver_unknown
                                 ? "see the archiver finding"
                                 : "start the archiver to extend the window",
                               "every commit is archived up to %s (%s ago)%s", when, lag_s,
                               c->archiver_pid > 0 ? ""
                               : c->archiver_unknown
                                 ? "; whether the archiver runs cannot be told"
                                 : "; the archiver is not running");
  }
}

/* What lies before a window that is not its history's start, in words. */
static const char *
before_words(SqlenvfsWindowBefore before)
{
  switch (before) {
  case SQLENVFS_BEFORE_GAP:
    return "a gap in capture: transactions may have been lost";
  case SQLENVFS_BEFORE_DAMAGE:
    return "archive records damaged or missing";
  case SQLENVFS_BEFORE_OUTAGE:
    return "an outage of capture: nothing lost, but the times in it cannot be told apart";
  case SQLENVFS_BEFORE_START:
    break;
  }
  return "no backup or snapshot holds a state there";
}

/* The gaps in the recoverable history of @name within retention: stretches
 * between two windows of @tl (a capture gap, damaged records, an outage,
 * no base) that end at or after now minus [retention] pitr-keep-days (all
 * of them when it is 0). One finding, with how many, the newest one's
 * times and reason, and what to do; nothing when there is none. A warning
 * when one of them is damage (a segment that cannot be read, now); a gap
 * in capture or an outage is a fact of the history, said as ok: while the
 * archiver is down the archiver checks warn, and the gaps it records are
 * conservative (a WAL checkpointed away while it was stopped is one,
 * written to or not). The part past the last window is
 * check_recoverable's. */
static void
check_gaps(Ctx *c, const DbFiles *d, const char *dir, SqlenvfsTimeline *tl)
{
  g_autoptr(GPtrArray) windows = sqlenvfs_timeline_windows(tl);
  gint64 since = c->settings->pitr_keep_days > 0
                   ? sqlenvfs_clock_now() - (gint64)c->settings->pitr_keep_days * 86400 *
                                              G_USEC_PER_SEC
                   : G_MININT64;
  const SqlenvfsRestoreWindow *newest = NULL, *before_newest = NULL;
  g_autofree char *from_s = NULL, *to_s = NULL, *keep = NULL, *note = NULL;
  const char *action;
  guint n = 0;
  gboolean damage = FALSE;

  for (guint i = 1; windows != NULL && i < windows->len; i++) {
    const SqlenvfsRestoreWindow *w = windows->pdata[i];
    if (w->from_us < since)
      continue;
    n++;
    damage = damage || w->before == SQLENVFS_BEFORE_DAMAGE;
    newest = w;
    before_newest = windows->pdata[i - 1];
  }
  if (n == 0)
    return;
  note = newest->note != NULL ? g_strdup_printf(" (%s)", newest->note) : g_strdup("");
  from_s = sqlenvfs_time_format_local(before_newest->to_us);
  to_s = sqlenvfs_time_format_local(newest->from_us);
  keep = c->settings->pitr_keep_days > 0
           ? g_strdup_printf("in the last %d day%s ([retention] pitr-keep-days)",
                             c->settings->pitr_keep_days,
                             c->settings->pitr_keep_days == 1 ? "" : "s")
           : g_strdup("in the archive");
  switch (newest->before) {
  case SQLENVFS_BEFORE_DAMAGE:
    action = "run `sqlenvfs verify` to name the damaged segment, and take a backup "
             "(`sqlenvfs backup`) so that what follows stays recoverable; times inside a gap "
             "cannot be restored, restore to one before or after it";
    break;
  case SQLENVFS_BEFORE_GAP:
  case SQLENVFS_BEFORE_OUTAGE:
    action = "keep the archiver running whenever the application writes (mount the root, or "
             "run `sqlenvfs archive` as a service), and take a backup (`sqlenvfs backup`) "
             "after it was down; times inside a gap cannot be restored, restore to one before "
             "or after it";
    break;
  default:
    action = "take a backup (`sqlenvfs backup`) or snapshot so that later times stay "
             "recoverable; times inside a gap cannot be restored, restore to one before or "
             "after it";
    break;
  }
  sqlenvfs_doctor_report_add(c->report,
                             damage ? SQLENVFS_SEVERITY_WARNING : SQLENVFS_SEVERITY_OK, "gaps",
                             d->subject, dir, action,
                             "the recoverable history has %u gap%s %s; the newest, from %s to "
                             "%s, cannot be restored: %s%s",
                             n, n == 1 ? "" : "s", keep, from_s, to_s,
                             before_words(newest->before), note);
}

/* How far the newest archived time may lie past this machine's clock
 * before it is said to (a capture a moment ago, on another clock's tick). */
#define CLOCK_AHEAD_WARN_US (2 * G_USEC_PER_SEC)

/* Whether the archive's times run ahead of the clock: the archiver's clock
 * was ahead (a virtual machine resumed, a boot before time sync) and was
 * stepped back since. Commits archived meanwhile take the newest time
 * again (times never go back), so the states between them cannot be
 * told apart by time, and the mount's pitr/ names no time past now. */
static void
check_clock(Ctx *c, const DbFiles *d, const char *dir, SqlenvfsTimeline *tl)
{
  g_autoptr(GPtrArray) w = sqlenvfs_timeline_windows(tl);
  gint64 now = sqlenvfs_clock_now(), newest;
  g_autofree char *newest_s = NULL, *ahead = NULL;
  if (w == NULL || w->len == 0)
    return;
  newest = ((const SqlenvfsRestoreWindow *)w->pdata[w->len - 1])->to_us;
  if (newest - now <= CLOCK_AHEAD_WARN_US)
    return;
  newest_s = sqlenvfs_time_format_local(newest);
  ahead = format_age(newest - now);
  sqlenvfs_doctor_report_add(
    c->report, SQLENVFS_SEVERITY_WARNING, "archive", d->subject, dir,
    "keep the clock slewed, not stepped (chrony or systemd-timesyncd); until the clock passes "
    "that time, `restore` takes such times but the mount's pitr/ names none past now, and the "
    "commits archived meanwhile share one time, so only the last of them can be restored",
    "the newest archived time, %s, is %s ahead of this machine's clock: the clock was stepped "
    "back after those commits were archived", newest_s, ahead);
}

/* Whether the newest archived state of @name can be restored: not when the
 * archive goes on past its last window (`restore --time latest` refuses
 * it, timeline.h). Nothing is said otherwise: check_archive says how far
 * the archive reaches, or why it cannot be read. */
static void
check_recoverable(Ctx *c, const DbFiles *d, const char *name)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(c->root, SQLENVFS_DIR_WAL), name,
                                          NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsTimeline) tl = sqlenvfs_timeline_open(c->root, name, &error);
  g_autofree char *why = NULL, *from_s = NULL, *to_s = NULL;
  gint64 from, to;

  if (tl == NULL)
    return;
  {
    /* Copies pinned in another history (a copy of the root): no base. */
    g_autoptr(GPtrArray) foreign = sqlenvfs_timeline_foreign_bases(tl);
    for (guint i = 0; i < foreign->len; i++) {
      const SqlenvfsTimelineBase *f = foreign->pdata[i];
      const char *kind = sqlenvfs_copy_kind_name(f->kind);
      g_autofree char *action = g_strdup_printf(
        "do not restore from it; take a %s of this root (`sqlenvfs %s`)", kind, kind);
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "backup", d->subject,
                                 f->manifest, action, "%s %s: %s", kind, f->name, f->why);
    }
  }
  check_gaps(c, d, dir, tl);
  check_clock(c, d, dir, tl);
  if (!sqlenvfs_timeline_unrecoverable_newest(tl, &from, &to, &why))
    return;
  from_s = sqlenvfs_time_format_local(from);
  to_s = sqlenvfs_time_format_local(to);
  if (c->archiver_pid > 0 &&
      sqlenvfs_clock_now() - from <= (gint64)c->settings->archive_lag_warn_seconds * G_USEC_PER_SEC) {
    /* A chain the running archiver has just started: it takes the
     * chain's snapshot itself, which may not be done yet. */
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_OK, "archive", d->subject, dir,
      "nothing to do; if this stays for more than [doctor] archive-lag-warn-seconds, take a "
      "snapshot (`sqlenvfs snapshot`)",
      "the archiver started a new chain at %s (%s); until its snapshot is taken, the newest "
      "archived state cannot be restored", from_s, why);
    return;
  }
  sqlenvfs_doctor_report_add(
    c->report, SQLENVFS_SEVERITY_WARNING, "archive", d->subject, dir,
    "take a snapshot (`sqlenvfs snapshot`) so that the newest state is recoverable again; if "
    "the archiver has just started a new chain, its own snapshot may still be in progress",
    "the newest archived state cannot be restored: what was archived from %s to %s is not "
    "recoverable (%s), and `restore --time latest` is refused", from_s, to_s, why);
}

/* Development holds production's rows (refresh-dev, init): a file of it
 * that lets read whom production does not (a chmod of production since)
 * lets them read those rows, until the next backup or snapshot narrows it
 * (store.c, by sqlenvfs_dev_mode, the same rule). */
static void
check_dev_mode(Ctx *c, const DbFiles *d)
{
  g_autofree char *prod = sqlenvfs_root_prod_db(c->root, d->subject + strlen("dev/"));
  struct stat pst;

  if (stat(prod, &pst) != 0)
    return;
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *path = g_strconcat(d->path, sqlenvfs_db_files[i], NULL);
    g_autofree char *word = NULL, *action = NULL, *base = g_path_get_basename(path);
    struct stat st;
    int mode, extra;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    mode = sqlenvfs_dev_mode(&st, &pst);
    extra = (int)(st.st_mode & 07777) & ~mode;
    if (extra == 0)
      continue;
    word = sqlenvfs_shell_word(path);
    action = g_strdup_printf("take a backup or snapshot (it narrows development to what "
                             "production allows), or run `chmod %s %s`",
                             (extra & S_IROTH) && (extra & S_IRGRP) ? "go-r"
                             : (extra & S_IROTH)                   ? "o-r"
                                                                   : "g-r",
                             word);
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "modes", d->subject, path,
                               action,
                               "development's %s (mode %04o) lets %s read it, which production "
                               "(mode %04o%s) does not: they may read production's rows from it",
                               base, (unsigned)(st.st_mode & 0777),
                               (extra & S_IROTH) && (extra & S_IRGRP) ? "its group and others"
                               : (extra & S_IROTH)                    ? "others"
                                                                      : "its group",
                               (unsigned)(pst.st_mode & 0777),
                               pst.st_gid != st.st_gid ? ", another group" : "");
  }
}

/* What does not need the database open: its WAL, who has it open and
 * locked, and for production its archive and copies. */
static void
check_around(Ctx *c, DbFiles *d, gboolean is_prod, gboolean wal_mode, GArray *locks1,
             GArray *locks2)
{
  g_autoptr(GArray) seen = locks_of(d, locks1, wal_mode);
  g_autoptr(GArray) seen_again = locks2 != NULL ? locks_of(d, locks2, wal_mode) : NULL;

  check_wal(c, d, wal_mode, seen);
  report_processes(c, d, is_prod, seen, seen_again);
  if (!is_prod)
    check_dev_mode(c, d);
  if (is_prod) {
    const char *name = d->subject + strlen("prod/");
    check_archive(c, d, name);
    check_recoverable(c, d, name);
    check_backups(c, d, name);
    check_drill(c, d, name);
    check_replica(c, d, name);
  }
}

static void
check_db(Ctx *c, DbFiles *d, gboolean is_prod, GArray *locks1, GArray *locks2)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *mode = NULL;
  g_autofree char *size_s = NULL;
  gint64 page_size = 0, page_count = 0, freelist = 0, auto_vacuum = 0, sync = 0;
  gboolean wal_mode, is_immutable = FALSE;
  gint64 immutable_wal = 0;
  struct stat st;
  g_autofree char *link =
    sqlenvfs_root_db_link(c->root, is_prod ? SQLENVFS_DIR_PROD : SQLENVFS_DIR_DEV, d->path);

  if (link != NULL) {
    /* SQLite would follow it, and make the -wal and -shm of a WAL database
     * where it points: outside the root, by a check-up that only reads. */
    g_autofree char *target = g_file_read_link(link, NULL);
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_FAILURE, "open", d->subject, d->path,
      is_prod ? "replace the link by the real file or directory while no application has the "
                "database open"
              : "replace the link by the real file or directory (`sqlenvfs refresh-dev` "
                "refuses it too: remove the link, then refresh development)",
      "not opened: %s is a symbolic link (to %s); SQLite would create the database's -wal and "
      "-shm where it points, outside the root, and sqlenvfs never writes through a link",
      link, target ? target : "?");
    /* What is said without opening it (the -wal is read directly). */
    check_around(c, d, is_prod, g_strcmp0(sqlenvfs_db_file_journal(d->path), "wal") == 0,
                 locks1, locks2);
    return;
  }
  if (stat(d->path, &st) != 0) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "open", d->subject, d->path,
                               "create it (`sqlenvfs init --db NAME`) or refresh it "
                               "(`sqlenvfs refresh-dev`)",
                               "the database file is missing");
    return;
  }
  size_s = sqlenvfs_format_size(st.st_size);
  {
    /* Empty, with no commit in a WAL beside it (a new WAL database can
     * hold everything there): no data at all. Switching it to WAL mode or
     * taking a snapshot, as the checks below would say for an empty
     * database, would start a recoverable window from nothing. */
    g_autofree char *wal = g_strconcat(d->path, "-wal", NULL);
    struct stat wst;
    if (st.st_size == 0 && (stat(wal, &wst) != 0 || wst.st_size <= 32)) {
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_FAILURE, "open", d->subject, d->path,
        is_prod ? "stop the application, restore production (`sqlenvfs restore --time latest "
                  "--output FILE`, then put it in place as docs/OPERATIONS.md says); do not "
                  "switch it to WAL mode nor snapshot it, which would make the empty file the "
                  "newest recoverable state"
                : "refresh it from production (`sqlenvfs refresh-dev`)",
        "the database file is empty (0 bytes): it holds no data, not even a header");
      return;
    }
  }
  if (is_prod) {
    c->prod_bytes += st.st_size;
    if ((guint64)st.st_size > c->largest_db)
      c->largest_db = st.st_size;
  }

  /* A read-only connection needs to create the -shm of a WAL database when
   * there is none, which a read-only root (or a directory this user cannot
   * write) does not allow: then, and only then, open it immutable. Without a
   * -wal file (or with an empty one) that sees exactly the committed state;
   * a -wal with frames is said not to be read. */
  for (int attempt = 0; attempt < 2 && db == NULL; attempt++) {
    g_autofree char *dir = g_path_get_dirname(d->path);
    g_autofree char *wal = g_strconcat(d->path, "-wal", NULL);
    g_autofree char *uri = NULL;
    struct stat wst;
    if (attempt == 1) {
      if (error == NULL || error->code == SQLENVFS_ERROR_BUSY ||
          error->code == SQLENVFS_ERROR_INTEGRITY || access(dir, W_OK) == 0)
        break;
      uri = sqlenvfs_db_uri_immutable(d->path);
      immutable_wal = stat(wal, &wst) == 0 ? wst.st_size : 0;
      g_clear_error(&error);
      g_clear_pointer(&mode, g_free);
    }
    db = sqlenvfs_db_open(uri ? uri : d->path, SQLENVFS_OPEN_READONLY | SQLENVFS_OPEN_MUST_EXIST,
                          &error);
    if (db == NULL && uri != NULL) {
      /* MUST_EXIST tests the URI as a path: open without it. */
      g_clear_error(&error);
      db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, &error);
    }
    if (db != NULL) {
      sqlite3_busy_timeout(db, 2000);
      if (!sqlenvfs_db_query_text(db, "PRAGMA journal_mode", &mode, d->path, &error) ||
          !pragma_int(db, "page_size", &page_size, d->path, &error) ||
          !pragma_int(db, "page_count", &page_count, d->path, &error) ||
          !pragma_int(db, "freelist_count", &freelist, d->path, &error) ||
          !pragma_int(db, "auto_vacuum", &auto_vacuum, d->path, &error) ||
          !pragma_int(db, "synchronous", &sync, d->path, &error))
        g_clear_pointer(&db, sqlite3_close_v2);
      else if (uri != NULL)
        is_immutable = TRUE;
    }
  }
  if (is_immutable && g_strcmp0(sqlenvfs_db_file_journal(d->path), "wal") == 0) {
    /* An immutable connection reports "delete" whatever the file says: the
     * journal mode stored in the file is its header's. */
    g_free(mode);
    mode = g_strdup("wal");
  }
  if (is_immutable) {
    if (immutable_wal > 0)
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_WARNING, "open", d->subject, d->path,
        "run the doctor as a user that may write the database's directory, or where the root "
        "is not mounted read-only, to check the commits in the WAL too",
        "opened without its WAL: the directory is not writable (a read-only root?), so SQLite "
        "cannot set up the shared memory the WAL needs; the checks below see the database file "
        "alone, not the %" G_GINT64_FORMAT " bytes of its -wal",
        immutable_wal);
    else
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_OK, "open", d->subject, d->path, "nothing to do",
        "opened as immutable: the directory is not writable (a read-only root?) and there is "
        "no WAL to read, so the file alone is the whole database");
  }
  if (db == NULL) {
    /* BUSY: a lock; REFUSED: a hot journal a read-only connection leaves
     * as it is (error.c). Neither is damage. */
    gboolean busy = error->code == SQLENVFS_ERROR_BUSY;
    gboolean hot = error->code == SQLENVFS_ERROR_REFUSED;
    sqlenvfs_doctor_report_add(
      c->report, busy || hot ? SQLENVFS_SEVERITY_WARNING : SQLENVFS_SEVERITY_FAILURE, "open",
      d->subject, d->path,
      busy  ? "see the locks and processes findings below for who holds it, and run the "
              "doctor again"
      : hot ? "let its application open it (that rolls the transaction back), then run the "
              "doctor again; do not delete the -journal, which is what makes the file whole"
            : "restore it from a backup (`sqlenvfs restore`) or salvage what reads "
              "(`sqlenvfs recover`)",
      "cannot read the database (%s): %s", size_s, error->message);
    if (busy) /* a lock is no damage: say who holds it, and the rest that can be said */
      check_around(c, d, is_prod, g_strcmp0(sqlenvfs_db_file_journal(d->path), "wal") == 0,
                   locks1, locks2);
    return;
  }
  wal_mode = g_ascii_strcasecmp(mode, "wal") == 0;
  check_marker(c, d, db, is_prod);

  /* Integrity. */
  if (!(c->flags & SQLENVFS_DOCTOR_NO_INTEGRITY)) {
    gboolean full = (c->flags & SQLENVFS_DOCTOR_FULL) != 0;
    const char *what = full ? "integrity_check" : "quick_check";
    g_autofree char *recover_cmd = g_strdup_printf(
      "stop the applications writing it; then restore the newest good state (`sqlenvfs "
      "restore --time latest --output NEW.db`, %s) or salvage what reads (`sqlenvfs recover "
      "%s --output NEW.db`), and check the disk (dmesg, smartctl)",
      is_prod ? "from the archive" : "or `sqlenvfs refresh-dev`", d->path);
    g_clear_error(&error);
    if (is_prod && !wal_mode && !is_immutable) {
      /* In rollback-journal mode the check's read transaction is a shared
       * lock on production for its whole run, under which the application
       * cannot commit: a check-up must not make its commits fail. */
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_WARNING, "integrity", d->subject, d->path,
        "switch it to WAL (see the journal finding), or stop the applications and run "
        "`sqlite3 DB 'PRAGMA quick_check'`",
        "%s not run: in %s journal mode it would hold a lock that keeps the application's "
        "commits out for as long as it reads the %s", what, mode, size_s);
    } else if (!run_check(db, full, problems, d->path, &error)) {
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "integrity", d->subject,
                                 d->path, recover_cmd, "%s could not finish: %s", what,
                                 error->message);
    } else if (problems->len > 0) {
      guint n = problems->len;
      g_autofree char *all = NULL;
      g_ptr_array_add(problems, NULL);
      all = g_strjoinv("; ", (char **)problems->pdata);
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "integrity", d->subject,
                                 d->path, recover_cmd, "%s found %u problem%s%s: %s", what, n,
                                 n == 1 ? "" : "s", n >= 20 ? " (first 20 shown)" : "", all);
    } else {
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "integrity", d->subject,
                                 d->path,
                                 full ? "nothing to do"
                                      : "nothing to do; `sqlenvfs doctor --full` also checks "
                                        "indexes against their tables",
                                 "%s found no problems (%s, %" G_GINT64_FORMAT " pages)", what,
                                 size_s, page_count);
    }
  }

  /* Journal mode and synchronous. */
  if (wal_mode) {
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_OK, "journal", d->subject, d->path,
      "have every application connection run PRAGMA synchronous=NORMAL when it opens the "
      "database: in WAL mode that is safe against application crashes and much faster; keep "
      "FULL (or EXTRA) where the last commits must survive a power loss",
      "journal mode is WAL (stored in the file). synchronous is a per-connection setting the "
      "file does not keep: a connection that does not set it gets this SQLite's default, %s",
      synchronous_name(sync));
  } else if (is_prod) {
    g_autofree char *fix = g_strdup_printf(
      "stop the applications, run `sqlite3 %s 'PRAGMA journal_mode=WAL'` (it is stored in "
      "the file and stays), restart them, then take a snapshot (`sqlenvfs snapshot`)",
      d->path);
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_FAILURE, "journal", d->subject, d->path, fix,
      "production is in %s journal mode, not WAL: the archiver cannot capture its commits "
      "(no point-in-time recovery), and readers block the writer",
      mode);
  } else {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "journal", d->subject, d->path,
                               "nothing to do (WAL is only required for production; `sqlite3 "
                               "FILE 'PRAGMA journal_mode=WAL'` switches if readers and the "
                               "writer block each other)",
                               "journal mode is %s", mode);
  }

  /* Persistent settings stored in the file. */
  {
    g_autofree char *free_s = sqlenvfs_format_size((guint64)freelist * page_size);
    gboolean many_free = page_count > 0 && freelist * 4 > page_count &&
                         (guint64)freelist * page_size > 16u * 1024 * 1024;
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_OK, "settings", d->subject, d->path,
      many_free ? "run VACUUM in a quiet hour to give the free pages back (it needs free disk "
                  "space about the size of the database and blocks writers while it runs)"
                : "nothing to do",
      "page_size=%" G_GINT64_FORMAT ", auto_vacuum=%s, %" G_GINT64_FORMAT " pages of which %"
      G_GINT64_FORMAT " free (%s)",
      page_size, auto_vacuum_name(auto_vacuum), page_count, freelist, free_s);
  }

  /* Size against the threshold. */
  if (c->settings->size_warn_bytes > 0 && st.st_size > c->settings->size_warn_bytes) {
    g_autofree char *limit_s = sqlenvfs_format_size(c->settings->size_warn_bytes);
    g_autofree char *free_s = sqlenvfs_format_size((guint64)freelist * page_size);
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_WARNING, "size", d->subject, d->path,
      "archive or delete old rows, VACUUM to give free pages back, or plan a move to "
      "PostgreSQL; raise [doctor] size-warn-bytes in sqlenvfs.conf if this size is expected",
      "the database is %s, over [doctor] size-warn-bytes (%s); %s of it is free pages; "
      "backups, snapshots and restores take longer and need that much space each",
      size_s, limit_s, free_s);
  } else {
    g_autofree char *limit_s = sqlenvfs_format_size(c->settings->size_warn_bytes);
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "size", d->subject, d->path,
                               "nothing to do", "the database is %s (warning above %s)", size_s,
                               limit_s);
  }

  check_around(c, d, is_prod, wal_mode, locks1, locks2);
}

/* ------------------------------------------------------------------------ */
/* Root-wide checks                                                         */

/* The commands that write in each of the root's directories, and so
 * refuse when it is a link or has one above it (root.h,
 * sqlenvfs_root_refuse_links), or fail when it is no directory. */
enum {
  BY_INIT = 1 << 0,
  BY_REFRESH = 1 << 1,
  BY_BACKUP = 1 << 2,
  BY_SNAPSHOT = 1 << 3,
  BY_PRUNE = 1 << 4,
  BY_ARCHIVER = 1 << 5,
  BY_MOUNT = 1 << 6,
};
static const char *const writer_names[] = {
  "init", "refresh-dev", "backup", "snapshot", "prune", "the archiver", "the mount",
};
static const guint dir_writers[SQLENVFS_DIR_STATE + 1] = {
  [SQLENVFS_DIR_PROD] = BY_INIT,
  [SQLENVFS_DIR_DEV] = BY_INIT | BY_REFRESH,
  [SQLENVFS_DIR_DAILY] = BY_BACKUP | BY_PRUNE,
  [SQLENVFS_DIR_SNAPSHOTS] = BY_SNAPSHOT | BY_PRUNE | BY_ARCHIVER | BY_MOUNT,
  [SQLENVFS_DIR_WAL] = BY_PRUNE | BY_ARCHIVER | BY_MOUNT,
  [SQLENVFS_DIR_CACHE] = BY_REFRESH | BY_MOUNT,
  [SQLENVFS_DIR_STATE] = BY_INIT | BY_REFRESH | BY_BACKUP | BY_SNAPSHOT | BY_PRUNE |
                         BY_ARCHIVER | BY_MOUNT,
};

/* Each directory of the root's layout that is a symbolic link, or has one
 * above it, or is something else than a directory: one failure for each
 * such path, naming every command it stops. */
static void
check_layout(Ctx *c)
{
  g_autoptr(GPtrArray) blockers = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GArray) writers = g_array_new(FALSE, TRUE, sizeof(guint));
  g_autoptr(GArray) links = g_array_new(FALSE, TRUE, sizeof(gboolean));

  for (int i = 0; i <= SQLENVFS_DIR_STATE; i++) {
    gboolean is_link = FALSE;
    g_autofree char *blocker = sqlenvfs_root_path_blocker(c->root, (SqlenvfsDir)i, &is_link);
    guint k;
    if (blocker == NULL)
      continue;
    c->is_blocked[i] = TRUE;
    if (!g_ptr_array_find_with_equal_func(blockers, blocker, g_str_equal, &k)) {
      guint none = 0;
      k = blockers->len;
      g_ptr_array_add(blockers, g_steal_pointer(&blocker));
      g_array_append_val(writers, none);
      g_array_append_val(links, is_link);
    }
    g_array_index(writers, guint, k) |= dir_writers[i];
  }
  for (guint k = 0; k < blockers->len; k++) {
    const char *path = blockers->pdata[k];
    guint by = g_array_index(writers, guint, k);
    g_autoptr(GString) who = g_string_new(NULL);
    g_autofree char *word = sqlenvfs_shell_word(path);
    g_autofree char *action = NULL;
    guint n = 0, n_all = 0;

    for (gsize b = 0; b < G_N_ELEMENTS(writer_names); b++)
      n_all += (by >> b) & 1u;
    for (gsize b = 0; b < G_N_ELEMENTS(writer_names); b++)
      if (by & (1u << b))
        g_string_append_printf(who, "%s%s", n++ == 0 ? "" : n == n_all ? " and " : ", ",
                               writer_names[b]);
    if (g_array_index(links, gboolean, k)) {
      g_autofree char *target = g_file_read_link(path, NULL);
      g_autofree char *real = sqlenvfs_link_destination(path);
      g_autofree char *target_word = sqlenvfs_shell_word(real ? real : "TARGET");
      action = g_strdup_printf(
        "stop the archiver and the mount, then put the real directory there (`rm %s; mv %s "
        "%s`); to keep it on another disk, "
        "mount that disk (or bind-mount a directory of it) on %s instead of linking to it",
        word, target_word, word, word);
      /* Only init writes data/prod itself: the other commands read and
       * archive production through the link, as the application does. */
      sqlenvfs_doctor_report_add(
        c->report, by == BY_INIT ? SQLENVFS_SEVERITY_WARNING : SQLENVFS_SEVERITY_FAILURE,
        "layout", "root", path, action,
        "%s is a symbolic link (to %s); sqlenvfs never writes or deletes through a link, so "
        "%s %s to run until it is a real directory",
        path, target ? target : "?", who->str, n_all == 1 ? "refuses" : "refuse");
    } else {
      action = g_strdup_printf("move it aside (`mv %s %s.aside`; look at what it holds): the "
                               "next command that needs the directory creates it",
                               word, word);
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_FAILURE, "layout", "root", path,
                                 action,
                                 "%s is not a directory, where the root keeps one: %s fail "
                                 "until it is", path, who->str);
    }
  }
}

static void
check_archiver(Ctx *c, guint n_prod)
{
  g_autofree char *lock = sqlenvfs_root_lock_path(c->root, "archiver");
  g_autoptr(GError) error = NULL;
  int pid = sqlenvfs_doctor_lock_holder(lock, &error);

  if (pid < 0) {
    gboolean denied = error->code == SQLENVFS_ERROR_PERMISSION;
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_WARNING, "archiver", "root", lock,
      c->is_blocked[SQLENVFS_DIR_STATE]
        ? "make the state directory a real directory (the layout finding), then run the doctor "
          "again"
      : denied ? "run the doctor as the user that owns the root (or as root): this user may not "
                 "look into its state directory"
               : "run the doctor where /proc is mounted",
      "cannot tell whether the archiver runs: %s", error->message);
    c->archiver_unknown = TRUE;
    return;
  }
  c->archiver_pid = pid;
  if (pid > 0) {
    g_autofree char *who = sqlenvfs_doctor_describe_pid(pid);
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "archiver", "root", lock,
                               "nothing to do", "the archiver runs: %s holds its lock", who);
  } else if (n_prod > 0) {
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_WARNING, "archiver", "root", lock,
      "start it: mount the root (`sqlenvfs mount ROOT MNT`) or run `sqlenvfs archive` under a "
      "service manager",
      "no archiver is running: commits are not being archived, so point-in-time recovery "
      "cannot reach past the last archived commit, and a checkpoint by an application may "
      "open a gap in the archive");
  }
}

/* statvfs of @path or of its nearest existing ancestor. */
static gboolean
fs_stat(const char *path, struct statvfs *sv, dev_t *dev, char **where)
{
  g_autofree char *p = g_strdup(path);
  for (;;) {
    struct stat st;
    if (stat(p, &st) == 0 && statvfs(p, sv) == 0) {
      *dev = st.st_dev;
      *where = g_steal_pointer(&p);
      return TRUE;
    }
    if (strcmp(p, "/") == 0 || *p == '\0')
      return FALSE;
    {
      char *parent = g_path_get_dirname(p);
      g_free(p);
      p = parent;
    }
  }
}

static void
check_space(Ctx *c)
{
  const char *data_dir = sqlenvfs_root_path(c->root, SQLENVFS_DIR_PROD);
  const char *backup_dir = sqlenvfs_root_path(c->root, SQLENVFS_DIR_DAILY);
  struct statvfs dsv, bsv;
  dev_t ddev = 0, bdev = 0;
  g_autofree char *dwhere = NULL, *bwhere = NULL;
  gboolean have_d = fs_stat(data_dir, &dsv, &ddev, &dwhere);
  gboolean have_b = fs_stat(backup_dir, &bsv, &bdev, &bwhere);
  guint64 need = c->prod_bytes;
  g_autofree char *need_s = sqlenvfs_format_size(need);

  if (have_b) {
    guint64 avail = (guint64)bsv.f_bavail * bsv.f_frsize;
    guint64 total = (guint64)bsv.f_blocks * bsv.f_frsize;
    g_autofree char *avail_s = sqlenvfs_format_size(avail);
    g_autofree char *total_s = sqlenvfs_format_size(total);
    if (avail < need) {
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_WARNING, "space", "backups", bwhere,
        "free space there: remove old backups (`sqlenvfs prune`, see --dry-run first), move "
        "backups/ to a larger filesystem, or grow it",
        "the filesystem holding the backups has %s free of %s; the next backup needs about "
        "%s (the production databases) and would not fit",
        avail_s, total_s, need_s);
    } else {
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "space", "backups", bwhere,
                                 "nothing to do",
                                 "the filesystem holding the backups has %s free of %s; the "
                                 "next backup needs about %s",
                                 avail_s, total_s, need_s);
    }
  }
  if (have_d && !(have_b && bdev == ddev)) {
    guint64 avail = (guint64)dsv.f_bavail * dsv.f_frsize;
    guint64 total = (guint64)dsv.f_blocks * dsv.f_frsize;
    guint64 want = MAX(c->largest_db, (guint64)64 * 1024 * 1024);
    g_autofree char *avail_s = sqlenvfs_format_size(avail);
    g_autofree char *total_s = sqlenvfs_format_size(total);
    g_autofree char *want_s = sqlenvfs_format_size(want);
    sqlenvfs_doctor_report_add(
      c->report, avail < want ? SQLENVFS_SEVERITY_WARNING : SQLENVFS_SEVERITY_OK, "space",
      "data", dwhere,
      avail < want ? "free space on that filesystem: when it is full, commits fail with "
                     "\"database or disk is full\" or \"disk I/O error\""
                   : "nothing to do",
      "the filesystem holding the databases has %s free of %s (wants at least %s: room for "
      "the WAL to grow and for a VACUUM of the largest database)",
      avail_s, total_s, want_s);
  } else if (have_d && have_b && bdev == ddev) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "space", "data", dwhere,
                               "nothing to do",
                               "the databases are on the same filesystem as the backups");
  }
  if (have_d && c->settings->cache_min_free_bytes > 0) {
    guint64 avail = (guint64)dsv.f_bavail * dsv.f_frsize;
    guint64 min_free = (guint64)c->settings->cache_min_free_bytes;
    g_autofree char *avail_s = sqlenvfs_format_size(avail);
    g_autofree char *min_s = sqlenvfs_format_size(min_free);
    if (avail < min_free)
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_WARNING, "space", "room", dwhere,
        "free space on that filesystem, or set [cache] min-free-bytes (sqlenvfs.conf) to the "
        "room production needs to keep committing",
        "the filesystem holding the databases has %s free, less than [cache] min-free-bytes "
        "(%s), the room kept for production's commits: until there is more, the backups, "
        "snapshots, refresh-dev, restores, pitr files and WAL archive written there are "
        "refused, and the archiver lets go of production's WAL as soon as its archive cannot "
        "be written", avail_s, min_s);
    else
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "space", "room", dwhere,
                                 "nothing to do",
                                 "the filesystem holding the databases has %s free, at least "
                                 "[cache] min-free-bytes (%s)", avail_s, min_s);
  }
}

/* Each production "<name>.db-wal" (or "-journal") whose "<name>.db" is gone
 * (an rm of the wrong file, a move half done): the commits it holds are
 * nowhere but in the archive, and an init would start a new, empty
 * production beside it. Returns how many were found. */
static guint
check_orphan_journals(Ctx *c)
{
  const char *dir = sqlenvfs_root_path(c->root, SQLENVFS_DIR_PROD);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *ent;
  guint n = 0;

  while (d != NULL && (ent = g_dir_read_name(d)) != NULL) {
    const char *side = g_str_has_suffix(ent, ".db-wal")       ? "-wal"
                       : g_str_has_suffix(ent, ".db-journal") ? "-journal"
                                                              : NULL;
    g_autofree char *name = NULL, *db = NULL, *path = NULL, *held = NULL, *action = NULL;
    g_autofree char *name_word = NULL, *root_word = NULL, *size_s = NULL, *subject = NULL;
    guint32 page_size = 0;
    guint64 n_frames = 0;
    struct stat st;

    if (side == NULL)
      continue;
    name = g_strndup(ent, strlen(ent) - strlen(side) - 3);
    if (!sqlenvfs_db_name_is_valid(name))
      continue;
    db = sqlenvfs_root_prod_db(c->root, name);
    path = g_build_filename(dir, ent, NULL);
    if (lstat(db, &st) == 0 || errno != ENOENT || lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    n++;
    subject = g_strdup_printf("prod/%s", name);
    size_s = sqlenvfs_format_size(st.st_size);
    if (g_str_equal(side, "-wal") && wal_count_frames(path, &page_size, &n_frames))
      held = g_strdup_printf("%" G_GUINT64_FORMAT " frames of %u-byte pages (%s)", n_frames,
                             page_size, size_s);
    else
      held = g_strdup_printf("%s", size_s);
    name_word = sqlenvfs_shell_word(name);
    root_word = sqlenvfs_shell_word(sqlenvfs_root_dir(c->root));
    action = g_strdup_printf(
      "do not run `sqlenvfs init` (it would create a new, empty production); keep a copy of "
      "%s. If %s.db was moved, put it back beside it before anything opens it; else stop the "
      "application and restore it: `sqlenvfs restore --root %s --db %s --time latest --output "
      "FILE`, then put FILE in place as docs/OPERATIONS.md says (\"Putting a restored "
      "database into production\")",
      ent, name, root_word, name_word);
    sqlenvfs_doctor_report_add(
      c->report, SQLENVFS_SEVERITY_FAILURE, "databases", subject, path, action,
      "%s is there but %s.db, the database it belongs to, is not: the %s holds %s of "
      "production's last changes, which no database shows",
      path, name, side, held);
  }
  return n;
}

/* One finding for the temporaries of dead runs named @prefix in @dir
 * (sqlenvfs_tmp_leftovers, which removes nothing here), leaving out those
 * already in @seen and adding the others to it; @removed_by NULL: no command
 * removes them (the output of a restore or recover). Returns how many. */
static guint
report_leftovers(Ctx *c, const char *dir, const char *prefix, gboolean dirs,
                 const char *removed_by, GHashTable *seen)
{
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) names = g_string_new(NULL);
  guint64 bytes = 0;
  guint n = 0;
  g_autofree char *size = NULL, *action = NULL;

  if (sqlenvfs_tmp_leftovers(dir, prefix, dirs, FALSE, found, &error) < 0) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "leftovers", "root", dir,
                               "make it a real directory", "%s", error->message);
    return 0;
  }
  for (guint k = 0; k < found->len; k++) {
    const char *path = found->pdata[k];
    if (!g_hash_table_add(seen, g_strdup(path)))
      continue;
    bytes += sqlenvfs_tree_bytes(path); /* a copy's directory: its files */
    g_string_append_printf(names, "%s%s", n++ ? ", " : "", path);
  }
  if (n == 0)
    return 0;
  size = sqlenvfs_format_size(bytes);
  action = removed_by
    ? g_strdup_printf("%s removes them on its next run; or delete them now (no running "
                      "process owns them)", removed_by)
    : g_strdup("delete them (no running process owns them; nothing removes them on its own, "
               "short of the same restore or recover run again with the same --output)");
  sqlenvfs_doctor_report_add(
    c->report, SQLENVFS_SEVERITY_WARNING, "leftovers", "root", dir, action,
    "temporaries of an interrupted run (their process is gone): %s (%s); they may hold a "
    "full copy of production data",
    names->str, size);
  return n;
}

/* Temporaries left by runs that died (util.h): where each kind lives, the
 * names it has, and which command removes it on its next run; then any
 * other ".tmp-" of a dead run next to production or development, or in a
 * directory of the user's in the root (a restore or recover --output put
 * there), which no command removes. */
static void
check_leftovers(Ctx *c)
{
  static const struct {
    SqlenvfsDir dir;
    const char *prefix;
    gboolean dirs;
    const char *removed_by;
  } places[] = {
    { SQLENVFS_DIR_DEV, ".tmp-refresh-", FALSE, "`sqlenvfs refresh-dev`" },
    { SQLENVFS_DIR_DEV, ".tmp-init-", FALSE, "`sqlenvfs init`" },
    { SQLENVFS_DIR_DEV, ".tmp-", TRUE, NULL },
    { SQLENVFS_DIR_PROD, ".tmp-init-", FALSE, "`sqlenvfs init`" },
    { SQLENVFS_DIR_PROD, ".tmp-", TRUE, NULL },
    { SQLENVFS_DIR_DAILY, ".tmp-", TRUE, "`sqlenvfs backup` or `sqlenvfs prune`" },
    { SQLENVFS_DIR_SNAPSHOTS, ".tmp-", TRUE, "`sqlenvfs snapshot` or `sqlenvfs prune`" },
    { SQLENVFS_DIR_CACHE, ".tmp-", FALSE, "the next mount (or `sqlenvfs refresh-dev --time`)" },
  };
  /* The root's own directories; the others at its top are the user's. */
  static const char *const layout_tops[] = { "data", "backups", ".cache", ".sqlenvfs", NULL };
  g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  const char *root_dir = sqlenvfs_root_dir(c->root);
  guint n_found = 0;

  for (gsize i = 0; i < G_N_ELEMENTS(places); i++) {
    /* What a link or a file stands in the way of, the layout finding names. */
    if (c->is_blocked[places[i].dir])
      continue;
    n_found += report_leftovers(c, sqlenvfs_root_path(c->root, places[i].dir), places[i].prefix,
                                places[i].dirs, places[i].removed_by, seen);
  }
  {
    g_autoptr(GDir) d = g_dir_open(root_dir, 0, NULL);
    const char *ent;
    n_found += report_leftovers(c, root_dir, ".tmp-", TRUE, NULL, seen);
    while (d != NULL && (ent = g_dir_read_name(d)) != NULL) {
      g_autofree char *sub = g_build_filename(root_dir, ent, NULL);
      struct stat st;
      if (g_strv_contains(layout_tops, ent) || g_str_has_prefix(ent, ".tmp-") ||
          lstat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
        continue;
      n_found += report_leftovers(c, sub, ".tmp-", TRUE, NULL, seen);
    }
  }
  {
    /* An init cut short while it moved the old files aside or put the
     * new ones in place. */
    g_autofree char *moves = sqlenvfs_env_init_moves_path(c->root);
    g_autofree char *lock = sqlenvfs_root_lock_path(c->root, "init");
    if (g_file_test(moves, G_FILE_TEST_EXISTS) && sqlenvfs_doctor_lock_holder(lock, NULL) == 0) {
      n_found++;
      sqlenvfs_doctor_report_add(
        c->report, SQLENVFS_SEVERITY_WARNING, "leftovers", "root", moves,
        "run `sqlenvfs init` (no --force needed): it finishes that init first (the old files "
        "moved aside, the new databases put in place)",
        "an init --force was cut short while it moved the old databases aside or put the new "
        "ones in place: a -wal or -journal may still be at its old name, apart from the "
        "database it belongs to, and production or development may be missing until then");
    }
  }
  if (n_found == 0)
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "leftovers", "root",
                               sqlenvfs_root_dir(c->root), "nothing to do",
                               "no temporaries of interrupted runs");
}

/* Bugs this project knows about: SQLite's own corruption bugs that matter to
 * WAL-mode databases with several connections. */
typedef struct {
  const char *id;
  int introduced; /* first affected version number */
  int fixed[4];   /* fixed from these versions within their own series; 0 ends */
  const char *what;
  const char *advice;
} KnownBug;

static const KnownBug known_bugs[] = {
  { "wal-reset", 3007000, { 3044006, 3050007, 3051003, 0 },
    "the WAL-reset bug (https://sqlite.org/wal.html#walresetbug): when one connection "
    "finishes a checkpoint, a second checkpoint starts at once, and a third connection's "
    "commit restarts the WAL while that second checkpoint runs, the WAL index can be left "
    "wrong and a later checkpoint can skip pages of a transaction: the database file is "
    "corrupted. The timing is very narrow and it is very rarely seen in practice, "
    "but the damage is silent until something reads the skipped pages",
    "upgrade the SQLite that sqlenvfs and every application use (3.51.3 or later, or the "
    "backports 3.44.6 / 3.50.7; applications often bundle their own SQLite: check each). "
    "Until then lower the odds: let the archiver be the only checkpointer (it checkpoints "
    "while holding the write lock, so no commit can race it) by having applications set "
    "PRAGMA wal_autocheckpoint=0 while the archiver runs, keep the archiver running, and "
    "keep backups verified (`sqlenvfs verify`). To accept the risk, add "
    "acknowledged-bugs=wal-reset to [doctor] in sqlenvfs.conf" },
};

gboolean
sqlenvfs_doctor_bug_is_known(const char *id)
{
  for (gsize i = 0; i < G_N_ELEMENTS(known_bugs); i++)
    if (strcmp(known_bugs[i].id, id) == 0)
      return TRUE;
  return FALSE;
}

char *
sqlenvfs_doctor_bug_ids(void)
{
  GString *s = g_string_new(NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(known_bugs); i++)
    g_string_append_printf(s, "%s%s", i ? ", " : "", known_bugs[i].id);
  return g_string_free(s, FALSE);
}

char **
sqlenvfs_doctor_sqlite_bugs(int v)
{
  GPtrArray *ids = g_ptr_array_new();
  for (gsize i = 0; i < G_N_ELEMENTS(known_bugs); i++) {
    const KnownBug *b = &known_bugs[i];
    gboolean affected = v >= b->introduced;
    for (int j = 0; affected && b->fixed[j]; j++) {
      int series = b->fixed[j] / 1000; /* 3044006 -> 3044 */
      /* Fixed within its own series, and every later series of a fix is fixed. */
      if (v / 1000 == series && v >= b->fixed[j])
        affected = FALSE;
      if (b->fixed[j + 1] == 0 && v >= b->fixed[j])
        affected = FALSE;
    }
    if (affected)
      g_ptr_array_add(ids, g_strdup(b->id));
  }
  g_ptr_array_add(ids, NULL);
  return (char **)g_ptr_array_free(ids, FALSE);
}

static void
check_sqlite(Ctx *c)
{
  int v = sqlite3_libversion_number();
  g_auto(GStrv) bugs = sqlenvfs_doctor_sqlite_bugs(v);
  const char *const *acked = (const char *const *)c->settings->doctor_acknowledged_bugs;

  if (bugs[0] == NULL) {
    sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_OK, "sqlite", "sqlite", NULL,
                               "nothing to do; keep applications' SQLite current too",
                               "SQLite %s has none of the corruption bugs the doctor knows",
                               sqlite3_libversion());
  }
  for (char **id = bugs; *id; id++) {
    const KnownBug *b = NULL;
    gboolean is_acked = acked && g_strv_contains(acked, *id);
    for (gsize i = 0; i < G_N_ELEMENTS(known_bugs); i++)
      if (strcmp(known_bugs[i].id, *id) == 0)
        b = &known_bugs[i];
    sqlenvfs_doctor_report_add(c->report,
                               is_acked ? SQLENVFS_SEVERITY_OK : SQLENVFS_SEVERITY_WARNING,
                               "sqlite", "sqlite", NULL, b->advice,
                               "the linked SQLite %s has %s%s", sqlite3_libversion(), b->what,
                               is_acked ? ". Accepted in sqlenvfs.conf ([doctor] "
                                          "acknowledged-bugs)"
                                        : "");
  }
  for (const char *const *a = acked; a && *a; a++) {
    gboolean known = FALSE;
    for (gsize i = 0; i < G_N_ELEMENTS(known_bugs); i++)
      known = known || strcmp(known_bugs[i].id, *a) == 0;
    if (!known)
      sqlenvfs_doctor_report_add(c->report, SQLENVFS_SEVERITY_WARNING, "sqlite", "sqlite", NULL,
                                 "fix the entry in sqlenvfs.conf (known ids: wal-reset)",
                                 "[doctor] acknowledged-bugs names an unknown bug '%s'", *a);
  }
}

/* ------------------------------------------------------------------------ */

SqlenvfsDoctorReport *
sqlenvfs_doctor_run(SqlenvfsRoot *root, SqlenvfsDoctorFlags flags, GError **error)
{
  g_autoptr(SqlenvfsDoctorReport) report = report_new();
  g_autoptr(GPtrArray) names = sqlenvfs_root_list_dbs(root);
  g_autoptr(GPtrArray) dbs = g_ptr_array_new_with_free_func(db_files_free);
  g_autoptr(GArray) locks1 = NULL, locks2 = NULL;
  g_autoptr(GError) local = NULL;
  Ctx c = { .report = report, .root = root, .settings = sqlenvfs_root_settings(root),
            .flags = flags };
  gboolean any_writer = FALSE;
  guint n_denied;
  g_autoptr(GPtrArray) missing_dev = g_ptr_array_new_with_free_func(g_free);

  if (!g_file_test(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD), G_FILE_TEST_IS_DIR)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "doctor %s: data/prod is missing (run `sqlenvfs init` there, or pass --root)",
                sqlenvfs_root_dir(root));
    return NULL;
  }
  for (guint i = 0; i < names->len; i++) {
    const char *name = g_ptr_array_index(names, i);
    g_autofree char *prod = sqlenvfs_root_prod_db(root, name);
    g_autofree char *dev = sqlenvfs_root_dev_db(root, name);
    g_autofree char *ps = g_strdup_printf("prod/%s", name);
    g_autofree char *ds = g_strdup_printf("dev/%s", name);
    g_ptr_array_add(dbs, db_files_new(ps, prod));
    if (g_file_test(dev, G_FILE_TEST_EXISTS))
      g_ptr_array_add(dbs, db_files_new(ds, dev));
    else
      g_ptr_array_add(missing_dev, g_steal_pointer(&dev));
  }
  if (check_orphan_journals(&c) == 0 && names->len == 0)
    sqlenvfs_doctor_report_add(report, SQLENVFS_SEVERITY_WARNING, "databases", "root",
                               sqlenvfs_root_path(root, SQLENVFS_DIR_PROD),
                               "create one with `sqlenvfs init`",
                               "there is no production database (no *.db in data/prod)");

  {
    g_autoptr(GPtrArray) problems = sqlenvfs_root_settings_problems(root);
    g_autofree char *conf = g_build_filename(sqlenvfs_root_dir(root), "sqlenvfs.conf", NULL);
    for (guint i = 0; i < problems->len; i++)
      sqlenvfs_doctor_report_add(report, SQLENVFS_SEVERITY_FAILURE, "settings", "root", conf,
                                 "fix the line it names. Until then a prune refuses (it needs "
                                 "every section); the archiver and the mount need [archive] "
                                 "and [cache], the mount [mount] too; shipping and --remote "
                                 "need [replica] (and a restart of the archiver once fixed); a "
                                 "command given no --db needs [sqlenvfs]",
                                 "%s", (char *)problems->pdata[i]);
  }
  {
    g_autoptr(GPtrArray) unsupported = sqlenvfs_root_list_unsupported(root);
    for (guint i = 0; i < unsupported->len; i++)
      sqlenvfs_doctor_report_add(
        report, SQLENVFS_SEVERITY_WARNING, "databases", "root",
        sqlenvfs_root_path(root, SQLENVFS_DIR_PROD),
        "rename the file to a supported name (any UTF-8 name without '/', '[', ']' or "
        "control characters, not starting with '.'), with its -wal and -shm, while no "
        "application has it open",
        "%s: it is not archived, backed up, served nor checked", (char *)unsupported->pdata[i]);
  }
  check_layout(&c);
  check_archiver(&c, names->len);
  {
    g_autoptr(SqlenvfsListReport) copies = sqlenvfs_store_list_report(root, &local);
    if (copies == NULL) {
      c.backups_error = g_strdup(local->message);
      g_clear_error(&local);
    } else {
      c.backups = g_ptr_array_ref(copies->backups);
      check_damaged_copies(&c, copies->damaged);
    }
  }

  /* Locks: one sample, and a second one later if someone held a write lock. */
  locks1 = read_locks(&local);
  if (locks1 == NULL) {
    sqlenvfs_doctor_report_add(report, SQLENVFS_SEVERITY_WARNING, "locks", "root", "/proc/locks",
                               "run the doctor where /proc is mounted", "%s", local->message);
    locks1 = g_array_new(FALSE, TRUE, sizeof(SqlenvfsProcLock));
  }
  for (guint i = 0; i < dbs->len; i++) {
    DbFiles *d = g_ptr_array_index(dbs, i);
    g_autoptr(GArray) seen = locks_of(d, locks1, TRUE);
    for (guint j = 0; j < seen->len; j++)
      any_writer = any_writer || g_array_index(seen, SeenLock, j).is_writer;
  }
  n_denied = scan_open_files(dbs);
  if (any_writer && !(flags & SQLENVFS_DOCTOR_NO_LOCK_WAIT)) {
    g_usleep(LOCK_RECHECK_US);
    locks2 = read_locks(NULL);
  }
  if (n_denied > 0)
    sqlenvfs_doctor_report_add(report, SQLENVFS_SEVERITY_OK, "processes", "root", "/proc",
                               "run the doctor as root to see every process",
                               "%u processes could not be inspected (permission denied)",
                               n_denied);

  for (guint i = 0; i < dbs->len; i++) {
    DbFiles *d = g_ptr_array_index(dbs, i);
    check_db(&c, d, g_str_has_prefix(d->subject, "prod/"), locks1, locks2);
  }
  for (guint i = 0; i < missing_dev->len; i++) {
    const char *path = g_ptr_array_index(missing_dev, i);
    g_autofree char *base = g_path_get_basename(path);
    g_autofree char *subject = g_strdup_printf("dev/%.*s", (int)strlen(base) - 3, base);
    sqlenvfs_doctor_report_add(report, SQLENVFS_SEVERITY_WARNING, "open", subject, path,
                               "create it from production: `sqlenvfs refresh-dev`",
                               "the development database is missing: there is nowhere to try "
                               "changes but production");
  }
  check_space(&c);
  check_leftovers(&c);
  check_sqlite(&c);
  if (c.backups)
    g_ptr_array_unref(c.backups);
  g_free(c.backups_error);
  return g_steal_pointer(&report);
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

void
sqlenvfs_doctor_report_to_json(const SqlenvfsDoctorReport *r, gboolean problems_only,
                               SqlenvfsJson *j)
{
  g_autofree char *when = sqlenvfs_time_format_iso(r->checked_at);

  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "status", sqlenvfs_severity_name(r->worst));
  sqlenvfs_json_member_int(j, "exit_status", sqlenvfs_doctor_exit_status(r));
  sqlenvfs_json_member_string(j, "checked_at", when);
  sqlenvfs_json_member_string(j, "sqlite_version", sqlite3_libversion());
  sqlenvfs_json_key(j, "counts");
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_uint(j, "ok", r->n_ok);
  sqlenvfs_json_member_uint(j, "warning", r->n_warnings);
  sqlenvfs_json_member_uint(j, "failure", r->n_failures);
  sqlenvfs_json_end_object(j);
  sqlenvfs_json_key(j, "findings");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < r->findings->len; i++) {
    const SqlenvfsFinding *f = g_ptr_array_index(r->findings, i);
    if (problems_only && f->severity == SQLENVFS_SEVERITY_OK)
      continue;
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "severity", sqlenvfs_severity_name(f->severity));
    sqlenvfs_json_member_string(j, "check", f->check);
    sqlenvfs_json_member_string(j, "subject", f->subject);
    sqlenvfs_json_member_string(j, "path", f->path);
    sqlenvfs_json_member_string(j, "found", f->found);
    sqlenvfs_json_member_string(j, "action", f->action);
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_end_object(j);
}
