/*
 * remote.c — mount --remote: a read-only view of a replica (remote.h) with
 * snapshots/, backups/ and pitr/ only, served from a cache directory laid
 * out like a root. The MANIFESTs and the archive's small objects are
 * brought into the cache when the mount starts (of the summaries, their
 * first 4 KiB), and the sealed segments' records and the summaries' other
 * parts are fetched as reads need them (sqlenvfs_remote_cache_sync). A copy's
 * database file is fetched whole when snapshots/ or backups/ open it; the
 * base of a pitr/ state is read on demand, block by block, each block
 * checked against the block list the MANIFEST binds (remote.h), unless the
 * replica has no list for it (then it is fetched whole, as before). The
 * least recently used files and blocks are evicted beyond the bound.
 */
#include <string.h>

#include "sqlenvfs/error.h"

#include "fs.h"
#include "sqlenvfs/remote.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/util.h"

gboolean
fs_remote_hides(const Fs *fs, const char *name)
{
  return fs->remote != NULL && strcmp(name, "snapshots") != 0 && strcmp(name, "backups") != 0 &&
         strcmp(name, "pitr") != 0;
}

/* The base opener of restore.h for a mount of a replica: the base's
 * blocks from the replica when it has a good block list, else the whole
 * file, fetched into the cache and checked by the engine as a local base. */
static gboolean
open_base(gpointer user, const SqlenvfsRestorePlan *plan, const SqlenvfsStoredDb *sdb,
          SqlenvfsPreadFunc *read, gpointer *src, GDestroyNotify *src_free, GError **error)
{
  Fs *fs = user;
  g_autoptr(GError) why = NULL;
  g_autofree char *path = NULL;
  SqlenvfsRemoteBlocks *b;

  *src = NULL;
  if (sqlenvfs_remote_cache_has_copy_db(fs->remote, plan->base_kind, plan->base_name, plan->db,
                                        sdb->size))
    return TRUE;
  b = sqlenvfs_remote_blocks_open(fs->remote, plan->base_kind, plan->base_name, plan->db,
                                  sdb->size, sdb->crc32, fs->remote_cache_max, &why);
  if (b != NULL) {
    guint8 head[18];
    gssize n = sqlenvfs_remote_blocks_read(b, head, sizeof head, 0, error);
    guint32 ps = n == (gssize)sizeof head ? sqlenvfs_db_page_size(head) : 0;
    if (n < 0) {
      sqlenvfs_remote_blocks_free(b);
      return FALSE;
    }
    if (n != (gssize)sizeof head || memcmp(head, "SQLite format 3", 16) != 0 ||
        ps != plan->page_size) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s %s: its %s.db in the replica is not an SQLite database of %u-byte pages",
                  sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name, plan->db,
                  plan->page_size);
      sqlenvfs_remote_blocks_free(b);
      return FALSE;
    }
    *read = sqlenvfs_remote_blocks_read;
    *src = b;
    *src_free = sqlenvfs_remote_blocks_free;
    return TRUE;
  }
  if (why->domain == SQLENVFS_ERROR && why->code == SQLENVFS_ERROR_NOT_FOUND)
    g_message("mount --remote: %s; fetching the whole base", why->message);
  else
    g_warning("mount --remote: %s; not used, fetching the whole base, which its MANIFEST then "
              "checks", why->message);
  path = sqlenvfs_remote_cache_copy_db(fs->remote, plan->base_kind, plan->base_name, plan->db,
                                       fs->remote_cache_max, error);
  return path != NULL;
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
    /* The base is read as its pages are asked for (open_base). */
    sqlenvfs_restore_set_base_opener(fs->root, open_base, fs);
  }
  return TRUE;
}
