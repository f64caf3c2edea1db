/*
 * shipper.h — replicate a root's history (backups/prod/) to the replica
 * configured in the `[replica]` section of sqlenvfs.conf, off the commit
 * path (docs/REPLICA.md "Shipping" and "Layout").
 *
 * The running archiver starts one shipper: a thread with its own S3 client
 * that, every sync-interval, uploads what is new locally (sealed segments
 * whole with their index, the archived prefix of each unsealed segment as
 * `.part-A-B` objects ending on record boundaries, backups and snapshots
 * with their MANIFEST last, `alive` and `PRUNED`). It holds the replica's
 * lease (lease.h) while it ships. What is shipped is kept in
 * .sqlenvfs/replica-shipped, so that a restart resumes where it stopped
 * without listing the bucket; its status in .sqlenvfs/replica-status.
 *
 *   s = sqlenvfs_shipper_start(root);     NULL: no replica configured
 *   sqlenvfs_shipper_notify(s, "app");     after the archive was synced
 *   sqlenvfs_shipper_stop(s);              releases the lease, frees
 *
 * Nothing here blocks on the network except in the shipper's own thread:
 * notify() takes a mutex held only for bookkeeping.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/root.h"

G_BEGIN_DECLS

typedef struct _SqlenvfsShipper SqlenvfsShipper;

/* Start shipping for @root when its sqlenvfs.conf has a `[replica]` url;
 * NULL (and nothing started) when it has none. Settings that cannot be
 * used (bad URL, credentials readable by others, none found) are logged
 * once and shown in the status as an error; shipping stays off, and the
 * status counts what waits (backlog_bytes) all the same. */
SqlenvfsShipper *sqlenvfs_shipper_start(SqlenvfsRoot *root);

/* Something new was archived (and synced) for database @db. Cheap, never
 * blocks on I/O; @s may be NULL. */
void sqlenvfs_shipper_notify(SqlenvfsShipper *s, const char *db);

/* Stop the thread (waiting a few seconds at most for an upload under way),
 * release the lease and free. @s may be NULL. */
void sqlenvfs_shipper_stop(SqlenvfsShipper *s);

/* One database's replication, for status, list and metrics. */
typedef struct {
  char *db;
  char *state; /* "off", "starting", "shipping", "stalled", "lease lost", "error" */
  gint64 lag_us;          /* how long the oldest unshipped byte has waited (0: none) */
  guint64 backlog_bytes;  /* archived or backed up locally, not yet shipped */
  gint64 last_shipped_us; /* wall time of the last object shipped (0: never) */
  char *error;            /* the last error, or NULL */
} SqlenvfsShipperDbStatus;

void sqlenvfs_shipper_db_status_free(SqlenvfsShipperDbStatus *st);

/* The replication status of every database of @root: from the shipper
 * running in this process when there is one, else from the status file
 * the last shipper wrote (its lag grows with the time since). Never NULL;
 * empty when no replica is configured. With no archiver running, each
 * database is "off", with the reason: the archiver is not running, or
 * what is wrong with the settings (sqlenvfs_shipper_check_settings); a
 * database never shipped is listed too. */
GPtrArray *sqlenvfs_shipper_status(SqlenvfsRoot *root);

/* The status of @db in @statuses (from sqlenvfs_shipper_status), or NULL. */
const SqlenvfsShipperDbStatus *sqlenvfs_shipper_status_find(GPtrArray *statuses, const char *db);

/* A replica is configured for @root (`[replica] url` in sqlenvfs.conf). */
gboolean sqlenvfs_shipper_is_configured(SqlenvfsRoot *root);

/* With a replica configured for @root, whether an archiver started now
 * could ship with the settings of sqlenvfs.conf (and a credentials file
 * they name): FALSE and SQLENVFS_ERROR_INVALID saying what is wrong and
 * where to fix it. TRUE when none is configured. Credentials missing from
 * this process's environment are not checked (the archiver's may hold
 * them); no network is used. */
gboolean sqlenvfs_shipper_check_settings(SqlenvfsRoot *root, GError **error);

/* For prune, before anything is removed: with a replica configured, FALSE
 * and SQLENVFS_ERROR_REFUSED naming them when any copy that @items
 * (SqlenvfsPruneItem *, store.h) removes, or any archive segment file in
 * @segments (absolute paths), is not yet shipped. TRUE when no replica is
 * configured. Either array may be NULL. */
gboolean sqlenvfs_shipper_check_prune(SqlenvfsRoot *root, GPtrArray *items, GPtrArray *segments,
                                      GError **error);

/* A number for one prune's pending file, unique in this process. */
guint sqlenvfs_shipper_removal_begin(void);

/* For prune @run, before anything is removed: write the keys that removing
 * the copies @items (SqlenvfsPruneItem *, store.h) and the segment files
 * @segments takes from the replica (as sqlenvfs_shipper_queue_removal
 * would queue them) to the run's pending file,
 * ROOT/.sqlenvfs/.tmp-replica-remove-<run>-<pid>, durably. The shipper never
 * reads it: a prune that fails or that a crash or a power cut stops between
 * its local removal and the queue leaves it, for
 * sqlenvfs_shipper_adopt_removals once this process is gone. Does nothing
 * when no replica is configured. */
gboolean sqlenvfs_shipper_intend_removal(SqlenvfsRoot *root, guint run, GPtrArray *items,
                                         GPtrArray *segments, GError **error);

/* For prune, after the local removal succeeded: queue the same keys (those
 * shipped of the copies @items removed, and the segments @segments with
 * their index and summary) for removal from the replica, done by the
 * shipper holding its lease at its next round. The queue
 * (ROOT/.sqlenvfs/replica-remove) is synced, and so is its directory.
 * Does nothing when no replica is configured. */
gboolean sqlenvfs_shipper_queue_removal(SqlenvfsRoot *root, GPtrArray *items,
                                        GPtrArray *segments, GError **error);

/* For prune @run, once everything it removed is queued: its pending file
 * goes. */
void sqlenvfs_shipper_removal_done(SqlenvfsRoot *root, guint run);

/* For prune, first: the pending files of prunes whose process is gone. Of
 * each, the keys of what is gone here (a copy's directory, a segment's
 * .seg file) are queued for removal from the replica, the others dropped
 * (not removed: shipped, and still here); then the file is removed. */
gboolean sqlenvfs_shipper_adopt_removals(SqlenvfsRoot *root, GError **error);

G_END_DECLS
