/*
 * store.h — backups and snapshots on disk (format: docs/STORE.md).
 *
 * One run of `backup` or `snapshot` is one directory named by its UTC time in
 * ISO 8601 basic form (timefmt.h) under backups/prod/daily/ or
 * backups/prod/snapshots/, holding <db>.db for each database copied and a
 * MANIFEST (GKeyFile) with, per database: size, crc32, page size and count,
 * journal mode, and the WAL position of the copied state (liveview.h), which
 * makes every copy a base for point-in-time recovery.
 *
 * Invariants:
 *   (1) A directory with a valid name and a MANIFEST is complete: it is built
 *       as ".tmp-<name>-<pid>" and renamed into place after every copy in it
 *       passed its integrity check and was fsync'd.
 *   (2) Names are unique: a second run inside the same second gets a
 *       millisecond fraction.
 *   (3) A copy is never more readable than its source.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h"
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/root.h"

G_BEGIN_DECLS

typedef enum {
  SQLENVFS_KIND_BACKUP,   /* backups/prod/daily/     */
  SQLENVFS_KIND_SNAPSHOT, /* backups/prod/snapshots/ */
} SqlenvfsCopyKind;

typedef struct {
  char *db;       /* database name (no .db)    */
  char *path;     /* absolute path of the copy */
  guint64 size;
  guint32 crc32;
  char *journal_mode;
  SqlenvfsWalPos pos; /* pos.pinned_at: when the state was pinned */
} SqlenvfsStoredDb;

typedef struct {
  SqlenvfsCopyKind kind;
  char *name;     /* e.g. 20261128T161400Z    */
  char *dir;      /* absolute directory        */
  gint64 time;    /* the time in the name (us) */
  GPtrArray *dbs; /* SqlenvfsStoredDb *, sorted by name */
} SqlenvfsStoredCopy;

void sqlenvfs_stored_copy_free(SqlenvfsStoredCopy *copy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsStoredCopy, sqlenvfs_stored_copy_free)

const char *sqlenvfs_copy_kind_name(SqlenvfsCopyKind kind); /* "backup" / "snapshot" */

/* Take a backup or snapshot of database @db (NULL: every production db).
 * Returns the new entry, or NULL and *error (nothing that looks like a copy
 * is left behind). Leftover temporaries of interrupted runs are removed first. */
SqlenvfsStoredCopy *sqlenvfs_store_create(SqlenvfsRoot *root, SqlenvfsCopyKind kind,
                                          const char *db, SqlenvfsProgressFunc progress,
                                          gpointer user, GError **error);

/* Every complete entry of @kind, oldest first. Entries whose MANIFEST cannot
 * be read are skipped here (verify reports them). Never NULL on success. */
GPtrArray *sqlenvfs_store_list(SqlenvfsRoot *root, SqlenvfsCopyKind kind, GError **error);

/* One entry by name; NULL and NOT_FOUND if there is none. */
SqlenvfsStoredCopy *sqlenvfs_store_load(SqlenvfsRoot *root, SqlenvfsCopyKind kind,
                                        const char *name, GError **error);

/* The stored database @db in @copy, or NULL. */
const SqlenvfsStoredDb *sqlenvfs_stored_copy_find(const SqlenvfsStoredCopy *copy, const char *db);

/* Check one stored database: crc32 against the MANIFEST, then
 * integrity_check. FALSE and INTEGRITY naming the file and the reason. */
gboolean sqlenvfs_store_verify_db(const SqlenvfsStoredDb *sdb, GError **error);

G_END_DECLS
