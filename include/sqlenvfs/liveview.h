/*
 * liveview.h — a consistent, pinned view of a live database in WAL mode.
 *
 * Opening a view pins one committed state of the database while applications
 * keep writing, without stopping them: a read transaction begins, and the
 * wal-index header is read before and after; if it did not change, the
 * transaction's snapshot is exactly the state after the commit frame that
 * header names (its SqlenvfsWalPos). A writer that commits without pause
 * only makes it retry; after many retries the view holds writers for an
 * instant (BEGIN IMMEDIATE on a second connection, rolled back, writing
 * nothing). liveview.c has the state machine and invariants.
 *
 * While the view is open its read transaction keeps the frames it needs from
 * being checkpointed over or reset, so the state can be read as a standalone
 * database file: the database file overlaid with the newest frame of each page
 * up to the position (image.h). Reads go through SQLite's own file handles
 * (SQLITE_FCNTL_FILE_POINTER / JOURNAL_POINTER), never a second descriptor, so
 * closing nothing here can drop SQLite's POSIX locks.
 *
 * Production is never written: the connections disable checkpoint-on-close
 * and only ever roll back.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h"

G_BEGIN_DECLS

/* The position in the WAL that a pinned state corresponds to. */
typedef struct {
  guint32 salt1, salt2;   /* WAL generation; both 0 when the WAL held no valid frame */
  guint32 frame;          /* index of the last commit frame in the state; 0: none    */
  guint32 cksum1, cksum2; /* cumulative checksum after that frame                     */
  guint32 ckpt_seq;       /* WAL header checkpoint sequence (0 if the WAL was not read) */
  guint32 page_size;
  guint32 n_pages;        /* database size in pages in this state                     */
  gint64 pinned_at;       /* wall time (us, UTC) at which the state was pinned        */
} SqlenvfsWalPos;

typedef struct _SqlenvfsLiveView SqlenvfsLiveView;

/* Pin the current committed state of the database at @path (see above). A
 * database not in WAL mode is pinned the same way (its position is empty)
 * and read from the file under the read transaction's shared lock. NULL and
 * *error on failure: NOT_FOUND, BUSY (a writer held the lock longer than the
 * busy timeout; retry), INTEGRITY (not a database, or a damaged WAL). */
SqlenvfsLiveView *sqlenvfs_live_view_open(const char *path, GError **error);

/* sqlenvfs_live_view_open() for a caller that takes nothing but a WAL
 * database (production, whose every reader here must leave it as it is).
 * A file whose header says rollback-journal mode is not opened at all: the
 * first read of a read-write connection would play back a hot journal, a
 * write. Not WAL (by the header, or as the view found it): NULL, no error,
 * and *not_wal the journal mode (newly allocated), for the caller to say
 * why it refuses. Other failures: NULL, *not_wal NULL, *error set. */
SqlenvfsLiveView *sqlenvfs_live_view_open_wal(const char *path, char **not_wal,
                                              GError **error);
void sqlenvfs_live_view_free(SqlenvfsLiveView *view);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsLiveView, sqlenvfs_live_view_free)

const SqlenvfsWalPos *sqlenvfs_live_view_pos(const SqlenvfsLiveView *view);

/* The pinned state as an image (owned by the view; valid until it is freed). */
SqlenvfsImage *sqlenvfs_live_view_image(SqlenvfsLiveView *view);

/* The read-only connection that holds the pinned read transaction: queries
 * on it see the pinned state (owned by the view). */
struct sqlite3 *sqlenvfs_live_view_db(SqlenvfsLiveView *view);

/* The database's journal mode at pin time ("wal", "delete", ...). */
const char *sqlenvfs_live_view_journal_mode(const SqlenvfsLiveView *view);

G_END_DECLS
