/*
 * verifymemo.c — what `verify` found good before (verifymemo.h).
 */
#include "sqlenvfs/verifymemo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/retention.h"
#include "sqlenvfs/util.h"

#define MEMO_HEADER "sqlenvfs-verify-memo 1"
#define MEMO_MAX_BYTES (64u << 20)

typedef enum { ENTRY_SEGMENT, ENTRY_COPY, ENTRY_BASE, ENTRY_SUMMARY } EntryKind;

/* A summary's file of last versions as it was verified: not there, or the
 * file last_id; unknown in a line written before it was remembered (the
 * summary is then read again, with it). */
typedef enum { LAST_UNKNOWN, LAST_NONE, LAST_FILE } LastState;

typedef struct {
  EntryKind kind;
  SqlenvfsFileId id;     /* the file as verified                  */
  SqlenvfsFileId idx_id; /* segments: its index file               */
  /* summaries: the segment's file of last versions, checked with it */
  SqlenvfsFileId last_id;
  LastState last;
  SqlenvfsArchiveSegmentFacts facts; /* segments                   */
  guint64 size;          /* copies: what the MANIFEST said          */
  guint32 crc32, page_size, n_pages; /* summaries: crc32 is the seal */
  gint64 verified_us;
  gboolean keep;         /* used or made by this run: saved          */
  char *why;             /* bases: why it is bad; NULL: good         */
} Entry;

static void
entry_free(gpointer p)
{
  Entry *e = p;
  g_free(e->why);
  g_free(e);
}

struct _SqlenvfsVerifyMemo {
  gint64 now_us;
  GHashTable *entries; /* path -> Entry * */
  GBytes *loaded;      /* the file as read when it was good, or NULL */
  char *loaded_path;   /* ... and where it was read from */
};

SqlenvfsVerifyMemo *
sqlenvfs_verify_memo_new(gint64 now_us)
{
  SqlenvfsVerifyMemo *m = g_new0(SqlenvfsVerifyMemo, 1);
  m->now_us = now_us;
  m->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, entry_free);
  return m;
}

void
sqlenvfs_verify_memo_free(SqlenvfsVerifyMemo *memo)
{
  if (memo == NULL)
    return;
  g_hash_table_destroy(memo->entries);
  g_clear_pointer(&memo->loaded, g_bytes_unref);
  g_free(memo->loaded_path);
  g_free(memo);
}

/* The identity of the file at @path, not following a symlink; FALSE when
 * it is not a regular file or cannot be stat'd. */
static gboolean
id_of_path(const char *path, SqlenvfsFileId *id)
{
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return FALSE;
  sqlenvfs_file_id_from_stat(&st, id);
  return TRUE;
}

/* Invariant 2: was @id last changed long enough before the run started? */
static gboolean
settled(const SqlenvfsVerifyMemo *memo, const SqlenvfsFileId *id)
{
  gint64 last_us = MAX(id->mtime_ns, id->ctime_ns) / 1000;
  return last_us < memo->now_us - SQLENVFS_VERIFY_MEMO_RACY_US;
}

/* ------------------------------------------------------------ the file */

static char *
format_id(const SqlenvfsFileId *id)
{
  return g_strdup_printf("%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT
                         ":%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT,
                         id->dev, id->ino, id->size, id->mtime_ns, id->ctime_ns);
}

static gboolean
parse_u64(const char *s, guint64 *out)
{
  return s != NULL && g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, out, NULL);
}

static gboolean
parse_i64(const char *s, gint64 *out)
{
  return s != NULL && g_ascii_string_to_signed(s, 10, G_MININT64, G_MAXINT64, out, NULL);
}

static gboolean
parse_crc(const char *s, guint32 *out)
{
  guint64 v;
  if (s == NULL || !g_str_has_prefix(s, "0x") || strlen(s) != 10 ||
      !g_ascii_string_to_unsigned(s + 2, 16, 0, G_MAXUINT32, &v, NULL))
    return FALSE;
  *out = (guint32)v;
  return TRUE;
}

static gboolean
parse_id(const char *s, SqlenvfsFileId *id)
{
  g_auto(GStrv) p = s ? g_strsplit(s, ":", -1) : NULL;
  return p != NULL && g_strv_length(p) == 5 && parse_u64(p[0], &id->dev) &&
         parse_u64(p[1], &id->ino) && parse_u64(p[2], &id->size) &&
         parse_i64(p[3], &id->mtime_ns) && parse_i64(p[4], &id->ctime_ns);
}

static gboolean
parse_u32(const char *s, guint32 *out)
{
  guint64 v;
  if (!parse_u64(s, &v) || v > G_MAXUINT32)
    return FALSE;
  *out = (guint32)v;
  return TRUE;
}

/* One entry line into *path and *e; FALSE when it does not parse. */
static gboolean
parse_line(const char *line, char **path, Entry *e)
{
  g_auto(GStrv) words = g_strsplit(line, " ", -1);
  g_autoptr(GHashTable) kv = g_hash_table_new(g_str_hash, g_str_equal);
  guint n = g_strv_length(words);

  if (n < 3)
    return FALSE;
  for (guint i = 2; i < n; i++) {
    char *eq = strchr(words[i], '=');
    if (eq == NULL)
      return FALSE;
    *eq = '\0';
    if (!g_hash_table_insert(kv, words[i], eq + 1))
      return FALSE; /* a key twice */
  }
  memset(e, 0, sizeof *e);
  if (strcmp(words[0], "segment") == 0) {
    e->kind = ENTRY_SEGMENT;
    if (n != 2 + 11 || !parse_id(g_hash_table_lookup(kv, "seg"), &e->id) ||
        !parse_id(g_hash_table_lookup(kv, "idx"), &e->idx_id) ||
        !parse_u64(g_hash_table_lookup(kv, "size"), &e->facts.size) ||
        !parse_u64(g_hash_table_lookup(kv, "first"), &e->facts.first_seq) ||
        !parse_crc(g_hash_table_lookup(kv, "prev"), &e->facts.prev_crc) ||
        !parse_crc(g_hash_table_lookup(kv, "seal"), &e->facts.seal) ||
        !parse_u64(g_hash_table_lookup(kv, "next"), &e->facts.next_seq) ||
        !parse_u64(g_hash_table_lookup(kv, "records"), &e->facts.n_records) ||
        !parse_u64(g_hash_table_lookup(kv, "commits"), &e->facts.n_commits) ||
        !parse_u64(g_hash_table_lookup(kv, "gaps"), &e->facts.n_gaps) ||
        !parse_i64(g_hash_table_lookup(kv, "at"), &e->verified_us))
      return FALSE;
  } else if (strcmp(words[0], "summary") == 0) {
    const char *last = g_hash_table_lookup(kv, "last");
    e->kind = ENTRY_SUMMARY;
    if (n != 2 + 3 + (last != NULL) || !parse_id(g_hash_table_lookup(kv, "file"), &e->id) ||
        !parse_crc(g_hash_table_lookup(kv, "seal"), &e->crc32) ||
        !parse_i64(g_hash_table_lookup(kv, "at"), &e->verified_us))
      return FALSE;
    /* Without last= (an older memo): unknown, and read again. */
    if (last != NULL && strcmp(last, "none") == 0)
      e->last = LAST_NONE;
    else if (last != NULL && parse_id(last, &e->last_id))
      e->last = LAST_FILE;
    else if (last != NULL)
      return FALSE;
  } else if (strcmp(words[0], "copy") == 0) {
    e->kind = ENTRY_COPY;
    if (n != 2 + 6 || !parse_id(g_hash_table_lookup(kv, "file"), &e->id) ||
        !parse_u64(g_hash_table_lookup(kv, "size"), &e->size) ||
        !parse_crc(g_hash_table_lookup(kv, "crc32"), &e->crc32) ||
        !parse_u32(g_hash_table_lookup(kv, "page-size"), &e->page_size) ||
        !parse_u32(g_hash_table_lookup(kv, "pages"), &e->n_pages) ||
        !parse_i64(g_hash_table_lookup(kv, "at"), &e->verified_us))
      return FALSE;
  } else if (strcmp(words[0], "base") == 0) {
    const char *verdict = g_hash_table_lookup(kv, "verdict");
    e->kind = ENTRY_BASE;
    if (n != 2 + 7 || !parse_id(g_hash_table_lookup(kv, "file"), &e->id) ||
        !parse_u64(g_hash_table_lookup(kv, "size"), &e->size) ||
        !parse_crc(g_hash_table_lookup(kv, "crc32"), &e->crc32) ||
        !parse_u32(g_hash_table_lookup(kv, "page-size"), &e->page_size) ||
        !parse_u32(g_hash_table_lookup(kv, "pages"), &e->n_pages) ||
        !parse_i64(g_hash_table_lookup(kv, "at"), &e->verified_us) || verdict == NULL)
      return FALSE;
    if (g_str_has_prefix(verdict, "bad:")) {
      e->why = g_uri_unescape_string(verdict + 4, NULL);
      if (e->why == NULL || e->why[0] == '\0') {
        g_clear_pointer(&e->why, g_free);
        return FALSE;
      }
    } else if (strcmp(verdict, "good") != 0) {
      return FALSE;
    }
  } else {
    return FALSE;
  }
  *path = g_uri_unescape_string(words[1], NULL);
  return *path != NULL && g_path_is_absolute(*path);
}

/* Read @path if it can be trusted (invariant 3); NULL and *why otherwise
 * (*why NULL: it does not exist). */
static char *
read_trusted(const char *path, gsize *len, char **why)
{
  struct stat st;
  g_autofree char *data = NULL;
  gsize got = 0;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0) {
    if (errno != ENOENT)
      *why = g_strdup_printf("cannot be opened: %s", g_strerror(errno));
    return NULL;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *why = g_strdup("is not a regular file");
  } else if (st.st_uid != geteuid()) {
    *why = g_strdup_printf("is owned by uid %u, not by this user", (guint)st.st_uid);
  } else if ((st.st_mode & 022) != 0) {
    *why = g_strdup_printf("is writable by others (mode %04o)", (guint)(st.st_mode & 07777));
  } else if ((guint64)st.st_size > MEMO_MAX_BYTES) {
    *why = g_strdup("is too large");
  } else {
    data = g_malloc((gsize)st.st_size + 1);
    while (got < (gsize)st.st_size) {
      ssize_t n = read(fd, data + got, (gsize)st.st_size - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += (gsize)n;
    }
    if (got != (gsize)st.st_size) {
      *why = g_strdup("cannot be read");
      g_clear_pointer(&data, g_free);
    } else {
      data[got] = '\0';
    }
  }
  close(fd);
  *len = got;
  return g_steal_pointer(&data);
}

SqlenvfsVerifyMemo *
sqlenvfs_verify_memo_load(const char *path, gint64 now_us, char **why)
{
  g_autoptr(SqlenvfsVerifyMemo) memo = sqlenvfs_verify_memo_new(now_us);
  g_autofree char *reason = NULL;
  g_autofree char *data = NULL;
  g_auto(GStrv) lines = NULL;
  const char *tail;
  guint32 sum;
  gsize len = 0;
  guint n;

  data = read_trusted(path, &len, &reason);
  if (data == NULL)
    goto out;
  tail = g_strrstr_len(data, (gssize)len, "crc32=0x");
  if (memchr(data, '\0', len) != NULL || tail == NULL || (tail != data && tail[-1] != '\n') ||
      (gsize)(tail - data) + 16 > len) {
    reason = g_strdup("has no checksum line (damaged)");
    goto out;
  }
  {
    g_autofree char *hex = g_strndup(tail + 6, 10);
    g_autofree char *rest = g_strndup(tail + 16, len - (gsize)(tail + 16 - data));
    if (!parse_crc(hex, &sum) || strcmp(rest, "\n") != 0 ||
        sum != sqlenvfs_crc32(0, data, (gsize)(tail - data))) {
      reason = g_strdup("fails its checksum (damaged or edited)");
      goto out;
    }
  }
  memo->loaded = g_bytes_new(data, len); /* what a save that changes nothing writes */
  memo->loaded_path = g_strdup(path);
  data[tail - data] = '\0';
  lines = g_strsplit(data, "\n", -1);
  n = g_strv_length(lines);
  if (n < 2 || strcmp(lines[0], MEMO_HEADER) != 0 || lines[n - 1][0] != '\0') {
    reason = g_strdup("does not start with \"" MEMO_HEADER "\"");
    goto out;
  }
  for (guint i = 1; i + 1 < n; i++) {
    char *p = NULL;
    Entry e = { 0 };
    if (!parse_line(lines[i], &p, &e)) {
      g_free(p);
      g_free(e.why);
      reason = g_strdup_printf("line %u is not understood", i + 1);
      g_hash_table_remove_all(memo->entries);
      goto out;
    }
    g_hash_table_replace(memo->entries, p, g_memdup2(&e, sizeof e));
  }
out:
  if (reason != NULL) {
    g_clear_pointer(&memo->loaded, g_bytes_unref);
    g_clear_pointer(&memo->loaded_path, g_free);
    g_info("verify: ignoring %s: it %s; everything is read again", path, reason);
  }
  if (why)
    *why = reason ? g_strdup_printf("%s %s, so it was ignored and everything read", path, reason)
                  : NULL;
  return g_steal_pointer(&memo);
}

static void
append_entry(GString *s, const char *path, const Entry *e)
{
  g_autofree char *ep = g_uri_escape_string(path, "/", FALSE);
  g_autofree char *id = format_id(&e->id);
  if (e->kind == ENTRY_SEGMENT) {
    g_autofree char *idx = format_id(&e->idx_id);
    const SqlenvfsArchiveSegmentFacts *f = &e->facts;
    g_string_append_printf(s, "segment %s seg=%s idx=%s size=%" G_GUINT64_FORMAT " first=%"
                           G_GUINT64_FORMAT " prev=0x%08x seal=0x%08x next=%" G_GUINT64_FORMAT
                           " records=%" G_GUINT64_FORMAT " commits=%" G_GUINT64_FORMAT
                           " gaps=%" G_GUINT64_FORMAT " at=%" G_GINT64_FORMAT "\n",
                           ep, id, idx, f->size, f->first_seq, f->prev_crc, f->seal,
                           f->next_seq, f->n_records, f->n_commits, f->n_gaps, e->verified_us);
  } else if (e->kind == ENTRY_SUMMARY) {
    g_autofree char *last = e->last == LAST_FILE ? format_id(&e->last_id) : g_strdup("none");
    g_assert(e->last != LAST_UNKNOWN); /* such an entry is never kept */
    g_string_append_printf(s, "summary %s file=%s last=%s seal=0x%08x at=%" G_GINT64_FORMAT "\n",
                           ep, id, last, e->crc32, e->verified_us);
  } else if (e->kind == ENTRY_BASE) {
    g_autofree char *why = e->why ? g_uri_escape_string(e->why, NULL, FALSE) : NULL;
    g_string_append_printf(s, "base %s file=%s size=%" G_GUINT64_FORMAT " crc32=0x%08x "
                           "page-size=%u pages=%u at=%" G_GINT64_FORMAT " verdict=%s%s\n",
                           ep, id, e->size, e->crc32, e->page_size, e->n_pages, e->verified_us,
                           why ? "bad:" : "good", why ? why : "");
  } else {
    g_string_append_printf(s, "copy %s file=%s size=%" G_GUINT64_FORMAT " crc32=0x%08x "
                           "page-size=%u pages=%u at=%" G_GINT64_FORMAT "\n",
                           ep, id, e->size, e->crc32, e->page_size, e->n_pages, e->verified_us);
  }
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

gboolean
sqlenvfs_verify_memo_save(SqlenvfsVerifyMemo *memo, const char *path, GError **error)
{
  g_autoptr(GPtrArray) keys = g_ptr_array_new();
  GString *s = g_string_new(MEMO_HEADER "\n");
  GHashTableIter it;
  gpointer k, v;
  gboolean ok;

  g_hash_table_iter_init(&it, memo->entries);
  while (g_hash_table_iter_next(&it, &k, &v))
    if (((Entry *)v)->keep)
      g_ptr_array_add(keys, k);
  g_ptr_array_sort(keys, cmp_str);
  for (guint i = 0; i < keys->len; i++)
    append_entry(s, keys->pdata[i], g_hash_table_lookup(memo->entries, keys->pdata[i]));
  g_string_append_printf(s, "crc32=0x%08x\n", sqlenvfs_crc32(0, s->str, s->len));
  if (memo->loaded != NULL && strcmp(memo->loaded_path, path) == 0 &&
      g_bytes_get_size(memo->loaded) == s->len &&
      memcmp(g_bytes_get_data(memo->loaded, NULL), s->str, s->len) == 0)
    ok = TRUE; /* the file holds these bytes: a rename would only cost a writeback */
  else
    /* Not durably: a memo lost or cut short by a crash fails its checksum
     * and is ignored, which only costs the next run time, while the two
     * fsyncs of a durable write would cost every run more than reading a
     * small segment. */
    ok = sqlenvfs_write_file_replace(path, s->str, s->len, 0600, error);
  g_string_free(s, TRUE);
  return ok;
}

guint
sqlenvfs_verify_memo_n_kept(const SqlenvfsVerifyMemo *memo)
{
  GHashTableIter it;
  gpointer v;
  guint n = 0;
  g_hash_table_iter_init(&it, memo->entries);
  while (g_hash_table_iter_next(&it, NULL, &v))
    n += ((Entry *)v)->keep ? 1 : 0;
  return n;
}

/* ----------------------------------------------------------- the hooks */

static gboolean
segment_known(gpointer user, const char *seg_path, const char *idx_path,
              SqlenvfsArchiveSegmentFacts *facts)
{
  SqlenvfsVerifyMemo *memo = user;
  Entry *e = g_hash_table_lookup(memo->entries, seg_path);
  SqlenvfsFileId id, idx;
  if (e == NULL || e->kind != ENTRY_SEGMENT || !id_of_path(seg_path, &id) ||
      !id_of_path(idx_path, &idx) || !sqlenvfs_file_id_equal(&id, &e->id) ||
      !sqlenvfs_file_id_equal(&idx, &e->idx_id))
    return FALSE;
  *facts = e->facts;
  e->keep = TRUE;
  return TRUE;
}

static void
segment_verified(gpointer user, const char *seg_path, const char *idx_path,
                 const SqlenvfsArchiveSegmentFacts *facts)
{
  SqlenvfsVerifyMemo *memo = user;
  Entry e = { .kind = ENTRY_SEGMENT, .facts = *facts, .verified_us = memo->now_us, .keep = TRUE };
  if (!id_of_path(seg_path, &e.id) || !id_of_path(idx_path, &e.idx_id) ||
      e.id.size != facts->size || !settled(memo, &e.id) || !settled(memo, &e.idx_id)) {
    g_hash_table_remove(memo->entries, seg_path);
    return;
  }
  g_hash_table_replace(memo->entries, g_strdup(seg_path), g_memdup2(&e, sizeof e));
}

/* The file of last versions at @path as it is now: not there (LAST_NONE),
 * a regular file (LAST_FILE, *id), or anything else (LAST_UNKNOWN: never
 * remembered, so always read). */
static LastState
last_state(const char *path, SqlenvfsFileId *id)
{
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? LAST_NONE : LAST_UNKNOWN;
  if (!S_ISREG(st.st_mode))
    return LAST_UNKNOWN;
  sqlenvfs_file_id_from_stat(&st, id);
  return LAST_FILE;
}

static gboolean
summary_known(gpointer user, const char *sum_path, const char *last_path, guint32 seal)
{
  SqlenvfsVerifyMemo *memo = user;
  Entry *e = g_hash_table_lookup(memo->entries, sum_path);
  SqlenvfsFileId id, last_id;
  if (e == NULL || e->kind != ENTRY_SUMMARY || e->crc32 != seal || !id_of_path(sum_path, &id) ||
      !sqlenvfs_file_id_equal(&id, &e->id))
    return FALSE;
  /* The file of last versions is checked with its summary: one changed,
   * gone, or there where none was, is read again with it. */
  if (e->last == LAST_UNKNOWN || last_state(last_path, &last_id) != e->last ||
      (e->last == LAST_FILE && !sqlenvfs_file_id_equal(&last_id, &e->last_id)))
    return FALSE;
  e->keep = TRUE;
  return TRUE;
}

static void
summary_verified(gpointer user, const char *sum_path, const char *last_path, guint32 seal)
{
  SqlenvfsVerifyMemo *memo = user;
  Entry e = { .kind = ENTRY_SUMMARY, .crc32 = seal, .verified_us = memo->now_us, .keep = TRUE };
  e.last = last_state(last_path, &e.last_id);
  if (!id_of_path(sum_path, &e.id) || !settled(memo, &e.id) || e.last == LAST_UNKNOWN ||
      (e.last == LAST_FILE && !settled(memo, &e.last_id))) {
    g_hash_table_remove(memo->entries, sum_path);
    return;
  }
  g_hash_table_replace(memo->entries, g_strdup(sum_path), g_memdup2(&e, sizeof e));
}

static gboolean
copy_known(gpointer user, const SqlenvfsStoredDb *sdb, gint64 *verified_us)
{
  SqlenvfsVerifyMemo *memo = user;
  Entry *e = g_hash_table_lookup(memo->entries, sdb->path);
  SqlenvfsFileId id;
  if (e == NULL || e->kind != ENTRY_COPY || !id_of_path(sdb->path, &id) ||
      !sqlenvfs_file_id_equal(&id, &e->id) || e->size != sdb->size || e->crc32 != sdb->crc32 ||
      e->page_size != sdb->pos.page_size || e->n_pages != sdb->pos.n_pages)
    return FALSE;
  *verified_us = e->verified_us;
  e->keep = TRUE;
  return TRUE;
}

/* Does @e describe @sdb's file as it is (@id) and as its MANIFEST says? */
static gboolean
copy_entry_applies(const Entry *e, const SqlenvfsFileId *id, const SqlenvfsStoredDb *sdb)
{
  return (e->kind == ENTRY_COPY || e->kind == ENTRY_BASE) && sqlenvfs_file_id_equal(id, &e->id) &&
         e->size == sdb->size && e->crc32 == sdb->crc32 && e->page_size == sdb->pos.page_size &&
         e->n_pages == sdb->pos.n_pages;
}

/* Remember the base verdict @why (NULL: good) for @sdb's file as @id. */
static void
put_base(SqlenvfsVerifyMemo *memo, const SqlenvfsStoredDb *sdb, const SqlenvfsFileId *id,
         const char *why)
{
  Entry e = { .kind = ENTRY_BASE, .id = *id, .size = sdb->size, .crc32 = sdb->crc32,
              .page_size = sdb->pos.page_size, .n_pages = sdb->pos.n_pages,
              .verified_us = memo->now_us, .keep = TRUE, .why = g_strdup(why) };
  g_hash_table_replace(memo->entries, g_strdup(sdb->path), g_memdup2(&e, sizeof e));
}

static void
copy_done(gpointer user, const SqlenvfsStoredDb *sdb)
{
  SqlenvfsVerifyMemo *memo = user;
  Entry e = { .kind = ENTRY_COPY, .size = sdb->size, .crc32 = sdb->crc32,
              .page_size = sdb->pos.page_size, .n_pages = sdb->pos.n_pages,
              .verified_us = memo->now_us, .keep = TRUE };
  Entry *old = g_hash_table_lookup(memo->entries, sdb->path);
  if (!id_of_path(sdb->path, &e.id)) {
    g_hash_table_remove(memo->entries, sdb->path);
    return;
  }
  if (!settled(memo, &e.id)) {
    /* Too fresh to be skipped next time, but a good verdict made when it
     * was written still holds. */
    if (old != NULL && old->kind == ENTRY_BASE && old->why == NULL &&
        copy_entry_applies(old, &e.id, sdb))
      old->keep = TRUE;
    else
      g_hash_table_remove(memo->entries, sdb->path);
    return;
  }
  g_hash_table_replace(memo->entries, g_strdup(sdb->path), g_memdup2(&e, sizeof e));
}

static void
copy_base_bad(gpointer user, const SqlenvfsStoredDb *sdb, const SqlenvfsFileId *id,
              const char *reason)
{
  put_base(user, sdb, id, reason);
}

void
sqlenvfs_verify_memo_archive_hooks(SqlenvfsVerifyMemo *memo, SqlenvfsArchiveVerifyMemo *out)
{
  out->known = segment_known;
  out->verified = segment_verified;
  out->user = memo;
  out->summary_known = summary_known;
  out->summary_verified = summary_verified;
  out->frames_only = FALSE;
}

void
sqlenvfs_verify_memo_store_hooks(SqlenvfsVerifyMemo *memo, SqlenvfsStoreVerifyMemo *out)
{
  out->known = copy_known;
  out->done = copy_done;
  out->base_bad = copy_base_bad;
  out->user = memo;
}

/* ------------------------------------------------------- base verdicts */

SqlenvfsBaseState
sqlenvfs_verify_memo_base_state(SqlenvfsVerifyMemo *memo, const SqlenvfsStoredDb *sdb,
                                char **reason)
{
  const Entry *e;
  SqlenvfsFileId id;
  if (sqlenvfs_store_base_known_bad(sdb, reason))
    return SQLENVFS_BASE_BAD; /* found bad by this process, maybe not remembered */
  e = g_hash_table_lookup(memo->entries, sdb->path);
  if (e == NULL || !id_of_path(sdb->path, &id) || !copy_entry_applies(e, &id, sdb))
    return SQLENVFS_BASE_UNCHECKED;
  if (e->why == NULL)
    return SQLENVFS_BASE_GOOD;
  if (reason)
    *reason = g_strdup(e->why);
  return SQLENVFS_BASE_BAD;
}

void
sqlenvfs_verify_memo_note_base(SqlenvfsRoot *root, const SqlenvfsStoredDb *sdb,
                               const SqlenvfsFileId *id, gboolean just_written, const char *why)
{
  g_autofree char *path = sqlenvfs_verify_memo_path(root);
  const char *state = sqlenvfs_root_path(root, SQLENVFS_DIR_STATE);
  g_autoptr(SqlenvfsVerifyMemo) memo = sqlenvfs_verify_memo_load(path, g_get_real_time(), NULL);
  g_autoptr(GError) local = NULL;
  const Entry *old = g_hash_table_lookup(memo->entries, sdb->path);
  GHashTableIter it;
  gpointer v;

  if (old != NULL && copy_entry_applies(old, id, sdb) && (old->why == NULL) == (why == NULL))
    return; /* known already */
  if (why == NULL && !just_written && !settled(memo, id))
    return; /* invariant 2 */
  g_hash_table_iter_init(&it, memo->entries);
  while (g_hash_table_iter_next(&it, NULL, &v))
    ((Entry *)v)->keep = TRUE;
  put_base(memo, sdb, id, why);
  if (!(g_file_test(state, G_FILE_TEST_IS_DIR) || sqlenvfs_mkdir_p(state, 0700, &local)) ||
      !sqlenvfs_verify_memo_save(memo, path, &local))
    g_message("cannot remember the check of %s (list shows it as not checked): %s", sdb->path,
              local->message);
}

/* ------------------------------------------------------------- one run */

static void
append_count(GString *s, guint n, const char *one, const char *many)
{
  g_string_append_printf(s, "%u %s", n, n == 1 ? one : many);
}

char *
sqlenvfs_verify_memo_describe(const SqlenvfsVerifyReport *report)
{
  GString *s = g_string_new("checked ");
  append_count(s, report->n_segments_checked, "segment", "segments");
  g_string_append(s, ", ");
  append_count(s, report->n_copies_checked, "copy", "copies");
  if (report->full) {
    g_string_append(s, " (--full: everything read)");
  } else if (report->n_segments_skipped + report->n_copies_skipped == 0) {
    g_string_append(s, " (everything: nothing verified before is unchanged)");
  } else {
    g_string_append(s, "; ");
    if (report->n_segments_skipped > 0)
      append_count(s, report->n_segments_skipped, "segment", "segments");
    if (report->n_segments_skipped > 0 && report->n_copies_skipped > 0)
      g_string_append(s, " and ");
    if (report->n_copies_skipped > 0)
      append_count(s, report->n_copies_skipped, "copy", "copies");
    g_string_append(s, " verified before, skipped (verify --full re-reads them)");
  }
  return g_string_free(s, FALSE);
}

char *
sqlenvfs_verify_memo_path(SqlenvfsRoot *root)
{
  return g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE), "verified", NULL);
}

gboolean
sqlenvfs_verify_memo_run(SqlenvfsRoot *root, gboolean full, SqlenvfsVerifyReport *report,
                         GError **error)
{
  g_autofree char *path = sqlenvfs_verify_memo_path(root);
  const char *state = sqlenvfs_root_path(root, SQLENVFS_DIR_STATE);
  gint64 now = g_get_real_time();
  g_autoptr(SqlenvfsVerifyMemo) memo = NULL;
  g_autoptr(GError) local = NULL;
  SqlenvfsArchiveVerifyMemo ahooks;
  SqlenvfsStoreVerifyMemo shooks;

  report->full = full;
  memo = full ? sqlenvfs_verify_memo_new(now)
              : sqlenvfs_verify_memo_load(path, now, &report->memo_note);
  sqlenvfs_verify_memo_archive_hooks(memo, &ahooks);
  ahooks.frames_only = !full; /* --full decompresses every block */
  sqlenvfs_verify_memo_store_hooks(memo, &shooks);
  if (!sqlenvfs_store_verify_all_with(root, &shooks, report, error) ||
      !sqlenvfs_retention_verify_archives(root, &ahooks, report, error))
    return FALSE;
  if (!(g_file_test(state, G_FILE_TEST_IS_DIR) || sqlenvfs_mkdir_p(state, 0700, &local)) ||
      !sqlenvfs_verify_memo_save(memo, path, &local))
    g_message("verify: cannot remember what was verified (the next run reads it again): %s",
              local->message);
  /* After the save: the timelines take the copies found bad from it. */
  sqlenvfs_retention_verify_newest(root, report);
  return TRUE;
}
