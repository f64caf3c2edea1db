/*
 * shipper.c — replicate backups/prod/ to the replica (see shipper.h, and
 * docs/REPLICA.md "Layout" for the keys).
 *
 * One thread, one S3 client, one lease. The state is "starting" until a
 * round succeeds; while a request waits on the server the client's tick
 * (on_tick) counts the backlog, and makes it "stalled" after
 * sync-interval + low-speed-time without an answer. A round, every
 * sync-interval:
 *
 *   lease held?  no: OWNER checked (check_owner, once a process), then take
 *                    it (once at start, then every LEASE_RETRY_US)
 *      | yes: renew when RENEW_US old; lost -> "lease lost", ship no more
 *   first round of a process: the replica listed and compared with the
 *      shipping state (adopt_remote without one, else check_replica):
 *      another history -> refused for good, lease released; objects lost
 *      -> shipped again
 *   the intent's part uploaded again, if any (finish_intent)
 *   removals queued by prune (.sqlenvfs/replica-remove) -> DELETE
 *   per database (backups/prod/wal_archives/<db>/):
 *      segment files not shipped: stat only; nothing new -> no request
 *      sealed segment  -> PUT <N>.seg whole (its bytes before the SEAL record
 *                         must match the crc32 the SEAL carries), then
 *                         <N>.idx, <N>.sum; then DELETE its .part-* objects
 *      the last one    -> PUT <N>.seg.part-<A>-<B>: A = what is shipped, B =
 *                         the end of the last record the archive's index
 *                         lists (a record is indexed only once written
 *                         whole), at most PART_MAX per object
 *      then alive (when anything was shipped), PRUNED (when it changed)
 *   backups, snapshots not shipped: each <db>.db (its size and crc32 must be
 *      the MANIFEST's) with its block list <db>.db.blocks (remote.h) from
 *      the same read, then MANIFEST last
 *
 * The shipped state (.sqlenvfs/replica-shipped, rewritten atomically, 0600):
 *
 *   sqlenvfs-replica-shipped 1
 *   url s3://bucket/prefix            another url: nothing is shipped there
 *   intent <key>                      a part being uploaded (optional)
 *   <size> <key>                      one line per object shipped
 *   end <crc32 of the bytes before, 8 hex>
 *
 * Invariants:
 *   (1) A key is written to the state only after the server confirmed the
 *       upload (its SHA-256 and MD5 checked) and our own checksum of what
 *       was read matched (segment seal, MANIFEST crc32 of a copy).
 *   (2) A copy's MANIFEST is uploaded only after every database file of it
 *       is; a sealed segment's parts are deleted only after the segment is
 *       uploaded whole.
 *   (3) Parts of one segment are contiguous from 0: each starts where the
 *       shipped ones end. The intent line makes a part cut short by a crash
 *       be uploaded again with the same key, never with a different end.
 *   (4) No request is made for a database in which nothing changed, and no
 *       LIST ever on a round (one LIST a process, once the lease is first
 *       held: adopt_remote when there is no state file, else check_replica;
 *       and one list of the multipart uploads left open: sweep_orphans).
 *   (5) One history per replica: this root ships nothing once the replica
 *       holds archive data it did not ship, or a part it shipped from a
 *       segment replaced here since (check_replica), and OWNER is checked
 *       before the lease is taken.
 *   (6) Every key but alive, PRUNED, the lease and a sealed segment's
 *       .idx and .sum (derived from it, and written again by the archiver
 *       at times) is written once: with If-None-Match: * (put_once; a HEAD
 *       before a multipart upload), and a key already there counts as
 *       shipped only when it holds the bytes that would be uploaded; other
 *       bytes stop shipping (other_writer).
 */
#include "sqlenvfs/shipper.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/lease.h"
#include "sqlenvfs/remote.h"
#include "sqlenvfs/replica_conf.h"
#include "sqlenvfs/s3.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"
#include "shipper_int.h"

#define STATE_FILE "replica-shipped"
#define STATUS_FILE "replica-status"
#define REMOVE_FILE "replica-remove"
#define PENDING_PREFIX ".tmp-replica-remove-" /* + run-pid: what a prune is removing */
#define FORMAT_KEY "FORMAT"
#define OWNER_KEY "OWNER"        /* "sqlenvfs-root <id>": the root whose replica it is */
#define ROOT_ID_FILE "root-id"   /* this root's id, in .sqlenvfs                      */
#define FORMAT_TEXT "sqlenvfs-replica 1\n"
#define PART_MAX (8 * 1024 * 1024)         /* bytes per part, and per upload chunk */
#define LEASE_TTL_S 300                     /* [replica] lease-seconds (10..3600) */
#define RENEW_MAX_US (75 * G_USEC_PER_SEC)  /* idle: 48 requests an hour          */
#define LEASE_RETRY_US (300 * G_USEC_PER_SEC)
#define BACKOFF_MAX_US (30 * G_USEC_PER_SEC)
#define LOG_EVERY_US (60 * G_USEC_PER_SEC)
#define STOP_WAIT_US (10 * G_USEC_PER_SEC)
#define BACKLOG_OFF_US (5 * G_USEC_PER_SEC) /* backlog counted while no round ships */
#define ORPHANS_RETRY_US (60 * G_USEC_PER_SEC) /* a failed look for uploads left open */

typedef struct {
  char *name;
  gint64 pending_since;  /* wall us: unshipped bytes waiting since (0: none) */
  gint64 notified;       /* wall us of the first notify not yet shipped      */
  gint64 last_shipped;
  guint64 backlog;
  SqlenvfsArchive *ar;
  char *error;
} ShipDb;

typedef enum {
  RS_OFF,
  RS_STARTING,
  RS_SHIPPING,
  RS_STALLED,
  RS_LEASE_LOST,
  RS_ERROR,
} ReplicaState;

static const char *const state_names[] = { "off",     "starting",   "shipping",
                                            "stalled", "lease lost", "error" };

struct _SqlenvfsShipper {
  /* set at start, read-only after */
  SqlenvfsRoot *root;        /* our own, opened on the same directory */
  char *root_dir, *state_dir, *base_dir, *wal_dir;
  SqlenvfsReplicaConf *conf; /* NULL when the settings cannot be used  */
  char *url;                 /* [replica] url, which the shipping state names */
  GThread *thread;

  /* the thread's own */
  SqlenvfsS3 *s3;
  SqlenvfsLease *lease;
  GHashTable *shipped;       /* key -> guint64 * size                */
  GHashTable *parts_end;     /* segment key -> guint64 * end shipped */
  char *intent;
  gint64 renewed_at, acquire_at;
  gint64 lease_ttl_s, renew_us; /* renewed every ttl/4, at most every RENEW_MAX_US */
  guint n_fails;
  gboolean owner_ok; /* OWNER names this root (checked once a process) */
  gboolean replica_checked; /* check_replica ran (once a process)          */
  gint64 checked_at;        /* monotonic: when it last did                 */
  gboolean told_delete_refused; /* drop_parts said so once (a process)     */
  char *diverged;    /* why this process ships no more (check_replica), or NULL */
  gboolean other_writer; /* diverged because a write-once key held other bytes */
  gint64 counted_at;         /* monotonic us of the last refresh_backlog (0: none) */
  gboolean has_shipped;      /* a round succeeded since the start (else "starting") */
  gboolean is_stuck;         /* on_tick made it "stalled" (a request without answer) */
  gboolean orphans_done;     /* the uploads left open under the prefix were aborted */
  gint64 orphans_at;         /* monotonic us before which they are not looked for again */
  char *logged;              /* last message logged                  */
  gint64 logged_at;
  guint n_suppressed;
  gboolean status_dirty;

  /* under lock */
  GMutex lock;
  GCond cond;
  gboolean is_stopping, is_done, is_abandoned;
  ReplicaState state;
  char *error;
  GHashTable *dbs;           /* name -> ShipDb *                      */
};

static GMutex current_lock;
static SqlenvfsShipper *current;

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static void
ship_db_free(gpointer p)
{
  ShipDb *d = p;
  if (d->ar)
    sqlenvfs_archive_free(d->ar);
  g_free(d->name);
  g_free(d->error);
  g_free(d);
}

void
sqlenvfs_shipper_db_status_free(SqlenvfsShipperDbStatus *st)
{
  if (st == NULL)
    return;
  g_free(st->db);
  g_free(st->state);
  g_free(st->error);
  g_free(st);
}

/* Under s->lock. */
static ShipDb *
get_db(SqlenvfsShipper *s, const char *name)
{
  ShipDb *d = g_hash_table_lookup(s->dbs, name);
  if (d == NULL) {
    d = g_new0(ShipDb, 1);
    d->name = g_strdup(name);
    g_hash_table_insert(s->dbs, d->name, d);
    s->status_dirty = TRUE;
  }
  return d;
}

static void
set_state(SqlenvfsShipper *s, ReplicaState state, const char *error)
{
  g_mutex_lock(&s->lock);
  if (s->state != state || g_strcmp0(s->error, error) != 0)
    s->status_dirty = TRUE;
  s->state = state;
  g_free(s->error);
  s->error = g_strdup(error);
  g_mutex_unlock(&s->lock);
}

/* Log @msg as a warning, the same message at most once a minute. */
static void
log_rate(SqlenvfsShipper *s, const char *msg)
{
  gint64 now = g_get_monotonic_time();
  if (g_strcmp0(msg, s->logged) == 0 && now - s->logged_at < LOG_EVERY_US) {
    s->n_suppressed++;
    return;
  }
  if (s->n_suppressed > 0)
    g_warning("replica: %s (and %u more like it in the last minute)", msg, s->n_suppressed);
  else
    g_warning("replica: %s", msg);
  g_free(s->logged);
  s->logged = g_strdup(msg);
  s->logged_at = now;
  s->n_suppressed = 0;
}

static guint64
shipped_size(GHashTable *shipped, const char *key, gboolean *found)
{
  guint64 *v = g_hash_table_lookup(shipped, key);
  if (found)
    *found = v != NULL;
  return v ? *v : 0;
}

static void
put_u64(GHashTable *t, const char *key, guint64 v)
{
  guint64 *p = g_new(guint64, 1);
  *p = v;
  g_hash_table_insert(t, g_strdup(key), p);
}

/* Parse "<seg key>.part-<A>-<B>": the segment key and A, B. */
static gboolean
parse_part(const char *key, char **seg_key, guint64 *a, guint64 *b)
{
  const char *p = g_strrstr(key, ".seg.part-");
  char *end;
  if (p == NULL)
    return FALSE;
  *a = g_ascii_strtoull(p + 10, &end, 10);
  if (end != p + 26 || *end != '-')
    return FALSE;
  *b = g_ascii_strtoull(end + 1, &end, 10);
  if (*end != '\0' || *b <= *a)
    return FALSE;
  *seg_key = g_strndup(key, (gsize)(p + 4 - key));
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* The shipped state file                                               */

typedef SqlenvfsShipperState Shipped;

static void
shipped_clear(Shipped *st)
{
  g_clear_pointer(&st->shipped, g_hash_table_unref);
  g_clear_pointer(&st->parts_end, g_hash_table_unref);
  g_clear_pointer(&st->intent, g_free);
}

static gint
cmp_str_ptr(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
note_part(GHashTable *parts_end, const char *key)
{
  g_autofree char *seg = NULL;
  guint64 a, b;
  gboolean found;
  if (!parse_part(key, &seg, &a, &b))
    return;
  if (shipped_size(parts_end, seg, &found) == a || (!found && a == 0))
    put_u64(parts_end, seg, b);
}

/* Load the state of the replica @url from @path. A missing file gives an
 * empty state and *@missing TRUE; a damaged one, or one of another url, an
 * empty state (logged). */
static void
shipped_load(const char *path, const char *url, Shipped *st, gboolean *missing)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) lines = NULL;
  gsize len = 0;
  guint n;
  GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);

  st->shipped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  st->parts_end = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  st->intent = NULL;
  *missing = FALSE;
  if (!g_file_get_contents(path, &text, &len, &error)) {
    *missing = g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
    if (!*missing)
      g_warning("replica: cannot read %s: %s (shipping starts over)", path, error->message);
    g_ptr_array_unref(parts);
    return;
  }
  {
    const char *e = len >= 13 ? text + len - 13 : NULL;
    guint32 want;
    if (e == NULL || strncmp(e, "end ", 4) != 0 || e[12] != '\n' ||
        (want = (guint32)g_ascii_strtoull(e + 4, NULL, 16),
         sqlenvfs_crc32(0, text, len - 13) != want)) {
      g_warning("replica: %s is damaged (its checksum does not match); what the replica "
                "holds is read again", path);
      *missing = TRUE;
      g_ptr_array_unref(parts);
      return;
    }
    text[len - 13] = '\0';
  }
  lines = g_strsplit(text, "\n", -1);
  n = g_strv_length(lines);
  if (n < 2 || strcmp(lines[0], "sqlenvfs-replica-shipped 1") != 0 ||
      !g_str_has_prefix(lines[1], "url ") || strcmp(lines[1] + 4, url) != 0) {
    g_message("replica: %s is of another replica than %s; what %s holds is read again", path,
              url, url);
    *missing = TRUE;
    g_ptr_array_unref(parts);
    return;
  }
  for (guint i = 2; i < n; i++) {
    char *sp, *end;
    guint64 size;
    if (lines[i][0] == '\0')
      continue;
    if (g_str_has_prefix(lines[i], "intent ")) {
      g_free(st->intent);
      st->intent = g_strdup(lines[i] + 7);
      continue;
    }
    sp = strchr(lines[i], ' ');
    if (sp == NULL)
      continue;
    size = g_ascii_strtoull(lines[i], &end, 10);
    if (end != sp)
      continue;
    put_u64(st->shipped, sp + 1, size);
    if (strstr(sp + 1, ".seg.part-"))
      g_ptr_array_add(parts, g_strdup(sp + 1));
  }
  /* Parts in order of their start, so that each extends the one before. */
  g_ptr_array_sort(parts, cmp_str_ptr);
  for (guint i = 0; i < parts->len; i++)
    note_part(st->parts_end, parts->pdata[i]);
  g_ptr_array_unref(parts);
}

void
sqlenvfs_shipper_state_load(const char *path, const char *url, SqlenvfsShipperState *st,
                            gboolean *missing)
{
  shipped_load(path, url, st, missing);
}

void
sqlenvfs_shipper_state_clear(SqlenvfsShipperState *st)
{
  shipped_clear(st);
}

GString *
sqlenvfs_shipper_state_format(const char *url, GHashTable *shipped, const char *intent)
{
  GString *out = g_string_new("sqlenvfs-replica-shipped 1\n");
  g_autoptr(GPtrArray) keys = g_ptr_array_new();
  GHashTableIter it;
  gpointer k;

  g_string_append_printf(out, "url %s\n", url);
  if (intent)
    g_string_append_printf(out, "intent %s\n", intent);
  g_hash_table_iter_init(&it, shipped);
  while (g_hash_table_iter_next(&it, &k, NULL))
    g_ptr_array_add(keys, k);
  g_ptr_array_sort(keys, cmp_str_ptr);
  for (guint i = 0; i < keys->len; i++)
    g_string_append_printf(out, "%" G_GUINT64_FORMAT " %s\n",
                           *(guint64 *)g_hash_table_lookup(shipped, keys->pdata[i]),
                           (char *)keys->pdata[i]);
  g_string_append_printf(out, "end %08x\n", sqlenvfs_crc32(0, out->str, out->len));
  return out;
}

static gboolean
shipped_save(SqlenvfsShipper *s, GError **error)
{
  g_autofree char *path = g_build_filename(s->state_dir, STATE_FILE, NULL);
  g_autoptr(GString) out = sqlenvfs_shipper_state_format(s->url, s->shipped, s->intent);
  return sqlenvfs_write_file_atomic(path, out->str, out->len, 0600, error);
}

/* ------------------------------------------------------------------ */
/* Uploads                                                              */

/* Refuse shipping for good in this process (s->diverged, shown as "lease
 * lost"): the write-once @key already holds other bytes than this root
 * would upload there (ETag @etag, @size bytes): another writer ships to
 * the replica now. Nothing is overwritten. FALSE, REFUSED. */
static gboolean
other_writer(SqlenvfsShipper *s, const char *key, gint64 size, const char *etag, GError **error)
{
  g_autofree char *where = sqlenvfs_s3_describe(s->s3, key);
  g_free(s->diverged);
  s->diverged = g_strdup_printf(
    "%s is already there with other bytes (%" G_GINT64_FORMAT " bytes, ETag %s) than this "
    "root's: another writer ships to this replica (a copy of this root's directory, or a "
    "root whose lease was removed or whose clock runs ahead); it is not overwritten, and "
    "nothing more is shipped from this root (stop the other writer, check the replica with "
    "`sqlenvfs verify --remote %s`, then give this root a new prefix in [replica] url and "
    "restart it)", where, size, etag ? etag : "none", s->conf->url);
  s->other_writer = TRUE;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED, "%s", s->diverged);
  return FALSE;
}

/* The write-once @key is there as @o: TRUE when it holds @size bytes with
 * the ETag @etag (what this root would upload: its earlier upload, whose
 * record a crash or a lost answer kept from the shipping state), else
 * FALSE with other_writer's error. */
static gboolean
same_bytes_there(SqlenvfsShipper *s, const char *key, const SqlenvfsS3Object *o, guint64 size,
                 const char *etag, GError **error)
{
  if ((guint64)o->size == size && o->etag != NULL && g_ascii_strcasecmp(o->etag, etag) == 0) {
    g_debug("replica: %s was already there with the same bytes (an upload not recorded)", key);
    return TRUE;
  }
  return other_writer(s, key, o->size, o->etag, error);
}

/* As same_bytes_there(), the object looked up first. */
static gboolean
same_as_there(SqlenvfsShipper *s, const char *key, guint64 size, const char *etag,
              GError **error)
{
  g_autoptr(SqlenvfsS3Object) o = sqlenvfs_s3_head(s->s3, key, error);
  return o != NULL && same_bytes_there(s, key, o, size, etag, error);
}

/* PUT @len bytes of @data at the write-once @key (docs/REPLICA.md, rule 1)
 * with If-None-Match: *; an object already there counts as uploaded only
 * when it holds these very bytes (same_as_there). */
static gboolean
put_once(SqlenvfsShipper *s, const char *key, const void *data, gsize len, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *md5 = NULL;
  if (sqlenvfs_s3_put(s->s3, key, data, len, SQLENVFS_S3_PUT_IF_ABSENT, NULL, NULL, &local))
    return TRUE;
  if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  md5 = g_compute_checksum_for_data(G_CHECKSUM_MD5, data, len);
  return same_as_there(s, key, len, md5, error);
}

/* Upload bytes [@from, @to) of @path (@to < 0: to the end of the file) as
 * @key, in one PUT up to PART_MAX, else as a multipart upload of PART_MAX
 * parts read one at a time. The crc32 of the bytes [@from, @crc_to) goes to
 * *@crc (when not NULL), the number of bytes to *@size; with @blocks (from
 * @from = 0 only), the crc32 of each SQLENVFS_BLOCKS_SIZE block of what was
 * read and uploaded is appended to it (remote.h). Fails when the file is
 * shorter than asked. With @once, @key is written once (put_once; a
 * multipart upload is preceded by a HEAD instead, and an object there is
 * compared with the multipart ETag these bytes would get, read as if
 * uploaded). */
static gboolean
upload_file(SqlenvfsShipper *s, const char *path, goffset from, goffset to, goffset crc_to,
            const char *key, gboolean once, guint32 *crc, guint64 *size, GArray *blocks,
            GError **error)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  guint64 total, done = 0;
  guint32 c = 0;
  g_autofree guint8 *buf = NULL;
  g_autofree char *upload = NULL;
  g_autoptr(GPtrArray) etags = NULL;
  g_autoptr(SqlenvfsS3Object) there = NULL;   /* a write-once multipart key already there */
  g_autoptr(GByteArray) part_md5s = NULL;     /* the MD5s of its parts, read as if uploaded */
  gboolean ok = FALSE;
  gint64 began = g_get_monotonic_time();

  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open", path);
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    sqlenvfs_error_errno(error, errno ? errno : EINVAL, "read", path);
    close(fd);
    return FALSE;
  }
  if (to < 0)
    to = st.st_size;
  if (to > st.st_size || from > to) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s is %" G_GINT64_FORMAT " bytes, shorter than the %" G_GINT64_FORMAT
                " to ship (it changed while being shipped; it is shipped again next round)",
                path, (gint64)st.st_size, (gint64)to);
    close(fd);
    return FALSE;
  }
  total = (guint64)(to - from);
  buf = g_malloc(MIN(total, (guint64)PART_MAX) + 1);
  if (total > PART_MAX && once) {
    g_autoptr(GError) local = NULL;
    there = sqlenvfs_s3_head(s->s3, key, &local);
    if (there == NULL && !g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
      g_propagate_error(error, g_steal_pointer(&local));
      goto out;
    }
    if (there)
      part_md5s = g_byte_array_new();
  }
  if (total > PART_MAX && there == NULL) {
    upload = sqlenvfs_s3_multipart_create(s->s3, key, error);
    if (upload == NULL)
      goto out;
    etags = g_ptr_array_new_with_free_func(g_free);
  }
  do {
    gsize n = (gsize)MIN(total - done, (guint64)PART_MAX);
    gssize r = n ? pread(fd, buf, n, from + (goffset)done) : 0;
    goffset at = from + (goffset)done;
    if (r < 0 || (gsize)r != n) {
      if (r < 0)
        sqlenvfs_error_errno(error, errno, "read", path);
      else
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO, "%s: short read", path);
      goto out;
    }
    if (crc && at < crc_to)
      c = sqlenvfs_crc32(c, buf, (gsize)MIN((goffset)n, crc_to - at));
    /* PART_MAX is a multiple of the block size: parts hold whole blocks. */
    for (gsize k = 0; blocks != NULL && k < n; k += SQLENVFS_BLOCKS_SIZE) {
      guint32 bc = sqlenvfs_crc32(0, buf + k, MIN((gsize)SQLENVFS_BLOCKS_SIZE, n - k));
      g_array_append_val(blocks, bc);
    }
    if (part_md5s != NULL) {
      guint8 d[16];
      gsize dlen = sizeof d;
      g_autoptr(GChecksum) md5 = g_checksum_new(G_CHECKSUM_MD5);
      g_checksum_update(md5, buf, n);
      g_checksum_get_digest(md5, d, &dlen);
      g_byte_array_append(part_md5s, d, (guint)dlen);
    } else if (upload == NULL) {
      if (once ? !put_once(s, key, buf, n, error)
               : !sqlenvfs_s3_put(s->s3, key, buf, n, SQLENVFS_S3_PUT_ALWAYS, NULL, NULL,
                                  error))
        goto out;
    } else {
      char *etag;
      g_mutex_lock(&s->lock);
      gboolean stop = s->is_stopping;
      g_mutex_unlock(&s->lock);
      if (stop) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_CANCELLED,
                    "upload of %s stopped: shutting down", key);
        goto out;
      }
      etag = sqlenvfs_s3_multipart_put_part(s->s3, key, upload, etags->len + 1, buf, n, error);
      if (etag == NULL)
        goto out;
      g_ptr_array_add(etags, etag);
    }
    done += n;
  } while (done < total);
  if (upload && !sqlenvfs_s3_multipart_complete(s->s3, key, upload, etags, NULL, error))
    goto out;
  if (part_md5s != NULL) {
    /* A multipart object's ETag: the MD5 of its parts' MD5s, "-<parts>". */
    g_autofree char *md5 = g_compute_checksum_for_data(G_CHECKSUM_MD5, part_md5s->data,
                                                       part_md5s->len);
    g_autofree char *etag = g_strdup_printf("%s-%u", md5, part_md5s->len / 16);
    if (!same_bytes_there(s, key, there, total, etag, error))
      goto out;
  }
  ok = TRUE;
  g_debug("replica: shipped %s, %" G_GUINT64_FORMAT " bytes in %.3f s", key, total,
          (double)(g_get_monotonic_time() - began) / G_USEC_PER_SEC);
  if (crc)
    *crc = c;
  if (size)
    *size = total;
out:
  if (!ok && upload) {
    g_autoptr(GError) local = NULL;
    if (!sqlenvfs_s3_multipart_abort(s->s3, key, upload, &local)) {
      /* Left open: looked for again after a while (sweep_orphans). */
      g_debug("replica: abort %s: %s", key, local->message);
      s->orphans_done = FALSE;
      s->orphans_at = g_get_monotonic_time() + ORPHANS_RETRY_US;
    }
  }
  close(fd);
  return ok;
}

static void
mark_shipped(SqlenvfsShipper *s, const char *key, guint64 size)
{
  put_u64(s->shipped, key, size);
}

/* ------------------------------------------------------------------ */
/* The archive of one database                                          */

static gint
cmp_seg_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "<16 digits>.seg" file names in @dir, sorted. */
static GPtrArray *
list_segment_files(const char *dir)
{
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *e;
  while (d && (e = g_dir_read_name(d)) != NULL)
    if (strlen(e) == 20 && g_str_has_suffix(e, ".seg") && g_ascii_isdigit(e[0]))
      g_ptr_array_add(names, g_strdup(e));
  g_ptr_array_sort(names, cmp_seg_names);
  return names;
}

/* The last record of sealed segment @seg (by the reader's numbering): the
 * one before the next segment's first, or the archive's last; FALSE when
 * it cannot be read. Read by sequence number, so that the shipper never
 * loads the whole archive's index. */
static gboolean
last_record_of(SqlenvfsArchive *ar, guint seg, SqlenvfsArchiveEntry *out)
{
  guint64 first, last;
  if (seg + 1 < sqlenvfs_archive_n_segments(ar))
    last = sqlenvfs_archive_segment(ar, seg + 1)->first_seq - 1;
  else if (!sqlenvfs_archive_bounds(ar, &first, &last))
    return FALSE;
  return sqlenvfs_archive_get(ar, last, out) && out->segment == seg;
}

static gint
find_segment(SqlenvfsArchive *ar, const char *path)
{
  for (guint i = sqlenvfs_archive_n_segments(ar); i-- > 0;)
    if (strcmp(sqlenvfs_archive_segment(ar, i)->path, path) == 0)
      return (gint)i;
  return -1;
}

/* Delete every shipped part of @seg_key, the last first: a delete cut
 * short leaves parts contiguous from 0, which the state (and a LIST of the
 * replica) still describes, and @seg_key stays in parts_end until all are
 * gone, so that the next round deletes the rest (ship_archive). */
static gboolean
delete_parts(SqlenvfsShipper *s, const char *seg_key, GError **error)
{
  g_autofree char *prefix = g_strconcat(seg_key, ".part-", NULL);
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_free);
  GHashTableIter it;
  gpointer k;
  g_hash_table_iter_init(&it, s->shipped);
  while (g_hash_table_iter_next(&it, &k, NULL))
    if (g_str_has_prefix(k, prefix))
      g_ptr_array_add(keys, g_strdup(k));
  g_ptr_array_sort(keys, cmp_str_ptr);
  for (guint i = keys->len; i-- > 0;) {
    if (!sqlenvfs_s3_delete(s->s3, keys->pdata[i], error))
      return FALSE;
    g_hash_table_remove(s->shipped, keys->pdata[i]);
  }
  g_hash_table_remove(s->parts_end, seg_key);
  return TRUE;
}

/* Delete the parts of @seg_key, shipped whole now. A refusal (a key that
 * may not delete: append-only credentials, a bucket policy) is said once
 * and does not stop shipping: the parts stay beside the whole segment,
 * which readers take instead of them, and are forgotten here, so that no
 * later round (nor the next start) asks again and new history still goes
 * out. */
static gboolean
drop_parts(SqlenvfsShipper *s, const char *seg_key, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *prefix = NULL;
  GHashTableIter it;
  gpointer k;

  if (delete_parts(s, seg_key, &local))
    return TRUE;
  if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_PERMISSION)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  if (!s->told_delete_refused)
    g_warning("replica: %s; the parts of segments shipped whole stay in the replica (readers "
              "take the whole segments) and shipping goes on: let the key delete objects, or "
              "remove the .part-* objects of sealed segments yourself",
              local->message);
  s->told_delete_refused = TRUE;
  prefix = g_strconcat(seg_key, ".part-", NULL);
  g_hash_table_iter_init(&it, s->shipped);
  while (g_hash_table_iter_next(&it, &k, NULL))
    if (g_str_has_prefix(k, prefix))
      g_hash_table_iter_remove(&it);
  g_hash_table_remove(s->parts_end, seg_key);
  return TRUE;
}

/* Ship sealed segment @i whole, checking its seal, then its index and
 * summary, then drop its parts. */
static gboolean
ship_sealed(SqlenvfsShipper *s, ShipDb *d, guint i, const char *seg_key, GError **error)
{
  const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(d->ar, i);
  SqlenvfsArchiveEntry last;
  const SqlenvfsArchiveEntry *seal = last_record_of(d->ar, i, &last) ? &last : NULL;
  g_autofree char *base = g_strndup(seg->path, strlen(seg->path) - 4);
  const char *const exts[] = { ".idx", ".sum" };
  guint32 crc = 0;
  guint64 size = 0;

  if (seal == NULL || seal->type != SQLENVFS_ARCHIVE_SEAL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: its index does not end with a SEAL record (run `sqlenvfs verify`)",
                seg->path);
    return FALSE;
  }
  if (!upload_file(s, seg->path, 0, (goffset)seg->size, (goffset)seal->offset, seg_key, TRUE,
                   &crc, &size, NULL, error))
    return FALSE;
  if (crc != seal->reason) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s: its bytes do not match the checksum its SEAL record carries (0x%08x, read "
                "0x%08x); not counted as shipped (run `sqlenvfs verify`)",
                seg->path, seal->reason, crc);
    return FALSE;
  }
  for (guint k = 0; k < G_N_ELEMENTS(exts); k++) {
    g_autofree char *path = g_strconcat(base, exts[k], NULL);
    g_autofree char *key = g_strconcat(seg_key, "", NULL);
    guint64 n = 0;
    key[strlen(key) - 4] = '\0';
    {
      g_autofree char *k2 = g_strconcat(key, exts[k], NULL);
      if (!g_file_test(path, G_FILE_TEST_IS_REGULAR))
        continue;
      /* Derived from the segment just uploaded, and checked against it by
       * every reader: written again when shipped again, since the archiver
       * may have written it again meanwhile (an index completed after a
       * power cut, a summary of a newer layout), which is not another
       * writer's. Another writer is met at the segment first. */
      if (!upload_file(s, path, 0, -1, 0, k2, FALSE, NULL, &n, NULL, error))
        return FALSE;
      mark_shipped(s, k2, n);
    }
  }
  mark_shipped(s, seg_key, size);
  return drop_parts(s, seg_key, error);
}

/* Ship the archived records of the unsealed segment @i past what is
 * shipped, as one part ending on a record boundary. *@progress: bytes. */
static gboolean
ship_part(SqlenvfsShipper *s, ShipDb *d, guint i, const char *seg_key, guint64 *progress,
          GError **error)
{
  const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(d->ar, i);
  guint64 a = shipped_size(s->parts_end, seg_key, NULL), b = 0, cut = 0;
  guint64 first_seq, last_seq, durable = sqlenvfs_archive_durable_seq(d->ar);
  g_autofree char *key = NULL;
  guint64 n = 0;

  *progress = 0;
  /* Only records known durable here are shipped (those before the alive
   * file's sequence number): a power cut can take back what was written
   * after them, and the writer would then write other records in their
   * place, which the replica's parts would contradict. Of those, the end
   * of the last whole record the index lists; the largest such end within
   * PART_MAX of a, else the first record past a (one record). */
  if (durable == 0 || !sqlenvfs_archive_bounds(d->ar, &first_seq, &last_seq))
    return TRUE;
  for (guint64 seq = MIN(last_seq, durable - 1); seq >= first_seq && seq > 0; seq--) {
    SqlenvfsArchiveEntry e;
    guint64 end;
    if (!sqlenvfs_archive_get(d->ar, seq, &e))
      continue; /* damaged or missing: a later record's end covers it */
    end = e.offset + e.length;
    if (e.segment != i || end <= a)
      break;
    if (end - a <= PART_MAX) {
      cut = end;
      break;
    }
    b = end; /* the smallest end past a seen so far */
  }
  if (cut != 0)
    b = cut;
  if (b <= a)
    return TRUE;
  key = g_strdup_printf("%s.part-%016" G_GUINT64_FORMAT "-%016" G_GUINT64_FORMAT, seg_key, a, b);
  g_free(s->intent);
  s->intent = g_strdup(key);
  if (!shipped_save(s, error))
    return FALSE;
  if (!upload_file(s, seg->path, (goffset)a, (goffset)b, 0, key, TRUE, NULL, &n, NULL, error))
    return FALSE;
  mark_shipped(s, key, n);
  put_u64(s->parts_end, seg_key, b);
  g_clear_pointer(&s->intent, g_free);
  *progress = n;
  return shipped_save(s, error);
}

/* A part whose upload a crash cut short: upload it again under its key. */
static gboolean
finish_intent(SqlenvfsShipper *s, GError **error)
{
  g_autofree char *seg_key = NULL, *path = NULL;
  guint64 a, b, n = 0;
  struct stat st;

  if (s->intent == NULL)
    return TRUE;
  if (!parse_part(s->intent, &seg_key, &a, &b)) {
    g_clear_pointer(&s->intent, g_free);
    return TRUE;
  }
  path = g_build_filename(s->base_dir, seg_key, NULL);
  if (shipped_size(s->parts_end, seg_key, NULL) == a && lstat(path, &st) == 0 &&
      S_ISREG(st.st_mode) && (guint64)st.st_size >= b) {
    if (!upload_file(s, path, (goffset)a, (goffset)b, 0, s->intent, TRUE, NULL, &n, NULL,
                     error))
      return FALSE;
    mark_shipped(s, s->intent, n);
    put_u64(s->parts_end, seg_key, b);
  } else if (!sqlenvfs_s3_delete(s->s3, s->intent, error)) {
    return FALSE;
  }
  g_clear_pointer(&s->intent, g_free);
  return shipped_save(s, error);
}

/* Upload a small overwritable file (alive, PRUNED) when it is not shipped
 * with its current size, or when @always. */
static gboolean
ship_small(SqlenvfsShipper *s, const char *dir, const char *db, const char *name,
           gboolean always, GError **error)
{
  g_autofree char *path = g_build_filename(dir, name, NULL);
  g_autofree char *key = g_strdup_printf("wal_archives/%s/%s", db, name);
  struct stat st;
  gboolean found;
  guint64 n = 0;
  if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return TRUE;
  if (!always && shipped_size(s->shipped, key, &found) == (guint64)st.st_size && found)
    return TRUE;
  if (!upload_file(s, path, 0, -1, 0, key, FALSE, NULL, &n, NULL, error))
    return FALSE;
  mark_shipped(s, key, n);
  return TRUE;
}

/* What of an archive is not shipped (bytes), from file sizes: its segment
 * files @segs in @dir, whose replica keys are @keys. */
static guint64
archive_backlog(SqlenvfsShipper *s, const char *dir, GPtrArray *segs, GPtrArray *keys)
{
  guint64 backlog = 0;
  for (guint k = 0; k < segs->len; k++) {
    const char *key = keys->pdata[k];
    g_autofree char *path = g_build_filename(dir, segs->pdata[k], NULL);
    gboolean found;
    struct stat st;
    shipped_size(s->shipped, key, &found);
    if (found || lstat(path, &st) != 0)
      continue;
    backlog += (guint64)st.st_size - MIN((guint64)st.st_size, shipped_size(s->parts_end, key, NULL));
  }
  return backlog;
}

/* The replica keys of the segment files @segs of database @name. */
static GPtrArray *
segment_keys(const char *name, GPtrArray *segs)
{
  GPtrArray *keys = g_ptr_array_new_full(segs->len, g_free);
  for (guint k = 0; k < segs->len; k++)
    g_ptr_array_add(keys, g_strdup_printf("wal_archives/%s/%s", name, (char *)segs->pdata[k]));
  return keys;
}

static gboolean
ship_archive(SqlenvfsShipper *s, const char *name, gboolean *shipped_any, GError **error)
{
  g_autofree char *dir = g_build_filename(s->wal_dir, name, NULL);
  g_autoptr(GPtrArray) segs = list_segment_files(dir);
  g_autoptr(GPtrArray) keys = segment_keys(name, segs);
  ShipDb *d;
  guint64 backlog;
  gboolean changed = FALSE;
  gint64 began = g_get_real_time();

  backlog = archive_backlog(s, dir, segs, keys);
  g_mutex_lock(&s->lock);
  d = get_db(s, name);
  d->backlog = backlog;
  if (backlog > 0 && d->pending_since == 0)
    d->pending_since = d->notified ? d->notified : g_get_real_time();
  g_mutex_unlock(&s->lock);

  /* A segment shipped whole whose parts are still listed: the delete of
   * its parts was cut short (the server failed after the upload), or the
   * state was lost and a LIST found them. One hash lookup per segment. */
  for (guint k = 0; k < segs->len; k++) {
    const char *key = keys->pdata[k];
    gboolean found;
    shipped_size(s->shipped, key, &found);
    if (!found || !g_hash_table_contains(s->parts_end, key))
      continue;
    if (!drop_parts(s, key, error) || !shipped_save(s, error))
      return FALSE;
  }

  if (backlog > 0) {
    if (d->ar == NULL || !sqlenvfs_archive_refresh(d->ar, NULL) ||
        (sqlenvfs_archive_n_segments(d->ar) > 0 &&
         !g_file_test(sqlenvfs_archive_segment(d->ar, 0)->path, G_FILE_TEST_EXISTS))) {
      g_clear_pointer(&d->ar, sqlenvfs_archive_free);
      d->ar = sqlenvfs_archive_open(dir, error);
      if (d->ar == NULL)
        return FALSE;
    }
    for (guint k = 0; k < segs->len; k++) {
      const char *key = keys->pdata[k];
      g_autofree char *path = g_build_filename(dir, segs->pdata[k], NULL);
      gboolean found;
      gint i;
      shipped_size(s->shipped, key, &found);
      if (found)
        continue;
      i = find_segment(d->ar, path);
      if (i < 0)
        break; /* newer than the index we read: next round */
      if (sqlenvfs_archive_segment(d->ar, (guint)i)->is_sealed) {
        if (!ship_sealed(s, d, (guint)i, key, error))
          return FALSE;
        changed = TRUE;
        if (!shipped_save(s, error))
          return FALSE;
      } else if ((guint)i + 1 == sqlenvfs_archive_n_segments(d->ar)) {
        guint64 n;
        do {
          if (!ship_part(s, d, (guint)i, key, &n, error))
            return FALSE;
          changed = changed || n > 0;
        } while (n > 0);
      } else {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                    "%s is neither sealed nor the last segment; it is not shipped (run "
                    "`sqlenvfs verify`)", path);
        return FALSE;
      }
    }
  }
  if (changed && !ship_small(s, dir, name, "alive", TRUE, error))
    return FALSE;
  if (!ship_small(s, dir, name, "PRUNED", FALSE, error))
    return FALSE;
  if (changed)
    *shipped_any = TRUE;
  backlog = archive_backlog(s, dir, segs, keys);
  if (!changed && backlog == 0) {
    /* Everything shipped, but alive gone from the replica (check_replica
     * forgot it): shipped again without waiting for a commit. */
    g_autofree char *akey = g_strdup_printf("wal_archives/%s/alive", name);
    if (!g_hash_table_contains(s->shipped, akey) &&
        !ship_small(s, dir, name, "alive", TRUE, error))
      return FALSE;
  }
  g_mutex_lock(&s->lock);
  d->backlog = backlog;
  if (changed)
    d->last_shipped = g_get_real_time();
  /* Every byte there was when this began is shipped (a segment not in the
   * index read after that is newer): what is left came since, so it has
   * waited no longer than that. Under a writer that never pauses the
   * backlog is never 0, and the lag would otherwise count from the first
   * byte ever waited for. */
  if (backlog == 0) {
    d->pending_since = 0;
  } else if (d->pending_since < began) {
    d->pending_since = began;
    if (d->notified < began)
      d->notified = 0;
  }
  g_mutex_unlock(&s->lock);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Backups and snapshots                                                */

/* Upload the MANIFEST @path as @key: the bytes uploaded are the bytes
 * checked, and a protected one's checksum must match what they hold. */
static gboolean
ship_manifest(SqlenvfsShipper *s, const char *path, gboolean is_protected, const char *key,
              guint64 *size, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autofree char *text = NULL, *stored = NULL;
  g_autoptr(GError) local = NULL;
  gsize len = 0;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;

  if (fd < 0)
    return sqlenvfs_error_errno(error, errno, "open", path);
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 16 * 1024 * 1024) {
    close(fd);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s is not a MANIFEST (not a regular file of at most 16 MiB)", path);
    return FALSE;
  }
  text = g_malloc((gsize)st.st_size + 1);
  len = (gsize)st.st_size;
  if (pread(fd, text, len, 0) != (gssize)len) {
    sqlenvfs_error_errno(error, errno ? errno : EIO, "read", path);
    close(fd);
    return FALSE;
  }
  close(fd);
  text[len] = '\0';
  if (!g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &local)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "read %s: %s; not shipped",
                path, local->message);
    return FALSE;
  }
  stored = g_key_file_get_string(kf, "sqlenvfs-copy", "checksum", NULL);
  if (is_protected) {
    guint32 want = stored ? (guint32)g_ascii_strtoull(stored, NULL, 16) : 0;
    guint32 got = sqlenvfs_store_manifest_seal(kf);
    if (stored == NULL || got != want) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s: its checksum is %s but its contents give 0x%08x (it changed after it was "
                  "read); not shipped (run `sqlenvfs verify`)",
                  path, stored ? stored : "missing", got);
      return FALSE;
    }
  }
  if (!put_once(s, key, text, len, error))
    return FALSE;
  *size = len;
  return TRUE;
}

static gboolean
ship_copies(SqlenvfsShipper *s, SqlenvfsCopyKind kind, const char *top,
            GHashTable *copy_backlog, gboolean count_only, gboolean *shipped_any, GError **error)
{
  const char *dir = sqlenvfs_root_path(s->root, kind == SQLENVFS_KIND_BACKUP
                                                    ? SQLENVFS_DIR_DAILY
                                                    : SQLENVFS_DIR_SNAPSHOTS);
  g_autoptr(GDir) gd = g_dir_open(dir, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *e;
  gboolean failed = count_only; /* after a failure, only count what is left */

  while (gd && (e = g_dir_read_name(gd)) != NULL)
    if (e[0] != '.')
      g_ptr_array_add(names, g_strdup(e));
  g_ptr_array_sort(names, cmp_seg_names);
  for (guint i = 0; i < names->len; i++) {
    const char *name = names->pdata[i];
    g_autofree char *mkey = g_strdup_printf("%s/%s/MANIFEST", top, name);
    g_autofree char *mpath = NULL;
    g_autoptr(SqlenvfsStoredCopy) copy = NULL;
    g_autoptr(GError) local = NULL;
    gboolean found;
    guint64 n = 0;

    shipped_size(s->shipped, mkey, &found);
    if (found)
      continue;
    copy = sqlenvfs_store_load(s->root, kind, name, &local);
    if (copy == NULL) {
      g_debug("replica: %s %s not shipped: %s", sqlenvfs_copy_kind_name(kind), name,
              local->message);
      continue;
    }
    /* What of it waits: its database files not shipped with their lists. */
    for (guint k = 0; k < copy->dbs->len; k++) {
      const SqlenvfsStoredDb *sdb = copy->dbs->pdata[k];
      g_autofree char *base = g_path_get_basename(sdb->path);
      g_autofree char *key = g_strdup_printf("%s/%s/%s", top, name, base);
      g_autofree char *lkey = g_strconcat(key, SQLENVFS_BLOCKS_SUFFIX, NULL);
      guint64 *b = g_hash_table_lookup(copy_backlog, sdb->db);
      if (b == NULL) {
        b = g_new0(guint64, 1);
        g_hash_table_insert(copy_backlog, g_strdup(sdb->db), b);
      }
      if (!g_hash_table_contains(s->shipped, key) || !g_hash_table_contains(s->shipped, lkey))
        *b += sdb->size;
    }
    if (failed)
      continue;
    for (guint k = 0; k < copy->dbs->len && !failed; k++) {
      const SqlenvfsStoredDb *sdb = copy->dbs->pdata[k];
      g_autofree char *base = g_path_get_basename(sdb->path);
      g_autofree char *key = g_strdup_printf("%s/%s/%s", top, name, base);
      g_autofree char *lkey = g_strconcat(key, SQLENVFS_BLOCKS_SUFFIX, NULL);
      g_autoptr(GArray) blocks = g_array_new(FALSE, FALSE, sizeof(guint32));
      g_autoptr(GBytes) list = NULL;
      gboolean list_found;
      guint32 crc = 0;
      shipped_size(s->shipped, key, &found);
      shipped_size(s->shipped, lkey, &list_found);
      if (found && list_found)
        continue; /* not counted above */
      /* The file and its block list (remote.h) from one read of it. */
      if (!upload_file(s, sdb->path, 0, -1, G_MAXINT64, key, TRUE, &crc, &n, blocks, error)) {
        failed = TRUE;
      } else if (crc != sdb->crc32 || n != sdb->size) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                    "%s: %" G_GUINT64_FORMAT " bytes with crc32 0x%08x, but its MANIFEST says %"
                    G_GUINT64_FORMAT " bytes with crc32 0x%08x; not shipped (run `sqlenvfs "
                    "verify`)", sdb->path, n, crc, sdb->size, sdb->crc32);
        failed = TRUE;
      } else if ((list = sqlenvfs_blocks_encode(SQLENVFS_BLOCKS_SIZE, n,
                                                (const guint32 *)(void *)blocks->data,
                                                blocks->len)) == NULL ||
                 !put_once(s, lkey, g_bytes_get_data(list, NULL), g_bytes_get_size(list),
                           error)) {
        failed = TRUE;
      } else {
        mark_shipped(s, key, n);
        mark_shipped(s, lkey, g_bytes_get_size(list));
        *(guint64 *)g_hash_table_lookup(copy_backlog, sdb->db) -= sdb->size;
        *shipped_any = TRUE;
      }
    }
    if (failed)
      continue;
    mpath = g_build_filename(copy->dir, "MANIFEST", NULL);
    if (!ship_manifest(s, mpath, copy->is_protected, mkey, &n, error)) {
      failed = TRUE;
      continue;
    }
    mark_shipped(s, mkey, n);
    *shipped_any = TRUE;
    if (!shipped_save(s, error))
      failed = TRUE;
  }
  return !failed;
}

/* ------------------------------------------------------------------ */
/* Removals queued by prune                                             */

void (*sqlenvfs_shipper_queue_hook)(const char *path);

gboolean
sqlenvfs_shipper_queue_take(const char *path, const char *taking, GError **error)
{
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  gboolean ok = TRUE;

  if (fd < 0)
    return errno == ENOENT || sqlenvfs_error_errno(error, errno, "open", path);
  /* An append under way holds the lock: it ends before the file goes. */
  if (flock(fd, LOCK_EX) != 0)
    ok = sqlenvfs_error_errno(error, errno, "lock", path);
  else if (rename(path, taking) != 0)
    ok = sqlenvfs_error_errno(error, errno, "rename", path);
  close(fd);
  return ok;
}

static gboolean
run_removals(SqlenvfsShipper *s, GError **error)
{
  g_autofree char *path = g_build_filename(s->state_dir, REMOVE_FILE, NULL);
  g_autofree char *taking = g_strconcat(path, ".taking", NULL);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_test(taking, G_FILE_TEST_EXISTS) &&
      !sqlenvfs_shipper_queue_take(path, taking, error))
    return FALSE;
  if (!g_file_get_contents(taking, &text, NULL, NULL))
    return TRUE;
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    if (lines[i][0] == '\0')
      continue;
    if (!sqlenvfs_s3_delete(s->s3, lines[i], error))
      return FALSE;
    g_hash_table_remove(s->shipped, lines[i]);
    g_hash_table_remove(s->parts_end, lines[i]);
  }
  if (!shipped_save(s, error))
    return FALSE;
  unlink(taking);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Status                                                               */

static void
write_status(SqlenvfsShipper *s)
{
  g_autofree char *path = g_build_filename(s->state_dir, STATUS_FILE, NULL);
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;
  GHashTableIter it;
  gpointer v;
  gsize len;

  g_mutex_lock(&s->lock);
  g_key_file_set_string(kf, "replica", "url", s->url);
  g_key_file_set_string(kf, "replica", "state", state_names[s->state]);
  g_key_file_set_string(kf, "replica", "error", s->error ? s->error : "");
  g_key_file_set_int64(kf, "replica", "pid", getpid());
  g_hash_table_iter_init(&it, s->dbs);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    ShipDb *d = v;
    g_autofree char *group = g_strconcat("db ", d->name, NULL);
    g_key_file_set_uint64(kf, group, "backlog", d->backlog);
    g_key_file_set_int64(kf, group, "pending-since", d->pending_since);
    g_key_file_set_int64(kf, group, "last-shipped", d->last_shipped);
    if (d->error)
      g_key_file_set_string(kf, group, "error", d->error);
  }
  s->status_dirty = FALSE;
  g_mutex_unlock(&s->lock);
  data = g_key_file_to_data(kf, &len, NULL);
  if (!sqlenvfs_write_file_atomic(path, data, len, 0600, &error))
    g_debug("replica: %s", error->message);
}

static SqlenvfsShipperDbStatus *
db_status(const char *name, const char *state, const char *error, guint64 backlog,
          gint64 pending_since, gint64 last_shipped, gint64 now)
{
  SqlenvfsShipperDbStatus *st = g_new0(SqlenvfsShipperDbStatus, 1);
  st->db = g_strdup(name);
  st->state = g_strdup(state);
  st->error = error && *error ? g_strdup(error) : NULL;
  st->backlog_bytes = backlog;
  st->lag_us = backlog > 0 && pending_since > 0 ? MAX(now - pending_since, 0) : 0;
  st->last_shipped_us = last_shipped;
  return st;
}

static gint
cmp_status(gconstpointer a, gconstpointer b)
{
  return strcmp((*(SqlenvfsShipperDbStatus *const *)a)->db,
                (*(SqlenvfsShipperDbStatus *const *)b)->db);
}

GPtrArray *
sqlenvfs_shipper_status(SqlenvfsRoot *root)
{
  GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_shipper_db_status_free);
  gint64 now = g_get_real_time();

  g_mutex_lock(&current_lock);
  if (current && strcmp(current->root_dir, sqlenvfs_root_dir(root)) == 0) {
    SqlenvfsShipper *s = current;
    GHashTableIter it;
    gpointer v;
    g_mutex_lock(&s->lock);
    g_hash_table_iter_init(&it, s->dbs);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
      ShipDb *d = v;
      g_ptr_array_add(out, db_status(d->name, state_names[s->state], d->error ? d->error : s->error,
                                     d->backlog, d->pending_since, d->last_shipped, now));
    }
    g_mutex_unlock(&s->lock);
    g_mutex_unlock(&current_lock);
  } else {
    g_autofree char *path = NULL;
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_auto(GStrv) groups = NULL;
    g_autofree char *state = NULL, *error = NULL;
    g_mutex_unlock(&current_lock);
    g_autoptr(GError) settings = NULL;
    gboolean loaded;
    gint64 pid;
    if (!sqlenvfs_shipper_is_configured(root))
      return out; /* a status file left from settings since removed */
    path = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), STATUS_FILE, NULL);
    loaded = g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL);
    pid = loaded ? g_key_file_get_int64(kf, "replica", "pid", NULL) : 0;
    if (loaded && pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) {
      state = g_key_file_get_string(kf, "replica", "state", NULL);
      error = g_key_file_get_string(kf, "replica", "error", NULL);
    } else {
      /* Nobody ships now; the next archiver ships with the settings as
       * they are now, so those are what is wrong if anything is. */
      g_autofree char *lock = sqlenvfs_root_lock_path(root, "archiver");
      gint64 holder = sqlenvfs_doctor_lock_holder(lock, NULL);
      state = g_strdup("off");
      if (!sqlenvfs_shipper_check_settings(root, &settings))
        error = g_strdup(settings->message);
      else if (holder > 0)
        /* An archiver that started before [replica] was set ships nothing:
         * it reads the settings when it starts. */
        error = g_strdup_printf("the running archiver (pid %" G_GINT64_FORMAT ") started "
                                "before the replica was set, and ships nothing: restart it "
                                "(unmount and mount again, or restart `sqlenvfs archive`)",
                                holder);
      else
        error = g_strdup("the archiver is not running (start `sqlenvfs mount` or "
                         "`sqlenvfs archive`)");
    }
    if (!loaded) {
      /* Never shipped: each production database, with that reason. */
      g_autoptr(GPtrArray) names = sqlenvfs_root_list_dbs(root);
      for (guint i = 0; i < names->len; i++)
        g_ptr_array_add(out, db_status(names->pdata[i], state, error, 0, 0, 0, now));
      g_ptr_array_sort(out, cmp_status);
      return out;
    }
    groups = g_key_file_get_groups(kf, NULL);
    for (guint i = 0; groups[i]; i++) {
      g_autofree char *db_error = NULL;
      if (!g_str_has_prefix(groups[i], "db "))
        continue;
      db_error = g_key_file_get_string(kf, groups[i], "error", NULL);
      g_ptr_array_add(out, db_status(groups[i] + 3, state ? state : "off",
                                     db_error && g_strcmp0(state, "off") != 0 ? db_error : error,
                                     g_key_file_get_uint64(kf, groups[i], "backlog", NULL),
                                     g_key_file_get_int64(kf, groups[i], "pending-since", NULL),
                                     g_key_file_get_int64(kf, groups[i], "last-shipped", NULL),
                                     now));
    }
  }
  g_ptr_array_sort(out, cmp_status);
  return out;
}

const SqlenvfsShipperDbStatus *
sqlenvfs_shipper_status_find(GPtrArray *statuses, const char *db)
{
  for (guint i = 0; statuses && i < statuses->len; i++) {
    const SqlenvfsShipperDbStatus *st = statuses->pdata[i];
    if (g_strcmp0(st->db, db) == 0)
      return st;
  }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* The thread                                                           */

/* Whether bytes @a..@b of the segment @seg_key here are those of an object
 * whose ETag is @etag (an object uploaded in one PUT: its ETag is the MD5
 * of its body). A segment gone here (pruned) cannot be told: TRUE; so
 * cannot an ETag that is no MD5 (the range is there: TRUE). */
static gboolean
range_is_ours(SqlenvfsShipper *s, const char *seg_key, guint64 a, guint64 b, const char *etag)
{
  g_autofree char *path = g_build_filename(s->base_dir, seg_key, NULL);
  g_autoptr(GChecksum) md5 = NULL;
  g_autofree guint8 *buf = NULL;
  guint64 off;
  struct stat st;
  int fd;
  gboolean same = TRUE;

  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT;
  if (fstat(fd, &st) != 0 || (guint64)st.st_size < b) {
    close(fd);
    return FALSE;
  }
  if (etag == NULL || strlen(etag) != 32 || strchr(etag, '-') != NULL) {
    close(fd);
    return TRUE;
  }
  md5 = g_checksum_new(G_CHECKSUM_MD5);
  buf = g_malloc(1 << 20);
  for (off = a; off < b && same;) {
    ssize_t n = pread(fd, buf, MIN((guint64)(1 << 20), b - off), (off_t)off);
    if (n <= 0) {
      same = FALSE;
    } else {
      g_checksum_update(md5, buf, (gsize)n);
      off += (guint64)n;
    }
  }
  close(fd);
  return same && g_ascii_strcasecmp(g_checksum_get_string(md5), etag) == 0;
}

/* Whether the part object @o holds this root's bytes: its segment file
 * here holds the range its key names, with the same MD5. */
static gboolean
part_is_ours(SqlenvfsShipper *s, const SqlenvfsS3Object *o)
{
  g_autofree char *seg_key = NULL;
  guint64 a, b;
  if (!parse_part(o->key, &seg_key, &a, &b) || (guint64)o->size != b - a)
    return FALSE;
  return range_is_ours(s, seg_key, a, b, o->etag);
}

/* Refuse shipping for good in this process (s->diverged): @key in the
 * replica holds what this root did not ship. FALSE, REFUSED. */
static gboolean
diverge(SqlenvfsShipper *s, const char *key, gint64 size, GError **error)
{
  g_free(s->diverged);
  s->diverged = g_strdup_printf(
    "the replica at %s holds %s (%" G_GINT64_FORMAT " bytes), which this root did not ship: "
    "another root with this root's id (a copy of its directory, or this root put back from "
    "an older disk or VM image) shipped there while this one was stopped, and their "
    "histories differ; nothing more is shipped from this root (give it a new prefix in "
    "[replica] url and restart it, or move that replica away first if this root's history "
    "is the one to keep)", s->conf->url, key, size);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED, "%s", s->diverged);
  return FALSE;
}

/* The newest name in @path's directory of @path moved aside as damaged
 * ("<name>.damaged-<us>"), or NULL. */
static char *
moved_aside_name(const char *path)
{
  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *base = g_path_get_basename(path);
  g_autofree char *prefix = g_strconcat(base, ".damaged-", NULL);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  char *newest = NULL;
  const char *e;
  while (d != NULL && (e = g_dir_read_name(d)) != NULL)
    if (g_str_has_prefix(e, prefix) && (newest == NULL || strcmp(e, newest) > 0)) {
      g_free(newest);
      newest = g_strdup(e);
    }
  return newest;
}

/* Refuse shipping for good in this process (s->diverged): the part @key
 * in the replica is one this root shipped, but its local segment no
 * longer holds those bytes: it was replaced after shipping (moved aside,
 * and its number written again by the new segment the archiver began) or
 * changed on disk. Not another root's doing. FALSE, REFUSED. */
static gboolean
diverge_replaced(SqlenvfsShipper *s, const char *key, gint64 size, GError **error)
{
  g_autofree char *seg_key = NULL, *path = NULL, *aside = NULL, *how = NULL;
  guint64 a, b;
  if (!parse_part(key, &seg_key, &a, &b))
    seg_key = g_strdup(key);
  path = g_build_filename(s->base_dir, seg_key, NULL);
  aside = moved_aside_name(path);
  how = aside != NULL ? g_strdup_printf("it was moved aside as damaged (%s) and a new segment "
                                        "written under its number", aside)
                      : g_strdup("it was replaced or changed on disk");
  g_free(s->diverged);
  s->diverged = g_strdup_printf(
    "the replica at %s holds %s (%" G_GINT64_FORMAT " bytes) as this root shipped it, but the "
    "local segment %s no longer holds those bytes: %s after it was shipped; nothing more is "
    "shipped from this root (run `sqlenvfs verify`, then delete the replica's objects "
    "%s.part-* and restart, so that this root ships that segment again, or give the replica "
    "a new prefix in [replica] url and restart)", s->conf->url, key, size, path, how, seg_key);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED, "%s", s->diverged);
  return FALSE;
}

/* When there is no state file: learn what the replica already holds (one
 * LIST), so that a root that lost its state does not upload it all again
 * nor write parts that overlap those there. An object counts only when the
 * local file of the same key has its size; parts count as they are. */
static gboolean
adopt_remote(SqlenvfsShipper *s, GError **error)
{
  g_autoptr(GPtrArray) objs = sqlenvfs_s3_list(s->s3, "", 0, NULL, error);
  g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
  if (objs == NULL)
    return FALSE; /* nothing adopted: the round fails, and the list is made again */
  for (guint i = 0; i < objs->len; i++) {
    const SqlenvfsS3Object *o = objs->pdata[i];
    g_autofree char *path = NULL;
    struct stat st;
    if (strstr(o->key, ".seg.part-")) {
      if (!part_is_ours(s, o))
        return diverge(s, o->key, o->size, error);
      put_u64(s->shipped, o->key, (guint64)o->size);
      g_ptr_array_add(parts, g_strdup(o->key));
      continue;
    }
    if (g_str_has_suffix(o->key, "/MANIFEST") || g_str_has_suffix(o->key, "/alive") ||
        g_str_has_suffix(o->key, "/PRUNED") || !(g_str_has_prefix(o->key, "wal_archives/") ||
        g_str_has_prefix(o->key, "daily/") || g_str_has_prefix(o->key, "snapshots/")))
      continue;
    if (g_str_has_suffix(o->key, ".db" SQLENVFS_BLOCKS_SUFFIX)) {
      /* A block list: adopted with its database file (checked by readers
       * against the MANIFEST). */
      g_autofree char *db = g_strndup(o->key, strlen(o->key) - strlen(SQLENVFS_BLOCKS_SUFFIX));
      path = g_build_filename(s->base_dir, db, NULL);
      if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
        put_u64(s->shipped, o->key, (guint64)o->size);
      continue;
    }
    path = g_build_filename(s->base_dir, o->key, NULL);
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == o->size)
      put_u64(s->shipped, o->key, (guint64)o->size);
  }
  g_ptr_array_sort(parts, cmp_str_ptr);
  for (guint i = 0; i < parts->len; i++)
    note_part(s->parts_end, parts->pdata[i]);
  g_message("replica: no shipping state; %u object(s) found in %s adopted", g_hash_table_size(s->shipped),
            s->conf->url);
  return TRUE;
}

/* This root's id (.sqlenvfs/root-id), made the first time it is needed:
 * what OWNER compares. A copy of the whole root (moved to another machine)
 * keeps it; a new root, even one restored from the replica, gets its own. */
static char *
root_id(SqlenvfsShipper *s, GError **error)
{
  g_autofree char *path = g_build_filename(s->state_dir, ROOT_ID_FILE, NULL);
  g_autofree char *text = NULL;
  char *id;
  if (g_file_get_contents(path, &text, NULL, NULL) && g_uuid_string_is_valid(g_strstrip(text)))
    return g_steal_pointer(&text);
  id = g_uuid_string_random();
  {
    g_autofree char *line = g_strdup_printf("%s\n", id);
    if (!sqlenvfs_write_file_atomic(path, line, strlen(line), 0600, error)) {
      g_free(id);
      return NULL;
    }
  }
  return id;
}

/* Whether a prefix above this replica's holds another replica (its OWNER
 * or FORMAT): this one would lie among that one's objects, which its root
 * would take for its own (and then stop shipping, taking them for a copy
 * of itself). Prefixes this key may not read are passed over. FALSE with
 * *error naming the replica above. */
static gboolean
check_not_nested(SqlenvfsShipper *s, GError **error)
{
  g_autofree char *above = g_strdup(s->conf->prefix ? s->conf->prefix : "");
  while (*above != '\0') {
    char *slash = strrchr(above, '/');
    SqlenvfsReplicaConf up = *s->conf;
    g_autoptr(SqlenvfsS3) s3 = NULL;
    const char *const keys[] = { OWNER_KEY, FORMAT_KEY };
    if (slash != NULL)
      *slash = '\0';
    else
      *above = '\0';
    up.prefix = above;
    s3 = sqlenvfs_s3_new(&up, NULL);
    for (gsize k = 0; s3 != NULL && k < G_N_ELEMENTS(keys); k++) {
      g_autoptr(GError) local = NULL;
      g_autoptr(SqlenvfsS3Object) o = sqlenvfs_s3_head(s3, keys[k], &local);
      if (o != NULL) {
        g_autofree char *where = sqlenvfs_s3_describe(s3, keys[k]);
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                    "the replica at %s lies inside another replica (%s is there): that "
                    "replica's root would take this one's objects for its own; nothing was "
                    "shipped (give this root a prefix outside it in [replica] url)",
                    s->conf->url, where);
        return FALSE;
      }
      if (local != NULL && local->code == SQLENVFS_ERROR_IO) {
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
      }
    }
  }
  return TRUE;
}

/* The replica is this root's: OWNER names it, or is written now. A replica
 * without OWNER is claimed only by a root that has shipped there before
 * (its shipping state names the URL) or when it holds nothing but FORMAT
 * and the lease: a new root must not take over another root's replica,
 * whose objects have the same names as its own (segments numbered from 1)
 * and would be overwritten or, worse, taken as its own. */
static gboolean
check_owner(SqlenvfsShipper *s, gboolean has_state, GError **error)
{
  g_autofree char *id = root_id(s, error);
  g_autofree char *want = NULL, *where = sqlenvfs_s3_describe(s->s3, OWNER_KEY);
  g_autoptr(GError) local = NULL;
  g_autoptr(GBytes) got = NULL;

  if (id == NULL)
    return FALSE;
  want = g_strdup_printf("sqlenvfs-root %s\n", id);
  for (int round = 0; round < 2; round++) {
    g_clear_error(&local);
    got = sqlenvfs_s3_get(s->s3, OWNER_KEY, 0, -1, NULL, &local);
    if (got != NULL) {
      gsize len;
      const char *data = g_bytes_get_data(got, &len);
      g_autofree char *theirs = NULL;
      if (len == strlen(want) && memcmp(data, want, len) == 0) {
        s->owner_ok = TRUE;
        return TRUE;
      }
      g_autoptr(SqlenvfsLeaseHolder) h = sqlenvfs_lease_read(s->s3, NULL, NULL);
      g_autofree char *now = NULL;
      theirs = g_strstrip(g_strndup(data, MIN(len, 64)));
      g_strcanon(theirs, "0123456789abcdefghijklmnopqrstuvwxyz- ", '?');
      if (h != NULL && h->expires_us > g_get_real_time()) {
        g_autofree char *until = sqlenvfs_time_format_iso(h->expires_us);
        /* Renewed while that archiver runs: it may as well have died
         * since (a dead machine's lease runs out by itself). */
        now = g_strdup_printf("; its lease names host %s, root %s, pid %" G_GINT64_FORMAT
                              " until %s (renewed while that archiver runs, so it shipped "
                              "there until a moment ago)",
                              h->host, h->root, h->pid, until);
      }
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "%s names another root (%s, this one is %s): the replica at %s is another "
                  "root's, or this root's before it was made anew%s; nothing was shipped (give "
                  "this root its own prefix in [replica] url, or move that replica away "
                  "first)", where, theirs, id, s->conf->url, now ? now : "");
      return FALSE;
    }
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    if (!has_state) {
      g_autoptr(GPtrArray) objs = sqlenvfs_s3_list(s->s3, "", 0, NULL, error);
      if (objs == NULL)
        return FALSE;
      for (guint i = 0; i < objs->len; i++) {
        const SqlenvfsS3Object *o = objs->pdata[i];
        if (strcmp(o->key, FORMAT_KEY) != 0 && strcmp(o->key, SQLENVFS_LEASE_KEY) != 0) {
          g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                      "the replica at %s holds objects (%s, ...) but no %s naming the root they "
                      "came from, and this root has no record of shipping there: it cannot tell "
                      "they are its own; nothing was shipped (give this root its own prefix in "
                      "[replica] url, or move that replica away first)",
                      s->conf->url, o->key, OWNER_KEY);
          return FALSE;
        }
      }
    }
    /* After the LIST, which names a missing bucket at once. */
    if (!check_not_nested(s, error))
      return FALSE;
    g_clear_error(&local);
    if (sqlenvfs_s3_put(s->s3, OWNER_KEY, want, strlen(want), SQLENVFS_S3_PUT_IF_ABSENT, NULL,
                        NULL, &local)) {
      s->owner_ok = TRUE;
      return TRUE;
    }
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    /* Written by someone else in between: read it again. */
  }
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY, "%s changed twice while being read",
              where);
  return FALSE;
}

/* Abort the multipart uploads left open under the replica's prefix: by an
 * archiver killed in the middle of one (its parts are stored, and billed,
 * until aborted), or by a failed upload whose abort failed too (the server
 * gone), this process's or another's. Called with the lease held and
 * OWNER checked, before a round, in the one thread that uploads: no upload
 * of this process is open then, and the lease keeps any other writer out,
 * so every upload listed was begun by an earlier holder. Only keys under
 * the prefix are listed (s3.h), so only those are touched. Each abort is
 * logged once. */
static gboolean
abort_orphans(SqlenvfsShipper *s, GError **error)
{
  g_autoptr(GPtrArray) ups = sqlenvfs_s3_multipart_list(s->s3, 0, NULL, error);
  if (ups == NULL)
    return FALSE;
  for (guint i = 0; i < ups->len; i++) {
    const SqlenvfsS3Upload *u = ups->pdata[i];
    g_autofree char *where = sqlenvfs_s3_describe(s->s3, u->key);
    g_autofree char *when = u->initiated_us ? sqlenvfs_time_format_iso(u->initiated_us)
                                            : g_strdup("at an unknown time");
    if (!sqlenvfs_s3_multipart_abort(s->s3, u->key, u->upload_id, error))
      return FALSE;
    g_message("replica: aborted the unfinished multipart upload of %s begun %s (upload id %s), "
              "left by an archiver stopped during it or whose abort failed; its parts are "
              "removed", where, when, u->upload_id);
  }
  return TRUE;
}

/* Look for uploads left open once a process, when the lease is first held
 * (abort_orphans), and again after an abort of ours failed (upload_file); a
 * failure does not hold shipping back: it is logged, and the look is made
 * again after ORPHANS_RETRY_US (a server that cannot list them, or a key
 * not allowed to, is told once). */
static void
sweep_orphans(SqlenvfsShipper *s)
{
  g_autoptr(GError) error = NULL;
  gint64 now = g_get_monotonic_time();
  if (s->orphans_done || now < s->orphans_at)
    return;
  if (abort_orphans(s, &error)) {
    s->orphans_done = TRUE;
    return;
  }
  if (g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO)) {
    g_autofree char *msg = g_strdup_printf("multipart uploads left open under %s were not "
                                           "aborted: %s (tried again in a minute)",
                                           s->conf->url, error->message);
    s->orphans_at = now + ORPHANS_RETRY_US;
    log_rate(s, msg);
    return;
  }
  s->orphans_done = TRUE;
  g_warning("replica: multipart uploads left open under %s were not aborted: %s (allow this "
            "key to list and abort multipart uploads, or add a lifecycle rule to the bucket "
            "that aborts incomplete multipart uploads; looked for again at the next start)",
            s->conf->url, error->message);
}

/* Create FORMAT, or check the one there. */
static gboolean
ensure_format(SqlenvfsShipper *s, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(GBytes) got = NULL;
  gboolean found;
  shipped_size(s->shipped, FORMAT_KEY, &found);
  if (found)
    return TRUE;
  if (!sqlenvfs_s3_put(s->s3, FORMAT_KEY, FORMAT_TEXT, strlen(FORMAT_TEXT),
                       SQLENVFS_S3_PUT_IF_ABSENT, NULL, NULL, &local)) {
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    got = sqlenvfs_s3_get(s->s3, FORMAT_KEY, 0, -1, NULL, error);
    if (got == NULL)
      return FALSE;
    if (g_bytes_get_size(got) != strlen(FORMAT_TEXT) ||
        memcmp(g_bytes_get_data(got, NULL), FORMAT_TEXT, strlen(FORMAT_TEXT)) != 0) {
      g_autofree char *where = sqlenvfs_s3_describe(s->s3, FORMAT_KEY);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "%s is not \"sqlenvfs-replica 1\": the prefix holds something else (point "
                  "[replica] url at another prefix)", where);
      return FALSE;
    }
  }
  mark_shipped(s, FORMAT_KEY, strlen(FORMAT_TEXT));
  return shipped_save(s, error);
}

static gboolean
stopping(SqlenvfsShipper *s)
{
  gboolean v;
  g_mutex_lock(&s->lock);
  v = s->is_stopping;
  g_mutex_unlock(&s->lock);
  return v;
}

/* Take or keep the lease; FALSE when shipping must not happen now. OWNER
 * is checked first (once a process; @has_state: check_owner's), so that a
 * root whose replica it is not never holds the lease of the root whose it
 * is, and fails as a lease that cannot be taken does. */
static gboolean
hold_lease(SqlenvfsShipper *s, gboolean has_state)
{
  gint64 now = g_get_monotonic_time();
  g_autoptr(GError) error = NULL;

  if (s->lease && sqlenvfs_lease_is_lost(s->lease))
    return FALSE;
  if (s->lease == NULL) {
    if (now < s->acquire_at)
      return FALSE;
    g_autofree char *id = root_id(s, NULL); /* NULL: no takeover of a dead predecessor */
    gboolean owner_failed = !s->owner_ok && !check_owner(s, has_state, &error);
    if (!owner_failed)
      s->lease = sqlenvfs_lease_acquire_as(s->s3, s->root_dir, id, s->lease_ttl_s, &error);
    if (s->lease == NULL) {
      g_autofree char *msg = NULL;
      if (g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO)) {
        /* The server is down or unreachable: try again, backing off. */
        s->n_fails++;
        s->acquire_at = now + MIN(BACKOFF_MAX_US, (s->conf->sync_interval_s * G_USEC_PER_SEC)
                                                      << MIN(s->n_fails, 5u));
        msg = g_strdup_printf("cannot %s of %s: %s", owner_failed ? "check the OWNER"
                                                                  : "take the lease",
                              s->conf->url, error->message);
        log_rate(s, msg);
        set_state(s, RS_STALLED, msg);
        return FALSE;
      }
      /* Another holder, wrong credentials, no such bucket: say it once,
       * look again only after a while (a holder that is gone lets its
       * lease expire within lease-seconds). */
      s->acquire_at = now + MIN(LEASE_RETRY_US, s->lease_ttl_s * G_USEC_PER_SEC);
      if (owner_failed)
        msg = g_strdup_printf("shipping is off: %s", error->message);
      else if (g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY))
        msg = g_strdup_printf("shipping is off: %s (another root ships to %s; give each root "
                              "its own prefix)", error->message, s->conf->url);
      else
        msg = g_strdup_printf("shipping is off: cannot take the lease of %s: %s", s->conf->url,
                              error->message);
      log_rate(s, msg);
      set_state(s, RS_ERROR, msg);
      return FALSE;
    }
    s->n_fails = 0;
    s->renewed_at = now;
    g_message("replica: shipping to %s (lease taken)", s->conf->url);
    set_state(s, s->has_shipped ? RS_SHIPPING : RS_STARTING, NULL);
    return TRUE;
  }
  if (now - s->renewed_at >= s->renew_us || !sqlenvfs_lease_is_valid(s->lease)) {
    if (!sqlenvfs_lease_renew(s->lease, &error)) {
      if (sqlenvfs_lease_is_lost(s->lease)) {
        g_autofree char *msg = g_strdup_printf(
          "lease of %s lost, shipping stopped: %s (this root no longer ships; make sure no "
          "other root writes there, then restart it: a restart ships again whatever the replica "
          "lacks, also after it was emptied by hand)", s->conf->url, error->message);
        g_warning("replica: %s", msg);
        set_state(s, RS_LEASE_LOST, msg);
        return FALSE;
      }
      log_rate(s, error->message);
      s->renewed_at = now - s->renew_us + MIN(5 * G_USEC_PER_SEC, s->renew_us / 2); /* soon */
    } else {
      s->renewed_at = now;
    }
  }
  return sqlenvfs_lease_is_valid(s->lease);
}

/* The keys a prune queued for removal and not yet removed (REMOVE_FILE,
 * and the batch being taken): neither lost nor foreign while they wait. */
static GHashTable *
pending_removals(SqlenvfsShipper *s)
{
  GHashTable *keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *path = g_build_filename(s->state_dir, REMOVE_FILE, NULL);
  g_autofree char *taking = g_strconcat(path, ".taking", NULL);
  const char *const files[] = { path, taking };
  for (guint f = 0; f < G_N_ELEMENTS(files); f++) {
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    if (!g_file_get_contents(files[f], &text, NULL, NULL))
      continue;
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++)
      if (lines[i][0] != '\0')
        g_hash_table_add(keys, g_strdup(lines[i]));
  }
  return keys;
}

/* Forget the shipped keys of what @key belongs to, so that the round ships
 * it again whole: a copy's files (its MANIFEST last), a sealed segment with
 * its index and summary, or one small object. */
static void
forget_lost(SqlenvfsShipper *s, const char *key)
{
  const char *slash = strrchr(key, '/');
  if (g_str_has_prefix(key, "daily/") || g_str_has_prefix(key, "snapshots/")) {
    g_autofree char *dir = g_strndup(key, (gsize)(slash - key + 1));
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, s->shipped);
    while (g_hash_table_iter_next(&it, &k, NULL))
      if (g_str_has_prefix(k, dir))
        g_hash_table_iter_remove(&it);
    return;
  }
  if (g_str_has_prefix(key, "wal_archives/") && strlen(key) > 4 &&
      (g_str_has_suffix(key, ".seg") || g_str_has_suffix(key, ".idx") ||
       g_str_has_suffix(key, ".sum"))) {
    g_autofree char *base = g_strndup(key, strlen(key) - 4);
    const char *const exts[] = { ".seg", ".idx", ".sum" };
    for (guint i = 0; i < G_N_ELEMENTS(exts); i++) {
      g_autofree char *k = g_strconcat(base, exts[i], NULL);
      g_hash_table_remove(s->shipped, k);
    }
    return;
  }
  g_hash_table_remove(s->shipped, key);
}

/* What the replica holds against what this root shipped, compared once a
 * process with the lease held, by one LIST (the only one of a start that
 * has a shipping state). Two things are looked for:
 *
 *   - Archive objects this root did not ship: a part it has no record of
 *     (other than the one whose upload it began, its intent), or a whole
 *     segment of another size than its own. Only a root with this root's
 *     id writes them: a copy of this root's directory (cp -a, a disk or
 *     VM image), or this root put back from an older image, which shipped
 *     while this one was stopped. Its history differs from this one's at
 *     the same offsets, and shipping on would mix the two (a reader would
 *     join parts of both): FALSE, REFUSED, and this process ships nothing
 *     more (s->diverged).
 *   - Objects this root shipped that are gone (deleted by hand, or by a
 *     lifecycle rule of the bucket): forgotten, so that this round ships
 *     them again. A lost part is uploaded again at once under its own key
 *     from the same bytes, so that the parts after it join up again. */
static gboolean
check_replica(SqlenvfsShipper *s, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(GPtrArray) objs = sqlenvfs_s3_list(s->s3, "", 0, NULL, &local);
  g_autoptr(GHashTable) remote = NULL, removing = NULL;
  g_autoptr(GPtrArray) lost = g_ptr_array_new_with_free_func(g_free);
  GHashTableIter it;
  gpointer k, v;

  if (objs == NULL && g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_PERMISSION)) {
    /* A key that may not list: the shipping state is trusted, as before. */
    g_warning("replica: %s cannot be listed (%s): what it holds is not compared with what "
              "this root shipped (allow this key to list the bucket for that check)",
              s->conf->url, local->message);
    s->replica_checked = TRUE;
    return TRUE;
  }
  if (objs == NULL) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  removing = pending_removals(s);
  remote = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 0; i < objs->len; i++) {
    const SqlenvfsS3Object *o = objs->pdata[i];
    gboolean found;
    guint64 size = shipped_size(s->shipped, o->key, &found);
    put_u64(remote, o->key, (guint64)o->size);
    if (!g_str_has_prefix(o->key, "wal_archives/") || g_hash_table_contains(removing, o->key))
      continue;
    if (strstr(o->key, ".seg.part-") != NULL) {
      /* Its own parts are in its state (or its intent), with this root's
       * bytes: the same key and size from another history is told by MD5. */
      if ((found || g_strcmp0(o->key, s->intent) == 0) && part_is_ours(s, o))
        continue;
      if (found && size == (guint64)o->size)
        return diverge_replaced(s, o->key, o->size, error); /* ours, changed here */
      return diverge(s, o->key, o->size, error);
    }
    if (!g_str_has_suffix(o->key, ".seg") || (found && size == (guint64)o->size))
      continue; /* an index or summary goes with its segment */
    /* A segment this root shipped, cut short in the replica (its bytes the
     * first of this root's, by their MD5): damage, not another history.
     * Deleted and taken as gone, it is shipped again below (a write-once
     * key is written only where nothing is). */
    if (found && (guint64)o->size < size && o->etag != NULL && strlen(o->etag) == 32 &&
        range_is_ours(s, o->key, 0, (guint64)o->size, o->etag)) {
      g_warning("replica: %s/%s holds %" G_GINT64_FORMAT " of the %" G_GUINT64_FORMAT " bytes "
                "this root shipped, the first ones: cut short there; shipping it again",
                s->conf->url, o->key, o->size, size);
      if (!sqlenvfs_s3_delete(s->s3, o->key, error))
        return FALSE;
      g_hash_table_remove(remote, o->key);
      continue;
    }
    {
      /* A whole segment: not recorded (a crash between its upload and the
       * state's save) is this root's when it is its own size; one whose
       * file is gone here (pruned) cannot be told. */
      g_autofree char *path = g_build_filename(s->base_dir, o->key, NULL);
      struct stat st;
      if (!found && (lstat(path, &st) != 0 ? errno == ENOENT
                                          : S_ISREG(st.st_mode) && st.st_size == o->size))
        continue;
    }
    return diverge(s, o->key, o->size, error);
  }
  g_hash_table_iter_init(&it, s->shipped);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    g_autofree char *seg_key = NULL;
    guint64 a, b;
    gboolean whole = FALSE;
    if (g_hash_table_contains(remote, k) || g_hash_table_contains(removing, k))
      continue;
    if (parse_part(k, &seg_key, &a, &b))
      shipped_size(s->shipped, seg_key, &whole); /* deleted once the whole was shipped */
    if (!whole)
      g_ptr_array_add(lost, g_strdup(k));
  }
  if (lost->len > 0) {
    g_ptr_array_sort(lost, cmp_str_ptr);
    g_warning("replica: %u object(s) this root shipped are gone from %s (%s%s): deleted by "
              "hand or by a lifecycle rule of the bucket; shipping them again", lost->len,
              s->conf->url, (char *)lost->pdata[0], lost->len > 1 ? ", ..." : "");
  }
  for (guint i = 0; i < lost->len; i++) {
    const char *key = lost->pdata[i];
    g_autofree char *seg_key = NULL, *path = NULL;
    guint64 a, b, n = 0;
    struct stat st;
    if (!parse_part(key, &seg_key, &a, &b)) {
      forget_lost(s, key);
      continue;
    }
    path = g_build_filename(s->base_dir, seg_key, NULL);
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || (guint64)st.st_size < b) {
      g_warning("replica: %s cannot be shipped again: %s no longer holds its bytes (the "
                "replica's segment has a hole there; the next segments are whole)", key, path);
      continue;
    }
    /* A failure leaves the check to be made again on the next round. */
    if (!upload_file(s, path, (goffset)a, (goffset)b, 0, key, TRUE, NULL, &n, NULL, error))
      return FALSE;
  }
  if (!shipped_save(s, error))
    return FALSE;
  s->replica_checked = TRUE;
  s->checked_at = g_get_monotonic_time();
  return TRUE;
}

static gboolean
round_once(SqlenvfsShipper *s, GError **error)
{
  g_autoptr(GHashTable) copy_backlog = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GDir) gd = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  gboolean any = FALSE;
  GError *first = NULL;
  const char *e;

  /* What the replica holds is compared first: a root refused there
   * writes and deletes nothing in it. Again every check-interval: an
   * object gone since (deleted by hand, by a lifecycle rule, or a PUT the
   * server acknowledged and lost) is shipped again, where the state alone
   * would count it as shipped for as long as this process runs. */
  if (s->replica_checked && s->checked_at > 0 && s->conf != NULL &&
      g_get_monotonic_time() - s->checked_at >= s->conf->check_interval_s * G_USEC_PER_SEC)
    s->replica_checked = FALSE;
  if ((!s->replica_checked && !check_replica(s, error)) || !finish_intent(s, error) ||
      !run_removals(s, error) || !ensure_format(s, error))
    return FALSE;
  gd = g_dir_open(s->wal_dir, 0, NULL);
  while (gd && (e = g_dir_read_name(gd)) != NULL)
    if (e[0] != '.')
      g_ptr_array_add(names, g_strdup(e));
  g_ptr_array_sort(names, cmp_seg_names);
  /* The archive first: it is what a lost machine needs most recent. One
   * database that fails does not hold the others back; the round fails
   * with the first error. */
  for (guint i = 0; i < names->len && !stopping(s); i++) {
    GError *local = NULL;
    gboolean ok = ship_archive(s, names->pdata[i], &any, &local);
    g_mutex_lock(&s->lock);
    {
      ShipDb *d = get_db(s, names->pdata[i]);
      if (d->error || !ok)
        s->status_dirty = TRUE;
      g_free(d->error);
      d->error = ok ? NULL : g_strdup(local->message);
    }
    g_mutex_unlock(&s->lock);
    if (!ok) {
      if (first == NULL)
        first = local;
      else
        g_error_free(local);
      if (g_error_matches(first, SQLENVFS_ERROR, SQLENVFS_ERROR_IO) ||
          g_error_matches(first, SQLENVFS_ERROR, SQLENVFS_ERROR_PERMISSION) ||
          g_error_matches(first, SQLENVFS_ERROR, SQLENVFS_ERROR_CANCELLED))
        break; /* the server, not this database: the others would fail too */
    }
  }
  if (first != NULL) {
    g_propagate_error(error, first);
    return FALSE;
  }
  {
    GError *e1 = NULL, *e2 = NULL;
    GHashTableIter it;
    gpointer k, v;
    gboolean ok = ship_copies(s, SQLENVFS_KIND_BACKUP, "daily", copy_backlog, FALSE, &any, &e1);
    ok = ship_copies(s, SQLENVFS_KIND_SNAPSHOT, "snapshots", copy_backlog, !ok, &any, &e2) && ok;
    /* What the copies still wait for counts in each database's backlog. */
    g_mutex_lock(&s->lock);
    g_hash_table_iter_init(&it, copy_backlog);
    while (g_hash_table_iter_next(&it, &k, &v)) {
      ShipDb *d = get_db(s, k);
      d->backlog += *(guint64 *)v;
      if (d->backlog > 0 && d->pending_since == 0)
        d->pending_since = g_get_real_time();
    }
    g_mutex_unlock(&s->lock);
    if (!ok) {
      g_propagate_error(error, e1 ? e1 : e2);
      if (e1 && e2)
        g_error_free(e2);
      return FALSE;
    }
  }
  if (any) {
    g_mutex_lock(&s->lock);
    s->status_dirty = TRUE;
    g_mutex_unlock(&s->lock);
  }
  return TRUE;
}

/* What is not shipped, per the shipping state (the archive's bytes and the
 * copies' files it does not list), counted without a request: when no
 * round ran (the lease refused or lost, OWNER naming another root, no
 * usable settings) or the last one failed, so that the status shows what
 * waits rather than what the last round that ran saw. At most every
 * BACKLOG_OFF_US. */
static void
refresh_backlog(SqlenvfsShipper *s)
{
  g_autoptr(GHashTable) backlog = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GDir) gd = NULL;
  gint64 now = g_get_monotonic_time(), wall = g_get_real_time();
  gboolean any = FALSE;
  GHashTableIter it;
  gpointer k, v;
  const char *e;

  if (s->counted_at != 0 && now - s->counted_at < BACKLOG_OFF_US)
    return;
  s->counted_at = now;
  gd = g_dir_open(s->wal_dir, 0, NULL);
  while (gd && (e = g_dir_read_name(gd)) != NULL) {
    g_autofree char *dir = NULL;
    g_autoptr(GPtrArray) segs = NULL, keys = NULL;
    guint64 *b;
    if (e[0] == '.')
      continue;
    dir = g_build_filename(s->wal_dir, e, NULL);
    segs = list_segment_files(dir);
    keys = segment_keys(e, segs);
    b = g_new(guint64, 1);
    *b = archive_backlog(s, dir, segs, keys);
    g_hash_table_insert(backlog, g_strdup(e), b);
  }
  /* Counting only: no request, no error. */
  ship_copies(s, SQLENVFS_KIND_BACKUP, "daily", backlog, TRUE, &any, NULL);
  ship_copies(s, SQLENVFS_KIND_SNAPSHOT, "snapshots", backlog, TRUE, &any, NULL);

  g_mutex_lock(&s->lock);
  g_hash_table_iter_init(&it, backlog);
  while (g_hash_table_iter_next(&it, &k, NULL))
    get_db(s, k);
  g_hash_table_iter_init(&it, s->dbs);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    ShipDb *d = v;
    guint64 *b = g_hash_table_lookup(backlog, k);
    guint64 n = b ? *b : 0;
    if (d->backlog != n)
      s->status_dirty = TRUE;
    d->backlog = n;
    if (n > 0 && d->pending_since == 0) {
      d->pending_since = d->notified ? d->notified : wall;
      s->status_dirty = TRUE;
    } else if (n == 0 && d->pending_since != 0) {
      d->pending_since = 0;
      d->notified = 0;
      s->status_dirty = TRUE;
    }
  }
  g_mutex_unlock(&s->lock);
}

/* The client's tick (sqlenvfs_s3_set_tick), on the shipper's thread while
 * one of its requests is under way (the lease, a round): what waits is
 * counted as when no round ships, so that the backlog and the lag grow
 * while a request blocks; and one that has waited on the server for longer
 * than sync-interval + low-speed-time makes the state "stalled", the round
 * being as good as failed, although the client still retries it. */
static void
on_tick(gpointer data, const char *what, gint64 idle_us)
{
  SqlenvfsShipper *s = data;
  gint64 bound = (s->conf->sync_interval_s + s->conf->low_speed_time_s) * G_USEC_PER_SEC;
  g_autofree char *msg = NULL;
  gboolean is_new;

  if (idle_us < G_USEC_PER_SEC)
    return; /* answered at once: the round says what it shipped */
  refresh_backlog(s);
  msg = g_strdup_printf("%s: no answer from %s for more than %" G_GINT64_FORMAT " s, nothing "
                        "shipped meanwhile (the server is frozen, full or unreachable: check "
                        "it; the request is retried, and shipping goes on once it answers)",
                        what ? what : "a request", s->conf->endpoint, bound / G_USEC_PER_SEC);
  g_mutex_lock(&s->lock);
  is_new = idle_us >= bound &&
           (s->state == RS_STARTING || s->state == RS_SHIPPING || s->state == RS_STALLED) &&
           g_strcmp0(s->error, msg) != 0;
  g_mutex_unlock(&s->lock);
  if (is_new) {
    log_rate(s, msg);
    set_state(s, RS_STALLED, msg);
    s->is_stuck = TRUE;
  }
  if (s->status_dirty)
    write_status(s);
}

static gpointer
ship_main(gpointer data)
{
  SqlenvfsShipper *s = data;
  gboolean missing = FALSE, abandoned;
  Shipped st = { 0 };
  g_autofree char *state_path = g_build_filename(s->state_dir, STATE_FILE, NULL);

  shipped_load(state_path, s->url, &st, &missing);
  s->shipped = g_steal_pointer(&st.shipped);
  s->parts_end = g_steal_pointer(&st.parts_end);
  s->intent = g_steal_pointer(&st.intent);
  shipped_clear(&st);
  write_status(s); /* names this process: `list` tells a running shipper */

  for (;;) {
    g_autoptr(GError) error = NULL;
    gint64 delay = (s->conf ? s->conf->sync_interval_s : 1) * G_USEC_PER_SEC, deadline;
    gboolean shipped_round = FALSE;
    if (stopping(s))
      break;
    /* Without a client (settings that cannot be used) the thread only
     * counts what waits: the status keeps saying why nothing is shipped. */
    if (s->s3 != NULL && s->diverged == NULL && hold_lease(s, !missing)) {
      sweep_orphans(s);
      if (missing && adopt_remote(s, &error)) {
        missing = FALSE;
        s->replica_checked = TRUE; /* what it holds is now what was shipped */
        s->checked_at = g_get_monotonic_time();
      }
      if (missing || !round_once(s, &error)) {
        if (g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_CANCELLED))
          break;
        if (s->diverged != NULL && s->lease != NULL) {
          /* Shipping is over for this process: the lease goes at once. */
          g_autoptr(GError) local = NULL;
          if (!sqlenvfs_lease_release(s->lease, &local))
            g_message("replica: %s", local->message);
          g_clear_pointer(&s->lease, sqlenvfs_lease_free);
        }
        s->n_fails++;
        log_rate(s, error->message);
        if (s->other_writer)
          set_state(s, RS_LEASE_LOST, error->message);
        else if (g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_PERMISSION) ||
            g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED) ||
            (g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND) &&
             strstr(error->message, "NoSuchBucket")))
          set_state(s, RS_ERROR, error->message);
        else
          set_state(s, RS_STALLED, error->message);
        delay = MIN(BACKOFF_MAX_US, delay << MIN(s->n_fails, 5u));
      } else {
        if (s->n_fails > 0 || s->is_stuck)
          g_message("replica: shipping to %s again", s->conf->url);
        s->n_fails = 0;
        s->is_stuck = FALSE;
        s->counted_at = 0;
        s->has_shipped = TRUE;
        shipped_round = TRUE;
        g_mutex_lock(&s->lock);
        if (s->state != RS_SHIPPING || s->error)
          s->status_dirty = TRUE;
        s->state = RS_SHIPPING;
        g_clear_pointer(&s->error, g_free);
        {
          GHashTableIter it;
          gpointer v;
          g_hash_table_iter_init(&it, s->dbs);
          while (g_hash_table_iter_next(&it, NULL, &v)) {
            ShipDb *d = v;
            if (d->backlog == 0 && (d->pending_since || d->notified)) {
              d->pending_since = 0;
              d->notified = 0;
            }
          }
        }
        g_mutex_unlock(&s->lock);
      }
    }
    if (!shipped_round)
      refresh_backlog(s);
    if (s->status_dirty)
      write_status(s);
    deadline = g_get_monotonic_time() + delay;
    g_mutex_lock(&s->lock);
    while (!s->is_stopping && g_cond_wait_until(&s->cond, &s->lock, deadline))
      ;
    g_mutex_unlock(&s->lock);
  }

  if (s->lease && sqlenvfs_lease_is_valid(s->lease)) {
    g_autoptr(GError) error = NULL;
    if (!sqlenvfs_lease_release(s->lease, &error))
      g_message("replica: %s", error->message);
  }
  write_status(s);
  g_mutex_lock(&s->lock);
  s->is_done = TRUE;
  abandoned = s->is_abandoned;
  g_cond_broadcast(&s->cond);
  g_mutex_unlock(&s->lock);
  (void)abandoned; /* an abandoned shipper is left to the process exit */
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Start, notify, stop                                                  */

static gboolean
replica_configured(const char *root_dir, char **conf_path, char **url_out)
{
  g_autofree char *path = g_build_filename(root_dir, "sqlenvfs.conf", NULL);
  g_autoptr(GKeyFile) kf = sqlenvfs_settings_keyfile(path, NULL);
  g_autofree char *url = NULL;
  if (kf == NULL)
    return FALSE;
  url = g_key_file_get_string(kf, "replica", "url", NULL);
  if (url == NULL || *g_strstrip(url) == '\0')
    return FALSE;
  if (conf_path)
    *conf_path = g_steal_pointer(&path);
  if (url_out)
    *url_out = g_steal_pointer(&url);
  return TRUE;
}

static void
shipper_free(SqlenvfsShipper *s)
{
  if (s->lease)
    sqlenvfs_lease_free(s->lease);
  if (s->s3)
    sqlenvfs_s3_free(s->s3);
  if (s->conf)
    sqlenvfs_replica_conf_free(s->conf);
  if (s->root)
    sqlenvfs_root_free(s->root);
  g_clear_pointer(&s->shipped, g_hash_table_unref);
  g_clear_pointer(&s->parts_end, g_hash_table_unref);
  g_hash_table_unref(s->dbs);
  g_free(s->intent);
  g_free(s->diverged);
  g_free(s->url);
  g_free(s->logged);
  g_free(s->error);
  g_free(s->root_dir);
  g_free(s->state_dir);
  g_free(s->base_dir);
  g_free(s->wal_dir);
  g_mutex_clear(&s->lock);
  g_cond_clear(&s->cond);
  g_free(s);
}

SqlenvfsShipper *
sqlenvfs_shipper_start(SqlenvfsRoot *root)
{
  g_autofree char *conf_path = NULL;
  g_autoptr(GError) error = NULL;
  SqlenvfsShipper *s;

  g_autofree char *url = NULL;
  if (!replica_configured(sqlenvfs_root_dir(root), &conf_path, &url))
    return NULL;
  s = g_new0(SqlenvfsShipper, 1);
  g_mutex_init(&s->lock);
  g_cond_init(&s->cond);
  s->dbs = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, ship_db_free);
  s->lease_ttl_s = LEASE_TTL_S;
  s->root_dir = g_strdup(sqlenvfs_root_dir(root));
  s->state_dir = g_strdup(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE));
  s->wal_dir = g_strdup(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL));
  s->base_dir = g_path_get_dirname(s->wal_dir);
  s->url = g_steal_pointer(&url); /* as conf->url: stripped, as written */
  s->root = sqlenvfs_root_open(s->root_dir, SQLENVFS_ROOT_MUST_EXIST, &error);
  if (s->root) {
    /* Every production database is in the status from the first one
     * written, so that a refusal or an error is shown for each, not only
     * for those that have archived something since the start. */
    g_autoptr(GPtrArray) names = sqlenvfs_root_list_dbs(s->root);
    g_mutex_lock(&s->lock);
    for (guint i = 0; i < names->len; i++)
      get_db(s, names->pdata[i]);
    g_mutex_unlock(&s->lock);
    s->conf = sqlenvfs_replica_conf_load(conf_path, NULL, &error);
  }
  if (s->conf)
    s->lease_ttl_s = s->conf->lease_s;
  s->renew_us = MIN(s->lease_ttl_s * G_USEC_PER_SEC / 4, RENEW_MAX_US);
  if (s->conf)
    s->s3 = sqlenvfs_s3_new(s->conf, &error);
  if (s->s3 == NULL) {
    g_autofree char *msg = g_strdup_printf("shipping is off: %s", error->message);
    g_warning("replica: %s", msg);
    s->state = RS_ERROR;
    s->error = g_steal_pointer(&msg);
    g_mutex_lock(&current_lock);
    current = s;
    g_mutex_unlock(&current_lock);
    write_status(s);
    /* Keep it, so that status says why, with a thread that counts what
     * waits (the root's copies are read for that). */
    if (s->root)
      s->thread = g_thread_new("shipper", ship_main, s);
    else
      s->is_done = TRUE;
    return s;
  }
  /* Not "shipping" before a round has shipped: the lease may never be
   * taken, the server may never answer. */
  s->state = RS_STARTING;
  sqlenvfs_s3_set_tick(s->s3, on_tick, s);
  g_mutex_lock(&current_lock);
  current = s;
  g_mutex_unlock(&current_lock);
  s->thread = g_thread_new("shipper", ship_main, s);
  return s;
}

void
sqlenvfs_shipper_notify(SqlenvfsShipper *s, const char *db)
{
  ShipDb *d;
  if (s == NULL || db == NULL)
    return;
  g_mutex_lock(&s->lock);
  d = get_db(s, db);
  if (d->notified == 0)
    d->notified = g_get_real_time();
  g_mutex_unlock(&s->lock);
}

void
sqlenvfs_shipper_stop(SqlenvfsShipper *s)
{
  gint64 deadline = g_get_monotonic_time() + STOP_WAIT_US;
  gboolean done;
  if (s == NULL)
    return;
  g_mutex_lock(&current_lock);
  if (current == s)
    current = NULL;
  g_mutex_unlock(&current_lock);
  g_mutex_lock(&s->lock);
  s->is_stopping = TRUE;
  g_cond_broadcast(&s->cond);
  while (!s->is_done && g_cond_wait_until(&s->cond, &s->lock, deadline))
    ;
  done = s->is_done;
  if (!done)
    s->is_abandoned = TRUE;
  g_mutex_unlock(&s->lock);
  if (!done) {
    /* An upload to an unresponsive server: the process is about to exit,
     * which ends it; nothing half-uploaded counts as shipped. */
    g_warning("replica: an upload to %s is still under way at shutdown; it is abandoned and "
              "shipped again at the next start", s->url);
    return;
  }
  if (s->thread)
    g_thread_join(s->thread);
  shipper_free(s);
}

/* ------------------------------------------------------------------ */
/* Prune                                                                */

static char *
key_of(const char *base_dir, const char *path)
{
  gsize n = strlen(base_dir);
  if (strncmp(path, base_dir, n) != 0 || path[n] != '/')
    return NULL;
  return g_strdup(path + n + 1);
}

static gboolean
load_for_prune(SqlenvfsRoot *root, char **base_dir, Shipped *st, char **url, GError **error)
{
  g_autofree char *conf_path = g_build_filename(sqlenvfs_root_dir(root), "sqlenvfs.conf", NULL);
  g_autoptr(GError) local = NULL;
  g_autoptr(GKeyFile) kf = sqlenvfs_settings_keyfile(conf_path, &local);
  g_autofree char *state_path = NULL;
  g_autofree char *u = NULL;
  const char *was = sqlenvfs_root_settings(root)->replica_url;
  gboolean missing;
  /* A file that cannot be read now, or names another replica than when
   * the prune read it (rewritten meanwhile), says nothing of the replica:
   * refused, never taken for "none". */
  if (kf == NULL && !g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  if (kf != NULL)
    u = g_key_file_get_string(kf, "replica", "url", NULL);
  if (u != NULL && *g_strstrip(u) == '\0')
    g_clear_pointer(&u, g_free);
  if (g_strcmp0(u, was) != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                "%s changed while the prune ran ([replica] url was %s, is %s now); nothing "
                "more removed: prune again", conf_path, was ? was : "none", u ? u : "none");
    return FALSE;
  }
  /* No credentials needed: only the url names the shipped state. */
  if (u == NULL)
    return FALSE;
  state_path = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), STATE_FILE, NULL);
  shipped_load(state_path, u, st, &missing);
  *base_dir = g_path_get_dirname(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL));
  *url = g_steal_pointer(&u);
  return TRUE;
}

/* The directories of the items that go. */
static GPtrArray *
dirs_of(GPtrArray *items)
{
  GPtrArray *dirs = g_ptr_array_new();
  for (guint i = 0; items && i < items->len; i++) {
    const SqlenvfsPruneItem *it = items->pdata[i];
    if (it->remove && it->dir)
      g_ptr_array_add(dirs, it->dir);
  }
  return dirs;
}

gboolean
sqlenvfs_shipper_is_configured(SqlenvfsRoot *root)
{
  return replica_configured(sqlenvfs_root_dir(root), NULL, NULL);
}

gboolean
sqlenvfs_shipper_check_settings(SqlenvfsRoot *root, GError **error)
{
  g_autofree char *conf_path = NULL;
  g_autoptr(SqlenvfsReplicaConf) conf = NULL;
  g_autoptr(GError) local = NULL;
  if (!replica_configured(sqlenvfs_root_dir(root), &conf_path, NULL))
    return TRUE;
  conf = sqlenvfs_replica_conf_load(conf_path, NULL, &local);
  if (conf != NULL)
    return TRUE;
  /* Credentials missing from this process's environment, with no file
   * named for them, are not a fault: the archiver's may hold them (the
   * other settings were checked before them). */
  if (g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
    g_autoptr(GKeyFile) kf = sqlenvfs_settings_keyfile(conf_path, NULL);
    if (kf != NULL && !g_key_file_has_key(kf, "replica", "credentials-file", NULL))
      return TRUE;
  }
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
              "the replica settings cannot be used, so nothing will be shipped: %s (fix "
              "[replica] in %s, then restart the archiver)", local->message, conf_path);
  return FALSE;
}

gboolean
sqlenvfs_shipper_check_prune(SqlenvfsRoot *root, GPtrArray *items, GPtrArray *segments,
                             GError **error)
{
  g_autoptr(GPtrArray) copy_dirs = dirs_of(items);
  g_autofree char *base = NULL, *url = NULL;
  g_autoptr(GPtrArray) unshipped = g_ptr_array_new_with_free_func(g_free);
  GError *local = NULL;
  Shipped st = { 0 };

  if (!load_for_prune(root, &base, &st, &url, &local)) {
    if (local == NULL)
      return TRUE; /* no replica */
    g_propagate_error(error, local);
    return FALSE;
  }
  for (guint i = 0; copy_dirs && i < copy_dirs->len; i++) {
    g_autofree char *k = key_of(base, copy_dirs->pdata[i]);
    g_autofree char *mk = k ? g_strconcat(k, "/MANIFEST", NULL) : NULL;
    if (mk && !g_hash_table_contains(st.shipped, mk))
      g_ptr_array_add(unshipped, g_strdup(copy_dirs->pdata[i]));
  }
  for (guint i = 0; segments && i < segments->len; i++) {
    g_autofree char *k = key_of(base, segments->pdata[i]);
    if (k && !g_hash_table_contains(st.shipped, k))
      g_ptr_array_add(unshipped, g_strdup(segments->pdata[i]));
  }
  shipped_clear(&st);
  if (unshipped->len > 0) {
    g_autoptr(GString) msg = g_string_new(NULL);
    g_string_append_printf(msg, "%u of the copies and segments to remove are not yet shipped "
                           "to %s: %s", unshipped->len, url, (char *)unshipped->pdata[0]);
    if (unshipped->len > 1)
      g_string_append_printf(msg, " and %u more", unshipped->len - 1);
    g_string_append(msg, "; nothing removed (let the archiver ship them: see `sqlenvfs list` "
                         "for the replica's state, then prune again)");
    g_set_error_literal(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED, msg->str);
    return FALSE;
  }
  return TRUE;
}

/* The keys that removing the copies @items and the segment files @segments
 * takes from the replica (those shipped of each copy, its MANIFEST first;
 * each segment with its index and summary), one a line, into @out. 0: no
 * replica is configured; 1: done (@out may be empty); -1 and *error. */
static int
removal_keys(SqlenvfsRoot *root, GPtrArray *items, GPtrArray *segments, GString *out,
             GError **error)
{
  g_autoptr(GPtrArray) copy_dirs = dirs_of(items);
  g_autofree char *base = NULL, *url = NULL;
  GError *local = NULL;
  Shipped st = { 0 };

  if (!load_for_prune(root, &base, &st, &url, &local)) {
    if (local == NULL)
      return 0;
    g_propagate_error(error, local);
    return -1;
  }
  for (guint i = 0; copy_dirs && i < copy_dirs->len; i++) {
    g_autofree char *k = key_of(base, copy_dirs->pdata[i]);
    g_autofree char *prefix = k ? g_strconcat(k, "/", NULL) : NULL;
    g_autoptr(GPtrArray) keys = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;
    if (prefix == NULL)
      continue;
    g_hash_table_iter_init(&it, st.shipped);
    while (g_hash_table_iter_next(&it, &key, NULL))
      if (g_str_has_prefix(key, prefix))
        g_ptr_array_add(keys, key);
    g_ptr_array_sort(keys, cmp_str_ptr);
    /* The MANIFEST first: a copy without it is ignored by readers. */
    g_string_append_printf(out, "%sMANIFEST\n", prefix);
    for (guint j = 0; j < keys->len; j++)
      if (!g_str_has_suffix(keys->pdata[j], "/MANIFEST"))
        g_string_append_printf(out, "%s\n", (char *)keys->pdata[j]);
  }
  for (guint i = 0; segments && i < segments->len; i++) {
    g_autofree char *k = key_of(base, segments->pdata[i]);
    g_autofree char *stem = k && g_str_has_suffix(k, ".seg") ? g_strndup(k, strlen(k) - 4) : NULL;
    if (stem)
      g_string_append_printf(out, "%s.seg\n%s.idx\n%s.sum\n", stem, stem, stem);
  }
  shipped_clear(&st);
  return 1;
}

/* Append @text to @path (created 0600 if need be) and make it durable: the
 * file's data, and its name with the directory (a new file's name survives
 * a power cut only once its directory is synced). */
gboolean
sqlenvfs_shipper_queue_append(const char *path, const char *text, gsize len, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  int fd = -1;

  /* Under the lock the shipper takes the queue with, on the file still at
   * @path: one it renamed away between the open and the lock has been read
   * (or is being read), and a line written to it would be lost. */
  for (;;) {
    struct stat a, b;
    fd = sqlenvfs_open_own_file(path, O_WRONLY | O_APPEND, 0600, error);
    if (fd < 0)
      return FALSE;
    if (sqlenvfs_shipper_queue_hook != NULL)
      sqlenvfs_shipper_queue_hook(path);
    if (flock(fd, LOCK_EX) != 0) {
      sqlenvfs_error_errno(error, errno, "lock", path);
      close(fd);
      return FALSE;
    }
    if (fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
      break;
    close(fd);
  }
  errno = 0;
  if (write(fd, text, len) != (gssize)len || fsync(fd) != 0) {
    sqlenvfs_error_errno(error, errno ? errno : EIO, "write", path);
    close(fd);
    return FALSE;
  }
  close(fd);
  return sqlenvfs_fsync_dir(dir, error);
}

static char *
pending_path(SqlenvfsRoot *root, guint run)
{
  g_autofree char *name = g_strdup_printf("%s%u-%d", PENDING_PREFIX, run, (int)getpid());
  return g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), name, NULL);
}

guint
sqlenvfs_shipper_removal_begin(void)
{
  static gint runs;
  return (guint)g_atomic_int_add(&runs, 1);
}

gboolean
sqlenvfs_shipper_intend_removal(SqlenvfsRoot *root, guint run, GPtrArray *items,
                                GPtrArray *segments, GError **error)
{
  g_autoptr(GString) out = g_string_new(NULL);
  g_autofree char *path = NULL;
  int rc = removal_keys(root, items, segments, out, error);

  if (rc <= 0 || out->len == 0)
    return rc >= 0;
  path = pending_path(root, run);
  return sqlenvfs_shipper_queue_append(path, out->str, out->len, error);
}

gboolean
sqlenvfs_shipper_queue_removal(SqlenvfsRoot *root, GPtrArray *items, GPtrArray *segments,
                               GError **error)
{
  g_autoptr(GString) out = g_string_new(NULL);
  g_autofree char *path = NULL;
  int rc = removal_keys(root, items, segments, out, error);

  if (rc <= 0 || out->len == 0)
    return rc >= 0;
  path = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), REMOVE_FILE, NULL);
  return sqlenvfs_shipper_queue_append(path, out->str, out->len, error);
}

void
sqlenvfs_shipper_removal_done(SqlenvfsRoot *root, guint run)
{
  g_autofree char *path = pending_path(root, run);
  g_autoptr(GError) error = NULL;
  if (unlink(path) != 0) {
    if (errno != ENOENT)
      g_warning("replica: remove %s: %s (the next prune removes it)", path, g_strerror(errno));
    return;
  }
  if (!sqlenvfs_fsync_dir(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), &error))
    g_warning("replica: %s", error->message);
}

/* Whether what the key @key (relative to @base) belongs to is gone here:
 * a copy's directory, a segment's .seg file. -1 when that cannot be told. */
static int
key_is_gone(const char *base, const char *key)
{
  g_autofree char *anchor = NULL;
  g_autofree char *path = NULL;
  gsize n = strlen(key);
  struct stat st;

  if (g_str_has_prefix(key, "wal_archives/")) {
    if (n < 4 || key[n - 4] != '.')
      return -1;
    anchor = g_strdup_printf("%.*s.seg", (int)(n - 4), key);
  } else {
    anchor = g_path_get_dirname(key);
  }
  path = g_build_filename(base, anchor, NULL);
  if (lstat(path, &st) == 0)
    return 0;
  return errno == ENOENT ? 1 : -1;
}

gboolean
sqlenvfs_shipper_adopt_removals(SqlenvfsRoot *root, GError **error)
{
  const char *state = sqlenvfs_root_path(root, SQLENVFS_DIR_STATE);
  g_autofree char *queue = g_build_filename(state, REMOVE_FILE, NULL);
  g_autofree char *base = g_path_get_dirname(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL));
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
  gboolean removed = FALSE;

  if (sqlenvfs_tmp_leftovers(state, PENDING_PREFIX, FALSE, FALSE, found, error) < 0)
    return FALSE;
  for (guint i = 0; i < found->len; i++) {
    const char *path = found->pdata[i];
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(GString) out = g_string_new(NULL);
    g_autoptr(GError) local = NULL;
    gboolean unsure = FALSE;

    if (!g_file_get_contents(path, &text, NULL, &local)) {
      g_warning("replica: %s: %s (left for the next prune)", path, local->message);
      continue;
    }
    lines = g_strsplit(text, "\n", -1);
    /* The last line, unless the file ends with a newline, is one a crash
     * cut short: a key of what was not removed yet (the file was synced
     * before anything was removed). */
    for (guint j = 0; lines[j] != NULL && lines[j + 1] != NULL; j++) {
      int gone;
      if (lines[j][0] == '\0')
        continue;
      gone = key_is_gone(base, lines[j]);
      if (gone < 0)
        unsure = TRUE;
      else if (gone)
        g_string_append_printf(out, "%s\n", lines[j]);
    }
    if (out->len > 0 && !sqlenvfs_shipper_queue_append(queue, out->str, out->len, error))
      return FALSE;
    if (unsure) {
      g_warning("replica: %s names what cannot be looked at; left for the next prune", path);
      continue;
    }
    if (unlink(path) != 0 && errno != ENOENT)
      return sqlenvfs_error_errno(error, errno, "remove", path);
    g_message("replica: %s, left by a prune that was interrupted: what it had removed is "
              "queued for removal from the replica", path);
    removed = TRUE;
  }
  return !removed || sqlenvfs_fsync_dir(state, error);
}
