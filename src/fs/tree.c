/*
 * tree.c — path routing: what each path of the mount names, its attributes,
 * and the children of each directory.
 *
 *   /                                FS_ROOT
 *   /prod  /dev                      FS_ENV_DIR
 *   /prod/<db>.db  /dev/<db>.db      FS_LIVE_DB      changes: never cached
 *   /snapshots  /backups             FS_STORE_DIR
 *   /snapshots/<ts>                  FS_COPY_DIR     never changes
 *   /snapshots/<ts>/<db>.db          FS_COPY_DB      never changes: cached
 *   /pitr                            FS_PITR_DIR
 *   /pitr/earliest  /pitr/latest     FS_PITR_LINK    -> a concrete time; moves
 *   /pitr/<time>                     FS_PITR_TIME    any form of timefmt.h
 *   /pitr/<time>/<db>.db             FS_PITR_DB      one state: cached
 *   /ctl  /ctl/<op>                  FS_CTL_DIR, FS_CTL_FILE   changes
 *   /status                          FS_STATUS       changes
 *   /diff  /diff/<t1>  /diff/<t1>/<t2>   FS_DIFF_DIR, _FROM, _TO  times as pitr/
 *   /diff/<t1>/<t2>/<db>.sql|.summary FS_DIFF_FILE   made at lookup (diff.c)
 *   /metrics                         FS_METRICS      changes
 *
 * Routing only reads metadata (stat, MANIFESTs, restore plans); it never
 * opens a live database file with a descriptor of its own (DESIGN.md, POSIX
 * locks) and never rebuilds anything.
 */
#include "fs.h"

#include "sqlenvfs/error.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Seconds the kernel may cache names and attributes of each kind. Content
 * that changes is never cached (0); stored copies are immutable until
 * pruned, so a short timeout bounds how long a pruned name lingers. */
#define TIMEOUT_DIR 1.0
#define TIMEOUT_IMMUTABLE 10.0
#define TIMEOUT_NONE 0.0

/* Seconds the kernel may remember that a pitr/ name does not exist when it
 * never will (not a time, before the earliest recoverable time, in a gap):
 * tools that probe many names (ls -l, shells completing, file managers) then
 * cost one lookup, and one log line, per name and period. */
#define TIMEOUT_NEGATIVE 2.0

/* Preferred I/O size shown for data files: cp and friends read this much at
 * a time, which the kernel passes on as one request (up to max_pages). */
#define DATA_BLKSIZE (1 << 20)

static const char *const top_names[] = { "prod", "dev", "snapshots", "backups",
                                         "pitr", "diff", "ctl", "status", "metrics" };

void
fs_where_clear(FsWhere *w)
{
  g_clear_pointer(&w->db, g_free);
  g_clear_pointer(&w->entry, g_free);
  g_clear_pointer(&w->to, g_free);
}

mode_t
fs_tree_data_mode(mode_t source_mode)
{
  return S_IFREG | (source_mode & 0444);
}

/* The permission class of @caller for a file owned by (@uid, @gid): the
 * shift of its rwx bits in a mode (6 owner, 3 group, 0 other). */
static int
class_shift(const FsCaller *caller, uid_t uid, gid_t gid)
{
  if (caller->uid == uid)
    return 6;
  if (caller->gid == gid)
    return 3;
  for (int i = 0; i < caller->n_groups; i++)
    if (caller->groups[i] == gid)
      return 3;
  return 0;
}

/* @caller may do @mask on @path itself (missing: TRUE, nothing to guard),
 * and search every directory above it. */
static gboolean
caller_may(const FsCaller *caller, const char *path, int mask)
{
  g_autofree char *dir = g_path_get_dirname(path);
  struct stat st;
  mode_t want = ((mask & R_OK) ? 4 : 0) | ((mask & X_OK) ? 1 : 0);

  if (caller->uid == 0)
    return TRUE;
  for (;;) {
    char *up;
    if (stat(dir, &st) == 0 &&
        !(((st.st_mode & 0777) >> class_shift(caller, st.st_uid, st.st_gid)) & 1))
      return FALSE;
    if (strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0)
      break;
    up = g_path_get_dirname(dir);
    g_free(dir);
    dir = up;
  }
  if (stat(path, &st) != 0)
    return TRUE;
  return ((((st.st_mode & 0777) >> class_shift(caller, st.st_uid, st.st_gid)) & 7) & want) == want;
}

gboolean
fs_tree_may_access(Fs *fs, const FsWhere *where, const FsCaller *caller, int mask)
{
  SqlenvfsRoot *root = fs->root;
  const char *wal = sqlenvfs_root_path(root, SQLENVFS_DIR_WAL);
  g_autofree char *path = NULL;

  switch (where->kind) {
  case FS_ROOT:
    return caller_may(caller, sqlenvfs_root_dir(root), mask);
  case FS_ENV_DIR:
    return caller_may(caller,
                      sqlenvfs_root_path(root, where->env == FS_ENV_PROD ? SQLENVFS_DIR_PROD
                                                                          : SQLENVFS_DIR_DEV),
                      mask);
  case FS_LIVE_DB:
    path = where->env == FS_ENV_PROD ? sqlenvfs_root_prod_db(root, where->db)
                                     : sqlenvfs_root_dev_db(root, where->db);
    return caller_may(caller, path, mask);
  case FS_STORE_DIR:
    return caller_may(caller, sqlenvfs_store_dir(root, where->copy_kind), mask);
  case FS_COPY_DIR:
    path = g_build_filename(sqlenvfs_store_dir(root, where->copy_kind), where->entry, NULL);
    return caller_may(caller, path, mask);
  case FS_COPY_DB: {
    g_autofree char *file = g_strconcat(where->db, ".db", NULL);
    path = g_build_filename(sqlenvfs_store_dir(root, where->copy_kind), where->entry, file, NULL);
    return caller_may(caller, path, mask);
  }
  case FS_PITR_DIR:
  case FS_PITR_LINK:
  case FS_PITR_TIME:
  case FS_DIFF_DIR:
  case FS_DIFF_FROM:
  case FS_DIFF_TO:
    return caller_may(caller, wal, where->kind == FS_PITR_LINK ? X_OK : mask);
  case FS_DIFF_FILE:
  case FS_PITR_DB: {
    g_autofree char *archive = g_build_filename(wal, where->db, NULL);
    path = sqlenvfs_root_prod_db(root, where->db);
    return caller_may(caller, archive, X_OK) && caller_may(caller, path, mask);
  }
  case FS_STATUS:
  case FS_METRICS:
  case FS_CTL_FILE:
    /* What they say (databases, sizes, markers, results) is what listing
     * data/prod and looking at its files tells. */
    return !(mask & R_OK) ||
           caller_may(caller, sqlenvfs_root_path(root, SQLENVFS_DIR_PROD), R_OK | X_OK);
  default:
    return TRUE;
  }
}

/* The permission bits a node shows: @perm, less the bits of each class
 * (group, other) that cannot search every directory above @path. What is
 * shown follows what the root allows; fs_tree_may_access() decides. */
static mode_t
reach_perm(const char *path, mode_t perm)
{
  g_autofree char *dir = g_path_get_dirname(path);
  struct stat st;
  for (;;) {
    char *up;
    if (stat(dir, &st) == 0) {
      if (!(st.st_mode & S_IXGRP))
        perm &= ~(mode_t)0070;
      if (!(st.st_mode & S_IXOTH))
        perm &= ~(mode_t)0007;
    }
    if (strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0)
      break;
    up = g_path_get_dirname(dir);
    g_free(dir);
    dir = up;
  }
  return perm;
}

/* A directory's permission bits from the real directory @path: read and
 * search where it allows reading, as far as its parents let through. */
static mode_t
dir_perm(const char *path)
{
  struct stat st;
  mode_t perm = stat(path, &st) == 0 ? (st.st_mode & 0444) | ((st.st_mode & 0444) >> 2) : 0555;
  return reach_perm(path, perm);
}

static gboolean
not_found(GError **error, const char *path, const char *why)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND, "/%s: %s", path, why);
  return FALSE;
}

void
fs_tree_set_times(struct stat *st, gint64 us)
{
  st->st_mtim.tv_sec = us / G_USEC_PER_SEC;
  st->st_mtim.tv_nsec = (us % G_USEC_PER_SEC) * 1000;
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

static void
attr_dir(Fs *fs, FsAttr *a, mode_t perm, gint64 mtime_us, double timeout)
{
  memset(a, 0, sizeof *a);
  a->st.st_mode = S_IFDIR | perm;
  a->st.st_nlink = 2;
  a->st.st_uid = fs->uid;
  a->st.st_gid = fs->gid;
  fs_tree_set_times(&a->st, mtime_us);
  a->entry_timeout = timeout;
  a->attr_timeout = timeout;
}

static void
attr_file(Fs *fs, FsAttr *a, mode_t mode, guint64 size, gint64 mtime_us, double entry_timeout,
          double attr_timeout)
{
  memset(a, 0, sizeof *a);
  a->st.st_mode = mode;
  a->st.st_nlink = 1;
  a->st.st_uid = fs->uid;
  a->st.st_gid = fs->gid;
  a->st.st_size = (off_t)size;
  a->st.st_blksize = DATA_BLKSIZE;
  a->st.st_blocks = (blkcnt_t)((size + 511) / 512);
  fs_tree_set_times(&a->st, mtime_us);
  a->entry_timeout = entry_timeout;
  a->attr_timeout = attr_timeout;
}

/* The group a node shows: that of the file of the root whose permissions
 * decide who reads it (fs_tree_may_access), so that the group bits shown
 * are those a member of that group gets. Its owner stays the mounting
 * user, who reads everything the mount shows. */
static void
attr_group_of(FsAttr *a, const char *path)
{
  struct stat st;
  if (stat(path, &st) == 0)
    a->st.st_gid = st.st_gid;
}

/* "<db>.db" -> "<db>", or NULL when the name is not a database file name. */
static char *
db_of_file(const char *name)
{
  g_autofree char *db = NULL;
  if (!g_str_has_suffix(name, ".db"))
    return NULL;
  db = g_strndup(name, strlen(name) - 3);
  if (!sqlenvfs_db_name_is_valid(db))
    return NULL;
  return g_steal_pointer(&db);
}

static gboolean
resolve_env(Fs *fs, const char *path, char **comps, guint n, FsWhere *w, FsAttr *a,
            GError **error)
{
  FsEnv env = strcmp(comps[0], "prod") == 0 ? FS_ENV_PROD : FS_ENV_DEV;
  g_autofree char *db = NULL;
  struct stat st;

  w->env = env;
  if (n == 1) {
    const char *real = sqlenvfs_root_path(fs->root, env == FS_ENV_PROD ? SQLENVFS_DIR_PROD
                                                                        : SQLENVFS_DIR_DEV);
    w->kind = FS_ENV_DIR;
    attr_dir(fs, a, dir_perm(real), fs->started_at, TIMEOUT_DIR);
    attr_group_of(a, real);
    return TRUE;
  }
  if (n > 2 || (db = db_of_file(comps[1])) == NULL)
    return not_found(error, path, "no such database");
  if (!fs_serve_live_stat(fs, env, db, &st, error))
    return FALSE;
  w->kind = FS_LIVE_DB;
  w->db = g_steal_pointer(&db);
  {
    g_autofree char *real = env == FS_ENV_PROD ? sqlenvfs_root_prod_db(fs->root, w->db)
                                               : sqlenvfs_root_dev_db(fs->root, w->db);
    st.st_mode = S_IFREG | reach_perm(real, st.st_mode & 0444);
    attr_file(fs, a, fs_tree_data_mode(st.st_mode), (guint64)st.st_size,
              (gint64)st.st_mtim.tv_sec * G_USEC_PER_SEC + st.st_mtim.tv_nsec / 1000,
              TIMEOUT_DIR, TIMEOUT_NONE);
    attr_group_of(a, real);
  }
  return TRUE;
}

static gboolean
resolve_store(Fs *fs, const char *path, char **comps, guint n, FsWhere *w, FsAttr *a,
              GError **error)
{
  SqlenvfsCopyKind kind =
    strcmp(comps[0], "snapshots") == 0 ? SQLENVFS_KIND_SNAPSHOT : SQLENVFS_KIND_BACKUP;
  g_autoptr(SqlenvfsStoredCopy) copy = NULL;
  g_autofree char *db = NULL;
  const SqlenvfsStoredDb *sdb;
  gint64 us;
  struct stat st;

  w->copy_kind = kind;
  if (n == 1) {
    w->kind = FS_STORE_DIR;
    attr_dir(fs, a, dir_perm(sqlenvfs_store_dir(fs->root, kind)), fs->started_at, TIMEOUT_NONE);
    attr_group_of(a, sqlenvfs_store_dir(fs->root, kind));
    return TRUE;
  }
  if (n > 3 || !sqlenvfs_time_parse_name(comps[1], &us))
    return not_found(error, path, "no such backup or snapshot");
  copy = sqlenvfs_store_load(fs->root, kind, comps[1], error);
  if (copy == NULL)
    return FALSE;
  if (n == 2) {
    w->kind = FS_COPY_DIR;
    w->entry = g_strdup(copy->name);
    attr_dir(fs, a, dir_perm(copy->dir), copy->time, TIMEOUT_IMMUTABLE);
    attr_group_of(a, copy->dir);
    return TRUE;
  }
  if ((db = db_of_file(comps[2])) == NULL || (sdb = sqlenvfs_stored_copy_find(copy, db)) == NULL)
    return not_found(error, path, "no such database in this copy");
  if (stat(sdb->path, &st) != 0) {
    if (fs->remote == NULL)
      return sqlenvfs_error_errno(error, errno, "stat", sdb->path);
    /* mount --remote, not fetched yet: the MANIFEST gives its size. */
    memset(&st, 0, sizeof st);
    st.st_mode = S_IFREG | 0400;
    st.st_size = (off_t)sdb->size;
  }
  w->kind = FS_COPY_DB;
  w->entry = g_strdup(copy->name);
  w->db = g_steal_pointer(&db);
  attr_file(fs, a, fs_tree_data_mode(reach_perm(sdb->path, st.st_mode & 0444)),
            (guint64)st.st_size, sdb->pos.pinned_at ? sdb->pos.pinned_at : copy->time,
            TIMEOUT_IMMUTABLE,
            TIMEOUT_IMMUTABLE);
  attr_group_of(a, sdb->path);
  return TRUE;
}

static gboolean
resolve_pitr(Fs *fs, const char *path, char **comps, guint n, FsWhere *w, FsAttr *a,
             GError **error)
{
  g_autofree char *db = NULL;
  gboolean is_lasting;
  FsPitrState state;

  const char *wal = sqlenvfs_root_path(fs->root, SQLENVFS_DIR_WAL);

  if (n == 1) {
    /* The name is always there: the kernel may keep it (each path under
     * pitr/ would otherwise look it up again: `ls -l pitr/T/` did seven
     * times); its mode follows the archive's directory, so it is not kept. */
    w->kind = FS_PITR_DIR;
    attr_dir(fs, a, dir_perm(wal), fs->started_at, TIMEOUT_NONE);
    attr_group_of(a, wal);
    a->entry_timeout = TIMEOUT_DIR;
    return TRUE;
  }
  if (n == 2 && (strcmp(comps[1], "earliest") == 0 || strcmp(comps[1], "latest") == 0)) {
    g_autofree char *target = NULL;
    w->kind = FS_PITR_LINK;
    w->is_latest_link = comps[1][0] == 'l';
    target = fs_tree_readlink(fs, w, 0, error);
    if (target == NULL)
      return FALSE;
    attr_file(fs, a, S_IFLNK | 0777, strlen(target), sqlenvfs_clock_now(), TIMEOUT_NONE,
              TIMEOUT_NONE);
    return TRUE;
  }
  if (n > 3)
    return not_found(error, path, "no such file");
  if (!fs_pitr_resolve_time(fs->pitr, "pitr", comps[1], &w->time_us, &is_lasting, error)) {
    if (is_lasting && n == 2)
      a->negative_timeout = TIMEOUT_NEGATIVE;
    return FALSE;
  }
  w->entry = g_strdup(comps[1]);
  if (n == 2) {
    w->kind = FS_PITR_TIME;
    attr_dir(fs, a, dir_perm(wal), w->time_us, TIMEOUT_IMMUTABLE);
    attr_group_of(a, wal);
    return TRUE;
  }
  if ((db = db_of_file(comps[2])) == NULL)
    return not_found(error, path, "no such database");
  if (!fs_pitr_stat(fs->pitr, db, w->time_us, &state, error))
    return FALSE;
  w->kind = FS_PITR_DB;
  w->db = g_steal_pointer(&db);
  {
    /* Readable where production is, and the archive of <db> searchable. */
    g_autofree char *in_archive = g_build_filename(wal, w->db, "alive", NULL);
    g_autofree char *prod = sqlenvfs_root_prod_db(fs->root, w->db);
    mode_t perm = reach_perm(prod, reach_perm(in_archive, state.mode & 0444));
    attr_file(fs, a, fs_tree_data_mode(perm), state.size, state.state_us, TIMEOUT_IMMUTABLE,
              TIMEOUT_IMMUTABLE);
    attr_group_of(a, prod);
  }
  return TRUE;
}

/* diff/<t1>/<t2>/<db>.sql|.summary: each time as pitr/ takes it (and
 * earliest, latest: fs_diff_resolve_time); the
 * file's content (and so its size, shown as 0) is made at open. */
static gboolean
resolve_diff(Fs *fs, const char *path, char **comps, guint n, FsWhere *w, FsAttr *a,
             GError **error)
{
  const char *wal = sqlenvfs_root_path(fs->root, SQLENVFS_DIR_WAL);
  gboolean is_lasting;
  gint64 t2 = 0;
  const char *dot;
  g_autofree char *db = NULL;
  g_autoptr(GPtrArray) dbs = NULL;
  g_autoptr(GBytes) doc = NULL;

  if (n == 1) {
    w->kind = FS_DIFF_DIR;
    attr_dir(fs, a, dir_perm(wal), fs->started_at, TIMEOUT_NONE);
    attr_group_of(a, wal);
    return TRUE;
  }
  if (n > 4)
    return not_found(error, path, "no such file");
  if (!fs_diff_resolve_time(fs, comps[1], &w->time_us, &is_lasting, error) ||
      (n >= 3 && !fs_diff_resolve_time(fs, comps[2], &t2, &is_lasting, error)))
    return FALSE;
  w->entry = g_strdup(comps[1]);
  if (n == 2) {
    w->kind = FS_DIFF_FROM;
    attr_dir(fs, a, dir_perm(wal), w->time_us, TIMEOUT_NONE);
    attr_group_of(a, wal);
    return TRUE;
  }
  w->to = g_strdup(comps[2]);
  if (n == 3) {
    w->kind = FS_DIFF_TO;
    attr_dir(fs, a, dir_perm(wal), t2, TIMEOUT_NONE);
    attr_group_of(a, wal);
    return TRUE;
  }
  dot = strrchr(comps[3], '.');
  if (dot == NULL || (strcmp(dot, ".sql") != 0 && strcmp(dot, ".summary") != 0))
    return not_found(error, path, "no such file (diff/<t1>/<t2>/ has <db>.sql and <db>.summary)");
  db = g_strndup(comps[3], (gsize) (dot - comps[3]));
  dbs = fs_pitr_list_dbs(fs->pitr, t2, error);
  if (dbs == NULL)
    return FALSE;
  if (!sqlenvfs_db_name_is_valid(db) ||
      !g_ptr_array_find_with_equal_func(dbs, db, g_str_equal, NULL))
    return not_found(error, path, "no such database");
  w->kind = FS_DIFF_FILE;
  w->is_summary = strcmp(dot, ".summary") == 0;
  w->db = g_steal_pointer(&db);
  /* Made now, so that a stat shows its real size; kept for the open. */
  doc = fs_diff_document(fs, w->db, w->is_summary, w->time_us, t2, error);
  if (doc == NULL)
    return FALSE;
  {
    /* Readable where production is, and the archive of <db> searchable. */
    g_autofree char *in_archive = g_build_filename(wal, w->db, "alive", NULL);
    g_autofree char *prod = sqlenvfs_root_prod_db(fs->root, w->db);
    struct stat st;
    mode_t perm = stat(prod, &st) == 0 ? (st.st_mode & 0444) : 0400;
    perm = reach_perm(prod, reach_perm(in_archive, perm));
    attr_file(fs, a, fs_tree_data_mode(perm), g_bytes_get_size(doc), t2, TIMEOUT_NONE,
              TIMEOUT_NONE);
    attr_group_of(a, prod);
  }
  return TRUE;
}

gboolean
fs_tree_resolve(Fs *fs, const char *path, guint32 pid, FsWhere *where, FsAttr *attr,
                GError **error)
{
  g_auto(GStrv) comps = NULL;
  FsWhere w = { 0 };
  gboolean ok = FALSE;
  const char *prod_dir;
  mode_t told;
  guint n;

  attr->negative_timeout = TIMEOUT_NONE;
  if (*path == '\0') {
    memset(where, 0, sizeof *where);
    where->kind = FS_ROOT;
    attr_dir(fs, attr, dir_perm(sqlenvfs_root_dir(fs->root)), fs->started_at, TIMEOUT_DIR);
    attr_group_of(attr, sqlenvfs_root_dir(fs->root));
    return TRUE;
  }
  comps = g_strsplit(path, "/", -1);
  n = g_strv_length(comps);
  /* What status, metrics and ctl/ tell is what listing data/prod tells:
   * readable by the classes that may list it (and always by the owner,
   * the mounting user). */
  prod_dir = sqlenvfs_root_path(fs->root, SQLENVFS_DIR_PROD);
  {
    struct stat pst;
    mode_t m = stat(prod_dir, &pst) == 0 ? pst.st_mode : 0755;
    told = reach_perm(prod_dir, 0400 | (m & 0044 & ((m & 0011) << 2)));
  }
  if (fs_remote_hides(fs, comps[0]))
    return not_found(error, path, "a mount of a replica shows snapshots, backups and pitr only");

  if (strcmp(comps[0], "prod") == 0 || strcmp(comps[0], "dev") == 0) {
    ok = resolve_env(fs, path, comps, n, &w, attr, error);
  } else if (strcmp(comps[0], "snapshots") == 0 || strcmp(comps[0], "backups") == 0) {
    ok = resolve_store(fs, path, comps, n, &w, attr, error);
  } else if (strcmp(comps[0], "pitr") == 0) {
    ok = resolve_pitr(fs, path, comps, n, &w, attr, error);
  } else if (strcmp(comps[0], "diff") == 0) {
    ok = resolve_diff(fs, path, comps, n, &w, attr, error);
  } else if (strcmp(comps[0], "ctl") == 0) {
    if (n == 1) {
      w.kind = FS_CTL_DIR;
      attr_dir(fs, attr, 0555, fs->started_at, TIMEOUT_DIR);
      attr_group_of(attr, prod_dir);
      ok = TRUE;
    } else if (n == 2 && sqlenvfs_op_from_name(comps[1], &w.op)) {
      g_autofree char *line = fs_ctl_read(fs->ctl, w.op);
      SqlenvfsOpResult res;
      sqlenvfs_ops_last(fs->ops, w.op, &res);
      w.kind = FS_CTL_FILE;
      /* Written by the mounting user (and root) only; read by who can
       * list data/prod. */
      attr_file(fs, attr, S_IFREG | 0200 | told, strlen(line),
                res.has_run ? res.finished_us : fs->started_at, TIMEOUT_DIR, TIMEOUT_NONE);
      attr_group_of(attr, prod_dir);
      sqlenvfs_op_result_clear(&res);
      ok = TRUE;
    } else {
      ok = not_found(error, path, "no such control file (ctl/ has backup, snapshot, "
                                  "refresh-dev, verify, prune, checkpoint)");
    }
  } else if (strcmp(comps[0], "status") == 0 && n == 1) {
    /* Its real size (tar and rsync copy that many bytes), from the document
     * the next open serves (fs_status_snapshot). */
    gsize len = 0;
    gint64 rendered = 0;
    g_free(fs_status_snapshot(fs, pid, &len, &rendered));
    w.kind = FS_STATUS;
    attr_file(fs, attr, S_IFREG | told, len, rendered, TIMEOUT_DIR, TIMEOUT_NONE);
    attr_group_of(attr, prod_dir);
    ok = TRUE;
  } else if (strcmp(comps[0], "metrics") == 0 && n == 1) {
    gsize len_m = 0;
    gint64 rendered = 0;
    g_free(fs_doc_snapshot(fs, fs->metrics, pid, &len_m, &rendered));
    w.kind = FS_METRICS;
    attr_file(fs, attr, S_IFREG | told, len_m, rendered, TIMEOUT_DIR, TIMEOUT_NONE);
    attr_group_of(attr, prod_dir);
    ok = TRUE;
  } else {
    ok = not_found(error, path, "no such file");
  }

  if (!ok) {
    fs_where_clear(&w);
    return FALSE;
  }
  *where = w;
  return TRUE;
}

static GPtrArray *
list_db_files(GPtrArray *dbs)
{
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < dbs->len; i++)
    g_ptr_array_add(names, g_strconcat(g_ptr_array_index(dbs, i), ".db", NULL));
  return names;
}

static gint
cmp_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Development databases that exist (data/dev/<db>.db). */
static GPtrArray *
list_dev(Fs *fs)
{
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) d = g_dir_open(sqlenvfs_root_path(fs->root, SQLENVFS_DIR_DEV), 0, NULL);
  const char *ent;
  if (d == NULL)
    return names;
  while ((ent = g_dir_read_name(d)) != NULL) {
    g_autofree char *db = db_of_file(ent);
    if (db != NULL)
      g_ptr_array_add(names, g_strdup(ent));
  }
  g_ptr_array_sort(names, cmp_names);
  return names;
}

GPtrArray *
fs_tree_list(Fs *fs, const FsWhere *where, GError **error)
{
  GPtrArray *names = NULL;

  switch (where->kind) {
  case FS_ROOT:
    names = g_ptr_array_new_with_free_func(g_free);
    for (gsize i = 0; i < G_N_ELEMENTS(top_names); i++)
      if (!fs_remote_hides(fs, top_names[i]))
        g_ptr_array_add(names, g_strdup(top_names[i]));
    return names;
  case FS_ENV_DIR:
    if (where->env == FS_ENV_PROD) {
      g_autoptr(GPtrArray) dbs = sqlenvfs_root_list_dbs(fs->root);
      return list_db_files(dbs);
    }
    return list_dev(fs);
  case FS_STORE_DIR: {
    g_autoptr(GPtrArray) copies = sqlenvfs_store_list(fs->root, where->copy_kind, error);
    if (copies == NULL)
      return NULL;
    names = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < copies->len; i++)
      g_ptr_array_add(names, g_strdup(((SqlenvfsStoredCopy *)g_ptr_array_index(copies, i))->name));
    return names;
  }
  case FS_COPY_DIR: {
    g_autoptr(SqlenvfsStoredCopy) copy =
      sqlenvfs_store_load(fs->root, where->copy_kind, where->entry, error);
    if (copy == NULL)
      return NULL;
    names = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < copy->dbs->len; i++)
      g_ptr_array_add(names,
                      g_strconcat(((SqlenvfsStoredDb *)g_ptr_array_index(copy->dbs, i))->db, ".db",
                                  NULL));
    return names;
  }
  case FS_PITR_DIR:
    return fs_pitr_list_links(fs->pitr, error);
  case FS_PITR_TIME: {
    g_autoptr(GPtrArray) dbs = fs_pitr_list_dbs(fs->pitr, where->time_us, error);
    if (dbs == NULL)
      return NULL;
    return list_db_files(dbs);
  }
  case FS_DIFF_DIR:
  case FS_DIFF_FROM:
    return g_ptr_array_new_with_free_func(g_free); /* any time: nothing to list */
  case FS_DIFF_TO:
    return fs_diff_list(fs, where, error);
  case FS_CTL_DIR:
    names = g_ptr_array_new_with_free_func(g_free);
    for (int i = 0; i < SQLENVFS_N_OPS; i++)
      g_ptr_array_add(names, g_strdup(sqlenvfs_op_name((SqlenvfsOp)i)));
    return names;
  default:
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "not a directory");
    return NULL;
  }
}

char *
fs_tree_readlink(Fs *fs, const FsWhere *where, guint32 pid, GError **error)
{
  gint64 earliest, latest;
  if (!fs_pitr_window(fs->pitr, &earliest, &latest, error))
    return NULL;
  latest = fs_pitr_latest_for(fs->pitr, pid, latest);
  /* The exact time (microseconds): a rounded one could fall outside the
   * window (earliest) or before the last commit (latest). */
  return sqlenvfs_time_format_iso(where->is_latest_link ? latest : earliest);
}
