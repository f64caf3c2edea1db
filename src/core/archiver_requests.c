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
  gint64 deadline;    /* monotonic            */
  gboolean is_done;
  GError *error;
};

static void
request_unref(Request *r)
{
  if (g_atomic_int_dec_and_test(&r->ref)) {
    g_clear_error(&r->error);
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

static void
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
      gint64 left_ms = MAX((r->deadline - g_get_monotonic_time()) / 1000, 1);
      if (!archiver_db_checkpoint(d, (int)MIN(left_ms, G_MAXINT), &done, &error))
        break;
      if (!done)
        g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                    "checkpoint %s: readers still use older parts of the WAL; try again later",
                    d->path);
    }
  }
  if (error == NULL && r->db && n == 0)
    g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "no production database %s is being archived", r->db);
  request_finish(a, r, error);
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
  r->deadline = deadline;
  g_mutex_lock(&a->lock);
  if (!g_atomic_int_get(&a->running) || g_atomic_int_get(&a->stopping)) {
    g_mutex_unlock(&a->lock);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "the archiver is not running (start it with `sqlenvfs archive`)");
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
  GPtrArray *reqs;
  g_mutex_lock(&a->lock);
  reqs = a->requests;
  a->requests = g_ptr_array_new();
  g_mutex_unlock(&a->lock);
  for (guint i = 0; i < reqs->len; i++)
    serve_request(a, g_ptr_array_index(reqs, i));
  g_ptr_array_unref(reqs);
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
