/*
 * archiver.h — continuous capture of every committed transaction of every
 * production database into the WAL archive (archive.h), following
 * DESIGN.md "The archiver's invariants".
 *
 * The engine is embeddable: `sqlenvfs archive` runs it in the foreground,
 * the mount daemon in a thread. One archiver per root: new() takes the
 * root's "archiver" lock and refuses (BUSY) when another process holds it.
 *
 *   a = sqlenvfs_archiver_new(root, &err);   lock taken, nothing opened yet
 *   sqlenvfs_archiver_run(a, &err);          blocks: captures until stopped
 *   sqlenvfs_archiver_stop(a);               from any thread or a signal
 *                                            handler; run() returns soon after
 *   sqlenvfs_archiver_free(a);               after run() returned
 *
 * While run() is capturing, other threads may call sync(), checkpoint() and
 * status(). Production databases that appear in data/prod are picked up.
 *
 * Production is never written, except by the checkpoints the archiver runs
 * (which copy WAL frames into the database file, as SQLite itself does).
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/root.h"

G_BEGIN_DECLS

typedef struct _SqlenvfsArchiver SqlenvfsArchiver;

typedef enum {
  SQLENVFS_ARCHIVER_STARTING,  /* not yet capturing (opening, or waiting for the write lock) */
  SQLENVFS_ARCHIVER_CAPTURING, /* every commit is being archived                          */
  SQLENVFS_ARCHIVER_NOT_WAL,   /* the database is not in WAL mode: nothing can be archived */
  SQLENVFS_ARCHIVER_MISSING,   /* the database file is gone                               */
  SQLENVFS_ARCHIVER_FAILING,   /* an error stops capture; retried (see message)           */
  SQLENVFS_ARCHIVER_STOPPED,   /* run() has returned                                      */
} SqlenvfsArchiverState;

const char *sqlenvfs_archiver_state_name(SqlenvfsArchiverState state);

/* One database as the archiver sees it (a copy; free with
 * sqlenvfs_archiver_db_status_free). */
typedef struct {
  char *db;
  SqlenvfsArchiverState state;
  char *message;            /* the last error or notable event, or NULL          */
  gint64 last_capture_us;   /* capture time of the last archived commit (0: none) */
  gint64 alive_us;          /* every commit before this time is archived          */
  gint64 lag_us;            /* now - alive_us                                    */
  guint32 wal_frames;       /* frames in the current WAL generation               */
  guint32 pending_frames;   /* committed frames not archived yet                  */
  guint64 commits, frames, bytes; /* archived since run() began                   */
  guint64 gaps;             /* gaps recorded since run() began                    */
  guint64 checkpoints;      /* checkpoints run since run() began                  */
  gboolean snapshot_pending;/* a chain started (or resumed with no base that can */
                            /* be placed) and its snapshot is not taken yet; no */
                            /* alive time is published until it is              */
  /* Latency of the commits captured since run() began, in microseconds:
   * from the moment the archiver was woken by the commit's WAL write to the
   * record written (capture) and fsync'd (durable). */
  guint64 n_latency;
  gint64 capture_p50_us, capture_p99_us, capture_max_us;
  gint64 durable_p50_us, durable_p99_us, durable_max_us;
} SqlenvfsArchiverDbStatus;

void sqlenvfs_archiver_db_status_free(SqlenvfsArchiverDbStatus *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsArchiverDbStatus, sqlenvfs_archiver_db_status_free)

/* An archiver for @root (which must outlive it). Takes the root's archiver
 * lock: NULL and BUSY (naming the process holding it) when another archiver
 * runs. Creates the archive directory. */
SqlenvfsArchiver *sqlenvfs_archiver_new(SqlenvfsRoot *root, GError **error);

/* Release everything and the lock. Only after run() has returned (or was
 * never called). */
void sqlenvfs_archiver_free(SqlenvfsArchiver *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsArchiver, sqlenvfs_archiver_free)

/* Capture until stop() is called; first records the calling process in
 * the archiver lock file (new() may have run in a parent that forked into a
 * daemon since). Returns TRUE after a clean stop: every
 * commit seen is archived and durable, the databases are closed without
 * checkpointing. FALSE and *error only when capture cannot run at all (no
 * inotify, the data/prod directory unreadable); problems of one database
 * are reported in its status and retried. */
gboolean sqlenvfs_archiver_run(SqlenvfsArchiver *a, GError **error);

/* Ask run() to finish. Thread-safe and async-signal-safe; returns at once. */
void sqlenvfs_archiver_stop(SqlenvfsArchiver *a);

/* "Archive everything up to now": wait until every transaction committed
 * before this call in database @db (NULL: every database) is archived and
 * durable. FALSE and *error on a timeout (@timeout_us, 0: 30 s), when the
 * database is not being captured, or when run() is not running. */
gboolean sqlenvfs_archiver_sync(SqlenvfsArchiver *a, const char *db, gint64 timeout_us,
                                GError **error);

/* Archive everything, then checkpoint database @db (NULL: every database)
 * so that the next write restarts its WAL (DESIGN.md invariant 3). Done
 * without the write lock when every frame is already in the database file
 * (an application's own checkpoint may have copied them). When the write
 * lock, or another reader, is in the way, tries again every tick (capture
 * goes on meanwhile) for up to @timeout_us (0: 30 s). FALSE and *error
 * (BUSY, naming what was in the way) then, or as sync(). */
gboolean sqlenvfs_archiver_checkpoint(SqlenvfsArchiver *a, const char *db, gint64 timeout_us,
                                      GError **error);

/* A snapshot of every known database's status (SqlenvfsArchiverDbStatus *,
 * sorted by name). Never NULL. Cheap (no I/O): the recoverable windows,
 * which need the archive's index and the store, come from
 * sqlenvfs_restore_windows(). */
GPtrArray *sqlenvfs_archiver_status(SqlenvfsArchiver *a);

G_END_DECLS
