/*
 * archiver_snapshot.c — the archiver's snapshot thread: the snapshot that
 * becomes the base of a chain (archiving started, a gap, or a resumed chain
 * with no base that can be placed at its newest state).
 *
 * The loop queues a database by name (archiver_queue_snapshot) and goes on
 * capturing; until the snapshot is taken no alive time is published for it
 * (DESIGN.md, invariant 7): the thread then clears snapshot_pending and sets
 * alive_from to a time past the snapshot's pin, under a->lock. A failed
 * snapshot is retried every SNAPSHOT_RETRY_US, or at once when the database
 * is queued again meanwhile (one snapshot, not two). The thread exits when the
 * archiver stops (run() joins it).
 */
#include "archiver_int.h"

#include "sqlenvfs/error.h"

#include <string.h>

#include "sqlenvfs/store.h"
#include "sqlenvfs/util.h"

static gpointer
snapshot_main(gpointer data)
{
  SqlenvfsArchiver *a = data;
  g_mutex_lock(&a->lock);
  while (!g_atomic_int_get(&a->stopping)) {
    char *name = g_queue_pop_head(&a->snap_queue);
    SqlenvfsStoredCopy *copy;
    g_autoptr(GError) error = NULL;
    Db *d;
    if (name == NULL) {
      g_cond_wait(&a->snap_cond, &a->lock);
      continue;
    }
    a->snap_busy = TRUE;
    g_mutex_unlock(&a->lock);
    /* Never into another root that took this one's path (the loop stops). */
    copy = archiver_root_is_ours(a)
             ? sqlenvfs_store_create(a->root, SQLENVFS_KIND_SNAPSHOT, name, NULL, NULL, &error)
             : NULL;
    if (copy == NULL && error == NULL)
      g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "%s is no longer the root this archiver locked", sqlenvfs_root_dir(a->root));
    g_mutex_lock(&a->lock);
    a->snap_busy = FALSE;
    d = archiver_find_db(a, name);
    if (copy) {
      g_message("archiver %s: snapshot %s taken; a new recoverable window starts", name,
                copy->name);
      if (d) {
        d->snapshot_pending = FALSE;
        d->alive_from = sqlenvfs_clock_now(); /* past its pin time, durable */
      }
      sqlenvfs_stored_copy_free(copy);
      g_free(name);
    } else {
      gint64 until = g_get_monotonic_time() + SNAPSHOT_RETRY_US;
      g_warning("archiver %s: the snapshot that starts its recoverable window (%s) failed: %s "
                "(retrying in %d s)",
                name,
                d == NULL || d->snapshot_reason == 0           ? "its chain had no usable base"
                : d->snapshot_reason != SQLENVFS_GAP_FIRST_START ? "after a gap"
                                                                 : "archiving started",
                error->message, (int)(SNAPSHOT_RETRY_US / G_USEC_PER_SEC));
      /* Asked again meanwhile (a new chain): taken at once, and once. */
      while (!g_atomic_int_get(&a->stopping) &&
             g_queue_find_custom(&a->snap_queue, name, (GCompareFunc)strcmp) == NULL &&
             g_cond_wait_until(&a->snap_cond, &a->lock, until))
        ;
      if (g_queue_find_custom(&a->snap_queue, name, (GCompareFunc)strcmp) == NULL)
        g_queue_push_tail(&a->snap_queue, name);
      else
        g_free(name);
    }
  }
  g_mutex_unlock(&a->lock);
  return NULL;
}

void
archiver_queue_snapshot(SqlenvfsArchiver *a, Db *d, SqlenvfsGapReason reason)
{
  g_mutex_lock(&a->lock);
  d->snapshot_pending = TRUE;
  d->snapshot_reason = reason;
  if (g_queue_find_custom(&a->snap_queue, d->name, (GCompareFunc)strcmp) == NULL)
    g_queue_push_tail(&a->snap_queue, g_strdup(d->name));
  if (a->snap_thread == NULL)
    a->snap_thread = g_thread_new("snapshot", snapshot_main, a);
  g_cond_broadcast(&a->snap_cond);
  g_mutex_unlock(&a->lock);
}

void
archiver_snapshot_start(SqlenvfsArchiver *a)
{
  g_mutex_lock(&a->lock);
  if (a->snap_thread == NULL)
    a->snap_thread = g_thread_new("snapshot", snapshot_main, a);
  g_mutex_unlock(&a->lock);
}


void
archiver_snapshot_join(SqlenvfsArchiver *a)
{
  g_assert(g_atomic_int_get(&a->stopping));
  if (a->snap_thread) {
    g_thread_join(a->snap_thread);
    a->snap_thread = NULL;
  }
}
