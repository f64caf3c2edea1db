/*
 * archiver_requests.c — sync() and checkpoint() called from other threads
 * (a restore that needs the archive up to now, `sqlenvfs checkpoint`, the
 * mount's ctl files).
 *
 * A request is queued under a->lock, the loop is woken through the
 * self-pipe, and the caller waits on a->cond until the loop has served it
 * between two cycles (archiver_serve_requests) or its deadline (plus a
 * second) passed. A request is shared by the caller and the queue (two
 * references); whoever drops the last frees it, so a caller that gave up
 * waiting leaves nothing dangling. When run() returns, requests still
 * queued fail with CANCELLED.
 *
 * A checkpoint never waits for the write lock in the loop (archiver.c
 * archiver_db_checkpoint says why): when the lock, or another reader,
 * is in the way, the request stays queued and is tried again a tick
 * later, while the loop goes on archiving and moving its read mark (which
 * is what an application's own RESTART or TRUNCATE checkpoint waits for),
 * until it is done or its deadline passes; then it fails with BUSY,
 * naming what was in the way and what to do. The databases already
 * checkpointed are not done again.
 */
#include "archiver_int.h"

#include <string.h>
#include <unistd.h>

#include "sqlenvfs/error.h"

typedef enum {
  REQ_SYNC,
  REQ_CHECKPOINT,
} ReqKind;

struct _Request {
  gint ref;
  ReqKind kind;
  char *db;           /* NULL: all            */
  gint64 started;     /* monotonic            */
  gint64 deadline;    /* monotonic            */
  gint64 retry_at;    /* monotonic: not served before */
  GHashTable *done;   /* names of the databases checkpointed so far */
  gboolean is_done;
  GError *error;
};

static void
request_unref(Request *r)
{
  if (g_atomic_int_dec_and_test(&r->ref)) {
    g_clear_error(&r->error);
    g_clear_pointer(&r->done, g_hash_table_unref);
    g_free(r->db);
    g_free(r);
  }
}

static void
request_finish(SqlenvfsArchiver *a, Request *r, GError *error)
{
  g_mutex_lock(&a->lock);
  r->is_done = TRUE;
  r->error = error;
  g_cond_broadcast(&a->cond);
  g_mutex_unlock(&a->lock);
  request_unref(r);
}

/* Serve @r: FALSE when it stays queued (a checkpoint that something was in
 * the way of, before its deadline), TRUE when it was finished. */
static gboolean
serve_request(SqlenvfsArchiver *a, Request *r)
{
  GError *error = NULL;
  guint n = 0;
  for (guint i = 0; i < a->dbs->len && error == NULL; i++) {
    Db *d = g_ptr_array_index(a->dbs, i);
    if (r->db && strcmp(r->db, d->name) != 0)
      continue;
    if (r->db == NULL && d->state == SQLENVFS_ARCHIVER_MISSING)
      continue;
    n++;
    if (r->kind == REQ_CHECKPOINT && g_hash_table_contains(r->done, d->name))
      continue;
    if (d->phase != PHASE_CAPTURING) {
      g_mutex_lock(&a->lock);
      g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                  "database %s is not being archived (%s%s%s)", d->name,
                  sqlenvfs_archiver_state_name(d->state), d->message ? ": " : "",
                  d->message ? d->message : "");
      g_mutex_unlock(&a->lock);
      break;
    }
    if (r->kind == REQ_SYNC) {
      if (!archiver_db_sync(d, &error))
        break;
    } else {
      gboolean done;
      gint64 now;
      if (archiver_db_checkpoint(d, TRUE, &done, &error) && !done)
        g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                    "checkpoint %s: another reader holds older parts of the WAL (an "
                    "application's long read transaction, or a copy being read)", d->path);
      if (error == NULL) {
        g_hash_table_add(r->done, g_strdup(d->name));
        continue;
      }
      if (!g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY))
        break;
      now = g_get_monotonic_time();
      if (now + TICK_US <= r->deadline) {
        g_debug("archiver: %s; trying again in %d ms", error->message,
                (int)(TICK_US / 1000));
        g_clear_error(&error);
        r->retry_at = now + TICK_US;
        return FALSE;
      }
      {
        GError *why = error;
        error = NULL;
        g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                    "%s, at every try for %.1f s; nothing is lost (the commits are archived, "
                    "and the archiver checkpoints on its own once it can): try again once "
                    "that is over (`sqlenvfs doctor` names the processes that have the "
                    "database open, and what they hold)",
                    why->message, (double)(now - r->started) / G_USEC_PER_SEC);
        g_error_free(why);
      }
      break;
    }
  }
  if (error == NULL && r->db && n == 0)
    g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "no production database %s is being archived", r->db);
  request_finish(a, r, error);
  return TRUE;
}

static gboolean
submit(SqlenvfsArchiver *a, ReqKind kind, const char *db, gint64 timeout_us, GError **error)
{
  Request *r = g_new0(Request, 1);
  gint64 deadline;
  gboolean ok;
  char c = 'r';

  if (timeout_us <= 0)
    timeout_us = 30 * G_USEC_PER_SEC;
  deadline = g_get_monotonic_time() + timeout_us;
  r->ref = 2;
  r->kind = kind;
  r->db = g_strdup(db);
  r->started = deadline - timeout_us;
  r->deadline = deadline;
  r->done = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_mutex_lock(&a->lock);
  if (!g_atomic_int_get(&a->running) || g_atomic_int_get(&a->stopping)) {
    g_mutex_unlock(&a->lock);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "the archiver is not running (start it with `sqlenvfs archive`)");
    g_hash_table_unref(r->done);
    g_free(r->db);
    g_free(r);
    return FALSE;
  }
  g_ptr_array_add(a->requests, r);
  g_mutex_unlock(&a->lock);
  if (write(a->wake[1], &c, 1) < 0) {
    /* The pipe is non-blocking: full means a wake-up is pending anyway. */
  }
  g_mutex_lock(&a->lock);
  while (!r->is_done)
    if (!g_cond_wait_until(&a->cond, &a->lock, deadline + G_USEC_PER_SEC))
      break;
  ok = r->is_done && r->error == NULL;
  if (!r->is_done)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "the archiver did not finish %s within %d s",
                kind == REQ_SYNC ? "archiving" : "the checkpoint",
                (int)(timeout_us / G_USEC_PER_SEC));
  else if (r->error)
    g_propagate_error(error, g_error_copy(r->error));
  g_mutex_unlock(&a->lock);
  request_unref(r);
  return ok;
}

gboolean
sqlenvfs_archiver_sync(SqlenvfsArchiver *a, const char *db, gint64 timeout_us, GError **error)
{
  return submit(a, REQ_SYNC, db, timeout_us, error);
}

gboolean
sqlenvfs_archiver_checkpoint(SqlenvfsArchiver *a, const char *db, gint64 timeout_us,
                             GError **error)
{
  return submit(a, REQ_CHECKPOINT, db, timeout_us, error);
}


void
archiver_serve_requests(SqlenvfsArchiver *a)
{
  GPtrArray *reqs, *later = g_ptr_array_new();
  gint64 now = g_get_monotonic_time();
  g_mutex_lock(&a->lock);
  reqs = a->requests;
  a->requests = g_ptr_array_new();
  g_mutex_unlock(&a->lock);
  for (guint i = 0; i < reqs->len; i++) {
    Request *r = g_ptr_array_index(reqs, i);
    if (now < r->retry_at || !serve_request(a, r))
      g_ptr_array_add(later, r);
  }
  g_ptr_array_unref(reqs);
  if (later->len > 0) {
    /* Ahead of those queued meanwhile, in their order. */
    g_mutex_lock(&a->lock);
    g_ptr_array_extend_and_steal(later, a->requests);
    a->requests = later;
    g_mutex_unlock(&a->lock);
  } else {
    g_ptr_array_unref(later);
  }
}

void
archiver_cancel_requests_locked(SqlenvfsArchiver *a)
{
  for (guint i = 0; i < a->requests->len; i++) {
    Request *r = g_ptr_array_index(a->requests, i);
    r->is_done = TRUE;
    g_set_error(&r->error, SQLENVFS_ERROR, SQLENVFS_ERROR_CANCELLED, "the archiver stopped");
    request_unref(r);
  }
  g_ptr_array_set_size(a->requests, 0);
  g_cond_broadcast(&a->cond);
}
