/*
 * remote.c — mount --remote: a read-only view of a replica (remote.h) with
 * snapshots/, backups/ and pitr/ only, served from a cache directory laid
 * out like a root. The MANIFESTs and the archive are brought into the
 * cache when the mount starts (sqlenvfs_remote_cache_sync); a copy's
 * database file is fetched whole when a file that reads it is first
 * opened, and the least recently used ones are evicted beyond the bound.
 */
#include <string.h>

#include "fs.h"
#include "sqlenvfs/remote.h"
#include "sqlenvfs/restore.h"

gboolean
fs_remote_hides(const Fs *fs, const char *name)
{
  return fs->remote != NULL && strcmp(name, "snapshots") != 0 && strcmp(name, "backups") != 0 &&
         strcmp(name, "pitr") != 0;
}

gboolean
fs_remote_prepare(Fs *fs, const FsWhere *where, GError **error)
{
  g_autofree char *path = NULL;

  if (fs->remote == NULL)
    return TRUE;
  if (where->kind == FS_COPY_DB) {
    path = sqlenvfs_remote_cache_copy_db(fs->remote, where->copy_kind, where->entry, where->db,
                                         fs->remote_cache_max, error);
    return path != NULL;
  }
  if (where->kind == FS_PITR_DB) {
    SqlenvfsTime t = { FALSE, where->time_us };
    g_autoptr(SqlenvfsRestorePlan) plan = sqlenvfs_restore_plan(fs->root, where->db, &t, error);
    if (plan == NULL)
      return FALSE;
    path = sqlenvfs_remote_cache_copy_db(fs->remote, plan->base_kind, plan->base_name, where->db,
                                         fs->remote_cache_max, error);
    return path != NULL;
  }
  return TRUE;
}
