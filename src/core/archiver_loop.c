/*
 * archiver_loop.c — the archiver as a whole (archiver.h): new() and free(),
 * the loop of run(), stop(), status(), and the list of databases it keeps.
 *
 * run() is one thread that waits in ppoll() on inotify (a -wal file of
 * data/prod was written; a database appeared or went) and on the self-pipe
 * (stop(), requests), with a timeout at the earliest of: the next tick
 * (TICK_US: every database is looked at), a recheck a database asked for
 * (a commit written but not yet published), a sync due (SYNC_US after the
 * last, while archived records wait for one), and the end of a pace
 * (PACE_US after a cycle that archived PACE_COMMITS commits or more: until
 * then inotify is left unread, so that a busy writer's WAL writes wake
 * nobody). Each pass services the
 * databases that were written, are due, or are closed (archiver.c), then
 * serves the queued requests (archiver_requests.c). Before the first pass
 * the databases are found and brought up by a start-up pass in a nicer
 * thread of its own (start_main), which run() waits for. On stop every
 * capturing database gets a last complete capture, synced, and is closed
 * without checkpointing.
 */
#include "archiver_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

const char *
sqlenvfs_archiver_state_name(SqlenvfsArchiverState state)
{
  switch (state) {
  case SQLENVFS_ARCHIVER_STARTING:
    return "starting";
  case SQLENVFS_ARCHIVER_CAPTURING:
    return "capturing";
  case SQLENVFS_ARCHIVER_NOT_WAL:
    return "not-wal";
  case SQLENVFS_ARCHIVER_MISSING:
    return "missing";
  case SQLENVFS_ARCHIVER_FAILING:
    return "failing";
  case SQLENVFS_ARCHIVER_STOPPED:
    return "stopped";
  }
  return "unknown";
}

static gint
cmp_db(gconstpointer pa, gconstpointer pb)
{
  const Db *x = *(Db *const *)pa, *y = *(Db *const *)pb;
  return strcmp(x->name, y->name);
}

Db *
archiver_find_db(SqlenvfsArchiver *a, const char *name)
{
  for (guint i = 0; i < a->dbs->len; i++) {
    Db *d = g_ptr_array_index(a->dbs, i);
    if (strcmp(d->name, name) == 0)
      return d;
  }
  return NULL;
}

/* Add the databases of data/prod that are not known yet. One that appears
 * while running is first opened a second later: its creator is probably
 * still setting it up (switching it to WAL needs an exclusive lock, which
 * our first look at it would get in the way of). */
static void
discover(SqlenvfsArchiver *a, gboolean initial)
{
  g_autoptr(GPtrArray) names = sqlenvfs_root_list_dbs(a->root);
  gboolean added = FALSE;
  for (guint i = 0; i < names->len; i++) {
    const char *name = g_ptr_array_index(names, i);
    if (archiver_find_db(a, name) == NULL) {
      Db *d = archiver_db_new(a, name);
      if (!initial)
        d->retry_at = g_get_monotonic_time() + SETTLE_US;
      g_mutex_lock(&a->lock);
      g_ptr_array_add(a->dbs, d);
      g_mutex_unlock(&a->lock);
      g_info("archiver: found production database %s", name);
      added = TRUE;
    }
  }
  if (added) {
    g_mutex_lock(&a->lock);
    g_ptr_array_sort(a->dbs, cmp_db);
    g_mutex_unlock(&a->lock);
  }
}


/* ------------------------------------------------------------------ */
/* The loop                                                             */

static gboolean
watch_prod(SqlenvfsArchiver *a, GError **error)
{
  if (a->watch >= 0)
    return TRUE;
  a->watch = inotify_add_watch(a->inotify_fd, a->prod_dir,
                               IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                 IN_DELETE_SELF | IN_MOVE_SELF);
  if (a->watch < 0)
    return sqlenvfs_error_errno(error, errno, "watch (inotify)", a->prod_dir);
  return TRUE;
}

/* Read the pending inotify events: mark databases whose WAL was written,
 * and note that the directory changed. */
static void
read_events(SqlenvfsArchiver *a, gboolean waited, gboolean *rescan)
{
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  gint64 now = g_get_monotonic_time();
  for (;;) {
    ssize_t n = read(a->inotify_fd, buf, sizeof buf);
    if (n <= 0)
      return;
    for (char *p = buf; p < buf + n;) {
      const struct inotify_event *ev = (const struct inotify_event *)p;
      p += sizeof *ev + ev->len;
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        if (ev->wd == a->watch) {
          inotify_rm_watch(a->inotify_fd, a->watch);
          a->watch = -1;
        }
        *rescan = TRUE;
        continue;
      }
      if (ev->len == 0)
        continue;
      if (g_str_has_suffix(ev->name, ".db-wal")) {
        g_autofree char *stem = g_strndup(ev->name, strlen(ev->name) - 7);
        Db *d = archiver_find_db(a, stem);
        if (d && !d->is_dirty) {
          d->is_dirty = TRUE;
          d->woken_at = waited ? now : 0;
        }
        if (d == NULL || (ev->mask & (IN_DELETE | IN_MOVED_FROM | IN_CREATE | IN_MOVED_TO)))
          *rescan = TRUE;
      } else if (g_str_has_suffix(ev->name, ".db") &&
                 (ev->mask & (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM))) {
        *rescan = TRUE;
      }
    }
  }
}

/* A root moved (`mv`), replaced (another root moved or linked to its
 * path) or removed under a running archiver leaves its databases out of
 * reach by their paths, and whatever the archiver opened by path from then
 * on would be another root's: a gap and a chain written into an archive
 * whose own archiver holds its lock, its alive file overwritten. The lock
 * this archiver holds tells: the file at the root's lock path must still
 * be the one locked. data/prod replaced alone (the root still here) is
 * told apart for the message. */
gboolean
archiver_root_is_ours(SqlenvfsArchiver *a)
{
  g_autofree char *lock = sqlenvfs_root_lock_path(a->root, "archiver");
  struct stat held, now;
  return fstat(a->lock_fd, &held) == 0 && stat(lock, &now) == 0 &&
         held.st_dev == now.st_dev && held.st_ino == now.st_ino;
}

gboolean
archiver_root_in_place(SqlenvfsArchiver *a)
{
  struct stat prod;
  if (a->gone != NULL)
    return FALSE;
  if (!archiver_root_is_ours(a)) {
    g_set_error(&a->gone, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "%s is no longer the root this archiver locked: it was moved, replaced or "
                "removed, and nothing of it can be archived from here (start the archiver "
                "again where the root is now: its archive goes on there, after a gap for the "
                "time it was not archived)",
                sqlenvfs_root_dir(a->root));
  } else if (stat(a->prod_dir, &prod) != 0 || prod.st_dev != a->prod_dev ||
             prod.st_ino != a->prod_ino) {
    g_set_error(&a->gone, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "%s is no longer the directory archived since the start: it was replaced or "
                "removed (start the archiver again once data/prod holds the production "
                "databases)",
                a->prod_dir);
  }
  if (a->gone == NULL)
    return TRUE;
  g_atomic_int_set(&a->stopping, TRUE);
  return FALSE;
}

static void
drain_wake(SqlenvfsArchiver *a)
{
  char buf[64];
  while (read(a->wake[0], buf, sizeof buf) > 0)
    ;
}

/* The start-up pass: find the databases of data/prod and bring each up
 * (archiver.c db_open: the WAL's recovery by SQLite, the archive's end, the
 * summaries it lacks, continuity, the base of the chain). On a long archive
 * that is tens of milliseconds of CPU, all of it at once, just when a mount
 * starts serving its first requests. So it runs in a thread of its own,
 * START_NICE steps nicer than the caller: on a busy machine the mount's
 * first lookups are served first. A thread of its own because a thread can
 * make itself nicer but, without privilege, not less nice again; it ends
 * with the pass and the loop goes on in the archiver's own thread at its
 * own priority. Nothing it opens is used by two threads at once: run()
 * waits for it. Threads it would start inherit its priority, so the
 * snapshot thread is started before it (archiver_snapshot_start). */
static gpointer
start_main(gpointer data)
{
  SqlenvfsArchiver *a = data;
  pid_t tid = (pid_t)syscall(SYS_gettid);
  int nice_now;
  errno = 0;
  nice_now = getpriority(PRIO_PROCESS, (id_t)tid);
  if ((nice_now != -1 || errno == 0) &&
      setpriority(PRIO_PROCESS, (id_t)tid, MIN(nice_now + START_NICE, 19)) != 0)
    g_debug("archiver: could not lower the priority of the start-up pass: %s",
            g_strerror(errno));
  discover(a, TRUE);
  for (guint i = 0; i < a->dbs->len && !g_atomic_int_get(&a->stopping); i++)
    archiver_db_service(g_ptr_array_index(a->dbs, i), FALSE);
  return NULL;
}

gboolean
sqlenvfs_archiver_run(SqlenvfsArchiver *a, GError **error)
{
  gint64 next_tick = 0, next_rescan;
  gboolean rescan = FALSE;
  struct stat prod_st;

  g_return_val_if_fail(!g_atomic_int_get(&a->running), FALSE);
  if (stat(a->prod_dir, &prod_st) != 0)
    return sqlenvfs_error_errno(error, errno, "archive", a->prod_dir);
  a->prod_dev = prod_st.st_dev;
  a->prod_ino = prod_st.st_ino;
  a->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (a->inotify_fd < 0)
    return sqlenvfs_error_errno(error, errno, "start inotify for", a->prod_dir);
  if (!watch_prod(a, error)) {
    close(a->inotify_fd);
    a->inotify_fd = -1;
    return FALSE;
  }
  g_atomic_int_set(&a->running, TRUE);
  /* The rechecks after a WAL write wait tens of microseconds; the default
   * timer slack (50 us) would stretch each of them. This thread only. */
  prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0);
  /* The lock may have been taken by a parent that has since forked into
   * this daemon and exited: name the process that archives. */
  if (!sqlenvfs_root_lock_set_pid(a->lock_fd))
    g_message("archiver: could not record pid %d in the archiver lock file", (int)getpid());
  g_info("archiver: watching %s", a->prod_dir);
  a->shipper = sqlenvfs_shipper_start(a->root);
  archiver_snapshot_start(a);
  g_thread_join(g_thread_new("archiver-start", start_main, a));
  /* Every database is captured from here on (or said why not): a service
   * ordered after this one (the application) may start. */
  sqlenvfs_notify_service("READY=1\nSTATUS=archiving");
  next_rescan = g_get_monotonic_time() + RESCAN_US;

  while (!g_atomic_int_get(&a->stopping)) {
    struct pollfd fds[2] = { { a->wake[0], POLLIN, 0 }, { a->inotify_fd, POLLIN, 0 } };
    gint64 now = g_get_monotonic_time(), until = next_tick, polled_at;
    struct timespec timeout;
    gboolean tick, is_quiet = FALSE;

    for (guint i = 0; i < a->dbs->len; i++) {
      Db *d = g_ptr_array_index(a->dbs, i);
      if (d->paced_until > now) {
        /* Archived a moment ago: look again when the pace is over, not at
         * each WAL write meanwhile (the events wait in the queue, merged). */
        is_quiet = TRUE;
        until = MIN(until, d->paced_until);
      } else if (d->recheck_at > 0) {
        until = MIN(until, d->recheck_at);
      }
      if (d->unsynced > 0)
        until = MIN(until, d->synced_at + SYNC_US);
    }
    until = MAX(until - now, 0);
    timeout.tv_sec = until / G_USEC_PER_SEC;
    timeout.tv_nsec = (until % G_USEC_PER_SEC) * 1000;
    polled_at = g_get_monotonic_time();
    if (ppoll(fds, is_quiet ? 1 : 2, &timeout, NULL) < 0 && errno != EINTR) {
      g_warning("archiver: poll: %s", g_strerror(errno));
      g_usleep(TICK_US);
    }
    /* Events read after a quiet wait came at some unknown time in it: the
     * latencies of what they announce are counted from the last look. */
    if (is_quiet || (fds[1].revents & POLLIN))
      read_events(a, !is_quiet && g_get_monotonic_time() - polled_at >= POLL_WAITED_US,
                  &rescan);
    if (fds[0].revents & POLLIN)
      drain_wake(a);
    if (g_atomic_int_get(&a->stopping))
      break;
    now = g_get_monotonic_time();
    if (rescan || now >= next_rescan) {
      g_autoptr(GError) local = NULL;
      if (!archiver_root_in_place(a))
        break;
      if (a->watch < 0 && !watch_prod(a, &local))
        g_debug("archiver: %s", local->message);
      discover(a, FALSE);
      rescan = FALSE;
      next_rescan = now + RESCAN_US;
    }
    tick = now >= next_tick;
    if (tick)
      next_tick = now + TICK_US;
    for (guint i = 0; i < a->dbs->len; i++) {
      Db *d = g_ptr_array_index(a->dbs, i);
      gboolean is_paced = d->phase == PHASE_CAPTURING && now < d->paced_until;
      if (tick || d->phase == PHASE_CLOSED ||
          (d->unsynced > 0 && now >= d->synced_at + SYNC_US) ||
          (!is_paced && (d->is_dirty || (d->recheck_at > 0 && now >= d->recheck_at))))
        archiver_db_service(d, FALSE);
    }
    archiver_serve_requests(a);
  }

  /* Stop: a last capture of everything, then close without checkpointing. */
  for (guint i = 0; i < a->dbs->len; i++)
    archiver_db_stop(g_ptr_array_index(a->dbs, i));
  g_mutex_lock(&a->lock);
  g_atomic_int_set(&a->running, FALSE);
  archiver_cancel_requests_locked(a);
  g_cond_broadcast(&a->snap_cond);
  g_mutex_unlock(&a->lock);
  archiver_snapshot_join(a);
  sqlenvfs_shipper_stop(g_steal_pointer(&a->shipper));
  close(a->inotify_fd);
  a->inotify_fd = -1;
  a->watch = -1;
  if (a->gone != NULL) {
    g_propagate_error(error, g_steal_pointer(&a->gone));
    return FALSE;
  }
  return TRUE;
}

void
sqlenvfs_archiver_stop(SqlenvfsArchiver *a)
{
  char c = 's';
  g_atomic_int_set(&a->stopping, TRUE);
  if (write(a->wake[1], &c, 1) < 0) {
    /* non-blocking: a full pipe already wakes the loop */
  }
}

/* ------------------------------------------------------------------ */
/* Setup and status                                                     */

SqlenvfsArchiver *
sqlenvfs_archiver_new(SqlenvfsRoot *root, GError **error)
{
  SqlenvfsArchiver *a;
  const SqlenvfsSettings *s = sqlenvfs_root_settings(root);
  int fd;

  /* Its segments' sizes, its bound on the WAL and the room it leaves are
   * the operator's, never defaults put in their place; an error in another
   * section stops nothing here ([replica]: nothing is shipped, shipper.c). */
  if (!sqlenvfs_root_settings_need(root, "archive", error) ||
      !sqlenvfs_root_settings_need(root, "cache", error))
    return NULL;
  fd = sqlenvfs_root_lock(root, "archiver", FALSE, error);
  if (fd < 0)
    return NULL;
  if (!sqlenvfs_root_refuse_links(root, SQLENVFS_DIR_WAL, "archive", error) ||
      !sqlenvfs_root_refuse_links(root, SQLENVFS_DIR_SNAPSHOTS, "archive (its snapshots)",
                                  error) ||
      !sqlenvfs_mkdir_p(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL),
                        sqlenvfs_mode_dir(sqlenvfs_root_data_mode(root, NULL)), error)) {
    sqlenvfs_root_unlock(fd);
    return NULL;
  }
  a = g_new0(SqlenvfsArchiver, 1);
  a->root = root;
  a->lock_fd = fd;
  a->prod_dir = g_strdup(sqlenvfs_root_path(root, SQLENVFS_DIR_PROD));
  a->wal_dir = g_strdup(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL));
  a->segment_max = s->segment_max_bytes;
  a->segment_max_records = s->segment_max_records;
  a->checkpoint_pages = (guint32)CLAMP(s->checkpoint_pages, 1, G_MAXUINT32);
  a->inotify_fd = -1;
  a->watch = -1;
  g_mutex_init(&a->lock);
  g_cond_init(&a->cond);
  g_cond_init(&a->snap_cond);
  g_queue_init(&a->snap_queue);
  a->dbs = g_ptr_array_new_with_free_func((GDestroyNotify)archiver_db_free);
  a->requests = g_ptr_array_new();
  a->wal_buf = g_malloc(WAL_BUF);
  a->wake[0] = a->wake[1] = -1;
  if (pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    sqlenvfs_error_errno(error, errno, "create a pipe for", "the archiver");
    sqlenvfs_archiver_free(a);
    return NULL;
  }
  return a;
}

void
sqlenvfs_archiver_free(SqlenvfsArchiver *a)
{
  if (a == NULL)
    return;
  g_return_if_fail(!g_atomic_int_get(&a->running));
  g_clear_error(&a->gone);
  g_ptr_array_unref(a->dbs);
  g_ptr_array_unref(a->requests);
  g_queue_clear_full(&a->snap_queue, g_free);
  if (a->wake[0] >= 0)
    close(a->wake[0]);
  if (a->wake[1] >= 0)
    close(a->wake[1]);
  sqlenvfs_root_unlock(a->lock_fd);
  g_mutex_clear(&a->lock);
  g_cond_clear(&a->cond);
  g_cond_clear(&a->snap_cond);
  g_free(a->wal_buf);
  g_free(a->prod_dir);
  g_free(a->wal_dir);
  g_free(a);
}

void
sqlenvfs_archiver_db_status_free(SqlenvfsArchiverDbStatus *st)
{
  if (st == NULL)
    return;
  g_free(st->db);
  g_free(st->message);
  g_free(st);
}

static int
cmp_i64(const void *pa, const void *pb)
{
  gint64 x = *(const gint64 *)pa, y = *(const gint64 *)pb;
  return x < y ? -1 : x > y;
}

static void
percentiles(const Latency *l, gint64 *p50, gint64 *p99, gint64 *max)
{
  guint n = (guint)MIN(l->n, (guint64)N_LATENCY);
  g_autofree gint64 *v = NULL;
  *p50 = *p99 = 0;
  *max = l->max;
  if (n == 0)
    return;
  v = g_memdup2(l->v, n * sizeof(gint64));
  qsort(v, n, sizeof *v, cmp_i64);
  *p50 = v[(n - 1) / 2];
  *p99 = v[MIN(n - 1, (guint)((n * 99 + 99) / 100) - 1)];
}

GPtrArray *
sqlenvfs_archiver_status(SqlenvfsArchiver *a)
{
  GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_archiver_db_status_free);
  gint64 now = sqlenvfs_clock_now();
  g_mutex_lock(&a->lock);
  for (guint i = 0; i < a->dbs->len; i++) {
    Db *d = g_ptr_array_index(a->dbs, i);
    SqlenvfsArchiverDbStatus *st = g_new0(SqlenvfsArchiverDbStatus, 1);
    st->db = g_strdup(d->name);
    st->state = d->state;
    st->message = g_strdup(d->message);
    st->last_capture_us = d->last_capture;
    st->alive_us = d->alive;
    st->lag_us = st->alive_us > 0 ? MAX(now - st->alive_us, 0) : 0;
    st->wal_frames = d->wal_frames;
    st->pending_frames = d->pending_frames;
    st->commits = d->commits;
    st->frames = d->frames;
    st->bytes = d->bytes;
    st->gaps = d->gaps;
    st->checkpoints = d->checkpoints;
    st->snapshot_pending = d->snapshot_pending;
    st->n_latency = d->capture_lat.n;
    percentiles(&d->capture_lat, &st->capture_p50_us, &st->capture_p99_us, &st->capture_max_us);
    percentiles(&d->durable_lat, &st->durable_p50_us, &st->durable_p99_us, &st->durable_max_us);
    g_ptr_array_add(out, st);
  }
  g_mutex_unlock(&a->lock);
  return out;
}
