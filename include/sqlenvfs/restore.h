/*
 * restore.h — point-in-time recovery: a production database as it was at a
 * time T, rebuilt from a base (a backup or snapshot, store.h) and the WAL
 * archive (archive.h). The rules are in docs/ARCHIVE.md ("Chains, outages
 * and the recoverable window").
 *
 * Windows are computed after every archived COMMIT record was checked
 * (sqlenvfs_archive_check_records): a damaged record breaks its chain like
 * a gap, so windows, plans and restores agree on what is recoverable.
 *
 * Restoring to T gives exactly the state after the last transaction
 * captured at or before T. A T outside the recoverable window — before its
 * start, after the last archived time, inside a gap or an outage — is
 * refused with SQLENVFS_ERROR_GAP naming the window, never answered with
 * another state.
 *
 * sqlenvfs_restore_windows and sqlenvfs_restore_plan open the database's
 * timeline (timeline.h) and ask it; a caller that asks again and again (the
 * mount) keeps a timeline and refreshes it instead.
 *
 * Three entry points, cheapest first:
 *   plan   resolve T to the exact state (its time, size, base): reads the
 *          archive's index and the store's MANIFESTs, never page data;
 *   image  the state as an SqlenvfsImage (image.h) for streaming reads: the
 *          base file overlaid with, for each page, its last archived version
 *          at or before T (each page once); the base is checked against its
 *          MANIFEST (sqlenvfs_store_check_base) and every archived record it
 *          uses against its checksum first; a bad base is replaced by an
 *          older good one of the same chain, or the restore is refused
 *          naming it;
 *   file   the image written to a file the way copies are (copy.h: temporary
 *          file, integrity_check, fsync, rename).
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/image.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timefmt.h"

G_BEGIN_DECLS

/* A recoverable window: every T in [from_us, to_us] can be restored. */
typedef struct {
  gint64 from_us, to_us;
  char *note; /* why the time before from_us is not recoverable (or NULL) */
  SqlenvfsWindowBefore before; /* the same, as a kind (store.h)            */
  gboolean base_unchecked; /* no base it starts from has a verdict for its
                              file as it is now (verifymemo.h): it changed
                              since it was written or last checked      */
} SqlenvfsRestoreWindow;

void sqlenvfs_restore_window_free(SqlenvfsRestoreWindow *w);

/* The recoverable windows of database @db, oldest first (SqlenvfsRestoreWindow
 * *; empty when nothing is recoverable). NULL and *error only when the
 * archive or the store cannot be read. */
GPtrArray *sqlenvfs_restore_windows(SqlenvfsRoot *root, const char *db, GError **error);

typedef struct {
  char *db;
  gint64 target_us;       /* T; for `latest`, the end of the newest window       */
  gint64 state_us;        /* capture time of the state restored (<= target_us)   */
  guint64 state_seq;      /* archive sequence number of that state: two plans    */
                          /* with the same db and state_seq give the same bytes  */
  guint32 page_size;
  guint32 n_pages;        /* database size in pages at T                         */
  guint64 size;           /* page_size * n_pages                                 */
  SqlenvfsCopyKind base_kind;
  char *base_name;        /* the backup or snapshot entry, e.g. 20261128T161400Z */
  char *base_path;        /* its <db>.db file                                    */
  guint32 base_n_pages;
  guint64 base_seq;       /* archive sequence number of the base's state         */
  gint64 base_state_us;   /* its capture time                                    */
  guint64 n_commits;      /* archived transactions applied on top of the base    */
  guint64 archive_bytes;  /* bytes of archived records read to apply them        */
  SqlenvfsFileId base_id; /* the base file as checked (set by restore_image)     */
  guint32 base_crc32;     /* its crc32 as its MANIFEST says (set likewise)       */
  /* Set by a caller that serves pages on demand (the mount): a base that the
   * memo of base verdicts (verifymemo.h) knows as good, and whose file is
   * unchanged since, is not read whole for its crc32 again. Restores that
   * read the whole base (to a file, refresh-dev, drills) leave it FALSE and
   * check every byte. */
  gboolean on_demand;
  /* Set by restore_image when the base opener (below) gave the base: there
   * is no file to compare with base_id, each block being checked as read. */
  gboolean base_remote;
} SqlenvfsRestorePlan;

void sqlenvfs_restore_plan_free(SqlenvfsRestorePlan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsRestorePlan, sqlenvfs_restore_plan_free)

/* Whether @time_us is a time just past (not in the future, at most 10 s
 * ago) while a process holds @root's archiver lock: its records are
 * archived, but a window ends at the archive's alive time, which the
 * archiver writes at most twice a second, so the window soon reaches it.
 * A plan refused for such a time past the last window is worth waiting
 * for, briefly. */
gboolean sqlenvfs_restore_time_just_past(SqlenvfsRoot *root, gint64 time_us);

/* Resolve @t for database @db (NULL: the default database). NULL and *error:
 * GAP when T is not recoverable (the message names the windows), NOT_FOUND
 * for an unknown database, I/O errors reading the archive or the store. A
 * time just past (sqlenvfs_restore_time_just_past) after the last window
 * is waited for, up to 2 s, before it is refused. */
SqlenvfsRestorePlan *sqlenvfs_restore_plan(SqlenvfsRoot *root, const char *db,
                                           const SqlenvfsTime *t, GError **error);

/* The state @plan describes, as an image reading the base file and archive
 * segments (it owns its file handles). First checks the base file against
 * its MANIFEST (size, SQLite header, crc32; sqlenvfs_store_check_base, whose
 * verdict is remembered for an unchanged file, in this process and in the
 * root's memo, verifymemo.h, so that windows in every process leave a bad
 * base out); when it is bad, the next
 * best base of the same chain that can serve the state is tried, and the
 * base fields of @plan (base_*, n_commits, archive_bytes) are updated to the
 * base used; base_id is set to the identity of the file checked. Reads and
 * checks every archived record the state needs (progress: bytes of them
 * read). The state, and so every byte of the image, does not depend on the
 * base. NULL and *error: INTEGRITY naming every bad base when none is good,
 * or naming the segment when a record is corrupt, GAP when the records are
 * no longer there (pruned since the plan), I/O errors. */
SqlenvfsImage *sqlenvfs_restore_image(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan,
                                      SqlenvfsProgressFunc progress, gpointer user,
                                      GError **error);

/* The state after COMMIT record @e of @a, composed on @below, the image of
 * an earlier state (the one after record @below_seq, of the chain @e is
 * in: from restore_image or from this function): the commits in
 * (@below_seq, @e] overlaid on it as restore_image overlays them on a base
 * (sqlenvfs_archive_compose), so every byte is what restore_image gives for
 * that state, and only the records of that range are read. The new image
 * reads every other page through @below, which must outlive it. NULL and
 * *error as sqlenvfs_archive_compose, or INTEGRITY when the size composed
 * is not the one @e records. */
SqlenvfsImage *sqlenvfs_restore_image_after(SqlenvfsArchive *a, SqlenvfsImage *below,
                                            guint64 below_seq, const SqlenvfsArchiveEntry *e,
                                            GError **error);

/* Where the bases of a plan served on demand (on_demand) come from when
 * they are not local files (mount --remote reads a base's blocks from the
 * replica). Called by restore_image with the base's MANIFEST entry @sdb
 * (size, crc32): TRUE with *@src NULL to open the file as usual (it may
 * have fetched it), TRUE with *@read, *@src and *@src_free a source whose
 * reads return only bytes checked against the MANIFEST (a read that
 * cannot check them fails), FALSE and *error when the base is bad
 * (INTEGRITY) or cannot be read now (anything else). */
typedef gboolean (*SqlenvfsRestoreBaseOpener)(gpointer user, const SqlenvfsRestorePlan *plan,
                                              const SqlenvfsStoredDb *sdb,
                                              SqlenvfsPreadFunc *read, gpointer *src,
                                              GDestroyNotify *src_free, GError **error);

/* Install @fn (NULL: none) for the plans of @root, in this process. */
void sqlenvfs_restore_set_base_opener(SqlenvfsRoot *root, SqlenvfsRestoreBaseOpener fn,
                                      gpointer user);

/* After an image of @plan was read completely: TRUE when the base file is
 * still the one restore_image checked (same SqlenvfsFileId), so that what
 * was read from it is what was checked. FALSE and INTEGRITY naming the base
 * otherwise: what was built from it must not be kept. */
gboolean sqlenvfs_restore_base_unchanged(const SqlenvfsRestorePlan *plan, GError **error);

/* What a refusal of restore's output advises (copy.h,
 * sqlenvfs_copy_check_output), the same from a replica. */
#define SQLENVFS_RESTORE_OUTPUT_ADVICE                                                          \
  "to put a restored state into production, restore to a new file, then follow \"Putting a "   \
  "restored database into production\" in docs/OPERATIONS.md"

/* Write the state of @plan to @output: temporary file ".tmp-<name>-<pid>"
 * beside it (the leftovers of restores that died are removed first),
 * integrity_check, fsync, rename. The file's mode is at most production's
 * and the base's. The output is checked first as
 * sqlenvfs_copy_check_output (copy.h) does: refused (REFUSED, nothing
 * written), even with @overwrite, are a database of the root, a database
 * in use, a file another process has open and anything but a plain file;
 * an existing plain file is replaced only with @overwrite (EXISTS
 * otherwise). The base fields of @plan are updated as by
 * sqlenvfs_restore_image, but the base is read once: its crc32 is computed
 * while the output is written and checked before the output is checked or
 * kept (image.h, invariant 5); a bad one makes the restore start again from
 * the next good base, as sqlenvfs_restore_image would have chosen.
 * FALSE and *error with nothing left at @output (a base that changed while
 * it was read removes the file again). */
gboolean sqlenvfs_restore_to_file(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan,
                                  const char *output, gboolean overwrite,
                                  SqlenvfsProgressFunc progress, gpointer user, GError **error);

/* refresh-dev from production as it was at the time of @plan: the state is
 * restored to a temporary file in the root's .cache, its environment marker
 * checked (REFUSED when it is not production, unless @force), then installed
 * into development with sqlenvfs_env_refresh_dev_from_image(). Production is
 * not read at all. FALSE and *error; the temporary file is always removed. */
gboolean sqlenvfs_restore_refresh_dev(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan,
                                      gboolean force, SqlenvfsProgressFunc progress, gpointer user,
                                      GError **error);

/* Names of the databases that have a production file or an archive, sorted. */
GPtrArray *sqlenvfs_restore_list_dbs(SqlenvfsRoot *root);

/* Whether the base open on @fd (its file @path, for messages) holds the
 * state of archived record @seq of @a, as its MANIFEST's WAL position says:
 * every page that COMMIT record wrote (its last version, within its
 * database size) must be byte for byte the base's page, the first 100 bytes
 * of page 1 (the file header, which copies may stamp) aside. A base that
 * holds another state (a MANIFEST whose WAL position lies, even one whose
 * checksum was recomputed or that has none) fails with INTEGRITY naming
 * it. A state that is not a COMMIT (a GAP's) carries no pages and passes. */
gboolean sqlenvfs_restore_base_holds_state(SqlenvfsArchive *a, guint64 seq, int fd,
                                           const char *path, GError **error);

G_END_DECLS
