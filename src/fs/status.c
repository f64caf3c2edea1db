/*
 * status.c — the status file: one JSON document, rendered at each open.
 *
 *   {
 *     "root": "/srv/project", "pid": 1234,
 *     "started": "2026-11-28T16:14:00Z", "now": "2026-11-28T16:20:00.5Z",
 *     "databases": [
 *       { "name": "app",
 *         "production":  { "environment", "marked_at", "size", "file_size",
 *                          "wal_size", "page_size", "page_count",
 *                          "journal_mode", "modified", "error" },
 *         "development": { ...the same... },
 *         "archiver":    { "state", "message", "lag_ms", "last_capture",
 *                          "alive", "wal_frames", "pending_frames",
 *                          "commits", "frames", "bytes", "gaps",
 *                          "checkpoints", "snapshot_pending",
 *                          "latency_samples", "capture_p50_ms",
 *                          "capture_p99_ms", "durable_p50_ms",
 *                          "durable_p99_ms" } | null,
 *         "replica":     { "state", "lag_seconds", "backlog_bytes",
 *                          "last_shipped", "error" } | null,
 *         "recoverable": { "earliest", "latest",
 *                          "windows": [ { "from", "to", "note" } ],
 *                          "unrecoverable": { "from", "to", "note" } | null
 *                          (the archive goes on past the last window:
 *                          `latest` is refused), "error" (null, or why
 *                          the windows may be out of date) },
 *         "drill":       { "passed", "at", "why", "summary" } | null }
 *                          (the last restore drill, drill.h; null: never)
 *     ],
 *     "unsupported_databases": [ "<path>: why its name cannot be served" ],
 *     "damaged_copies": [ { "kind", "name", "time", "dir", "manifest",
 *                           "reason", "action" } ] | null
 *                          (backups and snapshots whose MANIFEST cannot be
 *                          read, which no restore uses and backups/ and
 *                          snapshots/ leave out, as `list --json` shows
 *                          them; null: the store could not be listed),
 *     "operations": { "backup": { "running", "last": { "ok", "started",
 *                     "finished", "summary", "errno" } | null,
 *                     "refused": { "at", "reason", "errno" } | null }, ... },
 *     "pitr_cache": { "bytes", "max_bytes", "entries", "plans",
 *                     "rebuilds", "hits", "evicted", "failed_lookups",
 *                     "timelines_opened", "timeline_refreshes",
 *                     "bytes_read_from_sources", "bytes_served",
 *                     "first_open_direct" }
 *   }
 *
 * Times are UTC ISO 8601; sizes are bytes. Every value comes from the same
 * core calls as `sqlenvfs info` and `list`.
 */
#include "fs.h"

#include "sqlenvfs/archiver.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/drill.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/json.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/shipper.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

#include <string.h>
#include <unistd.h>

/* One rendered document, shared by the lookups, getattrs and opens that come
 * close together, so that the size a stat shows is the length a read of the
 * next open returns (tar reads exactly the size lstat gave, and after
 * reading compares that stat with an fstat of the open file; rsync reads
 * the size fstat gives after open). A document is reused while it was last
 * asked for less than REUSE_GAP_US ago and is younger than REUSE_MAX_US; an
 * operation finishing drops it (fs_status_invalidate), so its result shows
 * at once.
 *
 * A process keeps the document it was first shown for its next requests
 * that come less than SEEN_GAP_US apart, up to SEEN_MAX_US after it was
 * first shown: the lookup the kernel makes for an open right after a stat
 * (when the name's entry has just expired) is then answered with the
 * document that stat showed, even if that document reached REUSE_MAX_US in
 * between. The last SEEN_SLOTS processes are remembered. */
#define REUSE_GAP_US (250 * 1000)
#define REUSE_MAX_US (1 * G_USEC_PER_SEC)
#define SEEN_GAP_US (1 * G_USEC_PER_SEC)
#define SEEN_MAX_US (2 * G_USEC_PER_SEC)
#define SEEN_SLOTS 16

typedef struct {
  guint32 pid;       /* 0: free */
  GBytes *doc;       /* the document it was shown */
  gint64 rendered_us;
  gint64 first_mono; /* when it was first shown that document */
  gint64 used_mono;  /* its last request */
} FsStatusSeen;

struct _FsStatusCache {
  char *(*render)(Fs *fs); /* the document, newly allocated text */
  GMutex lock; /* guards the fields below */
  GBytes *doc; /* NULL: none; the text with its NUL */
  gint64 rendered_us;   /* wall time of the rendering (the file's mtime) */
  gint64 rendered_mono; /* monotonic, for the two bounds above */
  gint64 used_mono;
  FsStatusSeen seen[SEEN_SLOTS];
};

static void
member_time(SqlenvfsJson *j, const char *key, gint64 us)
{
  g_autofree char *iso = NULL;
  if (us <= 0) {
    sqlenvfs_json_member_null(j, key);
    return;
  }
  iso = sqlenvfs_time_format_iso(us);
  sqlenvfs_json_member_string(j, key, iso);
}

static void
write_db_info(SqlenvfsJson *j, const char *key, const SqlenvfsDbInfo *info)
{
  sqlenvfs_json_key(j, key);
  if (info == NULL || !info->exists) {
    sqlenvfs_json_null(j);
    return;
  }
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "path", info->path);
  sqlenvfs_json_member_string(j, "environment", info->environment);
  sqlenvfs_json_member_string(j, "marked_at", info->marked_at);
  sqlenvfs_json_member_uint(j, "size", (guint64)(info->page_count * info->page_size));
  sqlenvfs_json_member_uint(j, "file_size", info->size);
  sqlenvfs_json_member_uint(j, "wal_size", info->wal_size);
  sqlenvfs_json_member_int(j, "page_size", info->page_size);
  sqlenvfs_json_member_int(j, "page_count", info->page_count);
  sqlenvfs_json_member_string(j, "journal_mode", info->journal_mode);
  member_time(j, "modified", info->mtime_us);
  sqlenvfs_json_member_string(j, "error", info->error);
  sqlenvfs_json_end_object(j);
}

static const SqlenvfsArchiverDbStatus *
find_archiver_status(GPtrArray *statuses, const char *db)
{
  for (guint i = 0; statuses && i < statuses->len; i++) {
    const SqlenvfsArchiverDbStatus *st = statuses->pdata[i];
    if (g_strcmp0(st->db, db) == 0)
      return st;
  }
  return NULL;
}

static void
write_archiver(Fs *fs, SqlenvfsJson *j, const SqlenvfsArchiverDbStatus *st)
{
  sqlenvfs_json_key(j, "archiver");
  if (fs->archiver == NULL || st == NULL) {
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "state", fs->archiver == NULL ? "not-in-this-mount"
                                                                 : "not-seen-yet");
    if (fs->archiver == NULL) {
      /* -o noarchiver: whether another process archives the root. */
      g_autofree char *lock = sqlenvfs_root_lock_path(fs->root, "archiver");
      int pid = sqlenvfs_doctor_lock_holder(lock, NULL);
      if (pid > 0)
        sqlenvfs_json_member_int(j, "archived_by_pid", pid);
      else if (pid == 0)
        sqlenvfs_json_member_string(j, "message",
                                    "no process archives this root: commits are not archived "
                                    "(run `sqlenvfs archive`, or mount without -o noarchiver)");
    }
    sqlenvfs_json_end_object(j);
    return;
  }
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "state", sqlenvfs_archiver_state_name(st->state));
  sqlenvfs_json_member_string(j, "message", st->message);
  sqlenvfs_json_member_double(j, "lag_ms", (double)st->lag_us / 1000.0);
  member_time(j, "last_capture", st->last_capture_us);
  member_time(j, "alive", st->alive_us);
  sqlenvfs_json_member_uint(j, "wal_frames", st->wal_frames);
  sqlenvfs_json_member_uint(j, "pending_frames", st->pending_frames);
  sqlenvfs_json_member_uint(j, "commits", st->commits);
  sqlenvfs_json_member_uint(j, "frames", st->frames);
  sqlenvfs_json_member_uint(j, "bytes", st->bytes);
  sqlenvfs_json_member_uint(j, "gaps", st->gaps);
  sqlenvfs_json_member_uint(j, "checkpoints", st->checkpoints);
  sqlenvfs_json_member_bool(j, "snapshot_pending", st->snapshot_pending);
  sqlenvfs_json_member_uint(j, "latency_samples", st->n_latency);
  sqlenvfs_json_member_double(j, "capture_p50_ms", (double)st->capture_p50_us / 1000.0);
  sqlenvfs_json_member_double(j, "capture_p99_ms", (double)st->capture_p99_us / 1000.0);
  sqlenvfs_json_member_double(j, "durable_p50_ms", (double)st->durable_p50_us / 1000.0);
  sqlenvfs_json_member_double(j, "durable_p99_ms", (double)st->durable_p99_us / 1000.0);
  sqlenvfs_json_end_object(j);
}

/* Replication to the [replica] (shipper.h); null when none is configured. */
static void
write_replica(SqlenvfsJson *j, const SqlenvfsShipperDbStatus *st)
{
  sqlenvfs_json_key(j, "replica");
  if (st == NULL) {
    sqlenvfs_json_null(j);
    return;
  }
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "state", st->state);
  sqlenvfs_json_member_double(j, "lag_seconds", (double)st->lag_us / G_USEC_PER_SEC);
  sqlenvfs_json_member_uint(j, "backlog_bytes", st->backlog_bytes);
  member_time(j, "last_shipped", st->last_shipped_us);
  sqlenvfs_json_member_string(j, "error", st->error);
  sqlenvfs_json_end_object(j);
}

static void
write_recoverable(Fs *fs, SqlenvfsJson *j, const char *db)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) windows = fs_pitr_db_windows(fs->pitr, db, &error);
  g_autofree char *why = NULL, *unread = fs_pitr_db_unread(fs->pitr, db);
  gint64 from, to;

  sqlenvfs_json_key(j, "recoverable");
  sqlenvfs_json_begin_object(j);
  if (windows == NULL) {
    sqlenvfs_json_member_null(j, "earliest");
    sqlenvfs_json_member_null(j, "latest");
    sqlenvfs_json_member_string(j, "error", error->message);
    sqlenvfs_json_end_object(j);
    return;
  }
  if (windows->len) {
    member_time(j, "earliest", ((SqlenvfsRestoreWindow *)windows->pdata[0])->from_us);
    member_time(j, "latest", ((SqlenvfsRestoreWindow *)windows->pdata[windows->len - 1])->to_us);
  } else {
    sqlenvfs_json_member_null(j, "earliest");
    sqlenvfs_json_member_null(j, "latest");
  }
  sqlenvfs_json_key(j, "windows");
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < windows->len; i++) {
    const SqlenvfsRestoreWindow *w = windows->pdata[i];
    sqlenvfs_json_begin_object(j);
    member_time(j, "from", w->from_us);
    member_time(j, "to", w->to_us);
    sqlenvfs_json_member_string(j, "note", w->note);
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_key(j, "unrecoverable");
  /* As list and doctor say it: also an archive with no window at all. */
  if (fs_pitr_db_unrecoverable(fs->pitr, db, TRUE, &from, &to, &why)) {
    sqlenvfs_json_begin_object(j);
    member_time(j, "from", from);
    member_time(j, "to", to);
    sqlenvfs_json_member_string(j, "note", why);
    sqlenvfs_json_end_object(j);
  } else {
    sqlenvfs_json_null(j);
  }
  if (unread != NULL) {
    g_autofree char *msg = g_strdup_printf(
      "the archive or the copies could not be read again (%s): these windows are as they were "
      "last read, and pitr/ serves no time until a read succeeds", unread);
    sqlenvfs_json_member_string(j, "error", msg);
  } else {
    sqlenvfs_json_member_null(j, "error");
  }
  sqlenvfs_json_end_object(j);
}

/* The last restore drill of @db, or null. */
static void
write_drill(Fs *fs, SqlenvfsJson *j, const char *db)
{
  SqlenvfsDrillLast last;
  gboolean has_run = sqlenvfs_drill_last(fs->root, db, &last);
  g_autofree char *summary = sqlenvfs_drill_last_describe(&last, has_run);

  sqlenvfs_json_key(j, "drill");
  if (!has_run) {
    sqlenvfs_json_null(j);
    return;
  }
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_bool(j, "passed", last.ok);
  member_time(j, "at", last.at_us);
  sqlenvfs_json_member_string(j, "why", last.why);
  sqlenvfs_json_member_string(j, "summary", summary);
  sqlenvfs_json_end_object(j);
  sqlenvfs_drill_last_clear(&last);
}

static void
write_databases(Fs *fs, SqlenvfsJson *j)
{
  g_autoptr(GPtrArray) infos = sqlenvfs_env_info(fs->root);
  g_autoptr(GPtrArray) statuses = fs->archiver ? sqlenvfs_archiver_status(fs->archiver) : NULL;
  g_autoptr(GPtrArray) replica = sqlenvfs_shipper_status(fs->root);

  sqlenvfs_json_key(j, "databases");
  sqlenvfs_json_begin_array(j);
  /* sqlenvfs_env_info: production then development for each name. */
  for (guint i = 0; i + 1 < infos->len; i += 2) {
    const SqlenvfsDbInfo *prod = infos->pdata[i];
    const SqlenvfsDbInfo *dev = infos->pdata[i + 1];
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "name", prod->db);
    write_db_info(j, "production", prod);
    write_db_info(j, "development", dev);
    if (prod->exists) {
      write_archiver(fs, j, find_archiver_status(statuses, prod->db));
      write_replica(j, sqlenvfs_shipper_status_find(replica, prod->db));
      write_recoverable(fs, j, prod->db);
      write_drill(fs, j, prod->db);
    }
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
}

static void
write_operations(Fs *fs, SqlenvfsJson *j)
{
  SqlenvfsOp running_op = SQLENVFS_OP_BACKUP;
  gint64 running_since = 0;
  gboolean running = sqlenvfs_ops_running(fs->ops, &running_op, &running_since);

  sqlenvfs_json_key(j, "operations");
  sqlenvfs_json_begin_object(j);
  for (int i = 0; i < SQLENVFS_N_OPS; i++) {
    SqlenvfsOp op = (SqlenvfsOp)i;
    SqlenvfsOpResult res;
    sqlenvfs_ops_last(fs->ops, op, &res);
    sqlenvfs_json_key(j, sqlenvfs_op_name(op));
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_bool(j, "running", running && running_op == op);
    if (running && running_op == op)
      member_time(j, "running_since", running_since);
    sqlenvfs_json_key(j, "last");
    if (!res.has_run) {
      sqlenvfs_json_null(j);
    } else {
      sqlenvfs_json_begin_object(j);
      sqlenvfs_json_member_bool(j, "ok", res.ok);
      member_time(j, "started", res.started_us);
      member_time(j, "finished", res.finished_us);
      sqlenvfs_json_member_string(j, "summary", res.summary);
      if (res.ok)
        sqlenvfs_json_member_null(j, "errno");
      else
        sqlenvfs_json_member_string(j, "errno", strerrorname_np(res.error_errno));
      sqlenvfs_json_end_object(j);
    }
    sqlenvfs_json_key(j, "refused");
    if (!res.has_refusal) {
      sqlenvfs_json_null(j);
    } else {
      sqlenvfs_json_begin_object(j);
      member_time(j, "at", res.refused_us);
      sqlenvfs_json_member_string(j, "reason", res.refusal);
      sqlenvfs_json_member_string(j, "errno", strerrorname_np(res.refusal_errno));
      sqlenvfs_json_end_object(j);
    }
    sqlenvfs_json_end_object(j);
    sqlenvfs_op_result_clear(&res);
  }
  sqlenvfs_json_end_object(j);
}

static void
write_pitr_cache(Fs *fs, SqlenvfsJson *j)
{
  FsPitrStats st;
  fs_pitr_stats(fs->pitr, &st);
  sqlenvfs_json_key(j, "pitr_cache");
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_uint(j, "bytes", st.cache_bytes);
  sqlenvfs_json_member_uint(j, "max_bytes", st.cache_max_bytes);
  sqlenvfs_json_member_uint(j, "entries", st.n_cached);
  sqlenvfs_json_member_uint(j, "plans", st.n_plans);
  sqlenvfs_json_member_uint(j, "rebuilds", st.n_rebuilds);
  sqlenvfs_json_member_uint(j, "hits", st.n_hits);
  sqlenvfs_json_member_uint(j, "evicted", st.n_evicted);
  sqlenvfs_json_member_uint(j, "failed_lookups", st.n_failed_lookups);
  sqlenvfs_json_member_uint(j, "timelines_opened", st.n_timelines_opened);
  sqlenvfs_json_member_uint(j, "timeline_refreshes", st.n_timeline_refreshes);
  sqlenvfs_json_member_uint(j, "bytes_read_from_sources", st.bytes_from_sources);
  sqlenvfs_json_member_uint(j, "bytes_served", st.bytes_served);
  sqlenvfs_json_member_bool(j, "first_open_direct", g_atomic_int_get(&fs->direct_io_mmap) != 0);
  sqlenvfs_json_end_object(j);
}

FsStatusCache *
fs_status_cache_new(char *(*render)(Fs *fs))
{
  FsStatusCache *c = g_new0(FsStatusCache, 1);
  c->render = render;
  g_mutex_init(&c->lock);
  return c;
}

static void
forget_seen(FsStatusCache *c)
{
  for (guint i = 0; i < SEEN_SLOTS; i++) {
    g_clear_pointer(&c->seen[i].doc, g_bytes_unref);
    c->seen[i].pid = 0;
  }
}

void
fs_status_cache_free(FsStatusCache *c)
{
  if (c == NULL)
    return;
  g_clear_pointer(&c->doc, g_bytes_unref);
  forget_seen(c);
  g_mutex_clear(&c->lock);
  g_free(c);
}

static void
cache_invalidate(FsStatusCache *c)
{
  if (c == NULL)
    return;
  g_mutex_lock(&c->lock);
  g_clear_pointer(&c->doc, g_bytes_unref);
  forget_seen(c);
  g_mutex_unlock(&c->lock);
}

void
fs_status_invalidate(Fs *fs)
{
  cache_invalidate(fs->status);
  cache_invalidate(fs->metrics);
}

/* The slot of process @pid, or the one to reuse for it. */
static FsStatusSeen *
seen_slot(FsStatusCache *c, guint32 pid)
{
  FsStatusSeen *oldest = &c->seen[0];
  for (guint i = 0; i < SEEN_SLOTS; i++) {
    FsStatusSeen *s = &c->seen[i];
    if (s->pid == pid)
      return s;
    if (s->pid == 0 || (oldest->pid != 0 && s->used_mono < oldest->used_mono))
      oldest = s;
  }
  return oldest;
}

char *
fs_status_snapshot(Fs *fs, guint32 pid, gsize *len, gint64 *rendered_us)
{
  return fs_doc_snapshot(fs, fs->status, pid, len, rendered_us);
}

char *
fs_doc_snapshot(Fs *fs, FsStatusCache *c, guint32 pid, gsize *len, gint64 *rendered_us)
{
  gint64 now = g_get_monotonic_time();
  FsStatusSeen *seen = NULL;
  GBytes *doc;
  gint64 rendered;
  gsize size;
  char *copy;

  g_return_val_if_fail(c != NULL, NULL);
  g_mutex_lock(&c->lock);
  if (pid != 0) {
    seen = seen_slot(c, pid);
    if (seen->pid == pid && seen->doc != NULL && now - seen->used_mono < SEEN_GAP_US &&
        now - seen->first_mono < SEEN_MAX_US) {
      seen->used_mono = now;
      doc = seen->doc;
      rendered = seen->rendered_us;
      goto out;
    }
  }
  if (c->doc == NULL || now - c->used_mono >= REUSE_GAP_US ||
      now - c->rendered_mono >= REUSE_MAX_US) {
    /* Rendered under the lock: concurrent askers share one rendering. */
    char *text = c->render(fs);
    g_clear_pointer(&c->doc, g_bytes_unref);
    c->doc = g_bytes_new_take(text, strlen(text) + 1);
    c->rendered_us = sqlenvfs_clock_now();
    c->rendered_mono = now;
  }
  c->used_mono = now;
  doc = c->doc;
  rendered = c->rendered_us;
  if (seen != NULL) {
    g_clear_pointer(&seen->doc, g_bytes_unref);
    *seen = (FsStatusSeen){ .pid = pid, .doc = g_bytes_ref(doc), .rendered_us = rendered,
                            .first_mono = now, .used_mono = now };
  }
out:
  {
    gconstpointer data = g_bytes_get_data(doc, &size);
    copy = g_memdup2(data, size);
  }
  *len = size - 1;
  if (rendered_us)
    *rendered_us = rendered;
  g_mutex_unlock(&c->lock);
  return copy;
}

char *
fs_status_render(Fs *fs)
{
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(TRUE);

  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "root", sqlenvfs_root_dir(fs->root));
  sqlenvfs_json_member_int(j, "pid", getpid());
  member_time(j, "started", fs->started_at);
  member_time(j, "now", sqlenvfs_clock_now());
  write_databases(fs, j);
  {
    /* *.db files whose names cannot be supported: skipped everywhere. */
    g_autoptr(GPtrArray) unsupported = sqlenvfs_root_list_unsupported(fs->root);
    sqlenvfs_json_key(j, "unsupported_databases");
    sqlenvfs_json_begin_array(j);
    for (guint i = 0; i < unsupported->len; i++)
      sqlenvfs_json_string(j, unsupported->pdata[i]);
    sqlenvfs_json_end_array(j);
  }
  {
    g_autoptr(SqlenvfsListReport) copies = sqlenvfs_store_list_report(fs->root, NULL);
    sqlenvfs_json_key(j, "damaged_copies");
    if (copies != NULL)
      sqlenvfs_list_report_mark_known_bad(copies, fs->root);
    if (copies != NULL)
      sqlenvfs_damaged_copies_json(j, copies->damaged, NULL);
    else
      sqlenvfs_json_null(j);
  }
  write_operations(fs, j);
  write_pitr_cache(fs, j);
  sqlenvfs_json_end_object(j);
  return sqlenvfs_json_finish(j);
}
