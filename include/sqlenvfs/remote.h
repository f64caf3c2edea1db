/*
 * remote.h — reading a replica (docs/REPLICA.md) from any machine, with
 * only its URL and credentials: restore, list and verify run the local
 * engine (restore.h, store.h, archive.h) on a private temporary directory
 * laid out like a root's backups/prod, filled with the objects they need.
 *
 * One remote session:
 *   open      loads the settings (replica_conf.h: the environment is
 *             enough), LISTs the prefix once, and checks FORMAT;
 *   fetch     downloads objects with ranged GETs on several connections
 *             (one S3 client per thread) into the temporary directory
 *             "<parent>/.tmp-remote-<pid>" (mode 0700), which free removes;
 *   restore   plans from the listing and the small objects (MANIFESTs,
 *             the .idx of segments, alive), fetches only the base and the
 *             segments between it and T, then restores with the local
 *             engine; a time the plan cannot place is answered by the local
 *             engine on the whole archive, so its message is a local one.
 *
 * Every object is checked as it arrives: its size against the listing, and
 * its MD5 against a single-part ETag; then every check of the local engine
 * applies (MANIFEST checksums, base crc32, record checksums, seals). An
 * unsealed segment is assembled from its parts, contiguous from offset 0,
 * stopping at the first hole.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/restore.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/timefmt.h"

G_BEGIN_DECLS

/* The content of the FORMAT object a reader accepts. */
#define SQLENVFS_REPLICA_FORMAT "sqlenvfs-replica 1\n"

typedef struct _SqlenvfsRemote SqlenvfsRemote;

/* What a session did, for messages, tests and benchmarks. */
typedef struct {
  guint n_lists;        /* LIST requests (pages)                          */
  guint n_gets;         /* GET requests (ranges count one each)           */
  guint n_objects;      /* objects fetched                                */
  guint64 bytes;        /* bytes fetched                                  */
  guint n_block_gets;   /* ranged GETs of single blocks of a base         */
  guint64 block_bytes;  /* bytes of those (also counted in bytes)         */
  guint n_record_gets;  /* ranged GETs of records of a segment on demand  */
  guint64 record_bytes; /* bytes of those (also counted in bytes)         */
  guint n_sum_gets;     /* ranged GETs of summaries' parts on demand       */
  guint64 sum_bytes;    /* bytes of those (also counted in bytes)         */
} SqlenvfsRemoteStats;

/* Open the replica at @url (s3://bucket/prefix). @conf_file: a
 * sqlenvfs.conf to read [replica] from, or NULL (the environment only).
 * @tmp_parent: where the temporary directory goes (NULL: $TMPDIR); the
 * leftovers of sessions whose process is gone are removed from it first.
 * LISTs the prefix once and reads FORMAT. NULL and *error: wrong
 * credentials (PERMISSION), no such bucket (NOT_FOUND), an empty prefix or
 * a missing or unknown FORMAT (INVALID), each naming the URL and what to
 * do. */
SqlenvfsRemote *sqlenvfs_remote_open(const char *url, const char *conf_file,
                                     const char *tmp_parent, GError **error);
void sqlenvfs_remote_free(SqlenvfsRemote *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsRemote, sqlenvfs_remote_free)

/* Hold what @r writes on this machine (what it fetches, a restore's output)
 * to the room @root keeps free for its production's commits
 * (sqlenvfs_root_check_room: NOSPACE naming it, before anything is
 * written). @root (NULL: none) is not owned and must outlive @r. */
void sqlenvfs_remote_set_room(SqlenvfsRemote *r, const SqlenvfsRoot *root);

/* The URL as given. */
const char *sqlenvfs_remote_url(const SqlenvfsRemote *r);

/* The databases the replica has an archive or a complete copy of, sorted. */
GPtrArray *sqlenvfs_remote_dbs(const SqlenvfsRemote *r);

/* @name, or when NULL the replica's only database (or "app" when it has
 * several and one is called so). Newly allocated; NULL and NOT_FOUND
 * naming the databases there are. */
char *sqlenvfs_remote_resolve_db(const SqlenvfsRemote *r, const char *name, GError **error);

/* The archive's objects the replica lacks or holds damaged, as found so
 * far (by sqlenvfs_remote_fetch_all or a restore): one line each, "KEY: WHY
 * (...)", KEY the object's s3:// key, the times of the records around it
 * and that they are a gap. Newly allocated (g_free the strings);
 * @segments_out, when not NULL, gets the local names ("<db>/<N>.seg") of the
 * unsealed segments with a part lost, whose own verdict then only repeats
 * it. */
GPtrArray *sqlenvfs_remote_lost(const SqlenvfsRemote *r, GPtrArray **segments_out);

/* Fetch everything a whole-root command needs: every complete MANIFEST, the
 * whole archive of every database (segments, assembled parts, indexes,
 * alive, PRUNED), and with @with_bases every copy's database files too. The
 * temporary root is returned (owned by @r). NULL and *error naming the key
 * that failed. */
SqlenvfsRoot *sqlenvfs_remote_fetch_all(SqlenvfsRemote *r, gboolean with_bases,
                                        GError **error);

/* Restore database @db (NULL: sqlenvfs_remote_resolve_db) as of @t to
 * @output, as sqlenvfs_restore_to_file does on a local root. *@plan_out
 * gets the plan used. FALSE and *error: the local engine's errors (GAP with
 * the same message as a local restore), or one naming the key that could
 * not be fetched or did not check. */
gboolean sqlenvfs_remote_restore(SqlenvfsRemote *r, const char *db, const SqlenvfsTime *t,
                                 const char *output, gboolean overwrite,
                                 SqlenvfsRestorePlan **plan_out, GError **error);

/* @text with the temporary directory's paths replaced by the replica's
 * keys ("s3://bucket/prefix/wal_archives/app/...seg"), and the advice to
 * run `sqlenvfs verify` or `sqlenvfs snapshot` given as a replica's reader
 * takes it (verify --remote URL; a snapshot where the replica is shipped
 * from), for messages. Newly allocated. */
char *sqlenvfs_remote_keyify(const SqlenvfsRemote *r, const char *text);

/* mount --remote: a session whose root is the persistent cache directory
 * @cache_dir (a root's layout, 0700) instead of a temporary one; objects
 * already there whole are not fetched again (alive and PRUNED always are,
 * and segments, whose files may be sparse ones of an earlier session).
 * One session per cache: it holds an exclusive lock on
 * "<cache>/.sqlenvfs/remote.lock" until it is freed (another: BUSY, saying
 * so). Nothing is removed on free. */
SqlenvfsRemote *sqlenvfs_remote_open_cache(const char *url, const char *conf_file,
                                           const char *cache_dir, GError **error);
/* The directory of the session's root: for a cache, @cache_dir resolved
 * (every symbolic link and ".." of the part that exists followed), which
 * is what was checked and is what must be used. */
const char *sqlenvfs_remote_root_dir(const SqlenvfsRemote *r);

/* Bring the cache up to the listing: remove what the replica no longer
 * has, fetch every MANIFEST and the archive's small objects (indexes,
 * summaries, alive, PRUNED), not the copies' database files. A sealed
 * segment whose index is good and describes it whole gets a sparse file of
 * its size, filled on demand: its header is fetched now (with the small
 * objects, on 16 connections) and its SEAL record made from its index
 * entry, both checked; any other record is fetched when a read needs it, through
 * the archive's fetch hook (archive.h), which this installs for the
 * session's life: one ranged GET per read from the first missing record it
 * touches to the last, each record checked whole (its header against its
 * index entry, its header crc32, its trailer crc32 and magic) before it is
 * written to the file; a damaged or short answer fails the read (IO,
 * naming the object and the record, logged as a warning). The records
 * fetched count against the bound of sqlenvfs_remote_cache_copy_db (the
 * copies' files and blocks are evicted for them; they stay until the next
 * session). Other segments (the unsealed one, from its parts; one without
 * a good index) are fetched whole. Returns the cache root (owned by @r). */
SqlenvfsRoot *sqlenvfs_remote_cache_sync(SqlenvfsRemote *r, GError **error);

/* The path of copy @name's database @db in the cache, fetched first when
 * it is not there; then the least recently used copies' files are evicted
 * until they take at most @max_bytes (this one is kept). Thread-safe.
 * NULL and *error naming the key. */
char *sqlenvfs_remote_cache_copy_db(SqlenvfsRemote *r, SqlenvfsCopyKind kind, const char *name,
                                    const char *db, guint64 max_bytes, GError **error);

void sqlenvfs_remote_get_stats(SqlenvfsRemote *r, SqlenvfsRemoteStats *stats);

/* What this session fetched, in one line for a log: bytes and requests,
 * and of them the records, summaries' parts and base blocks read on
 * demand (mount --remote). Free with g_free. */
char *sqlenvfs_remote_describe_fetched(SqlenvfsRemote *r);

/* Parallel downloads: the number of connections (default 4, at most 16)
 * and the size of one ranged GET (default 8 MiB). */
void sqlenvfs_remote_set_parallel(SqlenvfsRemote *r, guint connections, gsize range_bytes);

/* ------------------------------------------------------------------ */
/* Block checksum lists: pages of a base on demand                      */

/* Beside each copy's database file the shipper uploads "<db>.db.blocks":
 * the crc32 of each SQLENVFS_BLOCKS_SIZE block of the file, computed from
 * the same read that uploads it. Little-endian:
 *   0   16 bytes  SQLENVFS_BLOCKS_MAGIC
 *   16  u32       version (1)
 *   20  u32       block size
 *   24  u64       file size
 *   32  u32       number of blocks (ceil(file size / block size))
 *   36  u32 * n   crc32 of each block (the last one may be short)
 *   ..  u32       crc32 of every byte before it
 * A reader accepts a list only when it parses, its own crc32 matches, its
 * file size is the MANIFEST's and its block crcs combined (crc32_combine)
 * give the MANIFEST's crc32 of the whole file: that binds it to the
 * MANIFEST, whose own checksum is checked. */
#define SQLENVFS_BLOCKS_MAGIC "sqlenvfs-blocks\n"
#define SQLENVFS_BLOCKS_VERSION 1
#define SQLENVFS_BLOCKS_SIZE (64 * 1024)
#define SQLENVFS_BLOCKS_SUFFIX ".blocks"

/* The list for a file of @file_size bytes whose blocks have @crcs. */
GBytes *sqlenvfs_blocks_encode(guint32 block_size, guint64 file_size, const guint32 *crcs,
                               guint32 n);

/* Parse and check the list @data (@what names it in messages) against a
 * file of @want_size bytes with crc32 @want_crc (its MANIFEST's). The
 * block size to *@block_size, the crcs (newly allocated) to *@crcs, their
 * number to *@n. FALSE and INTEGRITY saying what does not check. */
gboolean sqlenvfs_blocks_parse(const void *data, gsize len, const char *what, guint64 want_size,
                               guint32 want_crc, guint32 *block_size, guint32 **crcs, guint32 *n,
                               GError **error);

/* A base read on demand: a SqlenvfsPreadFunc source over copy @name's
 * database @db in the replica, whose MANIFEST gives @size and @crc32. Its
 * block list is fetched and checked first (above); NULL and *error when
 * there is none or it does not check (the caller then fetches the file
 * whole, which its MANIFEST check judges). Each read fetches only the
 * blocks it needs, with one ranged GET each, and checks each block's crc32
 * before serving it (a damaged block: INTEGRITY naming the key and the
 * block, which the reader logs); blocks are kept in the cache ("<cache>/blocks/...",
 * written to .tmp-fetch-<name>-<pid> and renamed), counted against the
 * bound of sqlenvfs_remote_cache_copy_db. Thread-safe. */
typedef struct _SqlenvfsRemoteBlocks SqlenvfsRemoteBlocks;
SqlenvfsRemoteBlocks *sqlenvfs_remote_blocks_open(SqlenvfsRemote *r, SqlenvfsCopyKind kind,
                                                  const char *name, const char *db,
                                                  guint64 size, guint32 crc32, guint64 max_bytes,
                                                  GError **error);
gssize sqlenvfs_remote_blocks_read(gpointer blocks, void *buf, gsize len, goffset off,
                                   GError **error);
void sqlenvfs_remote_blocks_free(gpointer blocks);

/* Whether copy @name's database @db is in the cache whole (fetched before). */
gboolean sqlenvfs_remote_cache_has_copy_db(SqlenvfsRemote *r, SqlenvfsCopyKind kind,
                                           const char *name, const char *db, guint64 size);

G_END_DECLS
