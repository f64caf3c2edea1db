/*
 * archiver_int.h — what the archiver's files share (private to them).
 *
 * The archiver (archiver.h) is four files along its seams:
 *
 *   archiver.c           per database: open, decide continuity, capture,
 *                        sync, rotate, checkpoint, close (the Db state
 *                        machine and DESIGN.md "The archiver's invariants")
 *   archiver_loop.c      the archiver as a whole: new/free, the loop of
 *                        run() (inotify, ticks, rechecks, syncs due), stop(),
 *                        status(), the list of databases
 *   archiver_requests.c  sync() and checkpoint() from other threads: a queue
 *                        served by the loop between cycles
 *   archiver_snapshot.c  the thread that takes a chain's base snapshot
 *
 * Threads and locks. One thread (the loop, in run()) owns every Db and all
 * of its capture fields, and is the only one that touches a Db's
 * connections, WAL file and archive writer. a->lock protects: the requests
 * queue, the snapshot queue, the Db status fields (marked below), and the
 * membership of a->dbs (only the loop adds to it; other threads look names
 * up under the lock). Nothing else is taken while a->lock is held, and it
 * is never held across I/O of a capture.
 */
#pragma once

#include <glib.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/archiver.h"
#include "sqlenvfs/shipper.h"
#include "sqlenvfs/walfile.h"

#define TICK_US (100 * 1000)          /* safety poll: wal-index checked, read mark moved */
#define RECHECK_MIN_US 20              /* a commit being written: look again after a  */
#define RECHECK_MAX_US G_USEC_PER_SEC  /* quarter of the time since the last WAL write */
                                       /* (>= 20 us), for up to a second               */
#define TIMER_SLACK_NS 5000            /* so that a 20 us wait is not 70 us            */
#define POLL_WAITED_US 200             /* events that came while we waited in poll     */
#define PACE_US (5 * 1000)            /* after archiving PACE_COMMITS or more, no  */
#define PACE_COMMITS 8                 /* look before this (WAL writes meanwhile wake */
                                       /* nobody)                                      */
#define SYNC_US (50 * 1000)            /* archived commits are synced this often       */
#define SYNC_TRIES 10                  /* captures a sync request tries to reach the end */
#define RESCAN_US (2 * G_USEC_PER_SEC) /* data/prod listed again                         */
#define RETRY_US (2 * G_USEC_PER_SEC)  /* after a failure, try again                     */
#define ROOM_US (250 * 1000)           /* production's room looked at again after this    */
#define SETTLE_US G_USEC_PER_SEC       /* a database that appears: let its creator finish */
#define IDLE_CKPT_US G_USEC_PER_SEC    /* a WAL quiet this long, with no other process    */
                                       /* connected, is checkpointed and truncated        */
#define SNAPSHOT_RETRY_US (30 * G_USEC_PER_SEC)
#define ALIVE_STEP_US (500 * 1000)     /* the alive file is rewritten at most this often */
#define OPEN_LOCK_MS 5000              /* waiting for the write lock when opening         */
#define CKPT_LOCK_MS 100               /* the checkpoint connection's busy timeout         */
#define READ_BUSY_MS 200
#define PRE_ROUNDS 4                   /* a checkpoint's rounds before the write lock ...   */
#define PRE_ENOUGH 32                  /* ... until no more than this many frames are left */
#define WAL_BUF (4u << 20)
#define BATCH_COMMITS 64        /* commits written as one batch, at most       */
#define BATCH_BYTES (1u << 20)  /* page bytes of a batch, about; larger commits
                                 * are written on their own                    */
#define N_LATENCY 4096
#define START_NICE 10           /* the start-up pass runs this much nicer (archiver_loop.c) */

typedef struct _Db Db;



/* The last N_LATENCY samples and the maximum. */
typedef struct {
  gint64 v[N_LATENCY];
  guint64 n;
  gint64 max;
} Latency;

typedef struct _Request Request;

struct _SqlenvfsArchiver {
  SqlenvfsRoot *root;
  int lock_fd;
  char *prod_dir;
  dev_t prod_dev; /* data/prod when the loop started (archiver_root_in_place) */
  ino_t prod_ino;
  GError *gone;   /* why the root is out of reach (the loop stops with it), or NULL */
  char *wal_dir;
  gint64 segment_max;
  gint64 segment_max_records;
  guint32 checkpoint_pages;

  int wake[2];        /* self-pipe: stop() and requests wake the loop */
  gint stopping;      /* atomic */
  gint running;       /* atomic */
  int inotify_fd;
  int watch;

  GMutex lock;        /* protects requests, status fields, snapshot queue */
  GCond cond;         /* a request finished */
  GPtrArray *dbs;     /* Db *, sorted by name */
  GPtrArray *requests;/* Request * waiting for the loop */

  /* snapshots that start a chain's window, taken by a worker thread */
  GThread *snap_thread;
  GQueue snap_queue;  /* char * names */
  GCond snap_cond;
  gboolean snap_busy;

  guint8 *wal_buf;    /* shared by every Db's WAL file (one capture at a time) */
  SqlenvfsShipper *shipper; /* replication to [replica], or NULL (shipper.h) */
};

typedef enum {
  PHASE_CLOSED,
  PHASE_CAPTURING,
} Phase;

struct _Db {
  SqlenvfsArchiver *a;
  char *name, *path, *wal_path, *dir;
  Phase phase;
  gint64 retry_at;           /* monotonic; when CLOSED: next open attempt */
  SqlenvfsGapReason reopen_reason; /* why we closed, if that breaks continuity */
  char *reopen_why;                /* what was seen then (the gap's text)        */
  gint64 ckpt_retry_at;            /* no routine checkpoint before (monotonic)   */
  gint64 changed_at;               /* the wal-index last changed, or the last    */
                                   /* idle_checkpoint (monotonic)               */
  guint32 ckpt_floor;              /* mxFrame at the look before the last (0:   */
                                   /* another generation): a reader holding     */
                                   /* frames below it is not a transaction      */
                                   /* under way                                 */
  gboolean is_dirty;         /* the WAL was written since the last cycle */
  gboolean is_failing;       /* the last cycle failed; retry at retry_at  */
  gint64 outage_from;        /* capture interrupted since (0: it is not)  */
  gint64 outage_to;          /* the OUTAGE written for it ends then (0: none */
                             /* yet): the commits up to outage_at's mxFrame */
                             /* are stamped with it (archiver.c, late_outage) */
  SqlenvfsWalIndexHeader outage_at; /* the wal-index when it was written    */
  gboolean outage_renew;     /* a capture failed since it was written       */
  gint64 room_at;            /* monotonic time production's filesystem was */
                             /* last found with room for the archive       */
  gint64 released_at;        /* the WAL was let go then, past a bound, while */
                             /* the archive failed (0: it was not)           */
  char *released_why;        /* the bound it reached (release_wal_if_over)   */
  gint64 wal_at_fail;        /* the WAL's size when the failure began        */
  gboolean failed_nospace;   /* the last failure of an open was NOSPACE      */
  gint64 rotated_at;         /* monotonic time of the last rotate()       */
  gboolean is_mark_behind;   /* archived past the read mark: move it soon */
  gint64 woken_at;           /* when the first such event came (0: unknown) */
  gint64 looked_at;          /* monotonic time of the last wal-index look */
  gint64 recheck_at;         /* look again then (0: at the next event)     */
  gint64 written_at;         /* the last look woken by a WAL write          */
  gint64 pending_since;      /* first look that saw frames after mxFrame (0: none) */
  SqlenvfsWalIndexHeader pending_at; /* the wal-index then                  */
  gint64 synced_at;          /* monotonic time of the last archive sync    */
  guint unsynced;            /* commits archived since, not yet synced     */
  gint64 unsynced_woken;     /* the earliest wake time among them          */
  gint64 alive_pending;      /* capture complete as of then, once synced   */
  gint64 paced_until;        /* monotonic; no look before (0: none)         */

  sqlite3 *rd[2];
  int active;                /* rd[] holding the read transaction, or -1 */
  sqlite3 *hold;             /* the read transaction of an open that failed, */
                             /* kept while it is retried (hold_wal)          */
  sqlite3 *ckpt, *wlock;
  dev_t dev;
  ino_t ino;
  SqlenvfsWalFile *wal;      /* the -wal file, NULL until opened           */
  SqlenvfsArchiveWriter *w;
  gboolean has_cur;
  SqlenvfsWalCursor cur;
  gboolean is_at_end;        /* the last capture reached the wal-index's
                              * mxFrame (what rotate() relies on)          */
  gboolean cycle_at_end;     /* the last cycle's capture did (before its
                              * routine checkpoint captured again)         */
  gboolean has_seen;
  SqlenvfsWalIndexHeader seen;
  /* The database file as last stat'ed, with the wal-index then: only a
   * checkpoint (frames backfilled) may change it (check_overwritten). */
  gboolean has_file_seen;
  struct stat file_st;
  SqlenvfsWalIndexHeader file_si;

  /* status (under a->lock) */
  gint64 alive;
  SqlenvfsArchiverState state;
  char *message;
  gint64 last_capture;
  guint32 wal_frames, pending_frames;
  guint64 commits, frames, bytes, gaps, checkpoints;
  gboolean snapshot_pending;
  SqlenvfsGapReason snapshot_reason; /* why the chain it is the base of started (0: it */
                                     /* went on, but no base of it could be placed)   */
  gint64 alive_from;         /* no alive time before this is published: the  */
                             /* current chain's base is durable as of then    */
                             /* (G_MAXINT64 while it is pending or unchecked) */
  Latency capture_lat, durable_lat;
};

/* archiver.c: one database. Every function runs on the loop's thread. */

/* A database known by name, closed; opened by the first service(). */
Db *archiver_db_new(SqlenvfsArchiver *a, const char *name);
void archiver_db_free(Db *d);
/* Bring a closed database up (after its retry time), or run one capture
 * cycle of a capturing one; failures go into its status and are retried. */
void archiver_db_service(Db *d, gboolean force);
/* One capture cycle: archive what the wal-index shows as committed, sync
 * when due (or @force), move the read mark, checkpoint when due. */
gboolean archiver_db_cycle(Db *d, gboolean force, GError **error);
/* Archive everything committed before the call, sync it, and publish it
 * in the alive file. The database must be capturing. */
gboolean archiver_db_sync(Db *d, GError **error);
/* The checkpoint of invariant 3 (see archiver.c): BUSY, saying what was
 * busy, when the write lock or another reader was in the way. */
gboolean archiver_db_checkpoint(Db *d, gboolean is_request, gboolean *done, GError **error);
/* The last capture before run() returns (when capturing), then close
 * without checkpointing; the state becomes STOPPED. */
void archiver_db_stop(Db *d);

/* archiver_loop.c */
/* The database named @name, or NULL. Call on the loop's thread, or with
 * a->lock held. */
Db *archiver_find_db(SqlenvfsArchiver *a, const char *name);

/* archiver_requests.c */
/* Serve every request queued so far (loop's thread, between cycles). */
/* archiver_loop.c: whether the root is still the one this archiver locked
 * and data/prod the directory it started on; when not, a->gone says why
 * and the loop stops (nothing is opened by path in another root). Looked
 * at before every (re)open of a database and at each listing of data/prod. */
gboolean archiver_root_in_place(SqlenvfsArchiver *a);
/* The first half of that, touching nothing (any thread): whether the file
 * at the root's archiver lock path is the one this archiver holds. */
gboolean archiver_root_is_ours(SqlenvfsArchiver *a);

void archiver_serve_requests(SqlenvfsArchiver *a);
/* Fail every request still queued: the archiver stopped. a->lock held. */
void archiver_cancel_requests_locked(SqlenvfsArchiver *a);

/* archiver_snapshot.c */
/* Take a snapshot of @d to start its chain's window (@reason: why the
 * chain started, 0: it went on without a usable base); the snapshot
 * thread is started on first use. No alive time is published until then. */
void archiver_queue_snapshot(SqlenvfsArchiver *a, Db *d, SqlenvfsGapReason reason);
/* Start the snapshot thread if it is not running (it then waits for a
 * snapshot to take), so that it is not started by a nicer thread. */
void archiver_snapshot_start(SqlenvfsArchiver *a);
/* Wait for the snapshot thread to finish (after `stopping` was set and
 * a->snap_cond broadcast). */
void archiver_snapshot_join(SqlenvfsArchiver *a);
