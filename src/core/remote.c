/*
 * remote.c — reading a replica from another machine (remote.h).
 *
 * The temporary directory "<parent>/.tmp-remote-<pid>" (0700) holds two
 * roots: plan/, where the small objects land (every complete MANIFEST, the
 * .idx and .sum of the sealed segments, alive, PRUNED), and root/, which
 * the local engine reads: it gets hard links of the small objects it needs
 * and the large ones (bases, segments) fetched straight into place. In
 * mount --remote's cache, the sealed segments and their summaries are
 * sparse files in root/ filled on demand through the archive's fetch hook
 * (Lazy and LazySum, below).
 *
 * Planning a restore (docs/REPLICA.md, "Reading a replica from another
 * machine"): the base is the newest complete copy whose WAL position maps,
 * through the indexes, to a state at or before T; the segments are those
 * from the one holding that state up to the first one holding a record
 * after T (or the unsealed tail when none does), so that every record that
 * decides T's state, gap or outage is there. When the indexes show a gap or
 * an outage reaching across T from beyond those segments, or no base fits,
 * or the local engine refuses T on the subset, the whole archive is fetched
 * and the local engine answers, with a local restore's message. A base the
 * engine finds bad is left out and the plan made again.
 */
#include "sqlenvfs/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/s3.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/testhooks.h"
#include "sqlenvfs/timeline.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"

#include "archive_int.h"

typedef struct {
  guint64 a, b;
  SqlenvfsS3Object *obj;
} Part;

/* The parts of a version 2 segment summary (archive_summary.c): the head
 * (header, marks, generations), the size changes, the page table, the
 * last versions, the versions. */
#define SUM_N_PARTS 5
/* A segment's header is fetched in one GET with the missing records a
 * read needs when they start within this many bytes of it. */
#define LAZY_HEAD_GAP 65536
/* What the mount's start fetches of each summary: its head (header, marks,
 * generations) and mostly its size changes; one 4 KiB block of the cache. */
#define SUM_PREFIX 4096
/* Summaries fetched ahead of the reader at most, in the direction its
 * misses go (sum_ensure), and the connections they are fetched on. */
#define SUM_AHEAD_MAX 32
#define SUM_CONNS 16

typedef struct {
  guint64 number;
  SqlenvfsS3Object *seg, *idx, *sum;
  GArray *parts;     /* Part, sorted by a */
  /* From the index (when it was fetched and is good). */
  gboolean have_idx;
  GArray *entries;   /* SqlenvfsArchiveEntry */
} Seg;

typedef struct {
  char *name;
  GPtrArray *segs;   /* Seg *, by number */
  SqlenvfsS3Object *alive, *pruned;
  /* mount --remote: its summaries read on demand (LazySum, by number; not
   * owned), and, per part, where the last miss was, which way the misses
   * go and how many summaries ahead the next one fetches (sum_ensure). */
  GPtrArray *sums;
  guint ra_at[SUM_N_PARTS];
  int ra_dir[SUM_N_PARTS];
  guint ra_win[SUM_N_PARTS];
  gboolean ra_seen[SUM_N_PARTS];
} Db;

/* An object of a database's archive that the replica should hold and does
 * not hold whole and good: a sealed segment missing, a part of the unsealed
 * one missing or damaged. The records it held are a gap: the local engine
 * starts a new chain after it (archive.h invariant 2), and restores refuse
 * the times it covered, naming it (explain_gap). */
typedef struct {
  char *db;
  char *key;             /* the object's key, relative to the replica's URL */
  char *why;             /* "is missing", "is damaged: ..." */
  gint64 from_us, to_us; /* the records around it: the last before, the first
                            after (0: none known) */
} Lost;

static void
lost_free(gpointer p)
{
  Lost *l = p;
  g_free(l->db);
  g_free(l->key);
  g_free(l->why);
  g_free(l);
}

typedef struct {
  SqlenvfsCopyKind kind;
  char *name;
  SqlenvfsS3Object *manifest;
  GPtrArray *files;  /* SqlenvfsS3Object * of its <db>.db */
} Copy;

struct _SqlenvfsRemote {
  SqlenvfsReplicaConf *conf;
  SqlenvfsS3 *s3;
  GPtrArray *objects;  /* the listing */
  GHashTable *dbs;     /* name -> Db * */
  GPtrArray *copies;   /* Copy * */
  char *tmp, *plan_dir, *root_dir;
  int tmp_tracked;     /* sqlenvfs_tmp_track's handle of tmp, or -1 */
  SqlenvfsRoot *plan_root, *root;
  const SqlenvfsRoot *room;  /* sqlenvfs_remote_set_room's root, or NULL (not owned) */
  GHashTable *fetched; /* keys fetched (into plan/ or root/) */
  gboolean planned_small;
  gboolean cache_mode; /* root/ is a persistent cache (mount --remote) */
  GMutex cache_lock;
  guint conns;
  gsize range_bytes;
  SqlenvfsRemoteStats stats;
  guint64 requests_done; /* of the clients freed, and the main one */
  /* mount --remote: sealed segments filled on demand (Lazy, below). */
  GHashTable *lazy;      /* local path -> Lazy *; fixed once the cache is synced */
  GMutex lazy_lock;      /* the Lazy's state and lazy_s3; taken before cache_lock */
  SqlenvfsS3 *lazy_s3;
  guint64 lazy_bytes;    /* record bytes fetched on demand (under cache_lock) */
  guint64 cache_max;     /* the bound last given (0: none yet), under cache_lock */
  /* mount --remote: sealed segments' summaries filled on demand (LazySum). */
  GHashTable *lazy_sums; /* local path -> LazySum *, fixed once the cache is synced */
  SqlenvfsS3 *sum_s3[SUM_CONNS]; /* the connections of sum_run (under lazy_lock) */
  gboolean is_hooked;    /* the archive's fetch hook is ours */
  int lock_fd;           /* the cache's lock (cache mode), or -1 */
  char *verify;          /* "`sqlenvfs verify --remote URL`", for advice in messages */
  GPtrArray *lost;       /* Lost *, in the order found, one per key */
  gboolean holes_trusted; /* the archives under @root_dir read its holes files */
};

/* A sealed segment of the replica read on demand by mount --remote: its
 * cache file is sparse, of the object's size; @have says which records
 * (by index k: the record first_seq + k) are in it, fetched with a ranged
 * GET and checked whole against their index entry and crc32 before they
 * were written there. Lives as long as the session (a new mount starts
 * from an empty file). */
typedef struct {
  char *key, *where, *path;
  const SqlenvfsS3Object *obj;
  guint64 number, size;
  GArray *entries;       /* its index entries (the Seg's), contiguous from 64 to size */
  guint8 *have;          /* per record */
  gboolean have_head;    /* the 64-byte segment header */
  int fd;                /* open for writing on path */
} Lazy;

static void
lazy_free(gpointer p)
{
  Lazy *lz = p;
  if (lz->fd >= 0)
    close(lz->fd);
  g_free(lz->key);
  g_free(lz->where);
  g_free(lz->path);
  g_array_unref(lz->entries);
  g_free(lz->have);
  g_free(lz);
}

/* A sealed segment's summary read on demand by mount --remote: its cache
 * file is sparse, of the object's size; @have holds the byte ranges in it
 * (sorted, disjoint, not adjacent). The mount's start fetches its first
 * SUM_PREFIX bytes (the head, and mostly the size changes); the other
 * parts come with a ranged GET when a reader first reads them, whole, and
 * each part whole in what came is checked against the crc32 the head
 * gives it before its bytes are marked present (sum_take). */
typedef struct {
  char *key, *where, *path;
  guint64 number, size;
  Db *db;
  guint pos;             /* in db->sums */
  GArray *have;          /* guint64 pairs [a, b) */
  gboolean has_layout;   /* version 2, its head checked: bound and crcs hold */
  guint64 bound[SUM_N_PARTS + 1];
  guint32 crcs[SUM_N_PARTS]; /* crcs[0] unused (the head is checked at the start) */
} LazySum;

static void
lazy_sum_free(gpointer p)
{
  LazySum *ls = p;
  g_free(ls->key);
  g_free(ls->where);
  g_free(ls->path);
  g_array_unref(ls->have);
  g_free(ls);
}

static void
seg_free(gpointer p)
{
  Seg *s = p;
  if (s->parts)
    g_array_unref(s->parts);
  if (s->entries)
    g_array_unref(s->entries);
  g_free(s);
}

static void
db_free(gpointer p)
{
  Db *d = p;
  g_free(d->name);
  g_ptr_array_unref(d->segs);
  if (d->sums)
    g_ptr_array_unref(d->sums);
  g_free(d);
}

static void
copy_free(gpointer p)
{
  Copy *c = p;
  g_free(c->name);
  g_ptr_array_unref(c->files);
  g_free(c);
}

void
sqlenvfs_remote_free(SqlenvfsRemote *r)
{
  if (r == NULL)
    return;
  g_clear_pointer(&r->root, sqlenvfs_root_free);
  g_clear_pointer(&r->plan_root, sqlenvfs_root_free);
  if (r->holes_trusted)
    sqlenvfs_archive_untrust_holes_under(r->root_dir);
  if (r->tmp != NULL) {
    g_autoptr(GError) err = NULL;
    if (!sqlenvfs_rm_rf(r->tmp, &err))
      g_warning("remove %s: %s", r->tmp, err->message);
    sqlenvfs_tmp_untrack(r->tmp_tracked);
  }
  g_free(r->tmp);
  g_free(r->verify);
  if (r->lost)
    g_ptr_array_unref(r->lost);
  g_free(r->plan_dir);
  g_free(r->root_dir);
  if (r->fetched)
    g_hash_table_unref(r->fetched);
  if (r->copies)
    g_ptr_array_unref(r->copies);
  if (r->dbs)
    g_hash_table_unref(r->dbs);
  if (r->objects)
    g_ptr_array_unref(r->objects);
  if (r->is_hooked)
    sqlenvfs_archive_set_fetch_hook(NULL, NULL);
  if (r->lazy)
    g_hash_table_unref(r->lazy);
  if (r->lazy_sums)
    g_hash_table_unref(r->lazy_sums);
  g_clear_pointer(&r->lazy_s3, sqlenvfs_s3_free);
  for (guint i = 0; i < G_N_ELEMENTS(r->sum_s3); i++)
    g_clear_pointer(&r->sum_s3[i], sqlenvfs_s3_free);
  if (r->lock_fd >= 0)
    close(r->lock_fd);
  g_clear_pointer(&r->s3, sqlenvfs_s3_free);
  g_clear_pointer(&r->conf, sqlenvfs_replica_conf_free);
  if (r->dbs != NULL) {
    g_mutex_clear(&r->cache_lock);
    g_mutex_clear(&r->lazy_lock);
  }
  g_free(r);
}

void
sqlenvfs_remote_set_room(SqlenvfsRemote *r, const SqlenvfsRoot *root)
{
  g_return_if_fail(r != NULL);
  r->room = root;
}

const char *
sqlenvfs_remote_root_dir(const SqlenvfsRemote *r)
{
  return r->root_dir;
}

const char *
sqlenvfs_remote_url(const SqlenvfsRemote *r)
{
  return r->conf->url;
}

void
sqlenvfs_remote_set_parallel(SqlenvfsRemote *r, guint connections, gsize range_bytes)
{
  r->conns = CLAMP(connections, 1, 16);
  r->range_bytes = MAX(range_bytes, 64 * 1024);
}

void
sqlenvfs_remote_get_stats(SqlenvfsRemote *r, SqlenvfsRemoteStats *stats)
{
  g_mutex_lock(&r->cache_lock);
  *stats = r->stats;
  g_mutex_unlock(&r->cache_lock);
}

char *
sqlenvfs_remote_describe_fetched(SqlenvfsRemote *r)
{
  SqlenvfsRemoteStats st;
  g_autofree char *all = NULL, *rec = NULL, *sum = NULL, *blk = NULL;
  sqlenvfs_remote_get_stats(r, &st);
  all = sqlenvfs_format_size(st.bytes);
  rec = sqlenvfs_format_size(st.record_bytes);
  sum = sqlenvfs_format_size(st.sum_bytes);
  blk = sqlenvfs_format_size(st.block_bytes);
  return g_strdup_printf("%" G_GUINT64_FORMAT " bytes (%s) in %u GETs and %u LIST from %s, of "
                         "which records on demand %s in %u GETs, summaries' parts %s in %u "
                         "GETs, base blocks %s in %u GETs",
                         st.bytes, all, st.n_gets, st.n_lists, r->conf->url, rec, st.n_record_gets,
                         sum, st.n_sum_gets, blk, st.n_block_gets);
}

#define SNAPSHOT_ADVICE "`sqlenvfs snapshot` on the machine that ships this replica"

char *
sqlenvfs_remote_keyify(const SqlenvfsRemote *r, const char *text)
{
  g_autofree char *url = g_str_has_suffix(r->conf->url, "/") ? g_strdup(r->conf->url)
                                                              : g_strconcat(r->conf->url, "/", NULL);
  GString *s = g_string_new(text ? text : "");
  /* The directories as opened (absolute, remote_open) and as the roots
   * name them in the engine's messages, should those differ. */
  const char *dirs[] = { r->root_dir, r->plan_dir, r->root ? sqlenvfs_root_dir(r->root) : NULL,
                         r->plan_root ? sqlenvfs_root_dir(r->plan_root) : NULL };
  for (guint i = 0; i < G_N_ELEMENTS(dirs); i++) {
    g_autofree char *prod = dirs[i] ? g_build_filename(dirs[i], "backups", "prod", NULL) : NULL;
    g_autofree char *from = prod ? g_strconcat(prod, "/", NULL) : NULL;
    if (from != NULL)
      g_string_replace(s, from, url, 0);
  }
  /* The engine's advice names the commands of a local root: a replica is
   * checked with verify --remote, and its new bases come from the machine
   * that ships it. */
  g_string_replace(s, "`sqlenvfs verify`", r->verify, 0);
  /* A text said here already (an error, then the log line that shows it)
   * is not said twice: the long form is set aside while the short one is
   * replaced. */
  g_string_replace(s, SNAPSHOT_ADVICE, "\x01", 0);
  g_string_replace(s, "`sqlenvfs snapshot`", SNAPSHOT_ADVICE, 0);
  g_string_replace(s, "\x01", SNAPSHOT_ADVICE, 0);
  return g_string_free(s, FALSE);
}

/* The error @e with its paths as keys (keyify). */
static void
keyify_error(const SqlenvfsRemote *r, GError *e)
{
  if (e != NULL) {
    char *m = sqlenvfs_remote_keyify(r, e->message);
    g_free(e->message);
    e->message = m;
  }
}

/* ------------------------------------------------------------------ */
/* The listing                                                          */

static gboolean
is_digits(const char *s, gsize n)
{
  if (strlen(s) != n)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isdigit(s[i]))
      return FALSE;
  return TRUE;
}

/* A path component that is safe to create locally. */
static gboolean
safe_component(const char *s)
{
  return s[0] != '\0' && s[0] != '.' && strchr(s, '/') == NULL;
}

static Db *
db_get(SqlenvfsRemote *r, const char *name)
{
  Db *d = g_hash_table_lookup(r->dbs, name);
  if (d == NULL) {
    d = g_new0(Db, 1);
    d->name = g_strdup(name);
    d->segs = g_ptr_array_new_with_free_func(seg_free);
    g_hash_table_insert(r->dbs, d->name, d);
  }
  return d;
}

static Seg *
seg_get(Db *d, guint64 number)
{
  for (guint i = 0; i < d->segs->len; i++) {
    Seg *s = d->segs->pdata[i];
    if (s->number == number)
      return s;
  }
  Seg *s = g_new0(Seg, 1);
  s->number = number;
  s->parts = g_array_new(FALSE, FALSE, sizeof(Part));
  g_ptr_array_add(d->segs, s);
  return s;
}

static gint
cmp_seg(gconstpointer pa, gconstpointer pb)
{
  const Seg *a = *(Seg *const *)pa, *b = *(Seg *const *)pb;
  return a->number < b->number ? -1 : a->number > b->number;
}

static gint
cmp_part(gconstpointer pa, gconstpointer pb)
{
  const Part *a = pa, *b = pb;
  return a->a < b->a ? -1 : a->a > b->a;
}

static void
classify_wal(SqlenvfsRemote *r, SqlenvfsS3Object *o, char **parts)
{
  /* parts: "wal_archives", db, file */
  const char *db = parts[1], *f = parts[2];
  char num[17];
  Db *d;

  if (!sqlenvfs_db_name_is_valid(db))
    return;
  d = db_get(r, db);
  if (g_str_equal(f, "alive")) {
    d->alive = o;
    return;
  }
  if (g_str_equal(f, "PRUNED")) {
    d->pruned = o;
    return;
  }
  if (strlen(f) < 20)
    return;
  memcpy(num, f, 16);
  num[16] = '\0';
  if (!is_digits(num, 16))
    return;
  {
    guint64 n = g_ascii_strtoull(num, NULL, 10);
    const char *ext = f + 16;
    if (g_str_equal(ext, ".seg"))
      seg_get(d, n)->seg = o;
    else if (g_str_equal(ext, ".idx"))
      seg_get(d, n)->idx = o;
    else if (g_str_equal(ext, ".sum"))
      seg_get(d, n)->sum = o;
    else if (g_str_has_prefix(ext, ".seg.part-") && strlen(ext) == 10 + 16 + 1 + 16) {
      char a[17], b[17];
      Part p;
      memcpy(a, ext + 10, 16);
      a[16] = '\0';
      memcpy(b, ext + 27, 16);
      b[16] = '\0';
      if (ext[26] != '-' || !is_digits(a, 16) || !is_digits(b, 16))
        return;
      p.a = g_ascii_strtoull(a, NULL, 10);
      p.b = g_ascii_strtoull(b, NULL, 10);
      p.obj = o;
      if (p.b <= p.a)
        return;
      g_array_append_val(seg_get(d, n)->parts, p);
    }
  }
}

static void
classify(SqlenvfsRemote *r)
{
  g_autoptr(GHashTable) copies = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = 0; i < r->objects->len; i++) {
    SqlenvfsS3Object *o = r->objects->pdata[i];
    g_auto(GStrv) parts = g_strsplit(o->key, "/", -1);
    guint n = g_strv_length(parts);
    gboolean ok = TRUE;
    for (guint k = 0; k < n; k++)
      ok = ok && safe_component(parts[k]);
    if (!ok)
      continue;
    if (n == 3 && g_str_equal(parts[0], "wal_archives")) {
      classify_wal(r, o, parts);
    } else if (n == 3 && (g_str_equal(parts[0], "daily") || g_str_equal(parts[0], "snapshots"))) {
      SqlenvfsCopyKind kind = parts[0][0] == 'd' ? SQLENVFS_KIND_BACKUP : SQLENVFS_KIND_SNAPSHOT;
      g_autofree char *id = g_strdup_printf("%s/%s", parts[0], parts[1]);
      gint64 when;
      Copy *c;
      if (!sqlenvfs_time_parse_name(parts[1], &when))
        continue;
      c = g_hash_table_lookup(copies, id);
      if (c == NULL) {
        c = g_new0(Copy, 1);
        c->kind = kind;
        c->name = g_strdup(parts[1]);
        c->files = g_ptr_array_new();
        g_ptr_array_add(r->copies, c);
        g_hash_table_insert(copies, g_steal_pointer(&id), c);
      }
      if (g_str_equal(parts[2], "MANIFEST"))
        c->manifest = o;
      else if (g_str_has_suffix(parts[2], ".db"))
        g_ptr_array_add(c->files, o);
    }
  }
  /* A copy without its MANIFEST is incomplete (uploaded last): ignored. */
  for (guint i = r->copies->len; i > 0; i--) {
    Copy *c = r->copies->pdata[i - 1];
    if (c->manifest == NULL)
      g_ptr_array_remove_index(r->copies, i - 1);
  }
  {
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, r->dbs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
      Db *d = v;
      g_ptr_array_sort(d->segs, cmp_seg);
      for (guint i = 0; i < d->segs->len; i++)
        g_array_sort(((Seg *)d->segs->pdata[i])->parts, cmp_part);
    }
  }
}

static gboolean
make_dirs(const char *base, GError **error)
{
  static const char *const sub[] = { "data/prod", "backups/prod/daily", "backups/prod/snapshots",
                                     "backups/prod/wal_archives", ".sqlenvfs", ".cache" };
  for (guint i = 0; i < G_N_ELEMENTS(sub); i++) {
    g_autofree char *p = g_build_filename(base, sub[i], NULL);
    if (!sqlenvfs_mkdir_p(p, 0700, error))
      return FALSE;
  }
  return TRUE;
}

/* The file that makes a directory a replica's cache: sqlenvfs writes it
 * when it makes the cache, and no root has it. */
#define CACHE_MARKER ".sqlenvfs/replica-cache"
/* What it holds: this, the URL, a newline; then "owner=", the ETag of the
 * replica's OWNER object ("none" without one), a newline: a replica put
 * at the same URL by another root has objects of the same names and sizes,
 * which the cache must not take for its own. */
#define CACHE_MARKER_HEAD "sqlenvfs replica cache\nurl="
#define CACHE_MARKER_OWNER "owner="

/* Whether @path (absolute) is a directory holding a root: data/prod in it. */
static gboolean
holds_root(const char *path)
{
  g_autofree char *prod = g_build_filename(path, "data", "prod", NULL);
  return g_file_test(prod, G_FILE_TEST_IS_DIR);
}

/* Whether the directory @dir holds what only a root has, whatever marks it
 * as a cache: a file in data/prod, schema.sql, or a sqlenvfs.conf other
 * than the one a cache is given (its [cache] bounds). */
static gboolean
is_root_not_cache(const char *dir)
{
  g_autofree char *prod = g_build_filename(dir, "data", "prod", NULL);
  g_autofree char *schema = g_build_filename(dir, "schema.sql", NULL);
  g_autofree char *conf = g_build_filename(dir, "sqlenvfs.conf", NULL);
  g_autofree char *text = NULL;
  g_autoptr(GDir) d = g_dir_open(prod, 0, NULL);
  struct stat st;

  if ((d != NULL && g_dir_read_name(d) != NULL) || lstat(schema, &st) == 0)
    return TRUE;
  if (lstat(conf, &st) != 0)
    return FALSE;
  return !S_ISREG(st.st_mode) || !g_file_get_contents(conf, &text, NULL, NULL) ||
         !g_str_has_prefix(text, "[cache]\nmax-bytes=");
}

/* @path made absolute with every directory that exists resolved (symbolic
 * links and ".." followed as the kernel will follow them), the part that
 * does not exist yet appended: the one path a cache is checked and made
 * at. NULL and an error when that part holds "." or "..". */
static char *
resolve_cache_dir(const char *path, GError **error)
{
  g_autofree char *cwd = g_get_current_dir();
  g_autofree char *head = g_path_is_absolute(path) ? g_strdup(path)
                                                   : g_build_filename(cwd, path, NULL);
  GString *tail = g_string_new(NULL);
  gsize n = strlen(head);
  char *real;
  struct stat st;

  while (n > 1 && head[n - 1] == '/') /* "cache/" is "cache" */
    head[--n] = '\0';
  while (stat(head, &st) != 0 && strcmp(head, "/") != 0) {
    g_autofree char *base = g_path_get_basename(head);
    char *up = g_path_get_dirname(head);
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "cache %s: \"%s\" after a directory that does not exist (nothing was "
                  "written; give -o cache=DIR a path without it)", path, base);
      g_free(up);
      g_string_free(tail, TRUE);
      return NULL;
    }
    g_string_prepend(tail, base);
    g_string_prepend_c(tail, '/');
    g_free(head);
    head = up;
  }
  real = realpath(head, NULL);
  if (real == NULL) {
    sqlenvfs_error_errno(error, errno, "resolve the cache's directory", head);
    g_string_free(tail, TRUE);
    return NULL;
  }
  {
    char *out = g_strconcat(strcmp(real, "/") == 0 && tail->len > 0 ? "" : real, tail->str,
                            NULL);
    free(real);
    g_string_free(tail, TRUE);
    return out;
  }
}

/* Whether the directory @d (@dir) holds anything but what opening a new
 * cache puts there first: .sqlenvfs/ with its lock alone. */
static gboolean
has_other_entries(GDir *d, const char *dir)
{
  const char *name;
  while ((name = g_dir_read_name(d)) != NULL) {
    g_autofree char *state = NULL;
    g_autoptr(GDir) sd = NULL;
    const char *first;
    if (strcmp(name, ".sqlenvfs") != 0)
      return TRUE;
    state = g_build_filename(dir, name, NULL);
    sd = g_dir_open(state, 0, NULL);
    if (sd == NULL)
      return TRUE;
    first = g_dir_read_name(sd);
    if (first != NULL && (strcmp(first, "remote.lock") != 0 || g_dir_read_name(sd) != NULL))
      return TRUE;
  }
  return FALSE;
}

/* Whether the directory @dir (absolute) may be emptied and refilled as the
 * cache of the replica @url: made by sqlenvfs for it (its marker names
 * @url), made by an earlier sqlenvfs (its plan directory, no marker yet),
 * empty, or not there yet; and no directory above it is a root. A cache is
 * kept equal to the replica, files it did not fetch removed, so a root or
 * a directory of other files given by mistake would lose them: refused
 * before anything is written. */
/* Whether the marker text @text names the replica @url: the same bucket
 * and prefix (s3://b/p/ and s3://b/p are one replica). */
static gboolean
marker_names(const char *text, const char *url)
{
  static const char head[] = CACHE_MARKER_HEAD;
  g_autofree char *bucket = NULL, *prefix = NULL, *mbucket = NULL, *mprefix = NULL;
  g_autofree char *named = NULL;
  gsize len = strlen(text);
  const char *end;

  if (!g_str_has_prefix(text, head) || len == sizeof head - 1 || text[len - 1] != '\n')
    return FALSE;
  end = strchr(text + sizeof head - 1, '\n');
  named = g_strndup(text + sizeof head - 1, (gsize)(end - (text + sizeof head - 1)));
  /* After the URL, an owner line or nothing. */
  if (end[1] != '\0' && (!g_str_has_prefix(end + 1, CACHE_MARKER_OWNER) ||
                         strchr(end + 1, '\n') != text + len - 1))
    return FALSE;
  if (!sqlenvfs_replica_conf_parse_url(url, &bucket, &prefix, NULL) ||
      !sqlenvfs_replica_conf_parse_url(named, &mbucket, &mprefix, NULL))
    return strcmp(named, url) == 0;
  return strcmp(bucket, mbucket) == 0 && strcmp(prefix, mprefix) == 0;
}

/* The owner line's value of marker text @text, or NULL when it has none
 * (a marker written before it was kept). */
static char *
marker_owner(const char *text)
{
  const char *o = strstr(text, "\n" CACHE_MARKER_OWNER);
  const char *end;
  if (o == NULL)
    return NULL;
  o += 1 + strlen(CACHE_MARKER_OWNER);
  end = strchr(o, '\n');
  return end != NULL ? g_strndup(o, (gsize)(end - o)) : NULL;
}

/* @owner: the ETag of the replica's OWNER now ("none": it has none). */
static gboolean
cache_dir_check(const char *dir, const char *url, const char *owner, GError **error)
{
  g_autofree char *marker = g_build_filename(dir, CACHE_MARKER, NULL);
  g_autofree char *plan = g_build_filename(dir, ".sqlenvfs", "remote", NULL);
  g_autofree char *up = g_path_get_dirname(dir);
  g_autofree char *text = NULL, *was = NULL;
  struct stat st;

  /* The nearest directory above it that exists, then every one up. */
  while (lstat(up, &st) != 0 && strcmp(up, "/") != 0) {
    char *next = g_path_get_dirname(up);
    g_free(up);
    up = next;
  }
  {
    char *real = realpath(up, NULL);
    g_free(up);
    up = g_strdup(real != NULL ? real : "/");
    free(real);
  }
  for (;;) {
    char *next;
    if (holds_root(up)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "cache %s: it is inside %s, which holds a root (or another replica's "
                  "cache); a cache is emptied and refilled from the replica (nothing was "
                  "written; give -o cache=DIR a directory of its own, outside any root)",
                  dir, up);
      return FALSE;
    }
    if (strcmp(up, "/") == 0)
      break;
    next = g_path_get_dirname(up);
    g_free(up);
    up = next;
  }
  if (lstat(dir, &st) != 0) {
    if (errno != ENOENT)
      return sqlenvfs_error_errno(error, errno, "check the cache", dir);
    return TRUE;
  }
  if (!S_ISDIR(st.st_mode)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "cache %s: it is %s, not a directory (nothing was written; give -o cache=DIR "
                "a new or empty directory)", dir,
                S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
    return FALSE;
  }
  if (is_root_not_cache(dir)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "cache %s: that is a root (it holds production databases, schema.sql or "
                "settings of its own), not a replica's cache; a cache is emptied and refilled "
                "from the replica (nothing was written; give -o cache=DIR a new or empty "
                "directory outside any root)", dir);
    return FALSE;
  }
  if (g_file_get_contents(marker, &text, NULL, NULL)) {
    if (!marker_names(text, url)) {
      g_autofree char *shown = g_strescape(text, NULL);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "cache %s: it is the cache of another replica (%s says \"%s\"), not of %s "
                  "(nothing was written; give this replica a cache of its own with -o "
                  "cache=DIR)", dir, marker, shown, url);
      return FALSE;
    }
    was = marker_owner(text);
    if (was != NULL && strcmp(was, owner) != 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "cache %s: it holds the files of the replica that was at %s before: its "
                  "OWNER object is another now (%s, was %s), so another root ships there, and "
                  "files of the same names are not the same (nothing was used; remove %s, or "
                  "give -o cache=DIR a new directory)", dir, url, owner, was, dir);
      return FALSE;
    }
    return TRUE;
  }
  if (holds_root(dir) && !g_file_test(plan, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "cache %s: that is a root (it holds data/prod), not a replica's cache; a cache "
                "is emptied and refilled from the replica (nothing was written; give -o "
                "cache=DIR a new or empty directory outside any root)", dir);
    return FALSE;
  }
  if (!g_file_test(plan, G_FILE_TEST_IS_DIR)) {
    g_autoptr(GDir) d = g_dir_open(dir, 0, error);
    if (d == NULL)
      return FALSE;
    if (has_other_entries(d, dir)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "cache %s: it holds files and is not a replica's cache; a cache is emptied "
                  "and refilled from the replica (nothing was written; give -o cache=DIR a new "
                  "or empty directory)", dir);
      return FALSE;
    }
  }
  return TRUE;
}

static SqlenvfsRemote *remote_open(const char *url, const char *conf_file,
                                   const char *tmp_parent, const char *cache_dir,
                                   GError **error);

SqlenvfsRemote *
sqlenvfs_remote_open(const char *url, const char *conf_file, const char *tmp_parent,
                     GError **error)
{
  return remote_open(url, conf_file, tmp_parent, NULL, error);
}

SqlenvfsRemote *
sqlenvfs_remote_open_cache(const char *url, const char *conf_file, const char *cache_dir,
                           GError **error)
{
  return remote_open(url, conf_file, NULL, cache_dir, error);
}

static SqlenvfsRemote *
remote_open(const char *url, const char *conf_file, const char *tmp_parent,
            const char *cache_dir, GError **error)
{
  g_autoptr(SqlenvfsRemote) r = g_new0(SqlenvfsRemote, 1);
  g_autoptr(GError) local = NULL;
  g_autoptr(GBytes) format = NULL;
  g_autofree char *parent = NULL;
  g_autofree char *name = NULL;
  guint pages = 0;
  gsize len = 0;
  const char *data;
  gboolean have_format = FALSE;

  r->lock_fd = -1;
  r->tmp_tracked = -1;
  r->conns = 4;
  r->range_bytes = 8 * 1024 * 1024;
  if (sqlenvfs_testhook_remote_range_bytes() > 0)
    r->range_bytes = MAX(sqlenvfs_testhook_remote_range_bytes(), 65536);
  r->conf = sqlenvfs_replica_conf_load(conf_file, url, error);
  if (r->conf == NULL)
    return NULL;
  r->verify = g_strdup_printf("`sqlenvfs verify --remote %s`", r->conf->url);
  r->s3 = sqlenvfs_s3_new(r->conf, error);
  if (r->s3 == NULL)
    return NULL;
  r->objects = sqlenvfs_s3_list(r->s3, "", 0, &pages, &local);
  r->stats.n_lists += pages;
  if (r->objects == NULL) {
    /* The client's message says what to check for 403, 404 and network
     * failures. */
    g_set_error(error, SQLENVFS_ERROR, local->code, "read replica %s: %s", r->conf->url,
                local->message);
    return NULL;
  }
  r->dbs = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, db_free);
  r->copies = g_ptr_array_new_with_free_func(copy_free);
  r->fetched = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  r->lost = g_ptr_array_new_with_free_func(lost_free);
  for (guint i = 0; i < r->objects->len; i++)
    if (g_str_equal(((SqlenvfsS3Object *)r->objects->pdata[i])->key, "FORMAT"))
      have_format = TRUE;
  if (!have_format) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read replica %s: it has no FORMAT object, so it is not a sqlenvfs replica "
                "(%u objects under it; check the URL and its prefix)",
                r->conf->url, r->objects->len);
    return NULL;
  }
  format = sqlenvfs_s3_get(r->s3, "FORMAT", 0, -1, NULL, error);
  if (format == NULL)
    return NULL;
  data = g_bytes_get_data(format, &len);
  r->stats.n_gets++;
  r->stats.bytes += len;
  if (len != strlen(SQLENVFS_REPLICA_FORMAT) ||
      memcmp(data, SQLENVFS_REPLICA_FORMAT, len) != 0) {
    g_autofree char *shown = g_strescape(len > 64 ? "(more than 64 bytes)" :
                                         g_strndup(data ? data : "", len), NULL);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read replica %s: its FORMAT says \"%s\", not \"sqlenvfs-replica 1\\n\": it was "
                "written by another program or version (use a sqlenvfs that reads it, or check "
                "the URL)",
                r->conf->url, shown);
    return NULL;
  }
  classify(r);

  g_mutex_init(&r->cache_lock);
  g_mutex_init(&r->lazy_lock);
  r->lazy = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, lazy_free);
  r->lazy_sums = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, lazy_sum_free);
  if (cache_dir != NULL) {
    g_autofree char *lock = NULL;
    g_autofree char *state = NULL;
    g_autofree char *marker = NULL;
    g_autofree char *marker_text = NULL;
    const char *owner = NULL;
    r->cache_mode = TRUE;
    /* Its start fetches many small objects: more connections at once. */
    r->conns = 16;
    /* Absolute, as the roots opened on them name their files: messages
     * show the replica's keys in their place (sqlenvfs_remote_keyify). */
    r->root_dir = resolve_cache_dir(cache_dir, error);
    if (r->root_dir == NULL)
      return NULL;
    r->plan_dir = g_build_filename(r->root_dir, ".sqlenvfs", "remote", NULL);
    marker = g_build_filename(r->root_dir, CACHE_MARKER, NULL);
    for (guint i = 0; i < r->objects->len && owner == NULL; i++)
      if (g_str_equal(((SqlenvfsS3Object *)r->objects->pdata[i])->key, "OWNER"))
        owner = ((SqlenvfsS3Object *)r->objects->pdata[i])->etag;
    if (owner == NULL || *owner == '\0' || strchr(owner, '\n') != NULL)
      owner = "none";
    marker_text = g_strdup_printf(CACHE_MARKER_HEAD "%s\n" CACHE_MARKER_OWNER "%s\n",
                                  r->conf->url, owner);
    lock = g_build_filename(r->root_dir, ".sqlenvfs", "remote.lock", NULL);
    state = g_build_filename(r->root_dir, ".sqlenvfs", NULL);
    if (!cache_dir_check(r->root_dir, r->conf->url, owner, error) ||
        !sqlenvfs_mkdir_p(state, 0700, error))
      return NULL;
    /* One session per cache: its segment files are filled on demand by
     * the session that made them. The check again under the lock: another
     * mount may have made it another replica's meanwhile. */
    r->lock_fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (r->lock_fd < 0) {
      sqlenvfs_error_errno(error, errno, "open the cache's lock", lock);
      return NULL;
    }
    if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      g_set_error(error, SQLENVFS_ERROR,
                  e == EWOULDBLOCK ? SQLENVFS_ERROR_BUSY : SQLENVFS_ERROR_IO,
                  "cache %s: %s (another mount --remote uses it: unmount that one, or give "
                  "this mount a cache of its own with -o cache=DIR)",
                  r->root_dir, e == EWOULDBLOCK ? "in use" : g_strerror(e));
      return NULL;
    }
    if (!cache_dir_check(r->root_dir, r->conf->url, owner, error) ||
        !make_dirs(r->plan_dir, error) ||
        !make_dirs(r->root_dir, error) ||
        /* Given as a directory others may read: made 0700, as a cache
         * sqlenvfs makes is (it holds the replica's data). */
        !sqlenvfs_narrow_dir(r->root_dir, 0700, error) ||
        !sqlenvfs_write_file_atomic(marker, marker_text, strlen(marker_text), 0600, error))
      return NULL;
    sqlenvfs_archive_trust_holes_under(r->root_dir);
    r->holes_trusted = TRUE;
    r->plan_root = sqlenvfs_root_open(r->plan_dir, SQLENVFS_ROOT_MUST_EXIST, error);
    if (r->plan_root == NULL)
      return NULL;
    r->root = sqlenvfs_root_open(r->root_dir, SQLENVFS_ROOT_MUST_EXIST, error);
    return r->root ? g_steal_pointer(&r) : NULL;
  }
  /* Absolute (a relative --output gives "."), as the roots opened below
   * name their files: messages show the replica's keys in their place. */
  parent = g_canonicalize_filename(tmp_parent ? tmp_parent : g_get_tmp_dir(), NULL);
  if (sqlenvfs_tmp_leftovers(parent, ".tmp-remote", TRUE, TRUE, NULL, &local) < 0) {
    g_propagate_error(error, g_steal_pointer(&local));
    return NULL;
  }
  name = g_strdup_printf(".tmp-remote-%d", (int)getpid());
  r->tmp = g_build_filename(parent, name, NULL);
  if (g_file_test(r->tmp, G_FILE_TEST_EXISTS) && !sqlenvfs_rm_rf(r->tmp, error)) {
    g_clear_pointer(&r->tmp, g_free);
    return NULL;
  }
  /* What it fetches may be a whole base: an interrupted command line
   * removes it (util.h). Tracked before it is made, so that no signal in
   * between leaves it behind. */
  r->tmp_tracked = sqlenvfs_tmp_track(r->tmp, TRUE);
  if (mkdir(r->tmp, 0700) != 0) {
    int e = errno;
    sqlenvfs_tmp_untrack(r->tmp_tracked);
    r->tmp_tracked = -1;
    g_clear_pointer(&r->tmp, g_free);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "create %s/%s: %s (choose a writable place for the output)", parent, name,
                g_strerror(e));
    return NULL;
  }
  r->plan_dir = g_build_filename(r->tmp, "plan", NULL);
  r->root_dir = g_build_filename(r->tmp, "root", NULL);
  if (!make_dirs(r->plan_dir, error) || !make_dirs(r->root_dir, error))
    return NULL;
  /* Only this tree's archives read the holes files settle_parts writes. */
  sqlenvfs_archive_trust_holes_under(r->root_dir);
  r->holes_trusted = TRUE;
  r->plan_root = sqlenvfs_root_open(r->plan_dir, SQLENVFS_ROOT_MUST_EXIST, error);
  if (r->plan_root == NULL)
    return NULL;
  r->root = sqlenvfs_root_open(r->root_dir, SQLENVFS_ROOT_MUST_EXIST, error);
  if (r->root == NULL)
    return NULL;
  return g_steal_pointer(&r);
}

static gint
cmp_str_ptr(gconstpointer a, gconstpointer b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *
sqlenvfs_remote_dbs(const SqlenvfsRemote *r)
{
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  GHashTableIter it;
  gpointer k;
  g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
  g_hash_table_iter_init(&it, r->dbs);
  while (g_hash_table_iter_next(&it, &k, NULL))
    if (g_hash_table_add(seen, k))
      g_ptr_array_add(out, g_strdup(k));
  for (guint i = 0; i < r->copies->len; i++) {
    Copy *c = r->copies->pdata[i];
    for (guint j = 0; j < c->files->len; j++) {
      const char *key = ((SqlenvfsS3Object *)c->files->pdata[j])->key;
      g_autofree char *base = g_path_get_basename(key);
      base[strlen(base) - 3] = '\0';
      if (sqlenvfs_db_name_is_valid(base) && !g_hash_table_contains(seen, base)) {
        g_ptr_array_add(out, g_strdup(base));
        g_hash_table_add(seen, out->pdata[out->len - 1]);
      }
    }
  }
  g_ptr_array_sort(out, cmp_str_ptr);
  return out;
}

char *
sqlenvfs_remote_resolve_db(const SqlenvfsRemote *r, const char *name, GError **error)
{
  g_autoptr(GPtrArray) dbs = sqlenvfs_remote_dbs(r);
  g_autofree char *all = NULL;

  if (name != NULL) {
    if (!sqlenvfs_db_name_is_valid(name)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "'%s' is not a supported database name: %s", name,
                  sqlenvfs_db_name_problem(name));
      return NULL;
    }
    for (guint i = 0; i < dbs->len; i++)
      if (g_str_equal(dbs->pdata[i], name))
        return g_strdup(name);
    g_ptr_array_add(dbs, NULL);
    all = g_strjoinv(", ", (char **)dbs->pdata);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "replica %s has no archive or copy of database %s (%s%s; check --db)",
                r->conf->url, name, dbs->len > 1 ? "it holds: " : "it holds none",
                dbs->len > 1 ? all : "");
    return NULL;
  }
  if (dbs->len == 1)
    return g_strdup(dbs->pdata[0]);
  for (guint i = 0; i < dbs->len; i++)
    if (g_str_equal(dbs->pdata[i], "app"))
      return g_strdup("app");
  g_ptr_array_add(dbs, NULL);
  all = g_strjoinv(", ", (char **)dbs->pdata);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
              "replica %s: %s; name one with --db", r->conf->url,
              dbs->len <= 1 ? "it holds no database" : all);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Fetching                                                             */

typedef struct {
  const SqlenvfsS3Object *obj;
  char *path;        /* destination file */
  guint64 dst_off;   /* where the object's bytes go in it */
  gint64 len;        /* > 0: only the object's first len bytes (a segment's header) */
} Item;

typedef struct {
  guint item;
  gint64 off, len;   /* len < 0: the whole object in one GET */
  int fd;
} Range;

typedef struct {
  SqlenvfsRemote *r;
  GPtrArray *items;  /* Item * */
  GArray *ranges;    /* Range */
  gint next;         /* atomic */
  gint failed;       /* atomic */
  GMutex lock;
  GError *error;
  guint64 bytes, gets, requests;
} Batch;

static void
item_free(gpointer p)
{
  Item *it = p;
  g_free(it->path);
  g_free(it);
}

static void
batch_fail(Batch *b, GError *err)
{
  g_mutex_lock(&b->lock);
  if (b->error == NULL)
    b->error = err;
  else
    g_error_free(err);
  g_mutex_unlock(&b->lock);
  g_atomic_int_set(&b->failed, 1);
}

static gpointer
batch_worker(gpointer user)
{
  Batch *b = user;
  g_autoptr(SqlenvfsS3) s3 = NULL;
  GError *err = NULL;
  SqlenvfsS3Stats st;

  s3 = sqlenvfs_s3_new(b->r->conf, &err);
  if (s3 == NULL) {
    batch_fail(b, err);
    return NULL;
  }
  for (;;) {
    gint i = g_atomic_int_add(&b->next, 1);
    const Range *rg;
    const Item *it;
    g_autoptr(GBytes) data = NULL;
    g_autofree char *where = NULL;
    gsize got = 0;
    const guint8 *p;
    gint64 want;

    if (i >= (gint)b->ranges->len || g_atomic_int_get(&b->failed))
      break;
    rg = &g_array_index(b->ranges, Range, i);
    it = b->items->pdata[rg->item];
    want = rg->len < 0 ? it->obj->size : rg->len;
    data = sqlenvfs_s3_get(s3, it->obj->key, rg->len < 0 ? 0 : rg->off, rg->len, NULL, &err);
    g_mutex_lock(&b->lock);
    b->gets++;
    g_mutex_unlock(&b->lock);
    if (data == NULL) {
      GError *e2 = NULL;
      where = sqlenvfs_s3_describe(s3, it->obj->key);
      /* The server, the network or the credentials: the message says which. */
      if (err->code == SQLENVFS_ERROR_IO || err->code == SQLENVFS_ERROR_PERMISSION)
        e2 = g_error_copy(err);
      else
        g_set_error(&e2, SQLENVFS_ERROR, err->code,
                    "%s (the replica is damaged or changed while it was read: retry, and run "
                    "%s if it persists)",
                    err->message, b->r->verify);
      g_clear_error(&err);
      batch_fail(b, e2);
      break;
    }
    p = g_bytes_get_data(data, &got);
    if ((gint64)got != want) {
      where = sqlenvfs_s3_describe(s3, it->obj->key);
      batch_fail(b, g_error_new(SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                                "get %s: %" G_GSIZE_FORMAT " bytes at offset %" G_GINT64_FORMAT
                                " where its listing gives %" G_GINT64_FORMAT " (the object is "
                                "truncated or was replaced while it was read: retry; if it "
                                "persists the replica is damaged, run %s)",
                                where, got, rg->len < 0 ? (gint64)0 : rg->off, want,
                                b->r->verify));
      break;
    }
    {
      gsize done = 0;
      guint64 at = it->dst_off + (guint64)(rg->len < 0 ? 0 : rg->off);
      while (done < got) {
        ssize_t w = pwrite(rg->fd, p + done, got - done, (off_t)(at + done));
        if (w < 0 && errno == EINTR)
          continue;
        if (w <= 0) {
          int e = errno;
          batch_fail(b, g_error_new(SQLENVFS_ERROR,
                                    e == ENOSPC ? SQLENVFS_ERROR_NOSPACE : SQLENVFS_ERROR_IO,
                                    "write %s: %s (free space there, or write the output "
                                    "elsewhere)",
                                    it->path, g_strerror(w < 0 ? e : EIO)));
          goto out;
        }
        done += (gsize)w;
      }
    }
    g_mutex_lock(&b->lock);
    b->bytes += got;
    g_mutex_unlock(&b->lock);
  }
out:
  sqlenvfs_s3_get_stats(s3, &st);
  g_mutex_lock(&b->lock);
  b->requests += st.n_requests;
  g_mutex_unlock(&b->lock);
  return NULL;
}

/* The MD5 of @len bytes of @fd at @off, as hex. */
static char *
file_md5(int fd, guint64 off, guint64 len, GError **error, const char *path)
{
  g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_MD5);
  g_autofree guint8 *buf = g_malloc(1 << 20);
  guint64 done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf, (size_t)MIN(len - done, (guint64)(1 << 20)), (off_t)(off + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "read %s: %s", path,
                  n < 0 ? g_strerror(errno) : "unexpected end of file");
      return NULL;
    }
    g_checksum_update(ck, buf, (gsize)n);
    done += (guint64)n;
  }
  return g_strdup(g_checksum_get_string(ck));
}

static gboolean
etag_is_md5(const char *etag)
{
  if (etag == NULL || strlen(etag) != 32)
    return FALSE;
  for (int i = 0; i < 32; i++)
    if (!g_ascii_isxdigit(etag[i]))
      return FALSE;
  return TRUE;
}

/* The temporary a fetch writes @path's bytes to: ".tmp-fetch-<name>-<pid>"
 * beside it, renamed into place once everything arrived and checked. */
static char *
tmp_of(const char *path)
{
  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *base = g_path_get_basename(path);
  g_autofree char *name = g_strdup_printf(".tmp-fetch-%s-%d", base, (int)getpid());
  return g_build_filename(dir, name, NULL);
}

/* Objects that are overwritten in the replica: never taken from the cache. */
static gboolean
is_mutable(const char *key)
{
  return g_str_has_suffix(key, "/alive") || g_str_has_suffix(key, "/PRUNED");
}

/* A cache holds @path whole: a regular file of the size the items for it
 * make (they were renamed into place only once complete and checked). */
static gboolean
cached(GPtrArray *items, const char *path)
{
  struct stat st;
  guint64 want = 0;
  for (guint i = 0; i < items->len; i++) {
    const Item *it = items->pdata[i];
    if (g_str_equal(it->path, path))
      want = MAX(want, it->dst_off + (guint64)it->obj->size);
  }
  return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (guint64)st.st_size == want;
}

/* Run @b's ranges in up to @conns threads; FALSE and *error when one failed. */
static gboolean
run_batch(Batch *b, guint conns, GError **error)
{
  GThread *threads[16];
  guint n_threads = MIN(MIN(conns, G_N_ELEMENTS(threads)), b->ranges->len);

  for (guint i = 0; i < n_threads; i++)
    threads[i] = g_thread_new("remote-get", batch_worker, b);
  for (guint i = 0; i < n_threads; i++)
    g_thread_join(threads[i]);
  b->r->stats.n_gets += (guint)b->gets;
  b->r->stats.bytes += b->bytes;
  if (b->error != NULL) {
    g_propagate_error(error, g_steal_pointer(&b->error));
    return FALSE;
  }
  return TRUE;
}

/* Fetch again every range of @b's item @k, into the same temporary. */
static gboolean
refetch_item(Batch *b, guint k, GError **error)
{
  Batch again = { 0 };
  gboolean ok;

  again.r = b->r;
  again.items = b->items;
  again.ranges = g_array_new(FALSE, FALSE, sizeof(Range));
  g_mutex_init(&again.lock);
  for (guint i = 0; i < b->ranges->len; i++)
    if (g_array_index(b->ranges, Range, i).item == k)
      g_array_append_val(again.ranges, g_array_index(b->ranges, Range, i));
  ok = run_batch(&again, b->r->conns, error);
  b->requests += again.requests;
  g_array_unref(again.ranges);
  g_mutex_clear(&again.lock);
  return ok;
}

/* Fetch @items (Item *) in parallel. Files are created (0600, never through
 * a symlink) when first named; items whose key was fetched before are
 * skipped. */
static gboolean
fetch_items(SqlenvfsRemote *r, GPtrArray *items, GError **error)
{
  Batch b = { 0 };
  g_autoptr(GHashTable) fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) todo = g_ptr_array_new();
  gboolean ok = FALSE;

  /* Never production's room (root.h): what is fetched is checked whole
   * before the first byte of it is written. */
  if (r->room != NULL && !r->cache_mode) {
    guint64 need = 0;
    for (guint i = 0; i < items->len; i++) {
      const Item *it = items->pdata[i];
      if (it->len == 0 && g_hash_table_contains(r->fetched, it->obj->key))
        continue;
      need += it->len > 0 ? (guint64)it->len : (guint64)it->obj->size;
    }
    if (!sqlenvfs_root_check_room(r->room, r->tmp, need, "what is fetched from the replica",
                                  error))
      return FALSE;
  }
  b.r = r;
  b.items = todo;
  b.ranges = g_array_new(FALSE, FALSE, sizeof(Range));
  g_mutex_init(&b.lock);
  for (guint i = 0; i < items->len; i++) {
    Item *it = items->pdata[i];
    gpointer fdp;
    int fd;
    if (it->len == 0 && g_hash_table_contains(r->fetched, it->obj->key))
      continue;
    /* A segment's or a summary's file may be a sparse one filled on
     * demand by an earlier session: never taken as whole. */
    if (r->cache_mode && !is_mutable(it->obj->key) && !g_str_has_suffix(it->obj->key, ".seg") &&
        !g_str_has_suffix(it->obj->key, ".sum") && cached(items, it->path)) {
      g_hash_table_add(r->fetched, g_strdup(it->obj->key));
      continue;
    }
    if (!g_hash_table_lookup_extended(fds, it->path, NULL, &fdp)) {
      g_autofree char *tmp = tmp_of(it->path);
      fd = sqlenvfs_create_file(tmp, 0600, error);
      if (fd < 0)
        goto done;
      g_hash_table_insert(fds, g_strdup(it->path), GINT_TO_POINTER(fd + 1));
    } else {
      fd = GPOINTER_TO_INT(fdp) - 1;
    }
    g_ptr_array_add(todo, it);
    g_debug("fetch %s (%" G_GINT64_FORMAT " bytes)", it->obj->key, it->obj->size);
    if (it->len > 0) {
      Range rg = { todo->len - 1, 0, it->len, fd };
      g_array_append_val(b.ranges, rg);
    } else if ((guint64)it->obj->size <= r->range_bytes) {
      Range rg = { todo->len - 1, 0, -1, fd };
      g_array_append_val(b.ranges, rg);
    } else {
      for (gint64 off = 0; off < it->obj->size; off += (gint64)r->range_bytes) {
        Range rg = { todo->len - 1, off, MIN((gint64)r->range_bytes, it->obj->size - off), fd };
        g_array_append_val(b.ranges, rg);
      }
    }
  }
  if (!run_batch(&b, r->conns, error))
    goto done;
  /* Objects fetched in several ranges: their bytes against the MD5 of a
   * single-part ETag (a whole GET was checked by the client). One that
   * differs is fetched again once: bytes damaged on the way then check. */
  for (guint i = 0; i < todo->len; i++) {
    Item *it = todo->pdata[i];
    if (it->len != 0 || (guint64)it->obj->size <= r->range_bytes || !etag_is_md5(it->obj->etag))
      continue;
    for (int attempt = 0;; attempt++) {
      g_autofree char *md5 = NULL;
      g_autofree char *tmp = tmp_of(it->path);
      g_autofree char *where = NULL;
      int rfd = open(tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (rfd < 0) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "open %s: %s", it->path,
                    g_strerror(errno));
        goto done;
      }
      md5 = file_md5(rfd, it->dst_off, (guint64)it->obj->size, error, it->path);
      close(rfd);
      if (md5 == NULL)
        goto done;
      if (g_ascii_strcasecmp(md5, it->obj->etag) == 0)
        break;
      where = sqlenvfs_s3_describe(r->s3, it->obj->key);
      if (attempt == 0) {
        g_message("get %s: its bytes have MD5 %s but its ETag says %s; fetching it again",
                  where, md5, it->obj->etag);
        if (!refetch_item(&b, i, error))
          goto done;
        continue;
      }
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "get %s: its bytes have MD5 %s but its ETag says %s, fetched twice (it "
                  "changed while it was read, or is damaged in the store: retry, then run %s)",
                  where, md5, it->obj->etag, r->verify);
      goto done;
    }
  }
  {
    GHashTableIter hi;
    gpointer k, v;
    g_hash_table_iter_init(&hi, fds);
    while (g_hash_table_iter_next(&hi, &k, &v)) {
      /* mount --remote's cache: only the copies' database files are
       * synced. The other objects (MANIFESTs, indexes, summaries, alive,
       * PRUNED, the unsealed segment) carry checksums that every use
       * checks: one a power cut damaged is reported by them, never used
       * (remove the cache to fetch it again). A sync each made the
       * mount's start slow (100 small objects and more). Without a cache
       * (restore, list, verify --remote), the objects are in a temporary
       * directory this process removes: nothing outlives it but the
       * restore's output, which is synced when it is written. */
      if (!r->cache_mode || !g_str_has_suffix((const char *)k, ".db"))
        continue;
      if (fsync(GPOINTER_TO_INT(v) - 1) != 0 && errno != EINVAL) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "fsync %s: %s", (char *)k,
                    g_strerror(errno));
        goto done;
      }
    }
  }
  {
    GHashTableIter hi;
    gpointer k;
    g_hash_table_iter_init(&hi, fds);
    while (g_hash_table_iter_next(&hi, &k, NULL)) {
      g_autofree char *tmp = tmp_of(k);
      if (rename(tmp, k) != 0) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "rename %s into place: %s",
                    (char *)k, g_strerror(errno));
        goto done;
      }
    }
  }
  for (guint i = 0; i < todo->len; i++) {
    Item *it = todo->pdata[i];
    if (it->len > 0)
      continue;
    g_hash_table_add(r->fetched, g_strdup(it->obj->key));
    r->stats.n_objects++;
  }
  ok = TRUE;
done:
  {
    GHashTableIter hi;
    gpointer k, v;
    g_hash_table_iter_init(&hi, fds);
    while (g_hash_table_iter_next(&hi, &k, &v)) {
      close(GPOINTER_TO_INT(v) - 1);
      if (!ok) {
        g_autofree char *tmp = tmp_of(k);
        unlink(tmp);
      }
    }
  }
  g_array_unref(b.ranges);
  g_mutex_clear(&b.lock);
  return ok;
}

static void
add_item(GPtrArray *items, const SqlenvfsS3Object *obj, const char *path, guint64 dst_off)
{
  Item *it = g_new0(Item, 1);
  it->obj = obj;
  it->path = g_strdup(path);
  it->dst_off = dst_off;
  g_ptr_array_add(items, it);
}

/* The local path of @key under @base (plan_dir or root_dir). */
static char *
local_path(const char *base, const char *key)
{
  return g_build_filename(base, "backups", "prod", key, NULL);
}

static gboolean
ensure_parent(const char *path, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  return sqlenvfs_mkdir_p(dir, 0700, error);
}

/* Hard-link the small object @key from plan/ into root/ (once). */
static gboolean
link_into_root(SqlenvfsRemote *r, const char *key, GError **error)
{
  g_autofree char *from = local_path(r->plan_dir, key);
  g_autofree char *to = local_path(r->root_dir, key);
  if (!ensure_parent(to, error))
    return FALSE;
  if (is_mutable(key))
    unlink(to);
  if (link(from, to) != 0 && errno != EEXIST) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "link %s: %s", to, g_strerror(errno));
    return FALSE;
  }
  return TRUE;
}

/* A part holds what its name says: its size is B - A. One that does not
 * is not fetched (its size is checked as it is fetched: the listing must
 * agree); settle_parts declares its bytes a hole. */
static gboolean
part_usable(const Part *p)
{
  return (guint64)p->obj->size == p->b - p->a;
}

/* How many of the parts of @s (in order of A) a reader takes: all of them,
 * up to one that overlaps the next. The bytes no part holds (a part
 * missing, the first included: the segment header is then in a hole) and
 * those of a part that is not usable (part_usable) are holes, and so is
 * everything after the parts taken, to the end of the last part listed:
 * settle_parts declares them to the engine, so that a time whose state
 * lies in them is refused, never answered with an older state. With @r,
 * says what is not used and why. */
static guint
parts_in_use(const SqlenvfsRemote *r, const Db *d, const Seg *s)
{
  for (guint i = 0; i < s->parts->len; i++) {
    const Part *p = &g_array_index(s->parts, Part, i);
    const Part *next = i + 1 < s->parts->len ? &g_array_index(s->parts, Part, i + 1) : NULL;
    if (i == 0 && p->a != 0 && r != NULL)
      g_message("replica %s: %s: segment %016" G_GUINT64_FORMAT " has no part from byte 0 "
                "(its first is %s): its records from there on follow a gap",
                r->conf->url, d->name, s->number, p->obj->key);
    if (next != NULL && next->a < p->b) {
      /* A root uploads each byte range once, under one key (a part cut
       * short is uploaded again under the same key): parts that overlap
       * come from two roots with one id, whose histories part here.
       * Neither is taken for the replica's. */
      if (r != NULL)
        g_message("replica %s: %s: parts of segment %016" G_GUINT64_FORMAT " overlap (%s and "
                  "%s): two histories were shipped to this replica (a copy of the root, or the "
                  "root put back from an older image, shipped beside it); what follows byte %"
                  G_GUINT64_FORMAT " is not used", r->conf->url, d->name, s->number,
                  p->obj->key, next->obj->key, p->a);
      return i;
    }
    if (!part_usable(p) && r != NULL)
      g_message("replica %s: part %s holds %" G_GINT64_FORMAT " bytes, its name says %"
                G_GUINT64_FORMAT ": its bytes are a gap", r->conf->url, p->obj->key,
                p->obj->size, p->b - p->a);
  }
  return s->parts->len;
}

/* Items for segment @s of @d into @base: the whole .seg, or the usable
 * parts parts_in_use takes, each at its offset (a hole stays a hole). */
static void
add_segment_items(SqlenvfsRemote *r, const Db *d, const Seg *s, const char *base,
                  GPtrArray *items)
{
  g_autofree char *rel = g_strdup_printf("wal_archives/%s/%016" G_GUINT64_FORMAT ".seg", d->name,
                                         s->number);
  g_autofree char *path = local_path(base, rel);
  guint n;

  if (s->seg != NULL) {
    add_item(items, s->seg, path, 0);
    return;
  }
  n = parts_in_use(r, d, s);
  for (guint i = 0; i < n; i++) {
    const Part *p = &g_array_index(s->parts, Part, i);
    if (part_usable(p))
      add_item(items, p->obj, path, p->a);
  }
}

/* Remember @key of @db as lost (why, and the times around it), once: a
 * key found again keeps what was found first. Returns its Lost. */
static Lost *
lost_add(SqlenvfsRemote *r, const char *db, const char *key, const char *why, gint64 from_us,
         gint64 to_us)
{
  Lost *l;
  for (guint i = 0; i < r->lost->len; i++) {
    l = r->lost->pdata[i];
    if (g_str_equal(l->key, key))
      return l;
  }
  l = g_new0(Lost, 1);
  l->db = g_strdup(db);
  l->key = g_strdup(key);
  l->why = g_strdup(why);
  l->from_us = from_us;
  l->to_us = to_us;
  g_ptr_array_add(r->lost, l);
  return l;
}

/* The time of the last record the index of a segment before @s gives (0:
 * none). */
static gint64
time_before_seg(const Db *d, const Seg *s)
{
  gboolean past = FALSE;
  for (guint i = d->segs->len; i > 0; i--) {
    const Seg *o = d->segs->pdata[i - 1];
    if (o == s) {
      past = TRUE;
      continue;
    }
    if (past && o->have_idx && o->entries->len > 0)
      return g_array_index(o->entries, SqlenvfsArchiveEntry, o->entries->len - 1).time;
  }
  return 0;
}

/* Check the records of a part: the bytes @p (@len) at byte @a of segment
 * @number; the one from 0 starts with the segment header. Records must lie
 * back to back to its end, each with a good header and trailer (crc32s,
 * magic), their seqs following on from *@seq (0: any, after a hole).
 * NULL when it checks, with *@seq the next seq, *@first and *@last the
 * times of its first and last records (left as they were when it holds
 * none); else why not (to free). */
static char *
check_part(const guint8 *p, gsize len, guint64 a, guint64 number, guint64 *seq, gint64 *first,
           gint64 *last)
{
  gsize pos = 0;
  gboolean any = FALSE;
  if (a == 0) {
    SegHeader h;
    const char *bad = NULL;
    if (len < SEG_HEADER_SIZE || !archive_decode_seg_header(p, &h, &bad) || h.number != number)
      return g_strdup("its segment header does not check");
    pos = SEG_HEADER_SIZE;
    *seq = h.first_seq;
  }
  while (pos < len) {
    SqlenvfsArchiveEntry e;
    const guint8 *rec = p + pos;
    if (len - pos < REC_HEADER_SIZE || !archive_decode_header(rec, &e))
      return g_strdup_printf("the record at byte %" G_GUINT64_FORMAT " has no good header",
                             a + pos);
    if (e.length < REC_EMPTY_SIZE || e.length > len - pos)
      return g_strdup_printf("the record of seq %" G_GUINT64_FORMAT " at byte %" G_GUINT64_FORMAT
                             " is cut short", e.seq, a + pos);
    if (*seq != 0 && e.seq != *seq)
      return g_strdup_printf("the record at byte %" G_GUINT64_FORMAT " has seq %" G_GUINT64_FORMAT
                             " where %" G_GUINT64_FORMAT " comes next", a + pos, e.seq, *seq);
    if (get32(rec + e.length - 4) != REC_END_MAGIC ||
        get32(rec + e.length - REC_TRAILER_SIZE) !=
          sqlenvfs_crc32(0, rec, e.length - REC_TRAILER_SIZE))
      return g_strdup_printf("the record of seq %" G_GUINT64_FORMAT " at byte %" G_GUINT64_FORMAT
                             " fails its checksum", e.seq, a + pos);
    if (!any)
      *first = e.time;
    any = TRUE;
    *last = e.time;
    *seq = e.seq + 1;
    pos += e.length;
  }
  return NULL;
}

/* After the parts of the unsealed segment @s of @d were fetched into
 * @base (add_segment_items), check each whole (check_part). The bytes no
 * part holds (a part missing, the first one included), the parts that are
 * not usable or do not check, and all bytes after the parts taken (parts
 * that overlap: parts_in_use) are holes: written, merged, to "<N>.holes"
 * beside the segment, where the engine steps over them (archive_reader.c,
 * read_holes) so that a base whose state lies after a hole starts a window
 * there, and a hole running to the end of the last part listed ends the
 * segment damaged; the file is made that long (its holes read as zeros).
 * Each is remembered as lost (lost_add), with the times of the records
 * around it. FALSE and *error only when the files cannot be read or
 * written. */
static gboolean
settle_parts(SqlenvfsRemote *r, const Db *d, const Seg *s, const char *base, GError **error)
{
  g_autofree char *rel = g_strdup_printf("wal_archives/%s/%016" G_GUINT64_FORMAT ".seg", d->name,
                                         s->number);
  g_autofree char *hrel = g_strdup_printf("wal_archives/%s/%016" G_GUINT64_FORMAT ".holes",
                                          d->name, s->number);
  g_autofree char *path = local_path(base, rel);
  g_autofree char *hpath = local_path(base, hrel);
  g_autoptr(GString) holes = g_string_new(NULL);
  g_autoptr(GPtrArray) pending = g_ptr_array_new(); /* Lost * whose to_us is to come */
  guint n = parts_in_use(NULL, d, s);
  guint64 end = 0, seq = 0, hole_a = 0, listed = 0;
  gint64 last_time = time_before_seg(d, s);
  gboolean in_hole = FALSE;
  struct stat st;
  int fd;

  if (s->seg != NULL || s->parts->len == 0)
    return TRUE;
  for (guint i = 0; i < s->parts->len; i++)
    listed = MAX(listed, g_array_index(s->parts, Part, i).b);
  /* The sealed segments lost before this one end at its first good record
   * (to_us 0 is left only where no record after an object is known). */
  for (guint k = 0; k < r->lost->len; k++) {
    Lost *l = r->lost->pdata[k];
    if (l->to_us == 0 && g_str_equal(l->db, d->name) && g_str_has_suffix(l->key, ".seg") &&
        strcmp(l->key, rel) < 0)
      g_ptr_array_add(pending, l);
  }
  /* No part fetched (none usable) leaves no file: one of holes only. */
  fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open", path);
  if (fstat(fd, &st) != 0 ||
      ((guint64)st.st_size < listed && ftruncate(fd, (off_t)listed) != 0)) {
    int e = errno;
    close(fd);
    return sqlenvfs_error_errno(error, e, "extend", path);
  }
  for (guint i = 0; i <= n; i++) {
    const Part *p = i < n ? &g_array_index(s->parts, Part, i) : NULL;
    g_autofree guint8 *buf = NULL;
    g_autofree char *why = NULL;
    gint64 first = 0, last = last_time;
    gsize got = 0;
    if (p == NULL && n == s->parts->len)
      break;
    if (p == NULL) {
      /* Parts that overlap: the bytes from the first of them on. */
      const Part *o = &g_array_index(s->parts, Part, n);
      const Part *o2 = &g_array_index(s->parts, Part, n + 1);
      g_autofree char *what = g_strdup_printf("overlaps %s%s%s: two histories were shipped to "
                                              "this replica", r->conf->url,
                                              g_str_has_suffix(r->conf->url, "/") ? "" : "/",
                                              o2->obj->key);
      g_ptr_array_add(pending, lost_add(r, d->name, o->obj->key, what, last_time, 0));
      if (!in_hole)
        hole_a = end;
      in_hole = TRUE;
      end = listed;
      break;
    }
    if (p->a != end) {
      g_autofree char *key = g_strdup_printf("%s.part-%016" G_GUINT64_FORMAT "-%016"
                                             G_GUINT64_FORMAT, rel, end, p->a);
      g_ptr_array_add(pending, lost_add(r, d->name, key, "is missing", last_time, 0));
      if (!in_hole)
        hole_a = end;
      in_hole = TRUE;
      seq = 0;
    }
    if (part_usable(p)) {
      buf = g_malloc(p->b - p->a);
      if (!archive_pread_full(fd, buf, p->b - p->a, p->a, &got, path, error)) {
        close(fd);
        return FALSE;
      }
      why = got == p->b - p->a ? check_part(buf, got, p->a, s->number, &seq, &first, &last)
                               : g_strdup("it is cut short");
    } else {
      why = g_strdup_printf("it holds %" G_GINT64_FORMAT " bytes, its name says %"
                            G_GUINT64_FORMAT, p->obj->size, p->b - p->a);
    }
    if (why != NULL) {
      g_autofree char *what = g_strdup_printf("is damaged: %s", why);
      g_ptr_array_add(pending, lost_add(r, d->name, p->obj->key, what, last_time, 0));
      if (!in_hole)
        hole_a = p->a;
      in_hole = TRUE;
      seq = 0;
    } else {
      if (in_hole)
        g_string_append_printf(holes, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", hole_a,
                               p->a);
      in_hole = FALSE;
      if (first != 0) {
        for (guint k = 0; k < pending->len; k++)
          if (((Lost *)pending->pdata[k])->to_us == 0)
            ((Lost *)pending->pdata[k])->to_us = first;
        g_ptr_array_set_size(pending, 0);
      }
      last_time = last;
    }
    end = p->b;
  }
  close(fd);
  /* A hole at the end (a last part damaged or not usable, parts that
   * overlap): the engine stops where it starts. */
  if (in_hole)
    g_string_append_printf(holes, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", hole_a, end);
  if (holes->len == 0) {
    if (unlink(hpath) != 0 && errno != ENOENT)
      return sqlenvfs_error_errno(error, errno, "remove", hpath);
    return TRUE;
  }
  return sqlenvfs_write_file_atomic(hpath, holes->str, holes->len, 0600, error);
}

GPtrArray *
sqlenvfs_remote_lost(const SqlenvfsRemote *r, GPtrArray **segments_out)
{
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  const char *sep = g_str_has_suffix(r->conf->url, "/") ? "" : "/";
  if (segments_out != NULL)
    *segments_out = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < r->lost->len; i++) {
    const Lost *l = r->lost->pdata[i];
    g_autofree char *from = l->from_us ? sqlenvfs_time_format_iso(l->from_us) : NULL;
    g_autofree char *to = l->to_us ? sqlenvfs_time_format_iso(l->to_us) : NULL;
    const char *part = strstr(l->key, ".seg.part-");
    g_ptr_array_add(out, g_strdup_printf("%s%s%s: %s (the records it held, archived after %s "
                                         "and before %s, are a gap: restores refuse those times)",
                                         r->conf->url, sep, l->key, l->why,
                                         from ? from : "its start", to ? to : "its end"));
    if (segments_out != NULL && part != NULL) {
      g_autofree char *seg = g_strndup(l->key, (gsize)(part - l->key) + 4);
      g_ptr_array_add(*segments_out, g_strdup(seg + strlen("wal_archives/")));
    }
  }
  return out;
}

/* The sealed segments of each database that the replica lacks: a number
 * missing between two it holds (prune removes from the first on, and the
 * newest are shipped last), or one of which only its index or summary is
 * left. Each is remembered as lost, with the times its neighbours' indexes
 * give. */
static void
find_lost_segments(SqlenvfsRemote *r)
{
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init(&it, r->dbs);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    const Db *d = v;
    for (guint i = 0; i < d->segs->len; i++) {
      const Seg *s = d->segs->pdata[i];
      const Seg *prev = i > 0 ? d->segs->pdata[i - 1] : NULL;
      gint64 from = time_before_seg(d, s);
      gint64 to = s->have_idx ? g_array_index(s->entries, SqlenvfsArchiveEntry, 0).time : 0;
      guint64 lo = prev != NULL ? prev->number + 1 : s->number;
      guint64 hi = s->seg == NULL && s->parts->len == 0 ? s->number + 1 : s->number;
      if (hi > s->number && i + 1 < d->segs->len) {
        const Seg *next = d->segs->pdata[i + 1];
        to = next->have_idx ? g_array_index(next->entries, SqlenvfsArchiveEntry, 0).time : 0;
      } else if (hi > s->number) {
        hi = s->number; /* the newest: its .seg may not be shipped yet */
      }
      for (guint64 n = lo; n < hi; n++) {
        g_autofree char *key = g_strdup_printf("wal_archives/%s/%016" G_GUINT64_FORMAT ".seg",
                                               d->name, n);
        lost_add(r, d->name, key, "is missing", from, to);
      }
    }
  }
}

/* ------------------------------------------------------------------ */
/* Small objects and indexes                                            */

/* Parse the index file of @s (fetched into plan/); a bad one leaves
 * have_idx FALSE (the segment's records are then unknown to the plan, and
 * the local engine rebuilds the index by scanning). */
static void
parse_idx(const char *path, Seg *s)
{
  g_autofree char *data = NULL;
  gsize len = 0;

  s->have_idx = FALSE;
  if (!g_file_get_contents(path, &data, &len, NULL))
    return;
  if (s->entries == NULL)
    s->entries = g_array_new(FALSE, TRUE, sizeof(SqlenvfsArchiveEntry));
  s->have_idx = sqlenvfs_archive_idx_decode(data, len, s->number, s->entries) &&
                s->entries->len > 0;
}

/* Fetch the small objects of every complete copy and of @d (every .idx,
 * alive, PRUNED) into plan/, once. */
static gboolean
fetch_small(SqlenvfsRemote *r, GError **error)
{
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(item_free);
  GHashTableIter it;
  gpointer v;

  if (r->planned_small)
    return TRUE;
  for (guint i = 0; i < r->copies->len; i++) {
    Copy *c = r->copies->pdata[i];
    g_autofree char *path = local_path(r->plan_dir, c->manifest->key);
    if (!ensure_parent(path, error))
      return FALSE;
    add_item(items, c->manifest, path, 0);
  }
  g_hash_table_iter_init(&it, r->dbs);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    Db *d = v;
    g_autofree char *dir = g_build_filename(r->plan_dir, "backups", "prod", "wal_archives",
                                            d->name, NULL);
    if (!sqlenvfs_mkdir_p(dir, 0700, error))
      return FALSE;
    if (d->alive) {
      g_autofree char *p = local_path(r->plan_dir, d->alive->key);
      add_item(items, d->alive, p, 0);
    }
    if (d->pruned) {
      g_autofree char *p = local_path(r->plan_dir, d->pruned->key);
      add_item(items, d->pruned, p, 0);
    }
    for (guint i = 0; i < d->segs->len; i++) {
      Seg *s = d->segs->pdata[i];
      if (s->idx != NULL && s->seg != NULL) {
        g_autofree char *p = local_path(r->plan_dir, s->idx->key);
        add_item(items, s->idx, p, 0);
      }
      if (s->sum != NULL && s->seg != NULL && r->cache_mode && s->sum->size > 0) {
        /* mount --remote: its first bytes, straight into place; the rest
         * on demand (sum_make). */
        g_autofree char *p = local_path(r->root_dir, s->sum->key);
        if (!ensure_parent(p, error))
          return FALSE;
        add_item(items, s->sum, p, 0);
        ((Item *)items->pdata[items->len - 1])->len = MIN(s->sum->size, SUM_PREFIX);
      } else if (s->sum != NULL && s->seg != NULL) {
        g_autofree char *p = local_path(r->plan_dir, s->sum->key);
        add_item(items, s->sum, p, 0);
      }
    }
  }
  /* add_item copies the path; the g_autofree ones above are freed. */
  if (!fetch_items(r, items, error))
    return FALSE;
  g_hash_table_iter_init(&it, r->dbs);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    Db *d = v;
    for (guint i = 0; i < d->segs->len; i++) {
      Seg *s = d->segs->pdata[i];
      if (s->idx != NULL && s->seg != NULL) {
        g_autofree char *p = local_path(r->plan_dir, s->idx->key);
        parse_idx(p, s);
      }
    }
  }
  find_lost_segments(r);
  r->planned_small = TRUE;
  return TRUE;
}

/* Link the small objects of @d (alive, PRUNED, and the .idx/.sum of the
 * segments whose .seg is fetched) into root/. */
static gboolean
link_db_small(SqlenvfsRemote *r, const Db *d, GError **error)
{
  g_autofree char *dir = g_build_filename(r->root_dir, "backups", "prod", "wal_archives",
                                          d->name, NULL);
  if (!sqlenvfs_mkdir_p(dir, 0700, error))
    return FALSE;
  if (d->alive && !link_into_root(r, d->alive->key, error))
    return FALSE;
  if (d->pruned && !link_into_root(r, d->pruned->key, error))
    return FALSE;
  for (guint i = 0; i < d->segs->len; i++) {
    Seg *s = d->segs->pdata[i];
    g_autofree char *seg = NULL;
    if (s->seg == NULL)
      continue;
    seg = local_path(r->root_dir, s->seg->key);
    if (!g_file_test(seg, G_FILE_TEST_EXISTS))
      continue;
    if (s->idx && !link_into_root(r, s->idx->key, error))
      return FALSE;
    /* mount --remote: the summary is in place already (sum_make). */
    if (s->sum && !r->cache_mode && !link_into_root(r, s->sum->key, error))
      return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Sealed segments on demand (mount --remote)                           */

/* Each sealed segment with a good index gets a sparse cache file of its
 * size under its own name, where the engine reads it, and a Lazy; the
 * archive's fetch hook (lazy_hook) makes the bytes a read asks for present
 * before the read is made.
 *
 * Invariants:
 *   (L1) A record is marked present only after its bytes, fetched in one
 *        ranged GET with the records around it, were checked whole
 *        (lazy_check) and written to the file; the header likewise. A read
 *        goes on only when every record it touches is present, so the
 *        engine never reads a byte of a sealed segment that was not
 *        checked (and its own checks then apply as on a root).
 *   (L2) The bytes of a present record are never changed or removed while
 *        the session lasts (records are not evicted), so what was checked
 *        is what is read.
 *   (L3) The file and its marks belong to one session: each session makes
 *        the file anew (a fresh sparse file renamed over the old one), and
 *        the cache's lock keeps a second session out.
 *   (L4) Lock order: lazy_lock, then cache_lock.
 */

/* A segment can be read on demand when its index is good and describes it
 * whole: records back to back from the header to the object's end, the
 * last one its SEAL. */
static gboolean
lazy_eligible(const Seg *s)
{
  guint64 at = SEG_HEADER_SIZE;
  if (s->seg == NULL || !s->have_idx || s->entries == NULL || s->entries->len == 0)
    return FALSE;
  for (guint k = 0; k < s->entries->len; k++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(s->entries, SqlenvfsArchiveEntry, k);
    if (e->offset != at || e->length < REC_EMPTY_SIZE)
      return FALSE;
    at += e->length;
  }
  return at == (guint64)s->seg->size &&
         g_array_index(s->entries, SqlenvfsArchiveEntry, s->entries->len - 1).type ==
           SQLENVFS_ARCHIVE_SEAL;
}

/* Check @len bytes @p fetched from @lz at @start, ending on a record's end:
 * the segment header when @start is 0 (magic, number, crc32), then every
 * record whole against its index entry (type, seq, length; header crc32;
 * trailer crc32 and magic). FALSE and *error naming the object and the
 * first record that does not check. */
static gboolean
lazy_check(const SqlenvfsRemote *r, const Lazy *lz, const guint8 *p, guint64 start, gsize len,
           guint k0, guint k1,
           GError **error)
{
  const char *why = NULL;
  guint64 at = 0, seq = 0;
  if (start == 0) {
    SegHeader h;
    const char *bad = NULL;
    if (len < SEG_HEADER_SIZE || !archive_decode_seg_header(p, &h, &bad) || h.number != lz->number)
      why = "its segment header does not check";
  }
  for (guint k = k0; why == NULL && k < k1; k++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(lz->entries, SqlenvfsArchiveEntry, k);
    const guint8 *rec = p + (e->offset - start);
    SqlenvfsArchiveEntry got;
    at = e->offset;
    seq = e->seq;
    if (e->offset < start || e->offset + e->length > start + len)
      why = "is cut short";
    else if (!archive_decode_header(rec, &got) || got.length != e->length ||
             got.seq != e->seq || got.type != e->type)
      why = "has a header that does not match its index entry";
    else if (get32(rec + e->length - 4) != REC_END_MAGIC ||
             get32(rec + e->length - REC_TRAILER_SIZE) !=
               sqlenvfs_crc32(0, rec, e->length - REC_TRAILER_SIZE))
      why = "fails its checksum";
  }
  if (why == NULL)
    return TRUE;
  if (seq == 0)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "%s is damaged: %s; nothing read from it is served (run %s)", lz->where, why,
                r->verify);
  else
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "%s is damaged: the record of seq %" G_GUINT64_FORMAT " at byte %"
                G_GUINT64_FORMAT " %s; nothing read from it is served (run %s)", lz->where, seq,
                at, why, r->verify);
  return FALSE;
}

/* The first record of @lz ending after @off (lz->entries->len: none). */
static guint
lazy_record_at(const Lazy *lz, guint64 off)
{
  guint lo = 0, hi = lz->entries->len;
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    const SqlenvfsArchiveEntry *e = &g_array_index(lz->entries, SqlenvfsArchiveEntry, mid);
    if (e->offset + e->length <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Write @len checked bytes @p at @start into @lz's file, then mark records
 * [@k0, @k1) (and the header when @start is 0) present. */
static gboolean
lazy_store(SqlenvfsRemote *r, Lazy *lz, const guint8 *p, guint64 start, gsize len, guint k0,
           guint k1, GError **error)
{
  gsize done = 0;
  while (done < len) {
    ssize_t w = pwrite(lz->fd, p + done, len - done, (off_t)(start + done));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int e = w < 0 ? errno : EIO;
      g_set_error(error, SQLENVFS_ERROR, e == ENOSPC ? SQLENVFS_ERROR_NOSPACE : SQLENVFS_ERROR_IO,
                  "write %s: %s (free space in the cache, or give the mount another "
                  "-o cache=DIR)", lz->path, g_strerror(e));
      return FALSE;
    }
    done += (gsize)w;
  }
  if (start == 0)
    lz->have_head = TRUE;
  for (guint k = k0; k < k1; k++)
    lz->have[k] = 1;
  g_mutex_lock(&r->cache_lock);
  r->lazy_bytes += len;
  g_mutex_unlock(&r->cache_lock);
  return TRUE;
}

static void evict_to(SqlenvfsRemote *r, const char *keep, const char *keep_dir,
                     guint64 max_bytes);

/* A ranged GET of @len bytes at @off of @key, counted in @r's statistics
 * (every GET and byte, and in *@n_kind / *@kind_bytes); NULL with *@error
 * when it failed. */
static GBytes *
ranged_get(SqlenvfsRemote *r, SqlenvfsS3 *s3, const char *key, guint64 off, guint64 len,
           guint *n_kind, guint64 *kind_bytes, GError **error)
{
  GError *local = NULL;
  GBytes *data = sqlenvfs_s3_get(s3, key, (gint64)off, (gint64)len, NULL, &local);
  g_mutex_lock(&r->cache_lock);
  r->stats.n_gets++;
  (*n_kind)++;
  if (data != NULL) {
    r->stats.bytes += g_bytes_get_size(data);
    *kind_bytes += g_bytes_get_size(data);
  }
  g_mutex_unlock(&r->cache_lock);
  if (data == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "%s (retry; run %s if it persists)",
                local->message, r->verify);
    g_error_free(local);
  }
  return data;
}

/* Make bytes [@off, @off + @len) of @lz present: the records they touch
 * that are missing (and the header), in one ranged GET from the first
 * missing to the last, checked whole before they are written. Called with
 * lazy_lock held. */
static gboolean
lazy_ensure(SqlenvfsRemote *r, Lazy *lz, guint64 off, gsize len, GError **error)
{
  guint64 end = MIN(off + len, lz->size);
  gboolean head = off < SEG_HEADER_SIZE && !lz->have_head;
  guint k0, k1, m0 = G_MAXUINT, m1 = 0;
  guint64 start, stop;
  g_autoptr(GBytes) data = NULL;
  const guint8 *p;
  gsize got = 0;

  if (off >= end)
    return TRUE;
  k0 = lazy_record_at(lz, MAX(off, (guint64)SEG_HEADER_SIZE));
  k1 = end > SEG_HEADER_SIZE ? lazy_record_at(lz, end - 1) + 1 : k0;
  k1 = MIN(k1, lz->entries->len);
  for (guint k = k0; k < k1; k++)
    if (!lz->have[k]) {
      m0 = MIN(m0, k);
      m1 = k + 1;
    }
  if (m0 == G_MAXUINT && !head)
    return TRUE;
  if (head && m0 != G_MAXUINT &&
      g_array_index(lz->entries, SqlenvfsArchiveEntry, m0).offset > LAZY_HEAD_GAP) {
    /* The header and records far from it: two GETs, not one of
     * everything between them. */
    if (!lazy_ensure(r, lz, 0, SEG_HEADER_SIZE, error))
      return FALSE;
    head = FALSE;
  }
  if (m0 == G_MAXUINT) {
    m0 = m1 = 0;
    start = 0;
    stop = SEG_HEADER_SIZE;
  } else {
    const SqlenvfsArchiveEntry *last = &g_array_index(lz->entries, SqlenvfsArchiveEntry, m1 - 1);
    if (head)
      m0 = 0;
    start = head ? 0 : g_array_index(lz->entries, SqlenvfsArchiveEntry, m0).offset;
    stop = last->offset + last->length;
  }
  g_debug("fetch %s bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT " (records %u-%u)",
          lz->key, start, stop - 1, m0, m1);
  if (r->lazy_s3 == NULL && (r->lazy_s3 = sqlenvfs_s3_new(r->conf, error)) == NULL)
    return FALSE;
  /* Bytes that do not check are fetched again once: damaged on the way,
   * not in the replica, they then check. */
  for (int attempt = 0;; attempt++) {
    g_autoptr(GError) bad = NULL;
    g_clear_pointer(&data, g_bytes_unref);
    data = ranged_get(r, r->lazy_s3, lz->key, start, stop - start, &r->stats.n_record_gets,
                      &r->stats.record_bytes, error);
    if (data == NULL)
      return FALSE;
    p = g_bytes_get_data(data, &got);
    if (got != stop - start)
      g_set_error(&bad, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "%s is damaged: %" G_GSIZE_FORMAT " bytes came for bytes %" G_GUINT64_FORMAT
                  "-%" G_GUINT64_FORMAT "; nothing read from it is served (run %s)", lz->where,
                  got, start, stop - 1, r->verify);
    else
      lazy_check(r, lz, p, start, got, m0, m1, &bad);
    if (bad == NULL)
      break;
    if (attempt > 0) {
      g_propagate_error(error, g_steal_pointer(&bad));
      return FALSE;
    }
    g_message("%s; fetching it again", bad->message);
  }
  if (!lazy_store(r, lz, p, start, got, m0, m1, error))
    return FALSE;
  /* The records count against the cache's bound: copies' files and blocks
   * are evicted for them (the records stay for the session's readers). */
  g_mutex_lock(&r->cache_lock);
  if (r->cache_max > 0)
    evict_to(r, NULL, NULL, r->cache_max);
  g_mutex_unlock(&r->cache_lock);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Summaries on demand (mount --remote)                                 */

/* Each sealed segment's summary gets a sparse cache file of its object's
 * size, holding its first SUM_PREFIX bytes from the mount's start, and a
 * LazySum; the archive's fetch hook makes the bytes a read asks for present
 * before the read is made (sum_ensure). The readers read a version 2
 * summary part by part (archive_summary.c): composing a state reads the
 * page table and last versions of the segments it covers and the versions
 * of the one it ends in, so a point query fetches those parts only.
 *
 * Invariants:
 *   (M1) The readers check every part they use (head checksum, each
 *        part's crc32, order and bounds) as they do on a root: a damaged
 *        part makes them read the segment's index and records instead,
 *        never a wrong page. The hook checks a part whole in what a GET
 *        brought as well, before marking it present, so that the damage
 *        is named in the log with its object and the part is fetched again
 *        (and found damaged again) rather than kept.
 *   (M2) Bytes marked present are never changed while the session lasts
 *        (only missing ranges are written).
 *   (M3) As (L3): the file and its marks belong to one session.
 *   (M4) lazy_lock is held throughout, as for segments (L4).
 */

/* The first range of bytes missing in [@a, @b) of @ls, from its first
 * missing byte to the end of its last one, in *@ma, *@mb; FALSE when none
 * is missing. */
static gboolean
sum_missing(const LazySum *ls, guint64 a, guint64 b, guint64 *ma, guint64 *mb)
{
  guint64 lo = a, hi = b;
  /* Trim present ranges off both ends. */
  for (guint i = 0; i < ls->have->len / 2; i++) {
    guint64 x = g_array_index(ls->have, guint64, 2 * i), y = g_array_index(ls->have, guint64, 2 * i + 1);
    if (x <= lo && y > lo)
      lo = y;
  }
  for (guint i = ls->have->len / 2; i > 0; i--) {
    guint64 x = g_array_index(ls->have, guint64, 2 * i - 2), y = g_array_index(ls->have, guint64, 2 * i - 1);
    if (x < hi && y >= hi)
      hi = x;
  }
  if (lo >= hi)
    return FALSE;
  *ma = lo;
  *mb = hi;
  return TRUE;
}

/* Whether [@a, @b) of @ls is present once [@fa, @fb) is too. */
static gboolean
sum_covered(const LazySum *ls, guint64 a, guint64 b, guint64 fa, guint64 fb)
{
  guint64 at = a;
  gboolean moved = TRUE;
  while (at < b && moved) {
    moved = FALSE;
    if (fa <= at && fb > at) {
      at = fb;
      moved = TRUE;
    }
    for (guint i = 0; i < ls->have->len / 2 && at < b; i++) {
      guint64 x = g_array_index(ls->have, guint64, 2 * i), y = g_array_index(ls->have, guint64, 2 * i + 1);
      if (x <= at && y > at) {
        at = y;
        moved = TRUE;
      }
    }
  }
  return at >= b;
}

/* Mark [@a, @b) of @ls present. */
static void
sum_mark(LazySum *ls, guint64 a, guint64 b)
{
  g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(guint64));
  gboolean placed = FALSE;
  for (guint i = 0; i < ls->have->len / 2; i++) {
    guint64 x = g_array_index(ls->have, guint64, 2 * i), y = g_array_index(ls->have, guint64, 2 * i + 1);
    if (y < a || x > b) {
      if (x > b && !placed) {
        g_array_append_val(out, a);
        g_array_append_val(out, b);
        placed = TRUE;
      }
      g_array_append_val(out, x);
      g_array_append_val(out, y);
    } else {
      a = MIN(a, x); /* overlapping or adjacent: merged */
      b = MAX(b, y);
    }
  }
  if (!placed) {
    g_array_append_val(out, a);
    g_array_append_val(out, b);
  }
  g_array_set_size(ls->have, 0);
  g_array_append_vals(ls->have, out->data, out->len);
}

/* The part of @ls holding byte @off (SUM_N_PARTS - 1 at or past the end). */
static guint
sum_part_at(const LazySum *ls, guint64 off)
{
  guint k = 0;
  while (k + 1 < SUM_N_PARTS && off >= ls->bound[k + 1])
    k++;
  return k;
}

static const char *const sum_part_name[SUM_N_PARTS] = {
  "head", "size changes", "page table", "last versions", "page versions",
};

/* Write the @len bytes @p fetched at @a into @ls's file (only where they
 * are missing: M2), check every part of a known layout that is now whole
 * (its crc32, from the checked head), then mark them present. FALSE and
 * *error naming the object and the part when one does not check (nothing
 * marked then). */
static gboolean
sum_take(SqlenvfsRemote *r, LazySum *ls, const guint8 *p, guint64 a, gsize len, GError **error)
{
  guint64 b = a + len, at = a, ma, mb;
  /* Opened for each fetch: a long history has thousands of summaries. */
  int fd = open(ls->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  gboolean ok = TRUE;

  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open the cache file", ls->path);
  while (ok && at < b && sum_missing(ls, at, b, &ma, &mb)) {
    /* [ma, the first present byte after it) is missing: write it. */
    guint64 stop = mb;
    for (guint i = 0; i < ls->have->len / 2; i++) {
      guint64 x = g_array_index(ls->have, guint64, 2 * i);
      if (x > ma && x < stop)
        stop = x;
    }
    if (pwrite(fd, p + (ma - a), stop - ma, (off_t)ma) != (ssize_t)(stop - ma)) {
      int e = errno ? errno : EIO;
      g_set_error(error, SQLENVFS_ERROR, e == ENOSPC ? SQLENVFS_ERROR_NOSPACE : SQLENVFS_ERROR_IO,
                  "write %s: %s (free space in the cache, or give the mount another "
                  "-o cache=DIR)", ls->path, g_strerror(e));
      ok = FALSE;
    }
    at = stop;
  }
  for (guint k = 1; ok && ls->has_layout && k < SUM_N_PARTS; k++) {
    guint64 x = ls->bound[k], y = ls->bound[k + 1];
    g_autofree guint8 *buf = NULL;
    if (x >= y || y <= a || x >= b || !sum_covered(ls, x, y, a, b))
      continue;
    buf = g_malloc(y - x);
    if (pread(fd, buf, y - x, (off_t)x) != (ssize_t)(y - x)) {
      ok = sqlenvfs_error_errno(error, errno ? errno : EIO, "read the cache file", ls->path);
    } else if (sqlenvfs_crc32(0, buf, y - x) != ls->crcs[k]) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "%s is damaged: its %s (bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT
                  ") fail their checksum; the segment's records are read instead (run %s)",
                  ls->where, sum_part_name[k], x, y - 1, r->verify);
      ok = FALSE;
    }
  }
  close(fd);
  if (!ok)
    return FALSE;
  sum_mark(ls, a, b);
  g_mutex_lock(&r->cache_lock);
  r->lazy_bytes += len;
  g_mutex_unlock(&r->cache_lock);
  return TRUE;
}

/* One ranged GET of sum_run. */
typedef struct {
  LazySum *ls;
  guint64 a, b;
  GBytes *data;
  GError *error;
} SumJob;

typedef struct {
  SqlenvfsRemote *r;
  SumJob *jobs;
  guint n_jobs;
  gint next;
} SumRun;

typedef struct {
  SumRun *run;
  SqlenvfsS3 *s3;
} SumWorker;

static gpointer
sum_worker(gpointer user)
{
  SumWorker *w = user;
  SumRun *run = w->run;
  gint i;
  while ((i = g_atomic_int_add(&run->next, 1)) < (gint)run->n_jobs) {
    SumJob *j = &run->jobs[i];
    j->data = ranged_get(run->r, w->s3, j->ls->key, j->a, j->b - j->a, &run->r->stats.n_sum_gets,
                         &run->r->stats.sum_bytes, &j->error);
    if (j->data != NULL && g_bytes_get_size(j->data) != j->b - j->a) {
      g_set_error(&j->error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "%s is damaged: %" G_GSIZE_FORMAT " bytes came for bytes %" G_GUINT64_FORMAT
                  "-%" G_GUINT64_FORMAT " (run %s)",
                  j->ls->where, g_bytes_get_size(j->data), j->a, j->b - 1, run->r->verify);
      g_clear_pointer(&j->data, g_bytes_unref);
    }
  }
  return NULL;
}

/* Fetch @n_jobs ranges, each with one ranged GET, on up to SUM_CONNS
 * connections at once. FALSE and *error only when no connection could be
 * made (each job's own failure is in its error). */
static gboolean
sum_run(SqlenvfsRemote *r, SumJob *jobs, guint n_jobs, GError **error)
{
  SumRun run = { r, jobs, n_jobs, 0 };
  SumWorker workers[SUM_CONNS];
  GThread *threads[SUM_CONNS];
  guint n = MIN(n_jobs, (guint)SUM_CONNS);

  for (guint i = 0; i < n; i++) {
    if (r->sum_s3[i] == NULL && (r->sum_s3[i] = sqlenvfs_s3_new(r->conf, error)) == NULL)
      return FALSE;
    workers[i] = (SumWorker){ &run, r->sum_s3[i] };
  }
  if (n == 1) {
    sum_worker(&workers[0]);
    return TRUE;
  }
  for (guint i = 0; i < n; i++)
    threads[i] = g_thread_new("remote-sum", sum_worker, &workers[i]);
  for (guint i = 0; i < n; i++)
    g_thread_join(threads[i]);
  return TRUE;
}

/* Make bytes [@off, @off + @len) of @ls present: the whole parts holding
 * the missing ones, in one ranged GET. When the read asks for whole parts
 * and the misses of those parts move one way through the database's
 * summaries (composing a state reads them segment after segment), the same
 * parts of up to SUM_AHEAD_MAX summaries further that way come with it, on
 * several connections, the window doubling from 8 while the misses keep
 * their way: a range of N segments costs about N / SUM_AHEAD_MAX rounds of
 * GETs, not N. Called with lazy_lock held. */
static gboolean
sum_ensure(SqlenvfsRemote *r, LazySum *ls, guint64 off, gsize len, GError **error)
{
  guint64 end = MIN(off + len, ls->size), ma, mb;
  g_autofree SumJob *jobs = NULL;
  guint n_jobs = 0, k0 = 0, k1 = 0;
  gboolean aligned = FALSE, ok = TRUE;
  Db *d = ls->db;

  if (off >= end || !sum_missing(ls, off, end, &ma, &mb))
    return TRUE;
  if (ls->has_layout) {
    k0 = sum_part_at(ls, off);
    k1 = sum_part_at(ls, end - 1);
    aligned = off == ls->bound[k0] && end == ls->bound[k1 + 1];
    /* Whole parts, so that they can be checked as they come. */
    sum_missing(ls, ls->bound[sum_part_at(ls, ma)], ls->bound[sum_part_at(ls, mb - 1) + 1], &ma,
                &mb);
  }
  jobs = g_new0(SumJob, SUM_AHEAD_MAX + 1);
  jobs[n_jobs++] = (SumJob){ ls, ma, mb, NULL, NULL };
  if (aligned) {
    guint win = 0;
    int dir = 0;
    if (d->ra_seen[k0] && ls->pos != d->ra_at[k0]) {
      dir = ls->pos > d->ra_at[k0] ? 1 : -1;
      win = dir == d->ra_dir[k0] ? MIN(d->ra_win[k0] * 2, (guint)SUM_AHEAD_MAX) : 8;
    }
    d->ra_seen[k0] = TRUE;
    d->ra_dir[k0] = dir;
    d->ra_win[k0] = MAX(win, 1u);
    d->ra_at[k0] = ls->pos;
    for (guint i = 1; i <= win; i++) {
      gint64 j = (gint64)ls->pos + dir * (gint64)i;
      LazySum *o;
      guint64 oa, ob;
      if (j < 0 || j >= (gint64)d->sums->len)
        break;
      o = d->sums->pdata[j];
      d->ra_at[k0] = (guint)j;
      if (o->has_layout && sum_missing(o, o->bound[k0], o->bound[k1 + 1], &oa, &ob) &&
          sum_missing(o, o->bound[sum_part_at(o, oa)], o->bound[sum_part_at(o, ob - 1) + 1], &oa,
                      &ob))
        jobs[n_jobs++] = (SumJob){ o, oa, ob, NULL, NULL };
    }
  }
  g_debug("fetch %s bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT " (and %u summaries ahead)",
          ls->key, ma, mb - 1, n_jobs - 1);
  if (!sum_run(r, jobs, n_jobs, error))
    return FALSE;
  for (guint i = 0; i < n_jobs; i++) {
    SumJob *j = &jobs[i];
    GError *e = g_steal_pointer(&j->error);
    if (j->data != NULL) {
      gsize got;
      const guint8 *p = g_bytes_get_data(j->data, &got);
      sum_take(r, j->ls, p, j->a, got, &e);
      g_bytes_unref(j->data);
    }
    if (e != NULL && i == 0 && ok) {
      g_propagate_error(error, e);
      ok = FALSE;
    } else if (e != NULL) {
      /* Fetched ahead: the read that needs it fetches it again and says. */
      g_debug("%s", e->message);
      g_error_free(e);
    }
  }
  /* The summaries count against the cache's bound as the records do. */
  g_mutex_lock(&r->cache_lock);
  if (r->cache_max > 0)
    evict_to(r, NULL, NULL, r->cache_max);
  g_mutex_unlock(&r->cache_lock);
  return ok;
}

/* Make the summary of segment @s of @d a sparse file in the cache, of its
 * object's size, holding what the start fetched of it (fetch_small), to
 * be filled on demand. A head that does not check is named in the log;
 * the readers find it so too and read the segment's index instead. */
static gboolean
sum_make(SqlenvfsRemote *r, Db *d, const Seg *s, GError **error)
{
  g_autofree char *path = local_path(r->root_dir, s->sum->key);
  guint64 size = (guint64)s->sum->size, have = MIN(size, (guint64)SUM_PREFIX);
  g_autofree guint8 *head = g_malloc(have);
  struct stat st = { 0 };
  ArchiveSummary sum;
  const char *why = NULL;
  LazySum *ls;
  int fd;

  fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open the cache file", path);
  if (fstat(fd, &st) != 0 || (guint64)st.st_size != have ||
      pread(fd, head, have, 0) != (ssize_t)have || ftruncate(fd, (off_t)size) != 0) {
    int e = errno;
    close(fd);
    if ((guint64)st.st_size != have)
      e = EINVAL;
    return sqlenvfs_error_errno(error, e, "make the cache file", path);
  }
  close(fd);
  ls = g_new0(LazySum, 1);
  ls->key = g_strdup(s->sum->key);
  ls->where = sqlenvfs_s3_describe(r->s3, s->sum->key);
  ls->path = g_steal_pointer(&path);
  ls->number = s->number;
  ls->size = size;
  ls->db = d;
  ls->have = g_array_new(FALSE, FALSE, sizeof(guint64));
  sum_mark(ls, 0, have);
  if (d->sums == NULL)
    d->sums = g_ptr_array_new();
  ls->pos = d->sums->len;
  g_ptr_array_add(d->sums, ls); /* d->segs is by number */
  g_hash_table_replace(r->lazy_sums, ls->path, ls);
  if (have < ARCHIVE_SUM_HEADER_MAX && have < size)
    return TRUE;
  if (!archive_summary_parse_header(head, (gsize)size, &sum, &why)) {
    g_message("mount --remote: %s is damaged: %s; the segment's index is read instead (run %s)",
              ls->where, why, r->verify);
    return TRUE;
  }
  if (sum.version < 2)
    return TRUE; /* read and checked whole by the readers */
  if (sum.sizes_off > have) {
    /* A long head (many marks or generations): the rest of it now. */
    GError *e = NULL;
    if (!sum_ensure(r, ls, have, sum.sizes_off - have, &e)) {
      g_message("mount --remote: %s", e->message);
      g_error_free(e);
      return TRUE;
    }
    g_free(head);
    head = g_malloc(sum.sizes_off);
    fd = open(ls->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || pread(fd, head, sum.sizes_off, 0) != (ssize_t)sum.sizes_off) {
      int en = errno ? errno : EIO;
      if (fd >= 0)
        close(fd);
      return sqlenvfs_error_errno(error, en, "read the cache file", ls->path);
    }
    close(fd);
  }
  if (get32(head + 120) != archive_summary_head_crc(head, (gsize)sum.sizes_off)) {
    g_message("mount --remote: %s is damaged: its head fails its checksum; the segment's index "
              "is read instead (run %s)", ls->where, r->verify);
    return TRUE;
  }
  ls->bound[0] = 0;
  ls->bound[1] = sum.sizes_off;
  ls->bound[2] = sum.pages_off;
  ls->bound[3] = sum.last_off;
  ls->bound[4] = sum.versions_off;
  ls->bound[5] = sum.file_len;
  ls->crcs[1] = sum.sizes_crc;
  ls->crcs[2] = sum.pages_crc;
  ls->crcs[3] = sum.last_crc;
  ls->crcs[4] = sum.versions_crc;
  ls->has_layout = sum.file_len == size;
  if (!ls->has_layout)
    return TRUE;
  /* Present: the checked head, each part whole in the prefix that checks,
   * the start of the one it cuts (checked when the rest comes). A part
   * that does not check is fetched again when it is read, and named. */
  g_array_set_size(ls->have, 0);
  sum_mark(ls, 0, sum.sizes_off);
  for (guint k = 1; k < SUM_N_PARTS; k++) {
    guint64 x = ls->bound[k], y = ls->bound[k + 1];
    if (x >= y || x >= have)
      continue;
    if (y > have)
      sum_mark(ls, x, have);
    else if (sqlenvfs_crc32(0, head + x, y - x) == ls->crcs[k])
      sum_mark(ls, x, y);
  }
  return TRUE;
}

/* The archive's fetch hook (archive.h) of a mount --remote session. */
static SqlenvfsArchiveIo
lazy_hook(gpointer user, const char *path, guint64 off, gsize len, GError **error)
{
  SqlenvfsRemote *r = user;
  Lazy *lz = g_hash_table_lookup(r->lazy, path);
  LazySum *ls = lz == NULL ? g_hash_table_lookup(r->lazy_sums, path) : NULL;
  GError *local = NULL;
  gboolean ok;

  if (lz == NULL && ls == NULL)
    return SQLENVFS_ARCHIVE_IO_LOCAL;
  if (len == 0)
    return SQLENVFS_ARCHIVE_IO_READY;
  g_mutex_lock(&r->lazy_lock);
  ok = lz != NULL ? lazy_ensure(r, lz, off, len, &local) : sum_ensure(r, ls, off, len, &local);
  g_mutex_unlock(&r->lazy_lock);
  if (ok)
    return SQLENVFS_ARCHIVE_IO_READY;
  g_warning("mount --remote: %s", local->message);
  g_propagate_error(error, local);
  return SQLENVFS_ARCHIVE_IO_FAILED;
}

/* The SEAL record of @lz, which opening the archive reads: made from its
 * index entry (the record's 96-byte header, which the entry's crc32
 * checked, then its crc32 and REND: a SEAL has no body), checked as a
 * fetched one is, and written in place, so that the mount's start fetches
 * no record. Left absent when the entry is not a plain SEAL. */
static gboolean
lazy_seal(SqlenvfsRemote *r, Lazy *lz, const Seg *s, GError **error)
{
  guint k = lz->entries->len - 1;
  const SqlenvfsArchiveEntry *e = &g_array_index(lz->entries, SqlenvfsArchiveEntry, k);
  g_autofree char *ipath = local_path(r->plan_dir, s->idx->key);
  guint8 rec[REC_EMPTY_SIZE];
  int fd;
  gboolean ok;

  if (e->length != sizeof rec)
    return TRUE;
  fd = open(ipath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open", ipath);
  /* Entry k of the index: the record's header first. */
  ok = pread(fd, rec, REC_HEADER_SIZE, IDX_HEADER_SIZE + (off_t)k * IDX_ENTRY_SIZE) ==
       REC_HEADER_SIZE;
  close(fd);
  if (!ok)
    return TRUE;
  put32(rec + REC_HEADER_SIZE, sqlenvfs_crc32(0, rec, REC_HEADER_SIZE));
  put32(rec + REC_HEADER_SIZE + 4, REC_END_MAGIC);
  if (!lazy_check(r, lz, rec, e->offset, sizeof rec, k, k + 1, NULL))
    return TRUE;
  if (pwrite(lz->fd, rec, sizeof rec, (off_t)e->offset) != (ssize_t)sizeof rec)
    return sqlenvfs_error_errno(error, errno, "write the cache file", lz->path);
  lz->have[k] = 1;
  return TRUE;
}

/* Make segment @s of @d a sparse file in the cache, of its object's size,
 * to be filled on demand. */
static gboolean
lazy_make(SqlenvfsRemote *r, const Db *d, const Seg *s, GError **error)
{
  g_autofree char *name = g_strdup_printf("%016" G_GUINT64_FORMAT ".seg", s->number);
  g_autofree char *path = g_build_filename(sqlenvfs_root_path(r->root, SQLENVFS_DIR_WAL),
                                           d->name, name, NULL);
  g_autofree char *tmp = tmp_of(path);
  Lazy *lz;
  int fd;

  /* A fresh sparse file of the object's size, renamed over what an
   * earlier session left (L3); nothing of it is present yet, not even
   * its header, which its first read fetches (the archive checks the
   * header against the summary there, before it reads a record). */
  fd = sqlenvfs_create_file(tmp, 0600, error);
  if (fd < 0)
    return FALSE;
  if (ftruncate(fd, (off_t)s->seg->size) != 0 || rename(tmp, path) != 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return sqlenvfs_error_errno(error, e, "make the cache file", path);
  }
  lz = g_new0(Lazy, 1);
  lz->fd = fd;
  lz->key = g_strdup(s->seg->key);
  lz->obj = s->seg;
  lz->where = sqlenvfs_s3_describe(r->s3, s->seg->key);
  lz->path = g_steal_pointer(&path);
  lz->number = s->number;
  lz->size = (guint64)s->seg->size;
  lz->entries = g_array_ref(s->entries);
  lz->have = g_malloc0(MAX(s->entries->len, 1));
  g_hash_table_replace(r->lazy, lz->path, lz);
  return lazy_seal(r, lz, s, error);
}

static SqlenvfsRoot *fetch_all(SqlenvfsRemote *r, gboolean with_bases, GError **error);

SqlenvfsRoot *
sqlenvfs_remote_fetch_all(SqlenvfsRemote *r, gboolean with_bases, GError **error)
{
  GError *local = NULL;
  SqlenvfsRoot *root = fetch_all(r, with_bases, &local);
  if (root == NULL) {
    keyify_error(r, local);
    g_propagate_error(error, local);
  }
  return root;
}

static SqlenvfsRoot *
fetch_all(SqlenvfsRemote *r, gboolean with_bases, GError **error)
{
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(item_free);
  GHashTableIter it;
  gpointer v;

  if (!fetch_small(r, error))
    return NULL;
  for (guint i = 0; i < r->copies->len; i++) {
    Copy *c = r->copies->pdata[i];
    if (!link_into_root(r, c->manifest->key, error))
      return NULL;
    for (guint j = 0; with_bases && j < c->files->len; j++) {
      const SqlenvfsS3Object *o = c->files->pdata[j];
      g_autofree char *p = local_path(r->root_dir, o->key);
      add_item(items, o, p, 0);
    }
  }
  g_hash_table_iter_init(&it, r->dbs);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    Db *d = v;
    g_autofree char *dir = g_build_filename(r->root_dir, "backups", "prod", "wal_archives",
                                            d->name, NULL);
    if (!sqlenvfs_mkdir_p(dir, 0700, error))
      return NULL;
    for (guint i = 0; i < d->segs->len; i++) {
      const Seg *s = d->segs->pdata[i];
      /* mount --remote: summaries and sealed segments are read on demand. */
      if (r->cache_mode && s->sum != NULL && s->seg != NULL && s->sum->size > 0 &&
          !sum_make(r, d, s, error))
        return NULL;
      if (r->cache_mode && lazy_eligible(s)) {
        if (!lazy_make(r, d, s, error))
          return NULL;
        continue;
      }
      add_segment_items(r, d, s, r->root_dir, items);
    }
  }
  if (!fetch_items(r, items, error))
    return NULL;
  g_hash_table_iter_init(&it, r->dbs);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    const Db *d = v;
    for (guint i = 0; i < d->segs->len; i++)
      if (!settle_parts(r, d, d->segs->pdata[i], r->root_dir, error))
        return NULL;
    if (!link_db_small(r, d, error))
      return NULL;
  }
  return r->root;
}

/* ------------------------------------------------------------------ */
/* Restore                                                              */

/* Where base @sdb's state is among the indexed records of @d: the segment
 * (index into d->segs) and the time of that state; FALSE when the indexes
 * do not place it. */
static gboolean
place_base(const Db *d, const SqlenvfsStoredDb *sdb, guint *seg, gint64 *state_time)
{
  const SqlenvfsWalPos *p = &sdb->pos;
  if (g_strcmp0(sdb->journal_mode, "wal") != 0)
    return FALSE;
  for (guint i = d->segs->len; i > 0; i--) {
    const Seg *s = d->segs->pdata[i - 1];
    if (!s->have_idx)
      continue;
    for (guint k = s->entries->len; k > 0; k--) {
      const SqlenvfsArchiveEntry *e = &g_array_index(s->entries, SqlenvfsArchiveEntry, k - 1);
      if (p->frame != 0) {
        if (e->type == SQLENVFS_ARCHIVE_COMMIT && e->commit_frame == p->frame &&
            e->salt1 == p->salt1 && e->salt2 == p->salt2 && e->cksum1 == p->cksum1 &&
            e->cksum2 == p->cksum2) {
          *seg = i - 1;
          *state_time = e->time;
          return TRUE;
        }
      } else if (e->time <= p->pinned_at) {
        /* The WAL was empty: the state is the last one at or before the
         * pin (or, when that state is a COMMIT, a later commit of its WAL
         * generation, further on). */
        *seg = i - 1;
        *state_time = e->time;
        return TRUE;
      }
    }
  }
  return FALSE;
}

typedef struct {
  const SqlenvfsStoredCopy *copy;
  const SqlenvfsStoredDb *sdb;
  guint seg;
  guint last_seg;  /* the last segment fetched (inclusive) */
} SubsetPlan;

/* Choose the base and segments for @t (see the top of the file). FALSE
 * when the indexes cannot decide: the caller uses the whole archive. */
static gboolean
plan_subset(const Db *d, GPtrArray *copies, GHashTable *bad, const SqlenvfsTime *t,
            SubsetPlan *out)
{
  const SqlenvfsStoredCopy *best = NULL;
  const SqlenvfsStoredDb *best_sdb = NULL;
  guint best_seg = 0;
  gint64 best_time = G_MININT64;
  gint64 target = t->is_latest || t->is_earliest ? G_MAXINT64 : t->us;
  guint last;

  for (guint i = 0; i < copies->len; i++) {
    const SqlenvfsStoredCopy *c = copies->pdata[i];
    const SqlenvfsStoredDb *sdb = sqlenvfs_stored_copy_find(c, d->name);
    g_autofree char *key = NULL;
    guint seg;
    gint64 when;
    if (sdb == NULL)
      continue;
    key = g_strdup_printf("%d/%s", c->kind, c->name);
    if (g_hash_table_contains(bad, key))
      continue;
    if (!place_base(d, sdb, &seg, &when) || when > target)
      continue;
    /* earliest: the oldest base, where the first recoverable window starts. */
    if (best == NULL || (t->is_earliest ? when < best_time : when > best_time) ||
        (when == best_time && c->kind == SQLENVFS_KIND_SNAPSHOT)) {
      best = c;
      best_sdb = sdb;
      best_seg = seg;
      best_time = when;
    }
  }
  if (best == NULL)
    return FALSE;
  if (t->is_earliest)
    target = best_time;
  /* Up to the first segment with a record after T. */
  last = d->segs->len - 1;
  if (!t->is_latest) {
    for (guint i = best_seg; i < d->segs->len; i++) {
      const Seg *s = d->segs->pdata[i];
      const SqlenvfsArchiveEntry *e;
      if (!s->have_idx)
        continue;
      e = &g_array_index(s->entries, SqlenvfsArchiveEntry, s->entries->len - 1);
      if (e->time > target) {
        last = i;
        break;
      }
    }
    /* Records archived late, after an outage, came before the OUTAGE
     * record that covers them in archives of earlier versions: when the
     * first record after T is in the last sealed segment, the unsealed tail
     * may hold that record, so it is fetched too. */
    {
      gboolean later_sealed = FALSE;
      for (guint i = last + 1; i < d->segs->len; i++)
        later_sealed = later_sealed || ((const Seg *)d->segs->pdata[i])->seg != NULL;
      if (!later_sealed)
        last = d->segs->len - 1;
    }
    /* A gap or outage reaching back across T from a later segment, or a
     * later segment the indexes do not describe: let the whole archive
     * decide. */
    for (guint i = last + 1; i < d->segs->len; i++) {
      const Seg *s = d->segs->pdata[i];
      if (!s->have_idx) {
        if (s->seg != NULL)
          return FALSE;
        continue;
      }
      for (guint k = 0; k < s->entries->len; k++) {
        const SqlenvfsArchiveEntry *e = &g_array_index(s->entries, SqlenvfsArchiveEntry, k);
        if ((e->type == SQLENVFS_ARCHIVE_GAP || e->type == SQLENVFS_ARCHIVE_OUTAGE) &&
            e->aux_time < target)
          return FALSE;
      }
    }
  }
  out->copy = best;
  out->sdb = best_sdb;
  out->seg = best_seg;
  out->last_seg = last;
  return TRUE;
}

/* Empty root/ of what an earlier attempt put there: copies and archive. */
static gboolean
reset_root(SqlenvfsRemote *r, GError **error)
{
  static const char *const sub[] = { "backups/prod/daily", "backups/prod/snapshots",
                                     "backups/prod/wal_archives", ".sqlenvfs" };
  for (guint i = 0; i < G_N_ELEMENTS(sub); i++) {
    g_autofree char *p = g_build_filename(r->root_dir, sub[i], NULL);
    if (!sqlenvfs_rm_rf(p, error) || !sqlenvfs_mkdir_p(p, 0700, error))
      return FALSE;
  }
  /* What was fetched into root/ must be fetched again. */
  {
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, r->fetched);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
      g_autofree char *p = local_path(r->plan_dir, k);
      if (!g_file_test(p, G_FILE_TEST_EXISTS))
        g_hash_table_iter_remove(&it);
    }
  }
  return TRUE;
}

/* sqlenvfs_restore_to_file on the temporary root, its output held to the
 * room of sqlenvfs_remote_set_room's production too (that of the temporary
 * root has no production). */
static gboolean
restore_file(SqlenvfsRemote *r, SqlenvfsRestorePlan *plan, const char *output,
             gboolean overwrite, GError **error)
{
  if (r->room != NULL) {
    g_autofree char *dir = g_path_get_dirname(output);
    if (!sqlenvfs_root_check_room(r->room, dir, plan->size, "the restored database", error))
      return FALSE;
  }
  return sqlenvfs_restore_to_file(r->root, plan, output, overwrite, NULL, NULL, error);
}

static gboolean
restore_subset(SqlenvfsRemote *r, const Db *d, const SubsetPlan *sp, const SqlenvfsTime *t,
               const char *output, gboolean overwrite, SqlenvfsRestorePlan **plan_out,
               GError **error)
{
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(item_free);
  g_autofree char *manifest_key = NULL;
  g_autofree char *db_key = NULL;
  g_autofree char *db_path = NULL;
  const char *kind_dir = sp->copy->kind == SQLENVFS_KIND_BACKUP ? "daily" : "snapshots";
  const SqlenvfsS3Object *db_obj = NULL;
  SqlenvfsRestorePlan *plan;
  g_autofree char *dir = NULL;

  if (!reset_root(r, error))
    return FALSE;
  manifest_key = g_strdup_printf("%s/%s/MANIFEST", kind_dir, sp->copy->name);
  db_key = g_strdup_printf("%s/%s/%s.db", kind_dir, sp->copy->name, d->name);
  for (guint i = 0; i < r->copies->len; i++) {
    Copy *c = r->copies->pdata[i];
    for (guint j = 0; j < c->files->len; j++)
      if (g_str_equal(((SqlenvfsS3Object *)c->files->pdata[j])->key, db_key))
        db_obj = c->files->pdata[j];
  }
  if (!link_into_root(r, manifest_key, error))
    return FALSE;
  if (db_obj != NULL) {
    db_path = local_path(r->root_dir, db_key);
    add_item(items, db_obj, db_path, 0);
  }
  dir = g_build_filename(r->root_dir, "backups", "prod", "wal_archives", d->name, NULL);
  if (!sqlenvfs_mkdir_p(dir, 0700, error))
    return FALSE;
  for (guint i = sp->seg; i <= sp->last_seg; i++) {
    add_segment_items(r, d, d->segs->pdata[i], r->root_dir, items);
  }
  if (!fetch_items(r, items, error))
    return FALSE;
  for (guint i = sp->seg; i <= sp->last_seg; i++)
    if (!settle_parts(r, d, d->segs->pdata[i], r->root_dir, error))
      return FALSE;
  if (!link_db_small(r, d, error))
    return FALSE;
  plan = sqlenvfs_restore_plan(r->root, d->name, t, error);
  if (plan == NULL)
    return FALSE;
  if (!restore_file(r, plan, output, overwrite, error)) {
    sqlenvfs_restore_plan_free(plan);
    return FALSE;
  }
  *plan_out = plan;
  return TRUE;
}

static gboolean remote_restore(SqlenvfsRemote *r, const char *db, const SqlenvfsTime *t,
                               const char *output, gboolean overwrite,
                               SqlenvfsRestorePlan **plan_out, GError **error);

/* What the fetched tree's timeline of @db says, for a message: the time
 * of the break after which its archive has no recoverable state (the head
 * of its last chain, when no window reaches it:
 * sqlenvfs_timeline_unrecoverable_tail) in *@brk, 0 when there is none,
 * and the recoverable windows in *@windows (g_free; "" when none). FALSE
 * when the tree cannot be read. */
static gboolean
fetched_timeline_facts(const SqlenvfsRemote *r, const char *db, gint64 *brk, char **windows)
{
  g_autoptr(GError) local = NULL;
  SqlenvfsTimeline *tl = sqlenvfs_timeline_open(r->root, db, &local);
  g_autofree char *why = NULL;
  gint64 to = 0;
  *brk = 0;
  *windows = NULL;
  if (tl == NULL) {
    g_debug("replica %s: %s: reading the fetched archive again: %s", r->conf->url, db,
            local->message);
    return FALSE;
  }
  if (!sqlenvfs_timeline_unrecoverable_tail(tl, brk, &to, &why))
    *brk = 0;
  *windows = sqlenvfs_timeline_describe_windows(tl);
  sqlenvfs_timeline_free(tl);
  return TRUE;
}

/* When the engine refused @t for @db because records are missing or
 * unreadable (SQLENVFS_ERROR_GAP) and the replica lost an object whose
 * records span that time, replace *@e by an error naming that object, the
 * times around it and what to do; the engine's message would name the
 * local file after the gap, its time and a local command. The time is @t,
 * or for `latest` and a time at or after the break after which nothing
 * can be restored (fetched_timeline_facts), the last time before that
 * break; an object spans it when it lies in [from_us, to_us), to_us 0
 * meaning that no record after the object is known (open to the end). The
 * newest such object is named, with the windows that can be restored; when
 * none spans it, or for `earliest`, the engine's message stays. */
static void
explain_gap(const SqlenvfsRemote *r, const char *db, const SqlenvfsTime *t, GError *e)
{
  gint64 target = t->us, brk = 0;
  const Lost *l = NULL;
  g_autofree char *recoverable = NULL;
  g_autofree char *when = NULL, *from = NULL, *to = NULL, *span = NULL;

  if (e == NULL || !g_error_matches(e, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP) || db == NULL ||
      t->is_earliest || strstr(e->message, "missing or unreadable") == NULL ||
      !fetched_timeline_facts(r, db, &brk, &recoverable))
    return;
  if (brk != 0 && (t->is_latest || target >= brk))
    target = brk - 1;
  else if (t->is_latest)
    return;
  for (guint i = 0; i < r->lost->len; i++) {
    const Lost *x = r->lost->pdata[i];
    if (g_str_equal(x->db, db) && x->from_us <= target && (x->to_us == 0 || target < x->to_us) &&
        (l == NULL || x->from_us >= l->from_us))
      l = x;
  }
  if (l == NULL)
    return;
  if (recoverable[0] == '\0')
    g_clear_pointer(&recoverable, g_free);
  when = t->is_latest ? g_strdup("latest") : t->is_earliest ? g_strdup("earliest")
                                                            : sqlenvfs_time_format_iso(t->us);
  from = l->from_us != 0 ? sqlenvfs_time_format_iso(l->from_us) : NULL;
  to = l->to_us != 0 ? sqlenvfs_time_format_iso(l->to_us) : NULL;
  span = from != NULL && to != NULL ? g_strdup_printf("after %s and before %s", from, to)
         : from != NULL             ? g_strdup_printf("after %s", from)
         : to != NULL               ? g_strdup_printf("before %s", to)
                                    : g_strdup("at times not known");
  g_free(e->message);
  e->message = g_strdup_printf(
    "%s: %s is not recoverable from the replica: %s%s%s %s (it held the "
    "records archived %s); restore to a time outside the gap%s%s%s, or run %s",
    db, when, r->conf->url, g_str_has_suffix(r->conf->url, "/") ? "" : "/", l->key, l->why, span,
    recoverable ? " (recoverable: " : "", recoverable ? recoverable : "", recoverable ? ")" : "",
    r->verify);
}

gboolean
sqlenvfs_remote_restore(SqlenvfsRemote *r, const char *db, const SqlenvfsTime *t,
                        const char *output, gboolean overwrite, SqlenvfsRestorePlan **plan_out,
                        GError **error)
{
  GError *local = NULL;
  g_autofree char *name = NULL;
  if (remote_restore(r, db, t, output, overwrite, plan_out, &local))
    return TRUE;
  name = db != NULL ? g_strdup(db) : sqlenvfs_remote_resolve_db(r, NULL, NULL);
  explain_gap(r, name, t, local);
  keyify_error(r, local);
  g_propagate_error(error, local);
  return FALSE;
}

static gboolean
remote_restore(SqlenvfsRemote *r, const char *db, const SqlenvfsTime *t,
               const char *output, gboolean overwrite, SqlenvfsRestorePlan **plan_out,
               GError **error)
{
  g_autofree char *name = sqlenvfs_remote_resolve_db(r, db, error);
  g_autoptr(GHashTable) bad = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) copies = NULL;
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;
  const Db *d;

  *plan_out = NULL;
  if (name == NULL)
    return FALSE;
  d = g_hash_table_lookup(r->dbs, name);
  if (!fetch_small(r, error))
    return FALSE;
  copies = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_stored_copy_free);
  {
    g_autoptr(GPtrArray) b = sqlenvfs_store_list(r->plan_root, SQLENVFS_KIND_BACKUP, error);
    g_autoptr(GPtrArray) s = NULL;
    if (b == NULL)
      return FALSE;
    s = sqlenvfs_store_list(r->plan_root, SQLENVFS_KIND_SNAPSHOT, error);
    if (s == NULL)
      return FALSE;
    for (guint i = 0; i < b->len; i++)
      g_ptr_array_add(copies, g_steal_pointer(&b->pdata[i]));
    for (guint i = 0; i < s->len; i++)
      g_ptr_array_add(copies, g_steal_pointer(&s->pdata[i]));
  }
  /* The plan from the indexes, trying older bases while the engine finds
   * the chosen one bad. */
  while (d != NULL && d->segs->len > 0) {
    SubsetPlan sp;
    g_autoptr(GError) local = NULL;
    SqlenvfsRestorePlan *got = NULL;
    if (!plan_subset(d, copies, bad, t, &sp))
      break;
    if (restore_subset(r, d, &sp, t, output, overwrite, &got, &local)) {
      *plan_out = got;
      return TRUE;
    }
    if (g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY)) {
      g_autofree char *why = sqlenvfs_remote_keyify(r, local->message);
      g_message("restore %s: not using %s %s: %s; trying an older base", name,
                sqlenvfs_copy_kind_name(sp.copy->kind), sp.copy->name, why);
      g_hash_table_add(bad, g_strdup_printf("%d/%s", sp.copy->kind, sp.copy->name));
      continue;
    }
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    g_info("restore %s: the plan from the indexes did not hold (%s); reading the whole archive",
           name, local->message);
    break;
  }
  /* The whole archive and every MANIFEST: the local engine decides, and
   * only the base it picks is fetched. */
  if (!reset_root(r, error) || fetch_all(r, FALSE, error) == NULL)
    return FALSE;
  for (;;) {
    g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(item_free);
    g_autoptr(GError) local = NULL;
    const SqlenvfsS3Object *db_obj = NULL;
    g_autofree char *rel = NULL;

    g_clear_pointer(&plan, sqlenvfs_restore_plan_free);
    plan = sqlenvfs_restore_plan(r->root, name, t, error);
    if (plan == NULL)
      return FALSE;
    rel = g_strdup_printf("%s/%s/%s.db",
                          plan->base_kind == SQLENVFS_KIND_BACKUP ? "daily" : "snapshots",
                          plan->base_name, name);
    for (guint i = 0; i < r->copies->len; i++) {
      Copy *c = r->copies->pdata[i];
      for (guint j = 0; j < c->files->len; j++)
        if (g_str_equal(((SqlenvfsS3Object *)c->files->pdata[j])->key, rel))
          db_obj = c->files->pdata[j];
    }
    if (db_obj != NULL) {
      g_autofree char *p = local_path(r->root_dir, rel);
      if (g_hash_table_contains(r->fetched, rel))
        break;
      add_item(items, db_obj, p, 0);
      if (!fetch_items(r, items, error))
        return FALSE;
    }
    /* restore_to_file falls back to older bases itself: fetch them all
     * only if this one fails. */
    if (restore_file(r, plan, output, overwrite, &local)) {
      *plan_out = g_steal_pointer(&plan);
      return TRUE;
    }
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    /* A bad base: give the engine every base, and let it choose. */
    if (fetch_all(r, TRUE, error) == NULL)
      return FALSE;
    g_clear_pointer(&plan, sqlenvfs_restore_plan_free);
    plan = sqlenvfs_restore_plan(r->root, name, t, error);
    if (plan == NULL)
      return FALSE;
    if (!restore_file(r, plan, output, overwrite, error))
      return FALSE;
    *plan_out = g_steal_pointer(&plan);
    return TRUE;
  }
  if (!restore_file(r, plan, output, overwrite, error))
    return FALSE;
  *plan_out = g_steal_pointer(&plan);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* The cache of mount --remote                                          */

/* Remove what the cache holds under @dir (relative @rel) that the listing
 * no longer has (pruned or removed from the replica). */
static void
drop_stale(SqlenvfsRemote *r, GHashTable *keys, const char *dir, const char *rel)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  if (d == NULL)
    return;
  while ((name = g_dir_read_name(d)) != NULL) {
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree char *key = *rel ? g_strconcat(rel, "/", name, NULL) : g_strdup(name);
    struct stat st;
    if (lstat(path, &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode))
      drop_stale(r, keys, path, key);
    else if (S_ISREG(st.st_mode) && !g_hash_table_contains(keys, key))
      unlink(path);
  }
}

SqlenvfsRoot *
sqlenvfs_remote_cache_sync(SqlenvfsRemote *r, GError **error)
{
  g_autoptr(GHashTable) keys = g_hash_table_new(g_str_hash, g_str_equal);
  g_autofree char *prod = g_build_filename(r->root_dir, "backups", "prod", NULL);
  for (guint i = 0; i < r->objects->len; i++)
    g_hash_table_add(keys, ((SqlenvfsS3Object *)r->objects->pdata[i])->key);
  /* An unsealed segment is kept under its .seg name: keep it while it has
   * parts. */
  {
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, r->dbs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
      Db *d = v;
      for (guint i = 0; i < d->segs->len; i++) {
        Seg *sg = d->segs->pdata[i];
        if (sg->seg == NULL && sg->parts->len > 0) {
          char *k = g_strdup_printf("wal_archives/%s/%016" G_GUINT64_FORMAT ".seg", d->name,
                                    sg->number);
          g_hash_table_add(keys, k);
          g_ptr_array_add(r->objects, g_new0(SqlenvfsS3Object, 1));
          ((SqlenvfsS3Object *)r->objects->pdata[r->objects->len - 1])->key = k;
        }
      }
    }
  }
  drop_stale(r, keys, prod, "");
  /* Blocks of copies the replica no longer has. */
  for (int k = 0; k < 2; k++) {
    const char *top = k == 0 ? "daily" : "snapshots";
    g_autofree char *dir = g_build_filename(r->root_dir, "blocks", top, NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
      g_autofree char *mkey = g_strdup_printf("%s/%s/MANIFEST", top, name);
      g_autofree char *path = g_build_filename(dir, name, NULL);
      if (!g_hash_table_contains(keys, mkey) && !sqlenvfs_rm_rf(path, NULL))
        g_message("cache %s: could not remove %s", r->root_dir, path);
    }
  }
  {
    g_autofree char *plan = g_build_filename(r->plan_dir, "backups", "prod", NULL);
    drop_stale(r, keys, plan, "");
  }
  if (sqlenvfs_remote_fetch_all(r, FALSE, error) == NULL)
    return NULL;
  if (g_hash_table_size(r->lazy) > 0 || g_hash_table_size(r->lazy_sums) > 0) {
    sqlenvfs_archive_set_fetch_hook(lazy_hook, r);
    r->is_hooked = TRUE;
  }
  return r->root;
}

/* The size of the copies' database files in the cache, and the oldest
 * used one other than @keep (newly allocated, or NULL). */
static guint64
cached_bases(SqlenvfsRemote *r, const char *keep, char **oldest)
{
  guint64 total = 0;
  gint64 oldest_t = G_MAXINT64;
  *oldest = NULL;
  for (guint i = 0; i < r->copies->len; i++) {
    Copy *c = r->copies->pdata[i];
    for (guint j = 0; j < c->files->len; j++) {
      const SqlenvfsS3Object *o = c->files->pdata[j];
      g_autofree char *p = local_path(r->root_dir, o->key);
      struct stat st;
      gint64 t;
      if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
        continue;
      total += (guint64)st.st_size;
      t = (gint64)st.st_atim.tv_sec * G_USEC_PER_SEC + st.st_atim.tv_nsec / 1000;
      if (g_strcmp0(p, keep) != 0 && t < oldest_t) {
        oldest_t = t;
        g_free(*oldest);
        *oldest = g_strdup(p);
      }
    }
  }
  return total;
}

static guint64 cached_blocks(const char *dir, const char *keep_dir, char **oldest,
                             gint64 *oldest_t);

/* Evict, least recently used first, the copies' files (all but @keep) and
 * then the blocks of bases read on demand (all but those under @keep_dir)
 * until they take at most @max_bytes. Called with cache_lock held. */
static void
evict_to(SqlenvfsRemote *r, const char *keep, const char *keep_dir, guint64 max_bytes)
{
  g_autofree char *top = g_build_filename(r->root_dir, "blocks", NULL);
  for (;;) {
    char *oldest = NULL, *oldest_block = NULL;
    gint64 oldest_t = G_MAXINT64;
    guint64 total = cached_bases(r, keep, &oldest) +
                    cached_blocks(top, keep_dir, &oldest_block, &oldest_t) + r->lazy_bytes;
    char *victim = oldest != NULL ? oldest : oldest_block;
    if (total <= max_bytes || victim == NULL) {
      g_free(oldest);
      g_free(oldest_block);
      return;
    }
    g_info("cache %s: %" G_GUINT64_FORMAT " bytes of copies and blocks, more than %"
           G_GUINT64_FORMAT ": evicting %s", r->root_dir, total, max_bytes, victim);
    unlink(victim);
    g_free(oldest);
    g_free(oldest_block);
  }
}

/* Check the copy's database file @path, fetched into the cache (or found
 * there whole), against its MANIFEST (size, header, crc32), remembering the
 * verdict for the opens that follow. One that fails is removed from the
 * cache, so that the next open fetches it again (a replica repaired
 * meanwhile is then served): FALSE and INTEGRITY naming the object. */
static gboolean
check_cached_copy(SqlenvfsRemote *r, SqlenvfsCopyKind kind, const char *name, const char *db,
                  const char *key, const char *path, GError **error)
{
  g_autoptr(SqlenvfsStoredCopy) copy = r->root ? sqlenvfs_store_load(r->root, kind, name, NULL)
                                               : NULL;
  const SqlenvfsStoredDb *sdb = copy ? sqlenvfs_stored_copy_find(copy, db) : NULL;
  g_autoptr(GError) local = NULL;
  g_autofree char *where = NULL;
  SqlenvfsFileId id;
  int fd;

  if (sdb == NULL)
    return TRUE; /* no MANIFEST to check against here: the open checks it */
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return TRUE; /* evicted meanwhile: the open says so */
  if (sqlenvfs_store_check_base(sdb, fd, &id, &local)) {
    sqlenvfs_verify_memo_note_base(r->root, sdb, &id, FALSE, NULL);
    close(fd);
    return TRUE;
  }
  close(fd);
  if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  unlink(path);
  g_hash_table_remove(r->fetched, key);
  where = sqlenvfs_s3_describe(r->s3, key);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "%s is damaged: %s; it is not served, and not kept in the cache (the next open "
              "fetches it again; run %s)", where, local->message, r->verify);
  return FALSE;
}

char *
sqlenvfs_remote_cache_copy_db(SqlenvfsRemote *r, SqlenvfsCopyKind kind, const char *name,
                              const char *db, guint64 max_bytes, GError **error)
{
  g_autofree char *key = g_strdup_printf("%s/%s/%s.db",
                                         kind == SQLENVFS_KIND_BACKUP ? "daily" : "snapshots",
                                         name, db);
  g_autofree char *path = local_path(r->root_dir, key);
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(item_free);
  const SqlenvfsS3Object *obj = NULL;
  GError *local = NULL;

  for (guint i = 0; i < r->copies->len && obj == NULL; i++) {
    Copy *c = r->copies->pdata[i];
    for (guint j = 0; j < c->files->len; j++)
      if (g_str_equal(((SqlenvfsS3Object *)c->files->pdata[j])->key, key))
        obj = c->files->pdata[j];
  }
  if (obj == NULL) {
    g_autofree char *where = sqlenvfs_s3_describe(r->s3, key);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "%s is not in the replica's listing (it was removed since the mount; "
                "remount to see the replica as it is now)", where);
    return NULL;
  }
  g_mutex_lock(&r->cache_lock);
  r->cache_max = max_bytes;
  add_item(items, obj, path, 0);
  /* A file the cache held whole from before (a session earlier) that fails
   * its check was damaged there, not in the replica: it is removed, and
   * fetched once more before the object is called damaged. */
  for (int attempt = 0;; attempt++) {
    g_hash_table_remove(r->fetched, key); /* evicted files are fetched again */
    if (!fetch_items(r, items, &local)) {
      g_mutex_unlock(&r->cache_lock);
      keyify_error(r, local);
      g_propagate_error(error, local);
      return NULL;
    }
    if (check_cached_copy(r, kind, name, db, key, path, &local))
      break;
    if (attempt > 0 || !g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY)) {
      g_mutex_unlock(&r->cache_lock);
      g_propagate_error(error, local);
      return NULL;
    }
    g_message("cache %s: its file of %s failed its check; fetching it again", r->root_dir,
              key);
    g_clear_error(&local);
  }
  /* Mark it used, then evict the least recently used beyond the bound. */
  utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
  evict_to(r, path, NULL, max_bytes);
  g_mutex_unlock(&r->cache_lock);
  return g_steal_pointer(&path);
}

/* ------------------------------------------------------------------ */
/* Block checksum lists and bases read on demand                        */

#define BLOCKS_HEAD 36

GBytes *
sqlenvfs_blocks_encode(guint32 block_size, guint64 file_size, const guint32 *crcs, guint32 n)
{
  gsize len = BLOCKS_HEAD + (gsize)n * 4 + 4;
  guint8 *p = g_malloc0(len);
  memcpy(p, SQLENVFS_BLOCKS_MAGIC, 16);
  put32(p + 16, SQLENVFS_BLOCKS_VERSION);
  put32(p + 20, block_size);
  put32(p + 24, (guint32)file_size);
  put32(p + 28, (guint32)(file_size >> 32));
  put32(p + 32, n);
  for (guint32 i = 0; i < n; i++)
    put32(p + BLOCKS_HEAD + (gsize)i * 4, crcs[i]);
  put32(p + len - 4, sqlenvfs_crc32(0, p, len - 4));
  return g_bytes_new_take(p, len);
}

gboolean
sqlenvfs_blocks_parse(const void *data, gsize len, const char *what, guint64 want_size,
                      guint32 want_crc, guint32 *block_size, guint32 **crcs, guint32 *n,
                      GError **error)
{
  const guint8 *p = data;
  guint32 bs, count, whole = 0;
  guint64 size, need;

  if (len < BLOCKS_HEAD + 4 || memcmp(p, SQLENVFS_BLOCKS_MAGIC, 16) != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s is not a block checksum list (%" G_GSIZE_FORMAT " bytes, no \"%.15s\" "
                "header)", what, len, SQLENVFS_BLOCKS_MAGIC);
    return FALSE;
  }
  if (get32(p + 16) != SQLENVFS_BLOCKS_VERSION) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s has version %u; this version of sqlenvfs reads version %u", what,
                get32(p + 16), SQLENVFS_BLOCKS_VERSION);
    return FALSE;
  }
  bs = get32(p + 20);
  size = (guint64)get32(p + 24) | (guint64)get32(p + 28) << 32;
  count = get32(p + 32);
  need = bs && size <= (G_GUINT64_CONSTANT(1) << 50) ? (size + bs - 1) / bs : 0;
  if (bs < 512 || bs > (64u << 20) || (bs & (bs - 1)) != 0 ||
      size > (G_GUINT64_CONSTANT(1) << 50) || count != need ||
      len != BLOCKS_HEAD + (gsize)count * 4 + 4) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s is malformed (block size %u, file size %" G_GUINT64_FORMAT ", %u blocks in "
                "%" G_GSIZE_FORMAT " bytes)", what, bs, size, count, len);
    return FALSE;
  }
  if (get32(p + len - 4) != sqlenvfs_crc32(0, p, len - 4)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s is damaged (its own crc32 does not match)", what);
    return FALSE;
  }
  if (size != want_size) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s describes a file of %" G_GUINT64_FORMAT " bytes, but its MANIFEST says %"
                G_GUINT64_FORMAT, what, size, want_size);
    return FALSE;
  }
  for (guint32 i = 0; i < count; i++) {
    guint64 blen = MIN((guint64)bs, size - (guint64)i * bs);
    whole = i == 0 ? get32(p + BLOCKS_HEAD)
                   : sqlenvfs_crc32_combine(whole, get32(p + BLOCKS_HEAD + (gsize)i * 4),
                                            blen);
  }
  if (count == 0)
    whole = 0;
  if (whole != want_crc) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s does not match its MANIFEST: its blocks make crc32 0x%08x, the MANIFEST says "
                "0x%08x", what, whole, want_crc);
    return FALSE;
  }
  *block_size = bs;
  *n = count;
  *crcs = g_new(guint32, MAX(count, 1));
  for (guint32 i = 0; i < count; i++)
    (*crcs)[i] = get32(p + BLOCKS_HEAD + (gsize)i * 4);
  return TRUE;
}

struct _SqlenvfsRemoteBlocks {
  SqlenvfsRemote *r;
  char *key;        /* the database file's key */
  char *where;      /* s3://bucket/prefix/key, for messages */
  char *dir;        /* where its blocks are kept in the cache */
  guint64 size, max_bytes;
  guint32 block_size, n;
  guint32 *crcs;
  SqlenvfsS3 *s3;   /* used under lock */
  GMutex lock;
};
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsRemoteBlocks, sqlenvfs_remote_blocks_free)

static char *
copy_key(SqlenvfsCopyKind kind, const char *name, const char *db)
{
  return g_strdup_printf("%s/%s/%s.db", kind == SQLENVFS_KIND_BACKUP ? "daily" : "snapshots",
                         name, db);
}

static const SqlenvfsS3Object *
listed(SqlenvfsRemote *r, const char *key)
{
  for (guint i = 0; i < r->objects->len; i++) {
    const SqlenvfsS3Object *o = r->objects->pdata[i];
    if (o->key != NULL && g_str_equal(o->key, key))
      return o;
  }
  return NULL;
}

gboolean
sqlenvfs_remote_cache_has_copy_db(SqlenvfsRemote *r, SqlenvfsCopyKind kind, const char *name,
                                  const char *db, guint64 size)
{
  g_autofree char *key = copy_key(kind, name, db);
  g_autofree char *path = local_path(r->root_dir, key);
  struct stat st;
  return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (guint64)st.st_size == size;
}

void
sqlenvfs_remote_blocks_free(gpointer p)
{
  SqlenvfsRemoteBlocks *b = p;
  if (b == NULL)
    return;
  g_clear_pointer(&b->s3, sqlenvfs_s3_free);
  g_mutex_clear(&b->lock);
  g_free(b->key);
  g_free(b->where);
  g_free(b->dir);
  g_free(b->crcs);
  g_free(b);
}

/* The bytes of the blocks kept in the cache, and the least recently used
 * block file outside @keep_dir (newly allocated, or NULL). */
static guint64
cached_blocks(const char *dir, const char *keep_dir, char **oldest, gint64 *oldest_t)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  guint64 total = 0;
  while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
    g_autofree char *path = g_build_filename(dir, name, NULL);
    struct stat st;
    if (lstat(path, &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      total += cached_blocks(path, keep_dir, oldest, oldest_t);
    } else if (S_ISREG(st.st_mode)) {
      gint64 t = (gint64)st.st_atim.tv_sec * G_USEC_PER_SEC + st.st_atim.tv_nsec / 1000;
      total += (guint64)st.st_size;
      if (g_strcmp0(dir, keep_dir) != 0 && name[0] != '.' && t < *oldest_t) {
        *oldest_t = t;
        g_free(*oldest);
        *oldest = g_strdup(path);
      }
    }
  }
  return total;
}

SqlenvfsRemoteBlocks *
sqlenvfs_remote_blocks_open(SqlenvfsRemote *r, SqlenvfsCopyKind kind, const char *name,
                            const char *db, guint64 size, guint32 crc32, guint64 max_bytes,
                            GError **error)
{
  g_autofree char *key = copy_key(kind, name, db);
  g_autofree char *lkey = g_strconcat(key, SQLENVFS_BLOCKS_SUFFIX, NULL);
  g_autofree char *what = sqlenvfs_s3_describe(r->s3, lkey);
  g_autoptr(SqlenvfsRemoteBlocks) b = NULL;
  g_autoptr(GBytes) data = NULL;
  const SqlenvfsS3Object *obj = listed(r, lkey);
  GError *local = NULL;
  gsize len = 0;
  const void *p;

  if (obj == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "%s is not in the replica (shipped by an older version)", what);
    return NULL;
  }
  b = g_new0(SqlenvfsRemoteBlocks, 1);
  g_mutex_init(&b->lock);
  b->r = r;
  b->key = g_steal_pointer(&key);
  b->where = sqlenvfs_s3_describe(r->s3, b->key);
  b->size = size;
  b->max_bytes = max_bytes;
  g_mutex_lock(&r->cache_lock);
  r->cache_max = max_bytes;
  g_mutex_unlock(&r->cache_lock);
  b->dir = g_build_filename(r->root_dir, "blocks", kind == SQLENVFS_KIND_BACKUP ? "daily"
                                                                                 : "snapshots",
                            name, db, NULL);
  b->s3 = sqlenvfs_s3_new(r->conf, error);
  if (b->s3 == NULL)
    return NULL;
  data = sqlenvfs_s3_get(b->s3, lkey, 0, -1, NULL, &local);
  g_mutex_lock(&r->cache_lock);
  r->stats.n_gets++;
  if (data != NULL)
    r->stats.bytes += g_bytes_get_size(data);
  g_mutex_unlock(&r->cache_lock);
  if (data == NULL) {
    g_propagate_error(error, local);
    return NULL;
  }
  p = g_bytes_get_data(data, &len);
  if (!sqlenvfs_blocks_parse(p, len, what, size, crc32, &b->block_size, &b->crcs, &b->n, error))
    return NULL;
  if (!sqlenvfs_mkdir_p(b->dir, 0700, error))
    return NULL;
  (void)sqlenvfs_tmp_leftovers(b->dir, ".tmp-fetch-", FALSE, TRUE, NULL, NULL);
  return g_steal_pointer(&b);
}

/* Block @i, checked against its crc32, into @out (block_size bytes): from
 * the cache when it is kept there whole and checks, else fetched. */
static gboolean
block_get(SqlenvfsRemoteBlocks *b, guint32 i, guint8 *out, GError **error)
{
  gsize blen = (gsize)MIN((guint64)b->block_size, b->size - (guint64)i * b->block_size);
  g_autofree char *name = g_strdup_printf("%08u", i);
  g_autofree char *path = g_build_filename(b->dir, name, NULL);
  g_autofree char *tmp = NULL;
  g_autoptr(GBytes) data = NULL;
  const guint8 *p;
  gsize got = 0;
  guint32 crc;
  int fd;

  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = pread(fd, out, blen, 0);
    close(fd);
    if (n == (ssize_t)blen && sqlenvfs_crc32(0, out, blen) == b->crcs[i]) {
      utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
      return TRUE;
    }
    g_message("cache %s: block %u of %s does not check; fetching it again", b->dir, i,
              b->where);
    unlink(path);
  }
  /* A block that does not check is fetched again once: bytes damaged on
   * the way, not in the replica, then check. */
  for (int attempt = 0; attempt < 2; attempt++) {
    g_clear_pointer(&data, g_bytes_unref);
    data = ranged_get(b->r, b->s3, b->key, (guint64)i * b->block_size, blen,
                      &b->r->stats.n_block_gets, &b->r->stats.block_bytes, error);
    if (data == NULL)
      return FALSE;
    p = g_bytes_get_data(data, &got);
    crc = got == blen ? sqlenvfs_crc32(0, p, blen) : 0;
    if (got == blen && crc == b->crcs[i])
      break;
    if (attempt == 0)
      g_message("%s: block %u came with %s; fetching it again", b->where, i,
                got != blen ? "the wrong length" : "another crc32");
  }
  if (got != blen || crc != b->crcs[i]) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s is damaged: block %u (bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT
                ") has %s where its block list says crc32 0x%08x; nothing read from it is "
                "served (run %s; ship a new copy)",
                b->where, i, (guint64)i * b->block_size, (guint64)i * b->block_size + blen - 1,
                got != blen ? "the wrong length" : "another crc32", b->crcs[i], b->r->verify);
    return FALSE; /* logged by the reader that asked (pitr.c), with the offset */
  }
  memcpy(out, p, blen);
  /* Kept for the next read; checked again then, so it needs no fsync. */
  tmp = tmp_of(path);
  fd = sqlenvfs_create_file(tmp, 0600, NULL);
  if (fd >= 0) {
    gboolean ok = write(fd, p, blen) == (ssize_t)blen;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
      unlink(tmp);
  }
  g_mutex_lock(&b->r->cache_lock);
  evict_to(b->r, NULL, b->dir, b->max_bytes);
  g_mutex_unlock(&b->r->cache_lock);
  return TRUE;
}

gssize
sqlenvfs_remote_blocks_read(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  SqlenvfsRemoteBlocks *b = src;
  g_autofree guint8 *blk = NULL;
  guint64 end;
  gsize done = 0;

  if (off < 0 || (guint64)off >= b->size || len == 0)
    return 0;
  end = MIN((guint64)off + len, b->size);
  blk = g_malloc(b->block_size);
  g_mutex_lock(&b->lock);
  while ((guint64)off + done < end) {
    guint64 at = (guint64)off + done;
    guint32 i = (guint32)(at / b->block_size);
    gsize in = (gsize)(at - (guint64)i * b->block_size);
    gsize n = (gsize)MIN((guint64)b->block_size - in, end - at);
    if (!block_get(b, i, blk, error)) {
      g_mutex_unlock(&b->lock);
      return -1;
    }
    memcpy((guint8 *)buf + done, blk + in, n);
    done += n;
  }
  g_mutex_unlock(&b->lock);
  return (gssize)done;
}
